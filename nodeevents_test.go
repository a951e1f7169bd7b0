package reign

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// nextEvent receives the next message of m, failing t if none comes within
// testTimeout.
func nextEvent(t *testing.T, m *Mailbox, who string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	v, err := m.Receive(ctx)
	if err != nil {
		t.Fatalf("%s: no event: %v", who, err)
	}
	return v
}

// expectEvents receives len(want) messages from m and checks they are want,
// in that order.
func expectEvents(t *testing.T, m *Mailbox, who string, want ...any) {
	t.Helper()
	for i, w := range want {
		if got := nextEvent(t, m, who); got != w {
			t.Fatalf("%s: event %d is %#v, want %#v", who, i, got, w)
		}
	}
}

// expectLoss receives a NodeDown for node whose reason is a loss, not a
// clean shutdown on either side, and returns the reason.
func expectLoss(t *testing.T, m *Mailbox, who string, node NodeID) CloseReason {
	t.Helper()
	v := nextEvent(t, m, who)
	d, ok := v.(NodeDown)
	if !ok || d.Node != node {
		t.Fatalf("%s: got %#v, want NodeDown for node %d", who, v, node)
	}
	switch d.Reason {
	case CloseGoodbye, CloseShutdown, CloseUnknown:
		t.Fatalf("%s: NodeDown for a cut connection says %v", who, d.Reason)
	}
	return d.Reason
}

// watch subscribes a new mailbox of n to node events.
func watch(t *testing.T, n *Node) (Address, *Mailbox) {
	t.Helper()
	a, m := newTestMailbox(t, n)
	if err := n.MonitorNodes(a); err != nil {
		t.Fatalf("MonitorNodes: %v", err)
	}
	return a, m
}

func expectPeers(t *testing.T, n *Node, want ...NodeID) {
	t.Helper()
	if got := n.Peers(); !slices.Equal(got, want) {
		t.Fatalf("%v: Peers() = %v, want %v", n, got, want)
	}
}

// Node events through a whole life: the nodes up at subscription, a cut
// connection (down then up, on both sides), a peer's clean shutdown, its
// restart, and this node's own shutdown; Peers agrees at each step, and
// each watcher sees exactly these events, in this order.
func TestNodeEvents(t *testing.T) {
	t.Parallel()
	tc, proxy := newProxiedCluster(t, nil)
	n1, n2 := tc.node(1), tc.node(2)

	_, w1 := watch(t, n1)
	_, w2 := watch(t, n2)
	// What is up already is reported at once, in node ID order. (The
	// cluster counts a peer up a moment before its hooks run: a NodeUp
	// may come just after subscribing, in the same order.)
	expectEvents(t, w1, "node 1", NodeUp{Node: 2}, NodeUp{Node: 3})
	expectEvents(t, w2, "node 2", NodeUp{Node: 1}, NodeUp{Node: 3})
	expectPeers(t, n1, 2, 3)

	// The connection between nodes 1 and 2 is cut: both see it go down as
	// a loss, then come back when node 1 redials.
	proxy.Cut()
	r1 := expectLoss(t, w1, "node 1", 2)
	r2 := expectLoss(t, w2, "node 2", 1)
	t.Logf("cut: node 1 says %v, node 2 says %v", r1, r2)
	expectEvents(t, w1, "node 1", NodeUp{Node: 2})
	expectEvents(t, w2, "node 2", NodeUp{Node: 1})
	expectPeers(t, n1, 2, 3)

	// Node 3 shuts down cleanly: the reason says so.
	tc.kill(3)
	expectEvents(t, w1, "node 1", NodeDown{Node: 3, Reason: CloseGoodbye})
	expectEvents(t, w2, "node 2", NodeDown{Node: 3, Reason: CloseGoodbye})
	expectPeers(t, n1, 2)

	// ... and comes back.
	tc.start(3, nil)
	expectEvents(t, w1, "node 1", NodeUp{Node: 3})
	expectEvents(t, w2, "node 2", NodeUp{Node: 3})
	expectPeers(t, n1, 2, 3)

	// Node 1 shuts down: its watcher hears of every peer going down for
	// that reason, and the others hear node 1's goodbye.
	tc.kill(1)
	got := []any{nextEvent(t, w1, "node 1"), nextEvent(t, w1, "node 1")}
	slices.SortFunc(got, func(a, b any) int { return int(a.(NodeDown).Node) - int(b.(NodeDown).Node) })
	if want := []any{NodeDown{Node: 2, Reason: CloseShutdown}, NodeDown{Node: 3, Reason: CloseShutdown}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("node 1 shutting down: %#v, want %#v", got, want)
	}
	expectPeers(t, n1)
	expectEvents(t, w2, "node 2", NodeDown{Node: 1, Reason: CloseGoodbye})
	expectPeers(t, n2, 3)

	// Nothing else came: no duplicate, no stray event.
	flushPeers(t, n2, tc.node(3))
	if rest := drain(w1); len(rest) != 0 {
		t.Fatalf("node 1's watcher also got %#v", rest)
	}
	if rest := drain(w2); len(rest) != 0 {
		t.Fatalf("node 2's watcher also got %#v", rest)
	}
}

