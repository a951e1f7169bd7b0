package reign

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// membersOn reports whether every node given lists exactly want (bound to
// it) as group's members.
func membersOn(group string, want []Address, nodes ...*Node) error {
	for _, n := range nodes {
		w := make([]Address, len(want))
		for i, a := range want {
			w[i] = n.BindAddress(a)
		}
		slices.SortFunc(w, compareMembers)
		if got := n.Members(group); !slices.Equal(got, w) {
			return fmt.Errorf("%v: Members(%q) = %v, want %v", n, group, got, w)
		}
	}
	return nil
}

// expectChange receives the next message of m, which must be a
// GroupChanged for group with exactly joined and left.
func expectChange(t testing.TB, m *Mailbox, group string, joined, left []Address) {
	t.Helper()
	v := recv(t, m)
	gc, ok := v.(GroupChanged)
	if !ok {
		t.Fatalf("got %#v, want a GroupChanged", v)
	}
	if gc.Group != group || !slices.Equal(gc.Joined, joined) || !slices.Equal(gc.Left, left) {
		t.Fatalf("got %+v, want {%s %v %v}", gc, group, joined, left)
	}
}

func TestGroupsLocal(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, _ := newTestMailbox(t, n)
	b, bmb := newTestMailbox(t, n)
	w, wmb := newTestMailbox(t, n)

	if got, err := n.MonitorGroup("g", w); err != nil || got != nil {
		t.Fatalf("MonitorGroup of an empty group: %v, %v", got, err)
	}
	if err := n.JoinGroup("g", a); err != nil {
		t.Fatal(err)
	}
	expectChange(t, wmb, "g", []Address{a}, nil)
	// a second join counts, but changes nothing anyone sees
	if err := n.JoinGroup("g", a); err != nil {
		t.Fatal(err)
	}
	if err := n.JoinGroup("g", b); err != nil {
		t.Fatal(err)
	}
	expectChange(t, wmb, "g", []Address{b}, nil)
	if err := membersOn("g", []Address{a, b}, n); err != nil {
		t.Fatal(err)
	}
	if got := n.LocalMembers("g"); !slices.Equal(got, []Address{a, b}) {
		t.Fatalf("LocalMembers = %v", got)
	}
	if got := n.Groups(); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("Groups = %v", got)
	}

	// Broadcast reaches each member once, however many times it joined
	if k, err := n.Broadcast("g", "hi"); err != nil || k != 2 {
		t.Fatalf("Broadcast = %d, %v; want 2", k, err)
	}
	if got := drain(bmb); len(got) != 1 || got[0] != "hi" {
		t.Fatalf("b received %v", got)
	}
	if k, err := n.Broadcast("nobody", "hi"); err != nil || k != 0 {
		t.Fatalf("Broadcast to an empty group = %d, %v", k, err)
	}

	// a leaves as many times as it joined
	if err := n.LeaveGroup("g", a); err != nil {
		t.Fatal(err)
	}
	if err := membersOn("g", []Address{a, b}, n); err != nil {
		t.Fatal(err)
	}
	if err := n.LeaveGroup("g", a); err != nil {
		t.Fatal(err)
	}
	expectChange(t, wmb, "g", nil, []Address{a})
	if err := n.LeaveGroup("g", a); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("third leave: %v, want ErrNotJoined", err)
	}

	// a closing mailbox leaves its groups
	if err := n.JoinGroup("h", b); err != nil {
		t.Fatal(err)
	}
	bmb.Close()
	expectChange(t, wmb, "g", nil, []Address{b})
	if got := n.Members("g"); got != nil {
		t.Fatalf("Members after close = %v", got)
	}
	if got := n.Groups(); len(got) != 0 {
		t.Fatalf("Groups after close = %v", got)
	}
	if err := n.JoinGroup("g", b); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("join of a closed mailbox: %v", err)
	}

	// demonitored: no more news
	n.DemonitorGroup("g", w)
	if err := n.JoinGroup("g", a); err != nil {
		t.Fatal(err)
	}
	if v, ok := wmb.ReceiveAsync(); ok {
		t.Fatalf("after DemonitorGroup: %#v", v)
	}
	// a closed watcher's monitors go with it, and the table empties
	wmb.Close()
	if err := n.LeaveGroup("g", a); err != nil {
		t.Fatal(err)
	}
	n.pg.mu.RLock()
	left := len(n.pg.groups) + len(n.pg.local) + len(n.pg.watching)
	n.pg.mu.RUnlock()
	if left != 0 {
		t.Fatalf("group table not empty: %d entries", left)
	}
}

