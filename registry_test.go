package reign

import (
	"fmt"
	"testing"
	"time"
)

// lookupOn reports whether name resolves to want on every node given.
func lookupOn(name string, want Address, nodes ...*Node) bool {
	for _, n := range nodes {
		got, ok := n.Lookup(name)
		if !ok || got != n.BindAddress(want) {
			return false
		}
	}
	return true
}

func goneOn(name string, nodes ...*Node) bool {
	for _, n := range nodes {
		if _, ok := n.Lookup(name); ok {
			return false
		}
	}
	return true
}

func TestRegistryPropagatesAndForgets(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)

	a, amb := n1.NewMailbox()
	if err := n1.Register("svc", a); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("svc", a, n1, n2, n3), "lookupOn(\"svc\", a, n1, n2, n3)") })

	// re-registering on the same node replaces the claim everywhere
	b, _ := n1.NewMailbox()
	if err := n1.Register("svc", b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("svc", b, n1, n2, n3), "lookupOn(\"svc\", b, n1, n2, n3)") })
	if all := n3.LookupAll("svc"); len(all) != 1 {
		t.Fatalf("LookupAll after replace: %v", all)
	}

	n1.Unregister("svc", b)
	checkFor(t, 5*time.Second, func() error { return unless(goneOn("svc", n1, n2, n3), "goneOn(\"svc\", n1, n2, n3)") })

	// closing the mailbox withdraws its names
	if err := n1.Register("svc", a); err != nil {
		t.Fatal(err)
	}
	if err := n1.Register("other", a); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("other", a, n2, n3), "lookupOn(\"other\", a, n2, n3)") })
	amb.Close()
	checkFor(t, 5*time.Second, func() error {
		return unless(goneOn("svc", n1, n2, n3) && goneOn("other", n1, n2, n3), "goneOn(\"svc\", n1, n2, n3) && goneOn(\"other\", n1, n2, n3)")
	})

	// a remote or zero address cannot be registered
	c, _ := n2.NewMailbox()
	if err := n1.Register("x", n1.BindAddress(c)); err == nil {
		t.Fatal("registered a remote mailbox")
	}
}

func TestRegistryClaimsVanishWithTheirNode(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n3 := tc.node(1), tc.node(3)
	a, _ := tc.node(2).NewMailbox()
	if err := tc.node(2).Register("on2", a); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("on2", a, n1, n3), "lookupOn(\"on2\", a, n1, n3)") })
	tc.kill(2)
	checkFor(t, 5*time.Second, func() error { return unless(goneOn("on2", n1, n3), "goneOn(\"on2\", n1, n3)") })
}

func TestRegistryLateJoinerIsSynchronized(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	tc.kill(3)
	n1, n2 := tc.node(1), tc.node(2)
	a, _ := n1.NewMailbox()
	b, _ := n2.NewMailbox()
	if err := n1.Register("one", a); err != nil {
		t.Fatal(err)
	}
	if err := n2.Register("two", b); err != nil {
		t.Fatal(err)
	}
	n3 := tc.start(3, nil)
	tc.connected()
	checkFor(t, 5*time.Second, func() error {
		return unless(lookupOn("one", a, n3) && lookupOn("two", b, n3), "lookupOn(\"one\", a, n3) && lookupOn(\"two\", b, n3)")
	})
	// and the late joiner's own claims reach the others
	c, _ := n3.NewMailbox()
	if err := n3.Register("three", c); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("three", c, n1, n2), "lookupOn(\"three\", c, n1, n2)") })
}

func TestRegistrySameNameOnSeveralNodes(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a, amb := n1.NewMailbox()
	b, bmb := n2.NewMailbox()
	if err := n1.Register("dup", a); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error { return unless(lookupOn("dup", a, n2, n3), "lookupOn(\"dup\", a, n2, n3)") })
	if err := n2.Register("dup", b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		for _, n := range []*Node{n1, n2, n3} {
			if all := n.LookupAll("dup"); len(all) != 2 {
				return fmt.Errorf("%v sees %d claims of dup, want 2", n, len(all))
			}
		}
		return nil
	})
	// each claimant is told once
	for _, mb := range []*Mailbox{amb, bmb} {
		if mc, ok := recv(t, mb).(MultipleClaim); !ok || mc.Name != "dup" {
			t.Fatalf("got %#v", mc)
		}
	}
	flushPeers(t, n1, n2, n3) // whatever else was coming has come
	if amb.Len() != 0 || bmb.Len() != 0 {
		t.Fatalf("extra messages: %d %d", amb.Len(), bmb.Len())
	}
	// Lookup prefers the local claim, else the lowest node ID
	if got, _ := n1.Lookup("dup"); got != a {
		t.Fatalf("n1 Lookup: %v", got)
	}
	if got, _ := n2.Lookup("dup"); got != b {
		t.Fatalf("n2 Lookup: %v", got)
	}
	if got, _ := n3.Lookup("dup"); got != n3.BindAddress(a) {
		t.Fatalf("n3 Lookup: %v", got)
	}
	all := n3.LookupAll("dup")
	if all[0] != n3.BindAddress(a) || all[1] != n3.BindAddress(b) {
		t.Fatalf("LookupAll order: %v", all)
	}
}

