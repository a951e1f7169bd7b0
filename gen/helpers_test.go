package gen_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
	"github.com/reign-go/reign/internal/certs"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"
)

const testTimeout = 10 * time.Second

// certDir mints one throwaway CA and node certificates 1..2 per test
// binary run; TestMain removes them.
var certDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "reign-gen-test-")
	if err != nil {
		return "", err
	}
	_, err = certs.WriteSet(dir, 2, certs.SetOptions{})
	return dir, err
})

var certDirUsed atomic.Bool

func TestMain(m *testing.M) {
	code := m.Run()
	if certDirUsed.Load() {
		if dir, err := certDir(); err == nil {
			_ = os.RemoveAll(dir)
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testTypes are the messages of the test server, registered on every node.
var testTypes = []any{Incr{}, Get{}, Boom{}, Fail{}, StopMe{}, Idle{}, Nap{}, Add{}, CastFail{}, Later{}, Unknown{}}

// testCluster starts nodes 1 and 2 of a cluster in this process, talking
// mutual TLS over 127.0.0.1, and waits until they are connected. They stop
// when the test ends.
func testCluster(t testing.TB) (*reign.Node, *reign.Node) {
	t.Helper()
	certDirUsed.Store(true)
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	spec := &reign.ClusterSpec{
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
	var lns []net.Listener
	for id := reign.NodeID(1); id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: id, Address: ln.Addr().String()})
	}
	var nodes []*reign.Node
	for i, ns := range spec.Nodes {
		n, err := reign.NewNode(reign.Config{NodeID: ns.ID, Cluster: spec, Listener: lns[i],
			HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RegisterType(testTypes...); err != nil {
			t.Fatal(err)
		}
		serve(t, n)
		nodes = append(nodes, n)
	}
	eventually(t, func() error {
		for _, n := range nodes {
			if up := n.Stats().PeersUp; up != 1 {
				return fmt.Errorf("%v has %d peers up", n, up)
			}
		}
		return nil
	})
	return nodes[0], nodes[1]
}

// localNode returns a local-only node.
func localNode(t testing.TB) *reign.Node {
	t.Helper()
	n, err := reign.NewNode(reign.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// serve runs s until the test ends, and waits for it.
func serve(t testing.TB, s suture.Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// supervise runs svc under a suture supervisor that restarts it at once,
// until the test ends.
func supervise(t testing.TB, svc suture.Service) {
	sup := suture.New("test", suture.Spec{
		FailureThreshold: 1000, FailureBackoff: time.Millisecond, Timeout: time.Second,
		EventHook: func(suture.Event) {},
	})
	sup.Add(svc)
	serve(t, sup)
}

// eventually polls fn until it returns nil, failing t with fn's last
// reason after testTimeout.
func eventually(t testing.TB, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done within %v: %v", testTimeout, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lookup waits until name is registered on n with an Address other than
// not, and returns it.
func lookup(t testing.TB, n *reign.Node, name string, not reign.Address) reign.Address {
	t.Helper()
	var a reign.Address
	eventually(t, func() error {
		var ok bool
		if a, ok = n.Lookup(name); !ok || a == not {
			return fmt.Errorf("%q is not (newly) registered", name)
		}
		return nil
	})
	return a
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recv receives one message from m within testTimeout.
func recv(t testing.TB, m *reign.Mailbox) any {
	t.Helper()
	v, err := m.Receive(testCtx(t))
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return v
}

// The test server's messages.
type (
	Incr     struct{}             // call: add one, reply the count
	Get      struct{}             // call: reply the count
	Boom     struct{}             // call: panic
	Fail     struct{}             // call: reply errFail
	StopMe   struct{ Why string } // call: reply "bye", stop with Why ("" = normal)
	Idle     struct{ D int64 }    // call: set the idle timeout to D ns
	Nap      struct{ D int64 }    // call or cast: sleep D ns (then reply, to show late replies)
	Later    struct{}             // call: reply later, from another goroutine
	Unknown  struct{}             // a call the server does not handle
	Add      struct{ N int }      // cast: add N
	CastFail struct{}             // cast: fail
)

var (
	errFail = errors.New("test: refused")
	errCast = errors.New("test: bad cast")
)

// counter is the test server. Its events (info messages, terminations)
// go to channels the test reads.
type counter struct {
	n     int
	info  chan any
	terms chan error
	inits int
}

func newCounter() *counter {
	return &counter{info: make(chan any, 100), terms: make(chan error, 100)}
}

func (c *counter) Init(p *gen.Process) error {
	c.n = 0
	c.inits++
	return nil
}

func (c *counter) HandleCall(p *gen.Process, req any) (any, error) {
	switch r := req.(type) {
	case Incr:
		c.n++
		return c.n, nil
	case Get:
		return c.n, nil
	case Boom:
		panic("boom")
	case Fail:
		return nil, fmt.Errorf("with %d: %w", c.n, errFail)
	case StopMe:
		if r.Why == "" {
			p.Stop(nil)
		} else {
			p.Stop(errors.New(r.Why))
		}
		return "bye", nil
	case Idle:
		p.SetTimeout(time.Duration(r.D))
		return "ok", nil
	case Nap:
		time.Sleep(time.Duration(r.D))
		return "late", nil
	case Later:
		req := p.DeferReply()
		go func() { _ = req.Reply("later") }()
		return "ignored", nil
	}
	return nil, gen.ErrUnhandled
}

func (c *counter) HandleCast(p *gen.Process, msg any) error {
	switch m := msg.(type) {
	case Add:
		c.n += m.N
		return nil
	case CastFail:
		return errCast
	case Nap:
		time.Sleep(time.Duration(m.D))
		return nil
	}
	return gen.ErrUnhandled
}

func (c *counter) HandleInfo(p *gen.Process, msg any) error {
	c.info <- msg
	return nil
}

func (c *counter) Terminate(p *gen.Process, reason error) { c.terms <- reason }