func TestGroupsBadArguments(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	other := newTestNode(t)
	a, _ := newTestMailbox(t, n)
	far, _ := newTestMailbox(t, other)
	for _, c := range []struct {
		group string
		a     Address
		want  error
	}{
		{"", a, ErrBadGroupName},
		{strings.Repeat("x", MaxGroupNameLen+1), a, ErrBadGroupName},
		{"g", Address{}, ErrZeroAddress},
		{"g", n.BindAddress(far), ErrNotLocal},
	} {
		if err := n.JoinGroup(c.group, c.a); !errors.Is(err, c.want) {
			t.Errorf("JoinGroup(%.10q, %v) = %v, want %v", c.group, c.a, err, c.want)
		}
		if _, err := n.MonitorGroup(c.group, c.a); !errors.Is(err, c.want) {
			t.Errorf("MonitorGroup(%.10q, %v) = %v, want %v", c.group, c.a, err, c.want)
		}
	}
	if err := n.LeaveGroup("g", n.BindAddress(far)); !errors.Is(err, ErrNotLocal) {
		t.Errorf("LeaveGroup of another node's mailbox: %v", err)
	}
	if err := n.JoinGroup(strings.Repeat("x", MaxGroupNameLen), a); err != nil {
		t.Errorf("longest name: %v", err)
	}
	for _, f := range []func(*Config){
		func(c *Config) { c.MaxPeerGroups = -1 },
		func(c *Config) { c.MaxPeerGroupMembers = -1 },
	} {
		var cfg Config
		f(&cfg)
		if _, err := NewNode(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("negative group bound: %v", err)
		}
	}
}

func TestGroupsAcrossNodes(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a1, m1 := newTestMailbox(t, n1)
	a2, m2 := newTestMailbox(t, n2)
	b2, mb2 := newTestMailbox(t, n2)
	a3, m3 := newTestMailbox(t, n3)
	w3, wm3 := newTestMailbox(t, n3)
	if got, err := n3.MonitorGroup("g", w3); err != nil || got != nil {
		t.Fatalf("MonitorGroup: %v, %v", got, err)
	}

	for _, j := range []struct {
		n *Node
		a Address
	}{{n1, a1}, {n2, a2}, {n2, b2}, {n3, a3}, {n2, a2}} {
		if err := j.n.JoinGroup("g", j.a); err != nil {
			t.Fatal(err)
		}
	}
	all := []Address{a1, a2, b2, a3}
	checkFor(t, 5*time.Second, func() error { return membersOn("g", all, n1, n2, n3) })
	if got := n2.LocalMembers("g"); !slices.Equal(got, []Address{a2, b2}) {
		t.Fatalf("LocalMembers on node 2 = %v", got)
	}
	// node 3's watcher saw each member join once (a2's second join is
	// node 2's own business), in the order node 3 learned of them
	var seen []Address
	for len(seen) < 4 {
		v := recv(t, wm3)
		gc, ok := v.(GroupChanged)
		if !ok || len(gc.Joined) != 1 || gc.Left != nil {
			t.Fatalf("watcher got %#v", v)
		}
		seen = append(seen, gc.Joined[0])
	}
	slices.SortFunc(seen, compareMembers)
	if !slices.Equal(seen, []Address{n3.BindAddress(a1), n3.BindAddress(a2), n3.BindAddress(b2), a3}) {
		t.Fatalf("watcher saw joins of %v", seen)
	}

	// a Broadcast from each node reaches every member exactly once
	for i, from := range []*Node{n1, n2, n3} {
		if k, err := from.Broadcast("g", testMsg{Seq: i}); err != nil || k != 4 {
			t.Fatalf("Broadcast from %v = %d, %v; want 4", from, k, err)
		}
	}
	flushPeers(t, n1, n2, n3)
	for _, m := range []*Mailbox{m1, m2, mb2, m3} {
		got := drain(m)
		var seqs []int
		for _, v := range got {
			seqs = append(seqs, v.(testMsg).Seq)
		}
		slices.Sort(seqs)
		if !slices.Equal(seqs, []int{0, 1, 2}) {
			t.Fatalf("a member received %v, want each of 0, 1, 2 once", got)
		}
	}

	// leaving: a2 joined twice, so one leave changes nothing
	if err := n2.LeaveGroup("g", a2); err != nil {
		t.Fatal(err)
	}
	flushPeers(t, n1, n2, n3)
	if err := membersOn("g", all, n1, n2, n3); err != nil {
		t.Fatal(err)
	}
	if err := n2.LeaveGroup("g", a2); err != nil {
		t.Fatal(err)
	}
	expectChange(t, wm3, "g", nil, []Address{n3.BindAddress(a2)})
	// and a mailbox that closes leaves
	m1.Close()
	expectChange(t, wm3, "g", nil, []Address{n3.BindAddress(a1)})
	checkFor(t, 5*time.Second, func() error { return membersOn("g", []Address{b2, a3}, n1, n2, n3) })
	if v, ok := wm3.ReceiveAsync(); ok {
		t.Fatalf("watcher got more: %#v", v)
	}
}