// A NodeDown comes after the links to the lost node's mailboxes have fired
// and its names are gone.
func TestNodeDownAfterLinksAndNames(t *testing.T) {
	t.Parallel()
	tc, proxy := newProxiedCluster(t, nil)
	n1, n2 := tc.node(1), tc.node(2)
	far, w := linkedPair(t, n1, n2)
	if err := n2.Register("far", n2.BindAddress(far)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, testTimeout, func() error { _, ok := n1.Lookup("far"); return unless(ok, "node 1 has not heard of %q", "far") })
	if err := n1.MonitorNodes(w.Address()); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, w, "watcher", NodeUp{Node: 2}, NodeUp{Node: 3})

	proxy.Cut()
	if mc, ok := nextEvent(t, w, "watcher").(MailboxClosed); !ok || mc.Address != far || mc.Reason != NoConnection {
		t.Fatalf("first after the cut: %#v, want the link firing", mc)
	}
	expectLoss(t, w, "watcher", 2)
	// Handling the NodeDown, the watcher finds no stale claim of node 2:
	// the claim comes back only after node 2 reconnects, and so after
	// the next NodeUp is queued.
	if a, ok := n1.Lookup("far"); ok && w.Len() == 0 {
		t.Fatalf("after NodeDown, Lookup still finds node 2's claim %v", a)
	}
}

// MonitorNodes refuses what cannot watch; subscribing twice is once;
// DemonitorNodes stops the events; closed watchers do not pile up.
func TestMonitorNodesWatchers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)

	closedA, closedM := n1.NewMailbox()
	closedM.Close()
	remote, _ := newTestMailbox(t, n2)
	for _, c := range []struct {
		a    Address
		want error
	}{{Address{}, ErrZeroAddress}, {n1.BindAddress(remote), ErrNotLocal}, {closedA, ErrMailboxClosed}} {
		if err := n1.MonitorNodes(c.a); !errors.Is(err, c.want) {
			t.Errorf("MonitorNodes(%v) = %v, want %v", c.a, err, c.want)
		}
	}
	if k := n1.events.watching(); k != 0 {
		t.Fatalf("%d watchers after refusals", k)
	}

	// Subscribing twice is one subscription: one NodeUp.
	a, w := newTestMailbox(t, n1)
	for range 2 {
		if err := n1.MonitorNodes(a); err != nil {
			t.Fatal(err)
		}
	}
	expectEvents(t, w, "watcher", NodeUp{Node: 2})
	if k := n1.events.watching(); k != 1 {
		t.Fatalf("%d watchers after subscribing one twice", k)
	}

	// A demonitored watcher hears no more.
	da, dw := watch(t, n1)
	expectEvents(t, dw, "demonitored", NodeUp{Node: 2})
	n1.DemonitorNodes(da)
	n1.DemonitorNodes(da) // again: nothing

	// Watchers that close are dropped: subscribing closes the gap, so a
	// program that keeps making short-lived watchers leaks none.
	for range 100 {
		ca, cm := n1.NewMailbox()
		if err := n1.MonitorNodes(ca); err != nil {
			t.Fatal(err)
		}
		cm.Close()
	}
	if k := n1.events.watching(); k != 2 {
		t.Fatalf("%d watchers after 100 closed ones, want 2 (the open one and the last closed)", k)
	}
	// ... and the next event drops the last one.
	lastA, lastM := n1.NewMailbox()
	if err := n1.MonitorNodes(lastA); err != nil {
		t.Fatal(err)
	}
	lastM.Close()
	tc.kill(2)
	expectEvents(t, w, "watcher", NodeDown{Node: 2, Reason: CloseGoodbye})
	// (w may see the event before tell has reached the closed watcher)
	checkFor(t, testTimeout, func() error {
		k := n1.events.watching()
		return unless(k == 1, "%d watchers after the event, want 1", k)
	})
	// The event reached every subscriber at once, under one lock: the
	// demonitored one, had it still been subscribed, would have it now.
	if rest := drain(dw); len(rest) != 0 {
		t.Fatalf("the demonitored watcher got %#v", rest)
	}
	if err := n1.MonitorNodes(da); err != nil { // and may subscribe again
		t.Fatal(err)
	}
	if rest := drain(dw); len(rest) != 0 {
		t.Fatalf("resubscribed with no peer up, got %#v", rest)
	}
}

