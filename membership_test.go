package reign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// fastMembership is membership tuned for tests: failures are declared
// within a couple of seconds even under -race on a loaded machine.
func fastMembership(join ...string) *MembershipConfig {
	return &MembershipConfig{
		Join:             join,
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		GossipInterval:   50 * time.Millisecond,
		PushPullInterval: time.Second,
		JoinRetry:        200 * time.Millisecond,
		LeaveTimeout:     500 * time.Millisecond,
	}
}

// memberNode is a node with membership on, running in this process.
type memberNode struct {
	*Node
	addr string
	stop func()
}

// startMember starts node id with membership, listening on 127.0.0.1:0,
// with a spec that holds only itself (the others are unknown to it) and
// the test certificates; it joins through join. mod, if non-nil, adjusts
// the spec or Config before NewNode.
func startMember(t testing.TB, id NodeID, mod func(*ClusterSpec, *Config), join ...string) *memberNode {
	t.Helper()
	n, addr := newMember(t, id, mod, join...)
	return serveMember(t, n, addr)
}

// newMember makes node id as startMember does, without serving it.
func newMember(t testing.TB, id NodeID, mod func(*ClusterSpec, *Config), join ...string) (*Node, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t)
	spec.Nodes = []NodeSpec{{ID: id, Address: ln.Addr().String()}}
	cfg := Config{
		NodeID:            id,
		Cluster:           spec,
		Listener:          ln,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
		HandshakeTimeout:  2 * time.Second,
		Membership:        fastMembership(join...),
		Logger:            testLogger(id),
	}
	if mod != nil {
		mod(spec, &cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := n.RegisterType(testMsg{}); err != nil {
		t.Fatal(err)
	}
	return n, ln.Addr().String()
}

func serveMember(t testing.TB, n *Node, addr string) *memberNode {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Serve(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &memberNode{Node: n, addr: addr, stop: stop}
}

// members says why n does not list exactly want members alive.
func members(want int, nodes ...*memberNode) error {
	for _, n := range nodes {
		if got := n.Stats().Members; got != want {
			return fmt.Errorf("node %d lists %d members alive, want %d", n.ID(), got, want)
		}
	}
	return nil
}

// pairConnected reports whether nodes a and b both run a connection to
// each other, and the same one.
func pairConnected(a, b *memberNode) error {
	pa, pb := a.cl.peer(b.ID()), b.cl.peer(a.ID())
	if pa == nil || pb == nil {
		return errors.New("no peers yet")
	}
	ca, cb := pa.live.Load(), pb.live.Load()
	if ca == nil || cb == nil {
		return fmt.Errorf("not connected: node %d %v, node %d %v", a.ID(), ca != nil, b.ID(), cb != nil)
	}
	if ca.nc.LocalAddr().String() != cb.nc.RemoteAddr().String() {
		return fmt.Errorf("nodes %d and %d run different connections: %s and %s", a.ID(), b.ID(), ca.nc.LocalAddr(), cb.nc.RemoteAddr())
	}
	return nil
}

// hasPeer reports whether n's peer table holds node id, up or not.
func hasPeer(n *memberNode, id NodeID) bool { return n.cl.peer(id) != nil }

// TestMembershipJoin: nodes 2 and 3, each knowing only node 1's address
// (their specs list only themselves, node 1's lists only itself), join
// a running node 1: all three list three members, names converge on the
// joiners, and a message crosses between 2 and 3, a pair that nobody
// configured.
func TestMembershipJoin(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	echo, mb1 := n1.NewMailbox()
	if err := n1.Register("one", echo); err != nil {
		t.Fatal(err)
	}
	n2 := startMember(t, 2, nil, n1.addr)
	n3 := startMember(t, 3, nil, n1.addr)
	all := []*memberNode{n1, n2, n3}
	checkFor(t, 10*time.Second, func() error { return members(3, all...) })

	// the joiners learn node 1's name by the sync on connect
	checkFor(t, 5*time.Second, func() error {
		for _, n := range all[1:] {
			if a, ok := n.Lookup("one"); !ok || a != n.BindAddress(echo) {
				return fmt.Errorf("node %d: Lookup(one) = %v, %v", n.ID(), a, ok)
			}
		}
		return nil
	})
	// 2 and 3 talk, each learning of the other by gossip alone
	a3, mb3 := n3.NewMailbox()
	if err := n3.Register("three", a3); err != nil {
		t.Fatal(err)
	}
	var to3 Address
	checkFor(t, 5*time.Second, func() error {
		var ok bool
		to3, ok = n2.Lookup("three")
		return unless(ok, "node 2 has not learned the name three")
	})
	a2, mb2 := n2.NewMailbox()
	for i := range 10 {
		if err := to3.Send(testMsg{Seq: i, From: a2}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if m := recv(t, mb3).(testMsg); m.Seq != i || m.From != n3.BindAddress(a2) {
			t.Fatalf("got %+v, want seq %d from %v", m, i, a2)
		}
	}
	_ = mb1
	_ = mb2
	// one connection per pair, whoever dialed
	for _, n := range all {
		if up := n.Stats().PeersUp; up != 2 {
			t.Errorf("node %d has %d peers up, want 2", n.ID(), up)
		}
	}
}

// TestMembershipLeaveAndKill: a node that stops leaves gracefully and
// the others drop it from their peer tables; a node that stops without
// leaving (no leave gossiped; its listener gone) is detected as failed by
// membership, its links fire, and it leaves the tables too.
func TestMembershipLeaveAndKill(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	n2 := startMember(t, 2, nil, n1.addr)
	n3 := startMember(t, 3, nil, n1.addr)
	n4 := startMember(t, 4, nil, n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(4, n1, n2, n3, n4) })

	// graceful leave
	left := time.Now()
	n4.stop()
	checkFor(t, 5*time.Second, func() error {
		if err := members(3, n1, n2, n3); err != nil {
			return err
		}
		for _, n := range []*memberNode{n1, n2, n3} {
			if hasPeer(n, 4) {
				return fmt.Errorf("node %d still has peer 4", n.ID())
			}
		}
		return nil
	})
	t.Logf("leave seen by all in %v", time.Since(left))

	// failure: node 3 stops without a leave
	target, _ := n3.NewMailbox()
	w, wmb := n1.NewMailbox()
	n1.BindAddress(target).OnCloseNotify(w)
	// the Link reaches node 3 before this call's request
	srv, _ := startServer(t, n3.Node, doubler)
	if _, err := Call(testCtx(t), n1.BindAddress(srv), 2); err != nil {
		t.Fatal(err)
	}
	n3.cl.member.testNoLeave.Store(true)
	killed := time.Now()
	n3.stop()
	// in this process the connections still say Goodbye; the
	// multi-process test kills with SIGKILL
	mc := recv(t, wmb).(MailboxClosed)
	if mc.Address != n1.BindAddress(target) || (mc.Reason != NoConnection && mc.Reason != NodeShutdown) {
		t.Fatalf("got %+v", mc)
	}
	checkFor(t, 10*time.Second, func() error {
		if err := members(2, n1, n2); err != nil {
			return err
		}
		for _, n := range []*memberNode{n1, n2} {
			if hasPeer(n, 3) {
				return fmt.Errorf("node %d still has peer 3", n.ID())
			}
		}
		return nil
	})
	t.Logf("failure declared by all in %v", time.Since(killed))
}

// TestMembershipRefusals: a node whose certificate another CA signed, or
// whose certificate has expired, cannot join: its connection is refused
// by TLS, logged, counted, and it never becomes a member or a peer.
func TestMembershipRefusals(t *testing.T) {
	t.Parallel()
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, certs.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := os.ReadFile(filepath.Join(dir, certs.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := certs.LoadCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	foreign := testCA(t)
	inline := func(ca, trust *certs.CA, id NodeID, notBefore time.Time, validFor time.Duration) func(*ClusterSpec, *Config) {
		return func(s *ClusterSpec, _ *Config) {
			crt, key, err := ca.IssueNode(uint16(id), notBefore, validFor)
			if err != nil {
				t.Fatal(err)
			}
			s.NodeCertPath, s.NodeKeyPath, s.ClusterCertPath = "", "", ""
			s.NodeCertPEM, s.NodeKeyPEM, s.ClusterCertPEM = string(crt), string(key), string(trust.CertPEM())
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(*ClusterSpec, *Config)
		id   NodeID
	}{
		{"foreign CA", inline(foreign, foreign, 5, time.Now().Add(-time.Hour), 24*time.Hour), 5},
		{"expired", inline(ours, ours, 6, time.Now().Add(-time.Hour), 2*time.Hour), 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seed *memberNode
			if tc.name == "expired" {
				// the seed's clock runs two days ahead: to it, a
				// certificate valid for two hours from now has expired
				seed = startMemberAhead(t, 1, 48*time.Hour)
			} else {
				seed = startMember(t, 1, nil)
			}
			before := seed.Stats().Closes[CloseBadCertificate]
			j := startMember(t, tc.id, tc.mod, seed.addr)
			checkFor(t, 5*time.Second, func() error {
				got := seed.Stats().Closes[CloseBadCertificate]
				return unless(got >= before+2, "seed counted %d bad certificates, want 2 more (two join attempts)", got-before)
			})
			if err := members(1, seed, j); err != nil {
				t.Fatal(err)
			}
			if hasPeer(seed, tc.id) || hasPeer(j, 1) {
				t.Fatalf("refused node in a peer table: seed has it %v, joiner has the seed %v", hasPeer(seed, tc.id), hasPeer(j, 1))
			}
		})
	}
}

// startMemberAhead starts node id with membership and its clock ahead by d.
func startMemberAhead(t testing.TB, id NodeID, d time.Duration) *memberNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t)
	spec.Nodes = []NodeSpec{{ID: id, Address: ln.Addr().String()}}
	n, err := NewNode(Config{NodeID: id, Cluster: spec, Listener: ln, Membership: fastMembership()})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	n.cl.tls.now = func() time.Time { return time.Now().Add(d) }
	return serveMember(t, n, ln.Addr().String())
}

// TestMembershipConfig: the membership block is checked at NewNode.
func TestMembershipConfig(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	spec.Nodes = []NodeSpec{{ID: 1, Address: "127.0.0.1:1"}}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Membership: &MembershipConfig{}}, "Config.Membership"},
		{Config{NodeID: 1, Cluster: spec, Membership: &MembershipConfig{ProbeInterval: -1}}, "Config.Membership.ProbeInterval"},
		{Config{NodeID: 1, Cluster: spec, Membership: &MembershipConfig{ProbeTimeout: time.Second}}, "Config.Membership.ProbeTimeout"},
		{Config{NodeID: 1, Cluster: spec, Membership: &MembershipConfig{Join: []string{"nohost"}}}, "Config.Membership.Join"},
	} {
		_, err := NewNode(tc.cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: got %v, want a ConfigError for %s", tc.cfg.Membership, err, tc.field)
		}
	}
}

