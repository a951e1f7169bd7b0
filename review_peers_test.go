package reign

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// Fixes found by reviewing the peer and membership code.

// A duplicate node ID is refused even when HandshakeTimeout is shorter
// than the 1.5 heartbeat intervals the node waits to see whether its
// current connection is alive: that wait is not bounded by the
// handshake's deadline.
func TestDuplicateRefusedWithShortHandshakeTimeout(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, func(c *Config) {
		c.HeartbeatInterval = time.Second
		c.HeartbeatTimeout = 3 * time.Second
		c.HandshakeTimeout = time.Second
	})
	n2 := tc.start(2, lns[2])
	tc.start(1, lns[1])
	tc.connected()
	kept := n2.cl.peer(1).live.Load()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dup, err := NewNode(tc.config(1, ln))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = dup.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	checkFor(t, testTimeout, func() error {
		if cur := n2.cl.peer(1).live.Load(); cur != kept {
			return fmt.Errorf("the duplicate (inc %d) replaced the live connection (inc %d)", dup.inc, kept.peerInc)
		}
		refused := n2.Stats().Peers[1].Closes[CloseDuplicateNode]
		return unless(refused > 0, "node 2 has refused no duplicate yet")
	})
	if cur := n2.cl.peer(1).live.Load(); cur != kept {
		t.Fatalf("the duplicate replaced the live connection after its refusal")
	}
}

// A member gossiping made-up names cannot grow the node's memory: the
// refused names remembered for rate-limiting the log are bounded.
func TestMembershipRefusalsBounded(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	m := n1.cl.member
	long := strings.Repeat("x", 1000)
	for i := range 5 * maxRefusalNames {
		if err := m.NotifyAlive(&memberlist.Node{Name: fmt.Sprintf("%s-%d", long, i)}); err == nil {
			t.Fatal("a made-up member name was accepted")
		}
	}
	m.mu.Lock()
	n := len(m.refusals)
	m.mu.Unlock()
	if n > maxRefusalNames {
		t.Fatalf("%d refused names remembered, want at most %d", n, maxRefusalNames)
	}
}

// After a second Serve of the same Node, removing a peer kept from the
// first run waits for its service to stop (its exit is made anew for each
// run), so the peer never leaves the table with its connection live.
func TestRemovePeerAfterRestartWaits(t *testing.T) {
	t.Parallel()
	var addr string
	n1 := startMember(t, 1, func(s *ClusterSpec, c *Config) {
		addr = c.Listener.Addr().String()
		c.Listener.Close()
		c.Listener = nil // listen anew on each Serve
	})
	n2 := startMember(t, 2, nil, n1.addr)
	checkFor(t, testTimeout, func() error { return members(2, n1, n2) })
	n1.stop()
	r := serveMember(t, n1.Node, addr)
	var p *peer
	checkFor(t, testTimeout, func() error {
		p = r.cl.peer(2)
		return unless(p != nil && p.live.Load() != nil, "node 1 has not reconnected to node 2")
	})
	p.removing.Store(true)
	r.cl.removePeer(p)
	if r.cl.peer(2) == nil && p.live.Load() != nil {
		t.Errorf("peer 2 left the table while its connection is live (its peerDown has not run)")
	}
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if !stopped {
		t.Errorf("removePeer returned before the peer's service stopped")
	}
}
