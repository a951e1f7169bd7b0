package reign

// OnCloseNotify where the watched mailbox and the watcher are both on
// other nodes than the caller: before LinkFor, node 1 ignored such a call
// and the watcher on node 3 was never told.

import (
	"log/slog"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

func TestLinkForwarded(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"fires", testLinkForwardedFires},
		{"node-lost", testLinkForwardedNodeLost},
		{"removed", testLinkForwardedRemoved},
		{"unreachable", testLinkForwardedUnreachable},
		{"bound", testLinkForBound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// A mailbox of node 2 closes: node 3's watcher, linked by node 1, is told.
// A watcher on the watched mailbox's own node (node 2) is told too.
func testLinkForwardedFires(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a, amb := n2.NewMailbox()
	w, wmb := n3.NewMailbox()
	t.Cleanup(wmb.Close)
	w2, w2mb := n2.NewMailbox()
	t.Cleanup(w2mb.Close)
	n1.BindAddress(a).OnCloseNotify(n1.BindAddress(w))
	n1.BindAddress(a).OnCloseNotify(n1.BindAddress(w2))
	if st := n1.Stats(); st.LinksForwarded != 2 || st.LinksRefused != 0 {
		t.Fatalf("forwarded %d, refused %d; want 2, 0", st.LinksForwarded, st.LinksRefused)
	}
	// the links are in place once node 3 has linked to node 2
	checkFor(t, 5*time.Second, func() error { return unless(n3.linked(n3.BindAddress(a), w), "node 3 has not linked yet") })
	checkFor(t, 5*time.Second, func() error { return unless(n2.linked(a, w2), "node 2 has not linked yet") })
	amb.Close()
	for _, mb := range []*Mailbox{wmb, w2mb} {
		got, ok := recv(t, mb).(MailboxClosed)
		if !ok || got.Address.node != a.node || got.Address.id != a.id || got.Address.inc != a.inc || got.Reason != Normal {
			t.Fatalf("the watcher received %#v", got)
		}
	}
}

// Node 2 is lost: node 3's watcher hears NoConnection from its own node.
func testLinkForwardedNodeLost(t *testing.T) {
	tc := newTestCluster(t, 3, func(cfg *Config) { faultConfig(cfg) })
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a, _ := n2.NewMailbox()
	w, wmb := n3.NewMailbox()
	t.Cleanup(wmb.Close)
	n1.BindAddress(a).OnCloseNotify(n1.BindAddress(w))
	checkFor(t, 5*time.Second, func() error { return unless(n3.linked(n3.BindAddress(a), w), "node 3 has not linked yet") })
	tc.kill(2)
	got, ok := recv(t, wmb).(MailboxClosed)
	if !ok || got.Reason != NodeShutdown && got.Reason != NoConnection {
		t.Fatalf("the watcher received %#v", got)
	}
}

// RemoveNotify from node 1 is forwarded too: the link goes, and the close
// tells nobody.
func testLinkForwardedRemoved(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a, amb := n2.NewMailbox()
	w, wmb := n3.NewMailbox()
	t.Cleanup(wmb.Close)
	ra, rw := n1.BindAddress(a), n1.BindAddress(w)
	ra.OnCloseNotify(rw)
	checkFor(t, 5*time.Second, func() error { return unless(n3.linked(n3.BindAddress(a), w), "node 3 has not linked yet") })
	ra.RemoveNotify(rw)
	checkFor(t, 5*time.Second, func() error { return unless(!n3.linked(n3.BindAddress(a), w), "node 3 still links") })
	checkFor(t, 5*time.Second, func() error { return unless(!n2.hasWatcher(a, w), "node 2 still has the watcher") })
	amb.Close()
	flushPeers(t, n2, n3)
	if v, ok := wmb.ReceiveAsync(); ok {
		t.Fatalf("the watcher received %#v after RemoveNotify", v)
	}
}

// hasWatcher reports whether the local mailbox a has watcher w.
func (n *Node) hasWatcher(a, w Address) bool {
	m := n.table.lookup(a.id)
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.links[w.withNode(n)]
	return ok
}

// The watcher's node is down: the request cannot be forwarded, and that
// is counted and logged rather than silent.
func testLinkForwardedUnreachable(t *testing.T) {
	h := newCountingHandler("OnCloseNotify refused: the watcher's node is unreachable, so the watcher cannot be told")
	tc := newTestCluster(t, 3, func(cfg *Config) {
		faultConfig(cfg)
		if cfg.NodeID == 1 {
			cfg.Logger = slog.New(h)
		}
	})
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a, amb := n2.NewMailbox()
	t.Cleanup(amb.Close)
	w, _ := n3.NewMailbox()
	tc.kill(3)
	checkFor(t, 5*time.Second, func() error { return unless(n1.Stats().PeersUp == 1, "node 1 still sees node 3") })
	n1.BindAddress(a).OnCloseNotify(n1.BindAddress(w))
	if st := n1.Stats(); st.LinksRefused != 1 || st.LinksForwarded != 0 {
		t.Fatalf("refused %d, forwarded %d; want 1, 0", st.LinksRefused, st.LinksForwarded)
	}
	if lines, _ := h.counts(); lines != 1 {
		t.Fatalf("%d lines logged, want 1", lines)
	}
}

// A peer's LinkFor requests that stay in place are bounded by
// MaxPeerLinks; those that fire at once (closed targets) do not count.
func testLinkForBound(t *testing.T) {
	const max = 50
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerLinks = max })
	f := dialFakePeer(t, h)
	target, tmb := h.n4.NewMailbox()
	t.Cleanup(tmb.Close)
	var watchers []Address
	for i := 0; i <= max; i++ {
		w, mb := h.n4.NewMailbox()
		t.Cleanup(mb.Close)
		watchers = append(watchers, w)
	}
	linkFor := func(b []byte, target, w Address) []byte {
		return wire.AppendFrame(b, wire.TypeLinkFor, wire.AppendLinkFor(nil, wire.LinkFor{
			Target: wire.Addr{Node: uint16(target.node), Inc: target.inc, ID: target.id}, Watcher: ref(w)}))
	}
	// 3×max links to mailboxes that were never open: each fires at once
	gone := target
	frames(t, f, 0, 3*max, func(b []byte, i int) []byte {
		gone.id = uint64(1<<40 + i)
		return linkFor(b, gone, watchers[i%max])
	})
	frames(t, f, 0, max, func(b []byte, i int) []byte { return linkFor(b, target, watchers[i]) })
	settled(t, func() error {
		return unless(h.n4.hasWatcher(target, watchers[max-1]), "the last link is not in place")
	})
	if st := h.n4.Stats(); st.PeersUp != 3 {
		t.Fatalf("at the bound: %d peers up", st.PeersUp)
	}
	frames(t, f, max, max+1, func(b []byte, i int) []byte { return linkFor(b, target, watchers[i]) })
	crossed(t, h, f, LimitLinks)
	// the links were this node's own: they stay
	if !h.n4.hasWatcher(target, watchers[0]) {
		t.Fatal("the links a lost peer asked for went with it")
	}
}