// testLogger returns a logger for node id: quiet unless REIGN_TEST_LOG
// names the node ("all" for every node).
func testLogger(id NodeID) *slog.Logger {
	v := os.Getenv("REIGN_TEST_LOG")
	if v == "" || (v != "all" && v != fmt.Sprint(id)) {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestMembershipDuplicateID: a second process started with a member's
// node ID (a copied configuration) joins through another member: it is
// refused as a duplicate node, logged and counted, and never replaces the
// member, whose incarnation stays the one every node lists.
func TestMembershipDuplicateID(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	n2 := startMember(t, 2, nil, n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(2, n1, n2) })
	imp := startMember(t, 2, nil, n1.addr)
	checkFor(t, 10*time.Second, func() error {
		got := n1.Stats().Closes[CloseDuplicateNode]
		return unless(got >= 2, "node 1 refused %d duplicates, want 2 (two join attempts)", got)
	})
	if err := members(2, n1, n2); err != nil {
		t.Fatal(err)
	}
	if err := members(1, imp); err != nil {
		t.Fatal(err)
	}
	n1.cl.member.mu.Lock()
	meta := n1.cl.member.members[2]
	n1.cl.member.mu.Unlock()
	if meta.Incarnation != n2.inc {
		t.Fatalf("node 1 lists node 2 with incarnation %d, want the first process's %d (the impostor's is %d)", meta.Incarnation, n2.inc, imp.inc)
	}
	if cn := n1.cl.peer(2).live.Load(); cn == nil || cn.peerInc != n2.inc {
		t.Fatal("node 1's connection to node 2 is not the first process's")
	}
}

// TestMembershipSpecSeeds: with membership on, a static spec's nodes are
// seeds: a three-node spec becomes a three-member cluster, each pair
// connected once, and calls cross.
func TestMembershipSpecSeeds(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, func(cfg *Config) { cfg.Membership = fastMembership() })
	checkFor(t, 10*time.Second, func() error {
		for id := NodeID(1); id <= 3; id++ {
			n := tc.node(id)
			if st := n.Stats(); st.Members != 3 || st.PeersUp != 2 {
				return fmt.Errorf("node %d: %d members, %d peers up", id, st.Members, st.PeersUp)
			}
		}
		return nil
	})
	srv, _ := startServer(t, tc.node(3), doubler)
	if v, err := Call(testCtx(t), tc.node(1).BindAddress(srv), 21); err != nil || v != 42 {
		t.Fatalf("call: %v, %v", v, err)
	}
}