func TestRegistryTenThousandNamesPropagate(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	const count = 10000
	addrs := make([]Address, count)
	start := time.Now()
	for i := range addrs {
		a, _ := n1.NewMailbox()
		addrs[i] = a
		if err := n1.Register(fmt.Sprintf("name-%d", i), a); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		last := fmt.Sprintf("name-%d", count-1)
		return unless(lookupOn(last, addrs[count-1], n2, n3), "lookupOn(last, addrs[count-1], n2, n3)")
	})
	elapsed := time.Since(start)
	for i, a := range addrs {
		if !lookupOn(fmt.Sprintf("name-%d", i), a, n2, n3) {
			t.Fatalf("name-%d missing", i)
		}
	}
	// How fast is a figure, not a test (it flaked under -race on a loaded
	// machine): logged here, measured without the race detector by
	// reign_bench and the benchmarks.
	t.Logf("%d names registered on one node reached two others in %v", count, elapsed)
}

func BenchmarkLookup10000Names(b *testing.B) {
	n, err := NewNode(Config{})
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 10000)
	for i := range names {
		a, _ := n.NewMailbox()
		names[i] = fmt.Sprintf("name-%d", i)
		if err := n.Register(names[i], a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := n.Lookup(names[i%len(names)]); !ok {
			b.Fatal("missing")
		}
		i++
	}
}

// TestRegistryConflictAfterPartitionHeals: nodes 1 and 2 lose each other
// (a black-holed connection; node 3 still sees both), each claims the same
// name, and when the partition heals both claims are visible everywhere
// and each claimant is told exactly once.
func TestRegistryConflictAfterPartitionHeals(t *testing.T) {
	t.Parallel()
	tc, proxy := newProxiedCluster(t, nil)
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)

	proxy.BlackHole(true)
	checkFor(t, 5*time.Second, func() error {
		return unless(n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1, "n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1")
	})

	a, amb := n1.NewMailbox()
	b, bmb := n2.NewMailbox()
	if err := n1.Register("leader", a); err != nil {
		t.Fatal(err)
	}
	if err := n2.Register("leader", b); err != nil {
		t.Fatal(err)
	}
	// node 3 sees both at once; nodes 1 and 2 each see only their own
	checkFor(t, 5*time.Second, func() error { return unless(len(n3.LookupAll("leader")) == 2, "len(n3.LookupAll(\"leader\")) == 2") })
	if got := n1.LookupAll("leader"); len(got) != 1 || got[0] != a {
		t.Fatalf("node 1 during the partition: %v", got)
	}
	if amb.Len() != 0 || bmb.Len() != 0 {
		t.Fatal("a claimant was told of a conflict its node cannot see")
	}

	proxy.BlackHole(false)
	checkFor(t, 10*time.Second, func() error {
		return unless(len(n1.LookupAll("leader")) == 2 && len(n2.LookupAll("leader")) == 2, "len(n1.LookupAll(\"leader\")) == 2 && len(n2.LookupAll(\"leader\")) == 2")
	})
	for _, mb := range []*Mailbox{amb, bmb} {
		if mc, ok := recv(t, mb).(MultipleClaim); !ok || mc.Name != "leader" {
			t.Fatalf("got %#v", mc)
		}
	}
	flushPeers(t, n1, n2, n3) // whatever else was coming has come
	if amb.Len() != 0 || bmb.Len() != 0 {
		t.Fatalf("told more than once: %d, %d", amb.Len(), bmb.Len())
	}
	// each node prefers its own claim; node 3 the lowest node ID
	if got, _ := n1.Lookup("leader"); got != a {
		t.Fatal("node 1 does not prefer its own claim")
	}
	if got, _ := n2.Lookup("leader"); got != b {
		t.Fatal("node 2 does not prefer its own claim")
	}
	if got, _ := n3.Lookup("leader"); got != n3.BindAddress(a) {
		t.Fatal("node 3 does not pick the lowest node ID")
	}
	// resolving it: node 2 steps down, and everyone agrees again
	n2.Unregister("leader", b)
	checkFor(t, 5*time.Second, func() error {
		return unless(len(n1.LookupAll("leader")) == 1 && len(n2.LookupAll("leader")) == 1 && len(n3.LookupAll("leader")) == 1, "len(n1.LookupAll(\"leader\")) == 1 && len(n2.LookupAll(\"leader\")) == 1 && len(n3.LookupAll(\"leader\")) == 1")
	})
}
