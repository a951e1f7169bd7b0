package reign

// Calls across real nodes that cannot be answered fail at once, with an
// error naming the type and the side; forwarded requests are answered
// through the nodes they came by; exit causes travel with Closed frames.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type onlyOn1 struct{ N int }     // registered on node 1 only
type onlyOn2 struct{ N int }     // registered on node 2 only
type onlyOn12 struct{ N int }    // registered on nodes 1 and 2, not 3
type asInt struct{ N int }       // "reign.shape" on node 1 ...
type asString struct{ N string } // ... and on node 2: bodies do not decode

// speakCluster is three connected nodes with the types above registered
// as their names say.
func speakCluster(t *testing.T) (n1, n2, n3 *Node) {
	t.Helper()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 = tc.node(1), tc.node(2), tc.node(3)
	for _, r := range []struct {
		n  *Node
		vs []any
	}{{n1, []any{onlyOn1{}, onlyOn12{}}}, {n2, []any{onlyOn2{}, onlyOn12{}}}} {
		if err := r.n.RegisterType(r.vs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.RegisterTypeName("reign.shape", asInt{}); err != nil {
		t.Fatal(err)
	}
	if err := n2.RegisterTypeName("reign.shape", asString{}); err != nil {
		t.Fatal(err)
	}
	return n1, n2, n3
}

// replyWith is a server handler that replies with what f makes of the
// request's body, and records Reply's error.
func replyWith(f func(any) any, errs chan<- error) func(any) {
	return func(v any) {
		if r, ok := v.(Request); ok {
			errs <- r.Reply(f(r.Body))
		}
	}
}

func TestCallFailuresSpeak(t *testing.T) {
	t.Parallel()
	n1, n2, _ := speakCluster(t)
	replyErrs := make(chan error, 8)
	reply := map[string]any{"on2": onlyOn2{N: 1}, "on1": onlyOn1{N: 1}, "shape": asString{N: "x"}, "ok": 42}
	srv, _ := startServer(t, n2, replyWith(func(b any) any {
		if s, ok := b.(string); ok {
			return reply[s]
		}
		return "decoded"
	}, replyErrs))
	rs := n1.BindAddress(srv)
	name := func(n *Node, v any) string { return n.typeNameOf(v) }

	// The request's type is not registered on the server's node.
	_, err := callWithin(t, rs, onlyOn1{N: 1})
	wantCallError(t, err, ServerSide, 2, false, name(n1, onlyOn1{}), ErrUnknownType) // named as node 1 sent it
	// The server's node cannot decode the request.
	_, err = callWithin(t, rs, asInt{N: 1})
	wantCallError(t, err, ServerSide, 2, false, "reign.shape", ErrDecode)
	// The request's type is not registered on the caller's node.
	_, err = callWithin(t, rs, onlyOn2{N: 1})
	wantCallError(t, err, CallerSide, 1, false, "reign.onlyOn2", ErrUnknownType) // its Go type: node 1 has no name for it

	// The server's reply is of a type its node has not registered: Reply
	// says so, and the caller fails at once with the same error.
	_, err = callWithin(t, rs, "on1")
	wantCallError(t, err, ServerSide, 2, true, "reign.onlyOn1", ErrUnknownType)
	if rerr := <-replyErrs; !errors.Is(rerr, ErrUnknownType) || !errors.As(rerr, new(*CallError)) {
		t.Fatalf("Reply of an unregistered type = %v", rerr)
	}
	// The reply's type is not registered on the caller's node.
	_, err = callWithin(t, rs, "on2")
	wantCallError(t, err, CallerSide, 1, true, name(n2, onlyOn2{}), ErrUnknownType)
	<-replyErrs
	// The caller's node cannot decode the reply.
	_, err = callWithin(t, rs, "shape")
	wantCallError(t, err, CallerSide, 1, true, "reign.shape", ErrDecode)
	<-replyErrs
	if !strings.Contains(err.Error(), "caller's side (node 1): reply of type \"reign.shape\"") {
		t.Fatalf("the error does not speak: %v", err)
	}

	// And calls still work.
	if v, err := callWithin(t, rs, "ok"); err != nil || v != 42 {
		t.Fatalf("Call = %v, %v", v, err)
	}
}

// A remote reply after the caller gave up is discarded and counted, and
// never lands in a mailbox.
func TestCallLateRemoteReply(t *testing.T) {
	t.Parallel()
	n1, n2, _ := speakCluster(t)
	srv, smb := n2.NewMailbox()
	t.Cleanup(smb.Close)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Call(ctx, n1.BindAddress(srv), 1)
		errc <- err
	}()
	req := recv(t, smb).(Request)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v", err)
	}
	before := n1.Stats().DroppedUnmatchedReply
	if err := req.Reply("late"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		return unless(n1.Stats().DroppedUnmatchedReply == before+1, "the late reply is not counted")
	})
}

