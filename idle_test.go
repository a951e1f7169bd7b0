package reign

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// quietMembership is fastMembership with gossip rare enough that two
// members exchange nothing for seconds at a time once joined, and
// connections idle out after idle.
func quietMembership(idle time.Duration) func(*ClusterSpec, *Config) {
	return func(_ *ClusterSpec, cfg *Config) {
		m := cfg.Membership
		m.ProbeInterval = 3 * time.Second // (a node's Serve waits one out as it stops)
		m.ProbeTimeout = 500 * time.Millisecond
		m.PushPullInterval = time.Minute
		m.IdleTimeout = idle
	}
}

// TestIdleCloseAndReconnect: a connection nothing needs closes after
// IdleTimeout without traffic, on both sides, as CloseIdle; the nodes stay
// members and node-event watchers hear nothing; the next send connects
// again and arrives.
func TestIdleCloseAndReconnect(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, quietMembership(300*time.Millisecond))
	n2 := startMember(t, 2, quietMembership(300*time.Millisecond), n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(2, n1, n2) })
	w, events := n2.NewMailbox()
	if err := n2.MonitorNodes(w); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, events, "node 2", NodeUp{Node: 1})
	a1, mb1 := n1.NewMailbox()
	to1 := n2.BindAddress(a1)
	for seq := 1; seq <= 3; seq++ {
		if err := to1.Send(testMsg{Seq: seq}); err != nil {
			t.Fatal(err)
		}
		v, err := mb1.Receive(testCtx(t))
		if err != nil || v.(testMsg).Seq != seq {
			t.Fatalf("message %d: %v, %v", seq, v, err)
		}
		checkFor(t, 10*time.Second, func() error {
			c1, c2 := n1.Stats().Closes[CloseIdle], n2.Stats().Closes[CloseIdle]
			return unless(c1 >= uint64(seq) && c2 >= uint64(seq) &&
				n1.cl.peer(2).live.Load() == nil && n2.cl.peer(1).live.Load() == nil,
				"idle closes: node 1 %d, node 2 %d; want %d each and no connection", c1, c2, seq)
		})
	}
	if err := members(2, n1, n2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if v, err := events.Receive(ctx); err == nil {
		t.Fatalf("a node event for an idle close: %+v", v)
	}
}

// TestIdleCloseKeepsWhatIsNeeded: a link across the connection, a name or
// a group on either node keeps it up through many idle timeouts; once the
// last of them is gone it closes.
func TestIdleCloseKeepsWhatIsNeeded(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, quietMembership(200*time.Millisecond))
	n2 := startMember(t, 2, quietMembership(200*time.Millisecond), n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(2, n1, n2) })
	target, tmb := n1.NewMailbox()
	defer tmb.Close()
	watcher, wmb := n2.NewMailbox()
	defer wmb.Close()
	name, nmb := n1.NewMailbox()
	member, gmb := n2.NewMailbox()
	holds := []struct {
		what    string
		hold    func()
		release func()
	}{
		{"a link", func() { n2.BindAddress(target).OnCloseNotify(watcher) }, func() { n2.BindAddress(target).RemoveNotify(watcher) }},
		{"a name on node 1", func() {
			if err := n1.Register("idle-test", name); err != nil {
				t.Fatal(err)
			}
		}, func() { nmb.Close() }},
		{"a group on node 2", func() {
			if err := n2.JoinGroup("idle-test", member); err != nil {
				t.Fatal(err)
			}
		}, func() { gmb.Close() }},
	}
	for _, h := range holds {
		h.hold()
		checkFor(t, 10*time.Second, func() error { return pairConnected(n1, n2) })
		cn, before := n1.cl.peer(2).live.Load(), n1.Stats().Closes[CloseIdle]
		time.Sleep(1200 * time.Millisecond) // six idle timeouts
		if now := n1.cl.peer(2).live.Load(); now != cn || n1.Stats().Closes[CloseIdle] != before {
			t.Fatalf("with %s, the connection closed as idle", h.what)
		}
		h.release()
		checkFor(t, 10*time.Second, func() error {
			return unless(n1.Stats().Closes[CloseIdle] > before && n1.cl.peer(2).live.Load() == nil,
				"with %s released, the connection is still up", h.what)
		})
	}
}

