package reign

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// Groups are listed with their member counts, and a group whose last
// member left is not.
func TestSnapshotGroups(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, _ := newTestMailbox(t, n)
	b, _ := newTestMailbox(t, n)
	w, _ := newTestMailbox(t, n)
	for _, j := range []struct {
		g string
		a Address
	}{{"workers", a}, {"workers", b}, {"loggers", a}} {
		if err := n.JoinGroup(j.g, j.a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.MonitorGroup("workers", w); err != nil {
		t.Fatal(err)
	}
	want := []GroupInfo{{Name: "loggers", Members: 1, Local: 1}, {Name: "workers", Members: 2, Local: 2, Watchers: 1}}
	if got := n.Snapshot().Groups; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups: %+v, want %+v", got, want)
	}
	if err := n.LeaveGroup("loggers", a); err != nil {
		t.Fatal(err)
	}
	if got := n.Snapshot().Groups; len(got) != 1 || got[0].Name != "workers" {
		t.Errorf("after the last logger left: %+v", got)
	}
}

func TestSnapshotLocal(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, _ := newTestMailbox(t, n)
	b, _ := newTestMailbox(t, n)
	w, _ := newTestMailbox(t, n)
	closedA, closedM := n.NewMailbox()
	closedM.Close()
	for i := range 3 {
		mustSend(t, a, i)
	}
	mustSend(t, b, "x")
	a.OnCloseNotify(w)
	a.OnCloseNotify(b)
	if err := n.Register("alpha", a); err != nil {
		t.Fatal(err)
	}
	if err := n.Register("beta", a); err != nil {
		t.Fatal(err)
	}
	if err := n.Register("gamma", w); err != nil {
		t.Fatal(err)
	}

	s := n.Snapshot()
	if s.Node != n.ID() || s.Incarnation != n.inc || s.Uptime <= 0 || s.Started.IsZero() {
		t.Errorf("identity: node %d inc %d uptime %v started %v", s.Node, s.Incarnation, s.Uptime, s.Started)
	}
	if s.MailboxCount != 3 || s.Queued != 4 || s.MaxQueue != 3 {
		t.Errorf("totals: %d mailboxes, %d queued, max %d; want 3, 4, 3", s.MailboxCount, s.Queued, s.MaxQueue)
	}
	byAddr := map[Address]MailboxInfo{}
	for _, mi := range s.Mailboxes {
		byAddr[mi.Address] = mi
	}
	if len(byAddr) != 3 {
		t.Fatalf("listed %d mailboxes, want 3: %+v", len(byAddr), s.Mailboxes)
	}
	if _, ok := byAddr[closedA]; ok {
		t.Error("a closed mailbox is listed")
	}
	if mi := byAddr[a]; mi.Queued != 3 || mi.Watchers != 2 || !slices.Equal(mi.Names, []string{"alpha", "beta"}) {
		t.Errorf("mailbox a: %+v", mi)
	}
	if mi := byAddr[b]; mi.Queued != 1 || mi.Watchers != 0 || mi.Names != nil {
		t.Errorf("mailbox b: %+v", mi)
	}
	if mi := byAddr[w]; !slices.Equal(mi.Names, []string{"gamma"}) {
		t.Errorf("mailbox w: %+v", mi)
	}
	wantNames := []NameInfo{
		{Name: "alpha", Claims: []Address{a}, Local: true, Queued: 3},
		{Name: "beta", Claims: []Address{a}, Local: true, Queued: 3},
		{Name: "gamma", Claims: []Address{w}, Local: true, Queued: 0},
	}
	if fmt.Sprint(s.Names) != fmt.Sprint(wantNames) {
		t.Errorf("names:\n got %v\nwant %v", s.Names, wantNames)
	}
	if len(s.Peers) != 0 {
		t.Errorf("a local-only node has peers: %v", s.Peers)
	}

	// it encodes as JSON with addresses in their text form
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Mailboxes []struct{ Address string }
		Names     []struct{ Name string }
		Peers     []PeerInfo
	}
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Mailboxes) != 3 || back.Mailboxes[0].Address != a.String() || len(back.Names) != 3 || back.Names[0].Name != "alpha" || back.Peers == nil {
		t.Errorf("JSON form: %s", j)
	}
}

func TestSnapshotLongestQueues(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	var addrs []Address
	for i := range 50 {
		a, _ := newTestMailbox(t, n)
		addrs = append(addrs, a)
		for range (i * 7) % 50 { // queue lengths 0..49, shuffled by slot
			mustSend(t, a, i)
		}
	}
	s := n.SnapshotWith(SnapshotOptions{MaxMailboxes: 5})
	var got []int
	for _, mi := range s.Mailboxes {
		got = append(got, mi.Queued)
	}
	if !slices.Equal(got, []int{49, 48, 47, 46, 45}) {
		t.Errorf("5 longest queues: %v", got)
	}
	if s.MailboxCount != 50 || s.MaxQueue != 49 || s.Queued != 49*50/2 {
		t.Errorf("totals: %d mailboxes, %d queued, max %d", s.MailboxCount, s.Queued, s.MaxQueue)
	}
	s = n.SnapshotWith(SnapshotOptions{MaxMailboxes: -1})
	if len(s.Mailboxes) != 0 || s.MailboxCount != 50 {
		t.Errorf("MaxMailboxes -1: listed %d of %d", len(s.Mailboxes), s.MailboxCount)
	}
}