// TestMembershipConnectOnUse: a send to a member with no connection makes
// one (Erlang's connect on first use) instead of failing: here node 2, the
// lower ID, is kept from restoring the pair's connection, and node 3 sends.
func TestMembershipConnectOnUse(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	n2 := startMember(t, 2, nil, n1.addr)
	n3 := startMember(t, 3, nil, n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(3, n1, n2, n3) })
	a2, mb2 := n2.NewMailbox()
	to2 := n3.BindAddress(a2)
	checkFor(t, 5*time.Second, func() error { return pairConnected(n2, n3) })
	p := n2.cl.peer(3)
	p.member.Store(false) // node 2 no longer keeps the pair connected
	old := n3.cl.peer(2).live.Load()
	p.live.Load().close(CloseShutdown, nil)
	// (a probe may connect the pair again at any moment: then the send
	// below finds that connection)
	checkFor(t, 5*time.Second, func() error {
		return unless(n3.cl.peer(2).live.Load() != old, "node 3 still has its old connection to node 2")
	})
	// node 2's memberlist may dial node 3 at the same moment (a probe):
	// node 2, the lower ID, then refuses node 3's connection before
	// either side uses it, and the send goes over node 2's
	if err := to2.Send(testMsg{Seq: 1}); err != nil {
		t.Fatalf("send to a member with no connection: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	v, err := mb2.Receive(ctx)
	if err != nil {
		t.Fatalf("the message sent on first use was lost: %v", err)
	}
	if m := v.(testMsg); m.Seq != 1 {
		t.Fatalf("got %+v, want seq 1", m)
	}
}

// TestMembershipLinkConnectOnUse: a link to a member with no connection
// makes one, as a send does, instead of firing NoConnection at once: nodes
// 2 and 3 joined through node 1, and node 2 (the lower ID) is kept from
// restoring their connection. Closing the watched mailbox then delivers
// Normal; a second link fires NoConnection when the connection is lost.
func TestMembershipLinkConnectOnUse(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	n2 := startMember(t, 2, nil, n1.addr)
	n3 := startMember(t, 3, nil, n1.addr)
	checkFor(t, 10*time.Second, func() error { return members(3, n1, n2, n3) })
	checkFor(t, 5*time.Second, func() error { return pairConnected(n2, n3) })
	// no connection between 2 and 3, and none coming by itself
	n2.cl.peer(3).member.Store(false)
	disconnect := func() {
		t.Helper()
		checkFor(t, 5*time.Second, func() error { return pairConnected(n2, n3) })
		old := n3.cl.peer(2).live.Load()
		if cn := n2.cl.peer(3).live.Load(); cn != nil {
			cn.close(CloseShutdown, nil)
		}
		// (memberlist may connect them again at any moment: then the
		// Call or the link below uses that connection)
		checkFor(t, 5*time.Second, func() error {
			return unless(n3.cl.peer(2) == nil || n3.cl.peer(2).live.Load() != old, "node 3 still has its old connection to node 2")
		})
	}
	disconnect()

	// a Call connects too
	srv, _ := startServer(t, n2.Node, doubler)
	got, err := Call(testCtx(t), n3.BindAddress(srv), 21)
	if err != nil || got != 42 {
		t.Fatalf("Call to a member with no connection: %v, %v", got, err)
	}
	disconnect()

	a2, mb2 := n2.NewMailbox()
	w3, mbw := n3.NewMailbox()
	n3.BindAddress(a2).OnCloseNotify(w3)
	mb2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := mbw.Receive(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if mc := v.(MailboxClosed); mc.Address.String() != a2.String() || mc.Reason != Normal {
		t.Fatalf("got %+v, want %v closed Normal", mc, a2)
	}

	// a lost connection fires NoConnection
	b2, mbb := n2.NewMailbox()
	defer mbb.Close()
	n3.BindAddress(b2).OnCloseNotify(w3)
	checkFor(t, 5*time.Second, func() error {
		p := n2.cl.peer(3)
		return unless(p != nil && p.live.Load() != nil && p.live.Load().peerInc == n3.inc, "node 2 has no connection to node 3")
	})
	_ = n2.cl.peer(3).live.Load().nc.Close() // as if node 2 were killed
	v, err = mbw.Receive(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if mc := v.(MailboxClosed); mc.Address.String() != b2.String() || mc.Reason != NoConnection {
		t.Fatalf("got %+v, want %v closed NoConnection", mc, b2)
	}
}

// TestMembershipSimultaneousDials: when both nodes of a pair dial each
// other at the same moment (node 2, the higher ID, without its usual grace
// for node 1's connection), the lower ID chooses before either side runs
// a connection, so each side runs one new connection per loss, never one
// run and then dropped (which fired links and made node events flap),
// both sides run the same connection, a link made over it does not fire,
// and node events, which follow membership, say nothing.
func TestMembershipSimultaneousDials(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, 1, nil)
	n, addr := newMember(t, 2, nil, n1.addr)
	n.cl.dialGrace = 0
	n2 := serveMember(t, n, addr)
	w1, ev1 := n1.NewMailbox()
	w2, ev2 := n2.NewMailbox()
	if err := n1.MonitorNodes(w1); err != nil {
		t.Fatal(err)
	}
	if err := n2.MonitorNodes(w2); err != nil {
		t.Fatal(err)
	}
	same := func() error { return pairConnected(n1, n2) }
	checkFor(t, 10*time.Second, same)
	// count reads node events until quiet, and returns the ups and downs
	count := func(mb *Mailbox) (up, down int) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			v, err := mb.Receive(ctx)
			cancel()
			if err != nil {
				return
			}
			switch v.(type) {
			case NodeUp:
				up++
			case NodeDown:
				down++
			}
		}
	}
	count(ev1)
	count(ev2)
	watched, wmb := n1.NewMailbox()
	defer wmb.Close()
	for round := 1; round <= 6; round++ {
		// the connection is lost, and both nodes want it back at once
		// (a send on each side)
		k1, k2 := n1.cl.peer(2).connects.Load(), n2.cl.peer(1).connects.Load()
		old1, old2 := n1.cl.peer(2).live.Load(), n2.cl.peer(1).live.Load()
		old1.close(CloseShutdown, nil)
		checkFor(t, 5*time.Second, func() error {
			return unless(n1.cl.peer(2).live.Load() != old1 && n2.cl.peer(1).live.Load() != old2,
				"the nodes still hold the old connection")
		})
		for _, p := range []*peer{n1.cl.peer(2), n2.cl.peer(1)} {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, _ = p.connect(ctx)
			}()
		}
		checkFor(t, 10*time.Second, func() error {
			if n1.cl.peer(2).connects.Load() == k1 || n2.cl.peer(1).connects.Load() == k2 {
				return errors.New("not reconnected on both sides yet")
			}
			return same()
		})
		// a link made now must not fire: the connection stays
		link, lmb := n2.NewMailbox()
		n2.BindAddress(watched).OnCloseNotify(link)
		up1, down1 := count(ev1)
		up2, down2 := count(ev2)
		if up1+down1+up2+down2 != 0 {
			t.Fatalf("round %d: node 1 saw %d up, %d down; node 2 saw %d up, %d down; want none (both stay members)", round, up1, down1, up2, down2)
		}
		if d1, d2 := n1.cl.peer(2).connects.Load()-k1, n2.cl.peer(1).connects.Load()-k2; d1 != 1 || d2 != 1 {
			t.Fatalf("round %d: node 1 ran %d connections, node 2 ran %d; want one each", round, d1, d2)
		}
		if err := same(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		v, err := lmb.Receive(ctx)
		cancel()
		if err == nil {
			t.Fatalf("round %d: a link over the running connection fired: %+v; node 2 connects %d closes %v; node 1 closes %v", round, v, n2.cl.peer(1).connects.Load(), n2.Stats().Closes, n1.Stats().Closes)
		}
		lmb.Close()
	}
	t.Logf("refused connections (the race happened): node 1 %d, node 2 %d",
		n1.Stats().Closes[CloseDuplicateConn], n2.Stats().Closes[CloseDuplicateConn])
}