// A local-only node has no peers and sends no events, but watching it is
// not an error.
func TestMonitorNodesLocal(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	if err := n.MonitorNodes(a); err != nil {
		t.Fatal(err)
	}
	if p := n.Peers(); len(p) != 0 {
		t.Fatalf("Peers() = %v", p)
	}
	if v, ok := m.ReceiveAsync(); ok {
		t.Fatalf("got %#v", v)
	}
	// NodeUp and NodeDown go between local mailboxes like any value.
	mustSend(t, a, NodeDown{Node: 3, Reason: CloseGoodbye})
	if got := recv(t, m); got != (NodeDown{Node: 3, Reason: CloseGoodbye}) {
		t.Fatalf("got %#v", got)
	}
}

// NodeUp and NodeDown carry the node's authority: a peer (with a valid
// certificate) that sends them as message bodies is refused and counted;
// the watcher gets only the real events, the fake peer's own connection
// among them.
func TestNodeEventsForged(t *testing.T) {
	t.Parallel()
	h := newHostileCluster(t, nil)
	watcher, wmb := watch(t, h.n4)
	expectEvents(t, wmb, "watcher", NodeUp{Node: 2}, NodeUp{Node: 3})
	f := dialFakePeer(t, h)
	expectEvents(t, wmb, "watcher", NodeUp{Node: absent}) // the attacker's connection is real

	hostileTypes(t, h, f, NodeUp{}, NodeDown{}, testMsg{})
	before := h.n4.droppedReserved()
	up, err := MsgpackCodec{}.Marshal(nil, NodeUp{Node: 7})
	if err != nil {
		t.Fatal(err)
	}
	down, err := MsgpackCodec{}.Marshal(nil, NodeDown{Node: 2, Reason: CloseGoodbye})
	if err != nil {
		t.Fatal(err)
	}
	good, err := MsgpackCodec{}.Marshal(nil, testMsg{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	hostileMessage(t, f, watcher, 1, up)
	hostileMessage(t, f, watcher, 2, down)
	hostileMessage(t, f, watcher, 3, good)
	if got := recv(t, wmb); !reflect.DeepEqual(got, testMsg{Seq: 1}) {
		t.Fatalf("the watcher received %#v, want the good message only", got)
	}
	if d := h.n4.droppedReserved() - before; d != 2 {
		t.Fatalf("droppedReserved moved by %d, want 2", d)
	}
	expectPeers(t, h.n4, absent, 2, 3)

	// And a node will not send them to another.
	if err := h.n4.BindAddress(h.echo2).Send(NodeUp{Node: 4}); !errors.Is(err, ErrReservedType) {
		t.Fatalf("sending a NodeUp to another node: %v, want ErrReservedType", err)
	}

	hostileHangUp(t, h, f)
	if d, ok := recv(t, wmb).(NodeDown); !ok || d.Node != absent {
		t.Fatalf("after the hang-up: %#v, want NodeDown for node %d", d, absent)
	}
}

// WaitName on one node: at once when the name is there; otherwise until it
// is registered; a cancelled wait returns the context's error and leaves
// no waiter behind.
func TestWaitNameLocal(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, _ := newTestMailbox(t, n)

	if _, err := n.WaitName(testCtx(t), ""); !errors.Is(err, ErrBadName) {
		t.Fatalf("empty name: %v", err)
	}

	// Registered later: the waiters wake with it.
	const waiters = 5
	type result struct {
		a   Address
		err error
	}
	res := make(chan result, waiters)
	for range waiters {
		go func() {
			got, err := n.WaitName(testCtx(t), "svc")
			res <- result{got, err}
		}()
	}
	checkFor(t, testTimeout, func() error { return unless(n.events.waiting() == waiters, "%d waiting", n.events.waiting()) })
	if err := n.Register("svc", a); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if r := <-res; r.err != nil || r.a != a {
			t.Fatalf("WaitName = %v, %v; want %v", r.a, r.err, a)
		}
	}
	if k := n.events.waiting(); k != 0 {
		t.Fatalf("%d still waiting", k)
	}

	// Registered already: at once, even with a context that has ended.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := n.WaitName(done, "svc"); err != nil || got != a {
		t.Fatalf("WaitName of a registered name = %v, %v", got, err)
	}
	// Not registered and the context ended: its error, at once.
	if _, err := n.WaitName(done, "nobody"); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}

	// Cancelled while waiting: returns, and nothing is left behind.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Go(func() {
			_, err := n.WaitName(ctx, "later")
			errs <- err
		})
	}
	checkFor(t, testTimeout, func() error { return unless(n.events.waiting() == waiters, "%d waiting", n.events.waiting()) })
	cancel()
	wg.Wait()
	for range waiters {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled WaitName: %v", err)
		}
	}
	n.events.mu.Lock()
	left := len(n.events.waiters)
	n.events.mu.Unlock()
	if k := n.events.waiting(); k != 0 || left != 0 {
		t.Fatalf("after cancelling: %d waiting, %d names waited for", k, left)
	}
	// A deadline is the same.
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := n.WaitName(short, "later"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	if k := n.events.waiting(); k != 0 {
		t.Fatalf("%d waiting after a deadline", k)
	}
}