type peekA struct{ N int }
type peekB struct{ S string }

func TestPeek(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	// wrap the ring buffer: take some, then queue more
	for i := range 6 {
		mustSend(t, a, peekA{i})
	}
	for range 5 {
		recv(t, m)
	}
	for _, v := range []any{&peekB{"x"}, "s", 7, peekA{}, peekB{}, peekA{}, peekA{}} {
		mustSend(t, a, v)
	}
	got, ok := n.Peek(a, 5)
	want := []string{"reign.peekA", "*reign.peekB", "string", "int", "reign.peekA"}
	if !ok || !slices.Equal(got, want) {
		t.Errorf("Peek = %v, %v; want %v", got, ok, want)
	}
	if m.Len() != 8 {
		t.Errorf("Peek consumed messages: %d left, want 8", m.Len())
	}
	if v := recv(t, m); v != (peekA{5}) {
		t.Errorf("after Peek, first message %v", v)
	}
	if got, ok := n.Peek(a, 100); !ok || len(got) != 7 {
		t.Errorf("Peek(100) = %v, %v", got, ok)
	}
	m.Close()
	if _, ok := n.Peek(a, 5); ok {
		t.Error("Peek of a closed mailbox reports ok")
	}
	other := newTestNode(t)
	oa, _ := newTestMailbox(t, other)
	if _, ok := n.Peek(oa, 5); ok {
		t.Error("Peek of another node's mailbox reports ok")
	}
}

func TestSnapshotPeers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1 := tc.node(1)
	b, _ := newTestMailbox(t, tc.node(2))
	if err := tc.node(2).Register("remote-name", b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, testTimeout, func() error {
		_, ok := n1.Lookup("remote-name")
		return unless(ok, "node 1 has not seen remote-name")
	})
	s := n1.Snapshot()
	if len(s.Peers) != 1 || s.Peers[0].Node != 2 || !s.Peers[0].Up || s.Peers[0].Address != tc.spec.Nodes[1].Address {
		t.Errorf("peers: %+v", s.Peers)
	}
	if s.Stats.PeersUp != 1 {
		t.Errorf("stats: %+v", s.Stats)
	}
	if len(s.Names) != 1 || s.Names[0].Local || s.Names[0].Claims[0].NodeID() != 2 {
		t.Errorf("names: %+v", s.Names)
	}
	tc.kill(2)
	checkFor(t, testTimeout, func() error {
		s := n1.Snapshot()
		return unless(len(s.Peers) == 1 && !s.Peers[0].Up, "peers: %+v", s.Peers)
	})
}

// BenchmarkSnapshot measures a Snapshot of a node with 10,000 mailboxes
// (one message queued in every tenth) and 1,000 names.
func BenchmarkSnapshot(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts SnapshotOptions
	}{{"all", SnapshotOptions{}}, {"top10", SnapshotOptions{MaxMailboxes: 10}}, {"totals", SnapshotOptions{MaxMailboxes: -1}}} {
		b.Run(bc.name, func(b *testing.B) {
			n := newTestNode(b)
			for i := range 10_000 {
				a, m := n.NewMailbox()
				defer m.Close()
				if i%10 == 0 {
					_ = a.Send(i)
				}
				if i < 1000 {
					if err := n.Register(fmt.Sprintf("name-%d", i), a); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s := n.SnapshotWith(bc.opts)
				if s.MailboxCount != 10_000 || len(s.Names) != 1000 {
					b.Fatalf("%d mailboxes, %d names", s.MailboxCount, len(s.Names))
				}
			}
		})
	}
}

// TestSnapshotConcurrent takes snapshots and peeks while other goroutines
// open, fill, name, watch and close mailboxes (run it with -race): each
// snapshot's totals agree with what it lists.
func TestSnapshotConcurrent(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	stop := make(chan struct{})
	g := newGoGroup(t)
	t.Cleanup(func() { close(stop) }) // runs before g's wait
	for w := range 2 {
		g.Go(func() {
			var open [50]*Mailbox // each worker keeps at most 50 open
			defer func() {
				for _, m := range open {
					if m != nil {
						m.Close()
					}
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, m := n.NewMailbox()
				_ = a.Send(i)
				_ = n.Register(fmt.Sprintf("w%d-%d", w, i%5), a)
				a.OnCloseNotify(a)
				if old := open[i%len(open)]; old != nil {
					old.Close()
				}
				open[i%len(open)] = m
			}
		})
	}
	checkFor(t, testTimeout, func() error { // both workers busy
		return unless(n.table.count() >= 60, "%d mailboxes open", n.table.count())
	})
	for range 200 {
		s := n.Snapshot()
		sum := 0
		for _, mi := range s.Mailboxes {
			sum += mi.Queued
			if types, ok := n.Peek(mi.Address, 2); ok && len(types) > 2 {
				t.Fatalf("Peek(2) returned %d types", len(types))
			}
		}
		if len(s.Mailboxes) != s.MailboxCount || sum != s.Queued {
			t.Fatalf("listed %d mailboxes with %d queued; totals say %d and %d", len(s.Mailboxes), sum, s.MailboxCount, s.Queued)
		}
	}
}
