package reign

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixes found by reviewing groups and observability.

// The group sync when a connection comes up is this node's own state: it
// is not counted against ControlBufferLimit, so a node with more
// memberships than the limit holds still connects.
func TestGroupSyncNotBoundedByControlLimit(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, func(c *Config) { c.ControlBufferLimit = 8 << 10 })
	tc.kill(2)
	n1 := tc.node(1)
	name := strings.Repeat("g", 200)
	for range 100 { // ~100 × 220 B of GroupJoin frames: over 8 KiB
		a, _ := newTestMailbox(t, n1)
		if err := n1.JoinGroup(name, a); err != nil {
			t.Fatal(err)
		}
	}
	n2 := tc.start(2, nil)
	checkFor(t, testTimeout, func() error {
		return unless(len(n2.Members(name)) == 100, "node 2 sees %d of 100 members; node 1's closes %v", len(n2.Members(name)), n1.Stats().Closes)
	})
	if c := n1.Stats().Closes[CloseLimitExceeded]; c != 0 {
		t.Errorf("node 1 closed %d connections for crossing a limit", c)
	}
}

// GroupChanged is sent outside the group table's lock, so a tracer may
// read the groups (as Config.Tracer promises: no lock of the node held).
func TestTracerMayReadGroups(t *testing.T) {
	t.Parallel()
	var n *Node
	var mu sync.Mutex
	seen := 0
	n = newTestNodeConfig(t, Config{Tracer: func(ev TraceEvent) {
		if _, ok := ev.Msg.(GroupChanged); ok && ev.Kind == TraceDeliver {
			_ = n.Groups()
			mu.Lock()
			seen++
			mu.Unlock()
		}
	}})
	w, _ := newTestMailbox(t, n)
	a, _ := newTestMailbox(t, n)
	if _, err := n.MonitorGroup("g", w); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.JoinGroup("g", a) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("JoinGroup deadlocked: the tracer ran under the group table's lock")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != 1 {
		t.Fatalf("the tracer saw %d GroupChanged deliveries, want 1", seen)
	}
}

// Broadcast counts its messages in the per-peer traffic and tells the
// tracer of each send.
func TestBroadcastCountedAndTraced(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sends []TraceEvent
	tc := newTestCluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.Tracer = func(ev TraceEvent) {
				if ev.Kind == TraceSend && ev.Type == "string" {
					mu.Lock()
					sends = append(sends, ev)
					mu.Unlock()
				}
			}
		}
	})
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	local, lm := newTestMailbox(t, n1)
	remote, rm := newTestMailbox(t, n2)
	for _, j := range []struct {
		n *Node
		a Address
	}{{n1, local}, {n2, remote}} {
		if err := j.n.JoinGroup("all", j.a); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, testTimeout, func() error {
		return unless(len(n1.Members("all")) == 2, "node 1 sees %d members", len(n1.Members("all")))
	})
	before := n1.Stats().Peers[2].MessagesOut
	if k, err := n1.Broadcast("all", "hello"); k != 2 || err != nil {
		t.Fatalf("Broadcast = %d, %v", k, err)
	}
	recv(t, lm)
	recv(t, rm)
	if d := n1.Stats().Peers[2].MessagesOut - before; d != 1 {
		t.Errorf("node 1 counted %d messages out to node 2, want 1", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sends) != 2 {
		t.Errorf("the tracer saw %d sends, want 2: %+v", len(sends), sends)
	}
}