func TestGroupsSyncOnConnect(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	tc.kill(3)
	n1, n2 := tc.node(1), tc.node(2)
	a, _ := newTestMailbox(t, n1)
	b, _ := newTestMailbox(t, n2)
	if err := n1.JoinGroup("g", a); err != nil {
		t.Fatal(err)
	}
	if err := n2.JoinGroup("g", b); err != nil {
		t.Fatal(err)
	}
	if err := n2.JoinGroup("h", b); err != nil {
		t.Fatal(err)
	}
	n3 := tc.start(3, nil)
	// a watcher on the newcomer learns of the memberships the sync brings
	w, wm := newTestMailbox(t, n3)
	if _, err := n3.MonitorGroup("h", w); err != nil {
		t.Fatal(err)
	}
	tc.connected()
	checkFor(t, 5*time.Second, func() error {
		if err := membersOn("g", []Address{a, b}, n3); err != nil {
			return err
		}
		return membersOn("h", []Address{b}, n3)
	})
	expectChange(t, wm, "h", []Address{n3.BindAddress(b)}, nil)
	// and the newcomer's own joins reach the others
	c, cm := newTestMailbox(t, n3)
	if err := n3.JoinGroup("g", c); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return membersOn("g", []Address{a, b, c}, n1, n2, n3) })
	if k, err := n1.Broadcast("g", testMsg{Seq: 7}); err != nil || k != 3 {
		t.Fatalf("Broadcast = %d, %v", k, err)
	}
	if v := recv(t, cm); v.(testMsg).Seq != 7 {
		t.Fatalf("got %#v", v)
	}
}

// Node loss: the members on a node whose connection is lost leave the
// group (watchers are told), and come back with the resync when the
// connection does. The proxy black-holes the connection between nodes 1
// and 2, so it stays down until the test lifts the fault.
func TestGroupsNodeLoss(t *testing.T) {
	t.Parallel()
	tc, p := newProxiedCluster(t, nil)
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a2, _ := newTestMailbox(t, n2)
	a3, _ := newTestMailbox(t, n3)
	for _, j := range []struct {
		n *Node
		a Address
	}{{n2, a2}, {n3, a3}} {
		if err := j.n.JoinGroup("g", j.a); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error { return membersOn("g", []Address{a2, a3}, n1, n2, n3) })
	w, wm := newTestMailbox(t, n1)
	if got, err := n1.MonitorGroup("g", w); err != nil || len(got) != 2 {
		t.Fatalf("MonitorGroup: %v, %v", got, err)
	}
	before := n1.Stats().Connects

	p.BlackHole(true)
	expectChange(t, wm, "g", nil, []Address{n1.BindAddress(a2)})
	if err := membersOn("g", []Address{a3}, n1); err != nil {
		t.Fatal(err)
	}
	if k, err := n1.Broadcast("g", testMsg{Seq: 1}); err != nil || k != 1 {
		t.Fatalf("Broadcast while node 2 is lost = %d, %v; want 1", k, err)
	}
	// node 2 still sees its own member, and node 3's
	if err := membersOn("g", []Address{a2, a3}, n2, n3); err != nil {
		t.Fatal(err)
	}

	// the connection comes back: the resync brings a2 back
	p.BlackHole(false)
	expectChange(t, wm, "g", []Address{n1.BindAddress(a2)}, nil)
	if err := membersOn("g", []Address{a2, a3}, n1); err != nil {
		t.Fatal(err)
	}
	if n1.Stats().Connects <= before {
		t.Fatal("a2 came back without a new connection")
	}
}