// TestIdleCloseLosesNothing: messages sent both ways at intervals around
// the idle timeout, so that some cross an idle close, all arrive, in
// order, and the connection closed as idle along the way.
func TestIdleCloseLosesNothing(t *testing.T) {
	t.Parallel()
	const idle = 150 * time.Millisecond
	n1 := startMember(t, 1, quietMembership(idle))
	n2 := startMember(t, 2, quietMembership(idle), n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(2, n1, n2) })
	a1, mb1 := n1.NewMailbox()
	a2, mb2 := n2.NewMailbox()
	to1, to2 := n2.BindAddress(a1), n1.BindAddress(a2)
	const count = 40
	for seq := 1; seq <= count; seq++ {
		if err := to1.Send(testMsg{Seq: seq}); err != nil {
			t.Fatalf("send %d to node 1: %v", seq, err)
		}
		if err := to2.Send(testMsg{Seq: seq}); err != nil {
			t.Fatalf("send %d to node 2: %v", seq, err)
		}
		// around the idle timeout plus a writer tick or two
		time.Sleep(idle + time.Duration(rand.Int64N(int64(idle))))
	}
	for _, mb := range []*Mailbox{mb1, mb2} {
		for seq := 1; seq <= count; seq++ {
			v, err := mb.Receive(testCtx(t))
			if err != nil {
				t.Fatalf("message %d lost: %v", seq, err)
			}
			if got := v.(testMsg).Seq; got != seq {
				t.Fatalf("got message %d, want %d", got, seq)
			}
		}
	}
	if n1.Stats().Closes[CloseIdle] == 0 {
		t.Fatal("no idle close happened: the test did not test it")
	}
	t.Logf("idle closes: %d", n1.Stats().Closes[CloseIdle])
}

// TestLinkForWaitsForConnection: node 2 links node 1's watcher to a
// mailbox on node 3 (a LinkFor to node 1) while nodes 1 and 3 have no
// connection (it closed as idle): node 1 asks for one and the link waits
// for it instead of firing NoConnection at once; closing the watched
// mailbox then tells the watcher Normal.
func TestLinkForWaitsForConnection(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, quietMembership(200*time.Millisecond))
	n2 := startMember(t, 2, quietMembership(200*time.Millisecond), n1.addr)
	n3 := startMember(t, 3, quietMembership(200*time.Millisecond), n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(3, n1, n2, n3) })
	target, tmb := n3.NewMailbox()
	watcher, wmb := n1.NewMailbox()
	defer wmb.Close()
	for range 3 {
		checkFor(t, 10*time.Second, func() error {
			return unless(n1.cl.peer(3).live.Load() == nil, "nodes 1 and 3 still connected")
		})
		before := n1.Stats().LinksForwarded + n2.Stats().LinksForwarded
		n2.BindAddress(target).OnCloseNotify(n2.BindAddress(watcher))
		if n2.Stats().LinksForwarded+n1.Stats().LinksForwarded == before {
			t.Fatal("the link was not forwarded")
		}
		// installed once nodes 1 and 3 are connected: the target's
		// node holds node 1's watch
		checkFor(t, 10*time.Second, func() error {
			return unless(n3.linked(target, n3.BindAddress(watcher)), "node 3 holds no link from node 1's watcher")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		v, err := wmb.Receive(ctx)
		cancel()
		if err == nil {
			t.Fatalf("the link fired before the target closed: %+v", v)
		}
		n2.BindAddress(target).RemoveNotify(n2.BindAddress(watcher))
		checkFor(t, 10*time.Second, func() error {
			return unless(!n3.linked(target, n3.BindAddress(watcher)), "node 3 still holds the link")
		})
	}
	n2.BindAddress(target).OnCloseNotify(n2.BindAddress(watcher))
	checkFor(t, 10*time.Second, func() error {
		return unless(n3.linked(target, n3.BindAddress(watcher)), "node 3 holds no link from node 1's watcher")
	})
	tmb.Close()
	v, err := wmb.Receive(testCtx(t))
	if mc, ok := v.(MailboxClosed); err != nil || !ok || mc.Reason != Normal {
		t.Fatalf("the watcher got %+v, %v; want MailboxClosed Normal", v, err)
	}
}

// TestIdleCloseOffOnOneSide: a node with idle close off (IdleTimeout
// negative) refuses the asks of a lower ID that has it on: the
// connection stays up, and is not closed as a protocol error either.
func TestIdleCloseOffOnOneSide(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, quietMembership(100*time.Millisecond))
	n2 := startMember(t, 2, quietMembership(-1), n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(2, n1, n2) })
	checkFor(t, 10*time.Second, func() error { return pairConnected(n1, n2) })
	cn := n1.cl.peer(2).live.Load()
	time.Sleep(time.Second) // ten idle timeouts of node 1's
	if n1.cl.peer(2).live.Load() != cn {
		t.Fatalf("the connection closed: node 1's closes %v, node 2's %v", n1.Stats().Closes, n2.Stats().Closes)
	}
	if c := n1.Stats().Closes[CloseIdle] + n2.Stats().Closes[CloseIdle] + n2.Stats().Closes[CloseProtocolError]; c != 0 {
		t.Fatalf("idle or protocol-error closes: node 1 %v, node 2 %v", n1.Stats().Closes, n2.Stats().Closes)
	}
}