// forwarder is a server handler that passes each Request on to next.
func forwarder(t *testing.T, next Address) func(any) {
	return func(v any) {
		if r, ok := v.(Request); ok {
			if err := next.Send(r); err != nil {
				t.Errorf("forwarding: %v", err)
			}
		}
	}
}

// A server forwards the Request to a worker on another node, which
// replies: the reply comes back through the server's node, for every
// arrangement of the three, and the failures of a forwarded call speak
// too.
func TestCallForwarded(t *testing.T) {
	t.Parallel()
	n1, n2, n3 := speakCluster(t)
	nodes := map[NodeID]*Node{1: n1, 2: n2, 3: n3}
	workers := map[NodeID]Address{}
	for id, n := range nodes {
		workers[id], _ = startServer(t, n, func(v any) {
			if r, ok := v.(Request); ok {
				switch b := r.Body.(type) {
				case int:
					_ = r.Reply(b * 2)
				case string: // reply with a type node 3 does not know
					_ = r.Reply(onlyOn12{N: len(b)})
				}
			}
		})
	}
	for _, c := range []struct{ caller, server, worker NodeID }{
		{1, 2, 3}, // through a relay
		{1, 1, 2}, // a local server forwards to another node
		{1, 2, 1}, // back to the caller's node, through the relay
		{1, 2, 2}, // on the server's node
	} {
		srv, _ := startServer(t, nodes[c.server], forwarder(t, nodes[c.server].BindAddress(workers[c.worker])))
		v, err := callWithin(t, nodes[c.caller].BindAddress(srv), 21)
		if err != nil || v != 42 {
			t.Fatalf("caller %d, server %d, worker %d: Call = %v, %v", c.caller, c.server, c.worker, v, err)
		}
	}
	// Through node 3, a reply of a type node 3 does not know fails the
	// call at once, naming node 3.
	srv, _ := startServer(t, n3, forwarder(t, n3.BindAddress(workers[2])))
	_, err := callWithin(t, n1.BindAddress(srv), "abc")
	wantCallError(t, err, ServerSide, 3, true, n1.typeNameOf(onlyOn12{}), ErrUnknownType)
	// A worker on node 3 that cannot decode the request (through node 2).
	srv2, _ := startServer(t, n2, forwarder(t, n2.BindAddress(workers[3])))
	_, err = callWithin(t, n1.BindAddress(srv2), onlyOn12{N: 1})
	wantCallError(t, err, ServerSide, 3, false, n1.typeNameOf(onlyOn12{}), ErrUnknownType)
	// A worker on node 3 that is closed (through node 2): the caller's own
	// server is alive, and the call fails at once all the same.
	gone, gmb := n3.NewMailbox()
	gmb.Close()
	srv3, _ := startServer(t, n2, forwarder(t, n2.BindAddress(gone)))
	_, err = callWithin(t, n1.BindAddress(srv3), 1)
	wantCallError(t, err, ServerSide, 3, false, "int", ErrMailboxClosed)
	for id, n := range nodes {
		n.calls.mu.Lock()
		k := len(n.calls.m)
		n.calls.mu.Unlock()
		if k != 0 {
			t.Errorf("node %d still holds %d calls", id, k)
		}
	}
}

// A worker's node lost while a forwarded call waits: the caller fails at
// once with ErrNodeUnreachable, though its own server is alive.
func TestCallForwardedWorkerLost(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	held := make(chan Request, 1)
	worker, _ := startServer(t, n3, func(v any) {
		if r, ok := v.(Request); ok {
			held <- r
		}
	})
	srv, _ := startServer(t, n2, forwarder(t, n2.BindAddress(worker)))
	errc := make(chan error, 1)
	go func() {
		_, err := Call(testCtx(t), n1.BindAddress(srv), 1)
		errc <- err
	}()
	<-held
	tc.kill(3)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNodeUnreachable) || !errors.As(err, new(*CallError)) {
			t.Fatalf("Call = %v, want a CallError wrapping ErrNodeUnreachable", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the forwarded call waited on")
	}
}