// Hostile peers: a GroupJoin naming a mailbox of another incarnation than
// the peer's own is a protocol error and joins nothing; bounds on groups
// and memberships end the connection with CloseLimitExceeded, counted,
// and the peer's memberships go with it; node 4 keeps serving nodes 2
// and 3 throughout (newHostileCluster checks).
func TestGroupsHostile(t *testing.T) {
	checkGoroutines(t)
	join := func(name string, r wire.Ref) []byte {
		return wire.AppendFrame(nil, wire.TypeGroupJoin, wire.AppendGroup(nil, wire.Group{Name: name, Member: r}))
	}
	t.Run("foreign-mailbox", func(t *testing.T) {
		t.Parallel()
		h := newHostileCluster(t, nil)
		// a real member of node 2, watched on node 4
		a2, _ := newTestMailbox(t, h.n2)
		if err := h.n2.JoinGroup("g", a2); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 5*time.Second, func() error { return membersOn("g", []Address{a2}, h.n4) })
		w, wm := newTestMailbox(t, h.n4)
		if _, err := h.n4.MonitorGroup("g", w); err != nil {
			t.Fatal(err)
		}
		before := h.n4.Stats().Closes[CloseProtocolError]
		f := dialFakePeer(t, h)
		// node 2's incarnation, as seen in a2: the fake peer tries to
		// make one of another node's (another run's) mailboxes join
		if err := f.write(join("g", wire.Ref{Inc: a2.inc, ID: a2.id})); err != nil {
			t.Fatal(err)
		}
		f.expectEnded(t, 5*time.Second)
		checkFor(t, 5*time.Second, func() error {
			return unless(h.n4.Stats().Closes[CloseProtocolError] == before+1, "a protocol error close counted")
		})
		if err := membersOn("g", []Address{a2}, h.n4); err != nil {
			t.Fatal(err)
		}
		if v, ok := wm.ReceiveAsync(); ok {
			t.Fatalf("watcher told of %#v", v)
		}
	})
	limit := func(name string, kind Limit, mod func(*Config), frames func(f *fakePeer) [][]byte) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHostileCluster(t, mod)
			f := dialFakePeer(t, h)
			fs := frames(f)
			for _, fr := range fs[:len(fs)-1] {
				if err := f.write(fr); err != nil {
					t.Fatal(err)
				}
			}
			// every join within the bounds took
			checkFor(t, 5*time.Second, func() error {
				h.n4.pg.mu.RLock()
				defer h.n4.pg.mu.RUnlock()
				pg := h.n4.pg.byNode[absent]
				return unless(pg != nil && pg.members == len(fs)-1, "the fake peer's %d joins recorded", len(fs)-1)
			})
			before := h.n4.Stats()
			_ = f.write(fs[len(fs)-1]) // one too many
			f.expectEnded(t, 5*time.Second)
			checkFor(t, 5*time.Second, func() error {
				s := h.n4.Stats()
				return unless(s.Closes[CloseLimitExceeded] == before.Closes[CloseLimitExceeded]+1 &&
					s.Peers[absent].Closes[CloseLimitExceeded] == 1 &&
					s.LimitsExceeded[kind] == before.LimitsExceeded[kind]+1,
					"a limit close counted for the fake peer, and as %v: %v", kind, s.LimitsExceeded)
			})
			checkFor(t, 5*time.Second, func() error {
				for _, g := range h.n4.Groups() {
					for _, a := range h.n4.Members(g) {
						if a.NodeID() == absent {
							return fmt.Errorf("the fake peer's member %v is still in %q", a, g)
						}
					}
				}
				return nil
			})
		})
	}
	limit("too-many-groups", LimitGroups, func(c *Config) { c.MaxPeerGroups = 8 }, func(f *fakePeer) [][]byte {
		var out [][]byte
		for i := range 9 {
			out = append(out, join(fmt.Sprintf("g%d", i), wire.Ref{Inc: f.inc, ID: 1}))
		}
		return out
	})
	limit("too-many-members", LimitGroupMembers, func(c *Config) { c.MaxPeerGroupMembers = 8 }, func(f *fakePeer) [][]byte {
		var out [][]byte
		for i := range 9 {
			out = append(out, join("g", wire.Ref{Inc: f.inc, ID: uint64(i + 1)}))
		}
		return out
	})
	t.Run("forged-GroupChanged", func(t *testing.T) {
		t.Parallel()
		h := newHostileCluster(t, nil)
		f := dialFakePeer(t, h)
		dst, mb := newTestMailbox(t, h.n4)
		before := h.n4.Stats().DroppedReserved
		name := typeName(reflect.TypeFor[GroupChanged]())
		body, err := MsgpackCodec{}.Marshal(nil, GroupChanged{Group: "g", Joined: []Address{dst}})
		if err != nil {
			t.Fatal(err)
		}
		b := wire.AppendFrame(nil, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: 1, Name: name}))
		b = wire.AppendFrame(b, wire.TypeMessage, wire.AppendMessage(nil, wire.Message{To: ref(dst), TypeID: 1, Body: body}))
		if err := f.write(b); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 5*time.Second, func() error {
			return unless(h.n4.Stats().DroppedReserved == before+1, "the forged GroupChanged dropped and counted")
		})
		if v, ok := mb.ReceiveAsync(); ok {
			t.Fatalf("delivered: %#v", v)
		}
		if up := h.n4.Stats().PeersUp; up != 3 {
			t.Fatalf("the connection ended on a dropped message: %d peers up", up)
		}
		f.close()
		checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 2, "the fake peer gone") })
	})
}

