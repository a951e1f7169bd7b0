package reign

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestOneConnectionPerPair: when the higher-ID node dials as well (as if
// both dialed at once), the lower-ID node refuses it, and the pair keeps
// exactly the one connection the rule allows.
func TestOneConnectionPerPair(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	before1, before2 := n1.Stats(), n2.Stats()
	live := n1.cl.peer(2).live.Load()

	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p := n2.cl.peer(1)
		cn, err := p.dial(ctx) // node 2 dialing node 1: against the rule
		cancel()
		if err == nil {
			cn.close(CloseReplaced, nil)
			t.Fatal("node 1 accepted a connection from the higher ID")
		}
	}
	checkFor(t, 5*time.Second, func() error {
		return unless(n1.Stats().Refused >= before1.Refused+3, "n1.Stats().Refused >= before1.Refused+3")
	})
	if got := n1.cl.peer(2).live.Load(); got != live {
		t.Fatal("the established connection was replaced")
	}
	a1, a2 := n1.Stats(), n2.Stats()
	if a1.Connects != before1.Connects || a2.Connects != before2.Connects || a1.PeersUp != 1 || a2.PeersUp != 1 {
		t.Fatalf("connections changed: before %+v %+v after %+v %+v", before1, before2, a1, a2)
	}
	// and the connection still works
	x, xmb := n2.NewMailbox()
	if err := n1.BindAddress(x).Send("still here"); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, xmb); v != "still here" {
		t.Fatal(v)
	}
}

// TestSimultaneousStartsMakeOneConnection starts both nodes at the same
// moment, many times: each time exactly one connection is made, and it
// stays the only one (no second connection replaces it) for a few
// heartbeat intervals.
func TestSimultaneousStartsMakeOneConnection(t *testing.T) {
	t.Parallel()
	for i := 0; i < 5; i++ {
		tc, lns := newBareCluster(t, 2, nil)
		tc.startAtOnce(lns)
		tc.connected()
		n1, n2 := tc.node(1), tc.node(2)
		watch := time.Now().Add(300 * time.Millisecond) // 3 heartbeat intervals
		checkFor(t, testTimeout, func() error {
			if c1, c2 := n1.Stats().Connects, n2.Stats().Connects; c1 != 1 || c2 != 1 {
				return fmt.Errorf("run %d: connects %d and %d, want 1 and 1", i, c1, c2)
			}
			return unless(time.Now().After(watch), "watching for a second connection")
		})
		if c1, c2 := n1.Stats().Connects, n2.Stats().Connects; c1 != 1 || c2 != 1 {
			t.Fatalf("run %d: connects %d and %d, want 1 and 1", i, c1, c2)
		}
		tc.stopAll()
	}
}

// TestGoroutinesAreOPeers: 10,000 mailboxes on a clustered node, with
// messages flowing to them from a peer, add no goroutines.
func TestGoroutinesAreOPeers(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	mbs := make([]*Mailbox, 10000)
	for i := range mbs {
		a, mb := n2.NewMailbox()
		mbs[i] = mb
		if err := n1.BindAddress(a).Send(i); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error { return unless(mbs[len(mbs)-1].Len() == 1, "mbs[len(mbs)-1].Len() == 1") })
	if got := runtime.NumGoroutine(); got > base+2 {
		t.Fatalf("goroutines: %d with 10,000 mailboxes, %d before", got, base)
	}
	for _, mb := range mbs {
		mb.Close()
	}
}
