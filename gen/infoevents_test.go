package gen_test

import (
	"context"
	"testing"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
)

// groupWatcher monitors a group from Init and has no HandleCast: the
// node-made GroupChanged must reach HandleInfo (Erlang's handle_info),
// not crash it as an unhandled cast.
type groupWatcher struct {
	infos  chan any
	inited chan struct{} // closed once Init has subscribed
}

func (g *groupWatcher) Init(p *gen.Process) error {
	_, err := p.Node().MonitorGroup("workers", p.Self())
	close(g.inited)
	return err
}
func (g *groupWatcher) HandleCall(*gen.Process, any) (any, error) { return nil, gen.ErrUnhandled }
func (g *groupWatcher) HandleInfo(_ *gen.Process, msg any) error  { g.infos <- msg; return nil }

func TestNodeMadeEventsAreInfo(t *testing.T) {
	n := localNode(t)
	srv := &groupWatcher{infos: make(chan any, 4), inited: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- gen.New(n, "gw", srv).Serve(ctx) }()
	defer func() { cancel(); <-errc }()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	// (the name is registered before Init runs, as in Erlang: wait for
	// Init itself, or the join below can come before the subscription)
	select {
	case <-srv.inited:
	case <-wctx.Done():
		t.Fatal("Init did not run")
	}
	m, mb := n.NewMailbox()
	defer mb.Close()
	if err := n.JoinGroup("workers", m); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-srv.infos:
		if gc, ok := v.(reign.GroupChanged); !ok || len(gc.Joined) != 1 {
			t.Fatalf("HandleInfo got %#v, want the GroupChanged of the join", v)
		}
	case err := <-errc:
		t.Fatalf("the server stopped on GroupChanged: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("HandleInfo got nothing")
	}
}
