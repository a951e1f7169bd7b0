package reign

import (
	"fmt"
	"testing"
	"time"
)

func wantClosed(t *testing.T, m *Mailbox, a Address, r Reason) {
	t.Helper()
	if m.Len() != 1 {
		t.Fatalf("watcher has %d messages, want exactly 1", m.Len())
	}
	mc, ok := recv(t, m).(MailboxClosed)
	if !ok {
		t.Fatalf("watcher got %T, want MailboxClosed", mc)
	}
	if mc.Address != a || mc.Reason != r {
		t.Fatalf("got MailboxClosed{%v, %v}, want {%v, %v}", mc.Address, mc.Reason, a, r)
	}
}

func TestOnCloseNotify(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	w, wm := newTestMailbox(t, n)
	a.OnCloseNotify(w)
	if wm.Len() != 0 {
		t.Fatal("notified before Close")
	}
	m.Close()
	wantClosed(t, wm, a, Normal)
	m.Close()
	if wm.Len() != 0 {
		t.Fatal("second Close notified again")
	}
}

func TestOnCloseNotifyAlreadyClosed(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	w, wm := newTestMailbox(t, n)
	a, m := n.NewMailbox()
	m.Close()
	a.OnCloseNotify(w)
	wantClosed(t, wm, a, Normal)
	// Still Normal after the slot is reused by another mailbox.
	_, m2 := newTestMailbox(t, n)
	if uint32(m2.id) != uint32(a.id) {
		t.Fatal("slot not reused: the test needs it")
	}
	a.OnCloseNotify(w)
	wantClosed(t, wm, a, Normal)
	if numLinks(m2) != 0 {
		t.Fatal("link to the closed mailbox landed on the slot's new mailbox")
	}
}

func TestOnCloseNotifyNoProc(t *testing.T) {
	t.Parallel()
	n1, n2 := twoTestNodes(t)
	a1, _ := newTestMailbox(t, n1)
	w, wm := newTestMailbox(t, n1)
	cases := map[string]Address{
		"other incarnation": {n: n1, node: n1.id, inc: n2.inc, id: a1.id},
		"unused slot":       {n: n1, node: n1.id, inc: n1.inc, id: 1<<32 | 5000},
		"future generation": {n: n1, node: n1.id, inc: n1.inc, id: 7<<32 | uint64(uint32(a1.id))},
		"generation zero":   {n: n1, node: n1.id, inc: n1.inc, id: uint64(uint32(a1.id))},
		"unbound":           {node: n1.id, inc: n1.inc, id: a1.id},
	}
	for name, a := range cases {
		a.OnCloseNotify(w)
		if wm.Len() != 1 {
			t.Fatalf("%s: watcher has %d messages", name, wm.Len())
		}
		mc := recv(t, wm).(MailboxClosed)
		if mc.Address != a || mc.Reason != NoProc {
			t.Fatalf("%s: got %+v, want %v noproc", name, mc, a)
		}
	}
}

func TestRemoveNotify(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	w1, wm1 := newTestMailbox(t, n)
	w2, wm2 := newTestMailbox(t, n)
	a.OnCloseNotify(w1)
	a.OnCloseNotify(w2)
	a.RemoveNotify(w1)
	a.RemoveNotify(w1) // again: no effect
	if numLinks(m) != 1 {
		t.Fatalf("%d links after RemoveNotify, want 1", numLinks(m))
	}
	m.Close()
	if wm1.Len() != 0 {
		t.Fatal("removed watcher was notified")
	}
	wantClosed(t, wm2, a, Normal)
	// RemoveNotify on closed, zero and unbound addresses does nothing.
	a.RemoveNotify(w2)
	(Address{}).RemoveNotify(w2)
	Address{node: a.node, inc: a.inc, id: a.id}.RemoveNotify(w2)
}

func TestOnCloseNotifyDuplicate(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	w, wm := newTestMailbox(t, n)
	a.OnCloseNotify(w)
	a.OnCloseNotify(w)
	a.OnCloseNotify(w)
	m.Close()
	wantClosed(t, wm, a, Normal)
}

// A closed or zero watcher is skipped: closing the watched mailbox
// neither fails nor blocks on it, and the other watchers are still told.
func TestOnCloseNotifyClosedOrZeroWatcher(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	w, wm := n.NewMailbox()
	wm.Close()
	live, lm := newTestMailbox(t, n)
	a.OnCloseNotify(w)
	a.OnCloseNotify(Address{})
	a.OnCloseNotify(live)
	closed := make(chan struct{})
	go func() { defer close(closed); m.Close() }()
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close blocked on a closed or zero watcher")
	}
	wantClosed(t, lm, a, Normal)
	if k := wm.Len(); k != 0 {
		t.Fatalf("the closed watcher holds %d messages", k)
	}
	// the zero Address watched: nothing to tell; watching it: NoProc at once
	(Address{}).OnCloseNotify(Address{})
	(Address{}).OnCloseNotify(live)
	wantClosed(t, lm, Address{}, NoProc)
}

func TestSelfLink(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	a.OnCloseNotify(a)
	done := make(chan struct{})
	go func() { defer close(done); m.Close() }()
	select {
	case <-done:
	case <-testCtx(t).Done():
		t.Fatal("Close of a mailbox linked to itself deadlocked")
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	for r, want := range map[Reason]string{
		Normal:       "normal",
		NoConnection: "noconnection",
		NodeShutdown: "nodeshutdown",
		NoProc:       "noproc",
		Reason(200):  "reason(200)",
		Abnormal:     "abnormal",
		Reason(5):    "reason(5)",
	} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
}

// TestClosedWatcherDropsRemoteLinks: a mailbox that watches mailboxes on
// another node and then closes without RemoveNotify takes its links with
// it, on both nodes (Erlang removes a dead process's monitors): before,
// they stayed until each target closed, counting against the peer's
// MaxPeerLinks on the target's node.
func TestClosedWatcherDropsRemoteLinks(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	var targets []Address
	for range 3 {
		a, mb := n1.NewMailbox()
		t.Cleanup(mb.Close)
		targets = append(targets, a)
	}
	w, wmb := n2.NewMailbox()
	kept, kmb := n2.NewMailbox() // a second watcher keeps its link
	t.Cleanup(kmb.Close)
	for _, a := range targets {
		n2.BindAddress(a).OnCloseNotify(w)
	}
	n2.BindAddress(targets[0]).OnCloseNotify(kept)
	checkFor(t, 5*time.Second, func() error {
		for _, a := range targets {
			if !n1.linked(a, n1.BindAddress(w)) {
				return fmt.Errorf("node 1 has no link from %v to %v", w, a)
			}
		}
		return nil
	})
	wmb.Close()
	checkFor(t, 5*time.Second, func() error {
		for _, a := range targets {
			if n1.linked(a, n1.BindAddress(w)) {
				return fmt.Errorf("node 1 still has the closed watcher's link to %v", a)
			}
			if n2.linked(n2.BindAddress(a), w) {
				return fmt.Errorf("node 2 still has the closed watcher's link to %v", a)
			}
		}
		return nil
	})
	if !n1.linked(targets[0], n1.BindAddress(kept)) {
		t.Fatal("the other watcher's link went too")
	}
	if got := n2.watches.n.Load(); got != 1 {
		t.Fatalf("node 2 indexes %d watchers, want 1", got)
	}
}