// A message that cannot go to another node is sent to nobody, local
// members included.
func TestGroupsBroadcastUnsendable(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	a1, m1 := newTestMailbox(t, n1)
	a2, _ := newTestMailbox(t, n2)
	if err := n1.JoinGroup("g", a1); err != nil {
		t.Fatal(err)
	}
	if err := n2.JoinGroup("g", a2); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return membersOn("g", []Address{a1, a2}, n1) })
	type unregistered struct{ X int }
	for _, msg := range []any{unregistered{1}, GroupChanged{Group: "g"}} {
		if k, err := n1.Broadcast("g", msg); k != 0 || err == nil {
			t.Fatalf("Broadcast(%T) = %d, %v; want an error", msg, k, err)
		}
	}
	if v, ok := m1.ReceiveAsync(); ok {
		t.Fatalf("the local member got %#v", v)
	}
}

// Joins, leaves and closes on every node while the connection between
// nodes 1 and 2 is cut and comes back: once it is quiet, every node sees
// the same members.
func TestGroupsConvergeUnderChurn(t *testing.T) {
	t.Parallel()
	tc, p := newProxiedCluster(t, nil)
	nodes := []*Node{tc.node(1), tc.node(2), tc.node(3)}
	before := nodes[0].Stats().Connects
	gg := newGoGroup(t)
	var mu sync.Mutex
	var kept []Address // members at the end, by construction
	for i, n := range nodes {
		gg.Go(func() {
			var mine []*Mailbox
			// churn until node 1 has reconnected to node 2 (so joins
			// and leaves cross the resync), at least 200 operations
			for k := 0; k < 200 || k < 5000 && (k%10 != 0 || nodes[0].Stats().Connects == before); k++ {
				a, m := n.NewMailbox()
				mine = append(mine, m)
				group := fmt.Sprintf("g%d", k%3)
				_ = n.JoinGroup(group, a)
				switch k % 4 {
				case 1:
					_ = n.LeaveGroup(group, a)
				case 2:
					m.Close()
				case 3:
					_ = n.JoinGroup(group, a) // twice: one leave keeps it
					_ = n.LeaveGroup(group, a)
					mu.Lock()
					kept = append(kept, a)
					mu.Unlock()
				default:
					mu.Lock()
					kept = append(kept, a)
					mu.Unlock()
				}
				if i == 0 && k == 50 {
					p.Cut()
				}
			}
			t.Cleanup(func() {
				for _, m := range mine {
					m.Close()
				}
			})
		})
	}
	gg.wg.Wait()
	checkFor(t, 10*time.Second, func() error {
		return unless(nodes[0].Stats().Connects > before && nodes[0].Stats().PeersUp == 2, "node 1 reconnected to node 2")
	})
	mu.Lock()
	defer mu.Unlock()
	// what each node holds of its own is what the churn left
	byGroup := map[string][]Address{}
	var local []Address
	for _, n := range nodes {
		for _, g := range n.Groups() {
			byGroup[g] = append(byGroup[g], n.LocalMembers(g)...)
			local = append(local, n.LocalMembers(g)...)
		}
	}
	slices.SortFunc(local, compareMembers)
	slices.SortFunc(kept, compareMembers)
	if !slices.Equal(local, kept) {
		t.Fatalf("local members %v, want %v", local, kept)
	}
	// and every node agrees
	checkFor(t, 10*time.Second, func() error {
		for g, want := range byGroup {
			if err := membersOn(g, want, nodes...); err != nil {
				return err
			}
		}
		return nil
	})
}