// WaitName on one node for a name another node registers, and for names a
// node that (re)connects brings with it.
func TestWaitNameRemote(t *testing.T) {
	t.Parallel()
	tc, proxy := newProxiedCluster(t, nil)
	n1, n2 := tc.node(1), tc.node(2)
	srv, _ := newTestMailbox(t, n1)

	got := make(chan Address, 1)
	go func() {
		a, err := n2.WaitName(testCtx(t), "svc")
		if err != nil {
			t.Errorf("WaitName: %v", err)
		}
		got <- a
	}()
	checkFor(t, testTimeout, func() error { return unless(n2.events.waiting() == 1, "%d waiting", n2.events.waiting()) })
	if err := n1.Register("svc", srv); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != n2.BindAddress(srv) {
		t.Fatalf("node 2 found %v, want %v", a, srv)
	}

	// After a cut, node 2 forgets node 1's claim; a client waiting for it
	// gets it when node 1 reconnects and resends its claims.
	_, w := watch(t, n2)
	expectEvents(t, w, "watcher", NodeUp{Node: 1}, NodeUp{Node: 3})
	proxy.Refuse(true)
	proxy.Cut()
	expectLoss(t, w, "watcher", 1)
	expectPeers(t, n2, 3)
	go func() {
		a, err := n2.WaitName(testCtx(t), "svc")
		if err != nil {
			t.Errorf("WaitName after the cut: %v", err)
		}
		got <- a
	}()
	checkFor(t, testTimeout, func() error { return unless(n2.events.waiting() == 1, "%d waiting", n2.events.waiting()) })
	if a, ok := n2.Lookup("svc"); ok {
		t.Fatalf("node 2 still has node 1's claim %v while cut off", a)
	}
	proxy.Refuse(false)
	if a := <-got; a != n2.BindAddress(srv) {
		t.Fatalf("node 2 found %v after reconnecting, want %v", a, srv)
	}
	expectEvents(t, w, "watcher", NodeUp{Node: 1})
	expectPeers(t, n2, 1, 3)
}

// A peer that shuts down while this node is sending to it still reports a
// clean shutdown: its Goodbye must not be lost to a reset connection (a
// socket closed with unread bytes in it sends a reset, which can destroy
// the data the other side has not read yet, the Goodbye included).
func TestNodeDownGoodbyeUnderLoad(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1 := tc.node(1)
	_, w := watch(t, n1)
	expectEvents(t, w, "watcher", NodeUp{Node: 2})
	for round := range 3 {
		sink, smb := newTestMailbox(t, tc.node(2))
		to := n1.BindAddress(sink)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			text := strings.Repeat("x", 512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if to.Send(testMsg{Text: text}) != nil {
					return
				}
			}
		})
		checkFor(t, testTimeout, func() error { return unless(smb.Len() > 0, "nothing arrived yet") })
		tc.kill(2)
		close(stop)
		wg.Wait()
		if got := nextEvent(t, w, "watcher"); got != (NodeDown{Node: 2, Reason: CloseGoodbye}) {
			t.Fatalf("round %d: %#v, want NodeDown{2, goodbye}", round, got)
		}
		tc.start(2, nil)
		expectEvents(t, w, "watcher", NodeUp{Node: 2})
	}
}

// Register then Unregister with nobody waiting: what the WaitName hook
// adds to a claim is one atomic load.
func BenchmarkRegisterUnregister(b *testing.B) {
	n := newTestNode(b)
	a, _ := newTestMailbox(b, n)
	for b.Loop() {
		if err := n.Register("svc", a); err != nil {
			b.Fatal(err)
		}
		n.Unregister("svc", a)
	}
}

// A WaitName that blocks, and the Register that wakes it.
func BenchmarkWaitNameWake(b *testing.B) {
	n := newTestNode(b)
	a, _ := newTestMailbox(b, n)
	ctx := context.Background()
	for b.Loop() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := n.WaitName(ctx, "svc"); err != nil {
				b.Error(err)
			}
		}()
		for n.events.waiting() == 0 {
			runtime.Gosched() // until it waits
		}
		if err := n.Register("svc", a); err != nil {
			b.Fatal(err)
		}
		<-done
		n.Unregister("svc", a)
	}
}