// An abnormal close's cause reaches a watcher on another node as its
// text, cut to MaxExitText, and a pending Call fails with it.
func TestExitCauseAcrossNodes(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	for _, cause := range []string{"disk on fire", strings.Repeat("x", 3*MaxExitText)} {
		srv, smb := n2.NewMailbox()
		rs := n1.BindAddress(srv)
		w, wm := newTestMailbox(t, n1)
		rs.OnCloseNotify(w)
		errc := make(chan error, 1)
		go func() {
			_, err := Call(testCtx(t), rs, 1)
			errc <- err
		}()
		recv(t, smb)
		smb.CloseWithError(errors.New(cause))
		want := cause[:min(len(cause), MaxExitText)]
		var re *RemoteError
		mc := recv(t, wm).(MailboxClosed)
		if mc.Reason != Abnormal || !errors.As(mc.Err, &re) || re.Text != want {
			t.Fatalf("the watcher got %+v, want the cause's text", mc)
		}
		err := <-errc
		if !errors.Is(err, ErrMailboxClosed) || !errors.As(err, &re) || re.Text != want {
			t.Fatalf("the pending Call = %v, want the cause's text", err)
		}
	}
	// A normal close carries no text.
	srv, smb := n2.NewMailbox()
	w, wm := newTestMailbox(t, n1)
	n1.BindAddress(srv).OnCloseNotify(w)
	flushPeers(t, n1, n2)
	smb.Close()
	if mc := recv(t, wm).(MailboxClosed); mc.Reason != Normal || mc.Err != nil {
		t.Fatalf("normal close: %+v", mc)
	}
}

// The forwarded calls a node awaits are bounded: those of local callers
// by maxDetachedCalls (at the bound, those whose callers stopped waiting
// are swept, and if none can be, a forward fails with
// ErrTooManyForwarded), those from each peer by MaxPeerForwarded, apart.
func TestCallTableBound(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	gone, gmb := n.NewMailbox()
	gmb.Close()
	alive, amb := n.NewMailbox()
	defer amb.Close()
	tb := callTable{maxPeer: 4}
	for range maxDetachedCalls {
		if _, err := tb.add(outCall{peer: 2, caller: gone}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.add(outCall{peer: 2, caller: gone}); err != nil {
		t.Fatalf("at the bound, with callers gone: %v", err)
	}
	if len(tb.m) != 1 || tb.detached != 1 {
		t.Fatalf("after the sweep: %d entries, %d detached", len(tb.m), tb.detached)
	}
	for range maxDetachedCalls - 1 {
		if _, err := tb.add(outCall{peer: 2, caller: alive}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.add(outCall{peer: 2, caller: alive}); err != nil {
		t.Fatalf("at the bound, with a caller gone: %v", err)
	}
	if _, err := tb.add(outCall{peer: 2, caller: alive}); !errors.Is(err, ErrTooManyForwarded) {
		t.Fatalf("past the bound: %v", err)
	}
	var le *LimitError
	relay := outCall{peer: 2, caller: gone, up: origin{node: 3, remote: true}}
	for range 4 {
		if _, err := tb.add(relay); err != nil {
			t.Fatalf("a peer's forward, local callers at their bound: %v", err)
		}
	}
	if _, err := tb.add(relay); !errors.Is(err, ErrTooManyForwarded) || !errors.As(err, &le) || le.Limit != LimitForwarded {
		t.Fatalf("past the peer's bound: %v", err)
	}
	if _, err := tb.add(outCall{peer: 2, up: origin{node: 5, remote: true}}); err != nil {
		t.Fatalf("another peer's forward: %v", err)
	}
	if r, err := tb.add(outCall{peer: 2, owned: true}); err != nil || r == 0 {
		t.Fatalf("a Call's own request past the bound: %v", err)
	}
	if got := len(tb.takePeer(3)); got != 4 {
		t.Fatalf("takePeer(3) took %d", got)
	}
	if got := len(tb.takePeer(5)); got != 1 {
		t.Fatalf("takePeer(5) took %d", got)
	}
	if len(tb.fromPeer) != 0 || tb.detached != maxDetachedCalls || len(tb.m) != maxDetachedCalls+1 {
		t.Fatalf("after takePeer: %d entries, %d detached, %v from peers", len(tb.m), tb.detached, tb.fromPeer)
	}
}
