package gossip

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testNode is a memberlist over a Transport over a carrier.
type testNode struct {
	name   string
	c      *carrier
	tr     *Transport
	ml     *memberlist.Memberlist
	events *eventLog
	state  *stateDelegate
	stop   sync.Once
}

// eventLog records memberlist's node events.
type eventLog struct {
	mu     sync.Mutex
	joined map[string]time.Time
	gone   map[string]memberlist.NodeStateType
	goneAt map[string]time.Time
}

func newEventLog() *eventLog {
	return &eventLog{joined: map[string]time.Time{}, gone: map[string]memberlist.NodeStateType{}, goneAt: map[string]time.Time{}}
}

func (e *eventLog) NotifyJoin(n *memberlist.Node) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.joined[n.Name] = time.Now()
	delete(e.gone, n.Name)
}

func (e *eventLog) NotifyLeave(n *memberlist.Node) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gone[n.Name] = n.State
	e.goneAt[n.Name] = time.Now()
}

func (e *eventLog) NotifyUpdate(*memberlist.Node) {}

func (e *eventLog) goneState(name string) (memberlist.NodeStateType, time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.gone[name]
	return s, e.goneAt[name], ok
}

// stateDelegate exchanges a user state in push/pull and records what it
// merged from whom.
type stateDelegate struct {
	local  []byte
	mu     sync.Mutex
	merged map[string]int // first byte of the remote state (its sender's index) -> periodic merges
}

func (d *stateDelegate) NodeMeta(int) []byte                  { return nil }
func (d *stateDelegate) NotifyMsg([]byte)                     {}
func (d *stateDelegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d *stateDelegate) LocalState(bool) []byte               { return d.local }
func (d *stateDelegate) MergeRemoteState(b []byte, join bool) { d.merge(b, join) }

func (d *stateDelegate) merge(b []byte, join bool) {
	if join || len(b) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// The state must arrive whole: every byte is its sender's index.
	if bytes.Count(b, b[:1]) != len(b) || len(b) != len(d.local) {
		d.merged[fmt.Sprintf("corrupt-%d", len(b))]++
		return
	}
	d.merged[fmt.Sprint(b[0])]++
}

func (d *stateDelegate) mergedFrom(i int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.merged[fmt.Sprint(i)]
}

// fastConfig is memberlist's local-network configuration with intervals
// short enough for tests: a failed node is suspected within a few probe
// intervals and declared dead within the suspicion timeout.
func fastConfig() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 150 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.SuspicionMult = 3
	// Generous I/O timeouts: CI machines under -race can stall a goroutine
	// for hundreds of milliseconds.
	c.TCPTimeout = 2 * time.Second
	c.PushPullInterval = 250 * time.Millisecond
	c.GossipToTheDeadTime = time.Second
	c.LogOutput = io.Discard
	if os.Getenv("GOSSIP_DEBUG") != "" {
		c.LogOutput = os.Stderr
	}
	return c
}

// startNode starts node id with memberlist config mc (fastConfig if nil)
// and transport config tc (Name, Addr and Dialer are filled in).
func startNode(tb testing.TB, id int, mc *memberlist.Config, tc Config) *testNode {
	tb.Helper()
	if mc == nil {
		mc = fastConfig()
	}
	n := &testNode{name: NodeName(uint16(id)), events: newEventLog()}
	n.c = newCarrier(tb, n.name)
	tc.Name, tc.Addr, tc.Dialer = n.name, n.c.addr(), n.c
	if tc.PacketDialTimeout == 0 {
		tc.PacketDialTimeout = 2 * time.Second
	}
	tr, err := New(tc)
	if err != nil {
		tb.Fatal(err)
	}
	n.tr, n.c.tr = tr, tr
	n.c.start()
	mc.Name = n.name
	mc.Transport = tr
	mc.Events = n.events
	n.state, _ = mc.Delegate.(*stateDelegate)
	n.ml, err = memberlist.Create(mc)
	if err != nil {
		n.c.close()
		tb.Fatal(err)
	}
	tb.Cleanup(n.kill)
	return n
}

// kill stops the node without a leave and cuts its carrier: to the others
// it has failed.
func (n *testNode) kill() {
	n.stop.Do(func() {
		_ = n.ml.Shutdown()
		n.c.close()
	})
}

// startCluster starts n nodes; each joins the first by its address alone.
func startCluster(tb testing.TB, n int, mc func() *memberlist.Config) []*testNode {
	tb.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		var c *memberlist.Config
		if mc != nil {
			c = mc()
		}
		nodes[i] = startNode(tb, i+1, c, Config{})
		if i > 0 {
			join(tb, nodes[i], nodes[0])
		}
	}
	return nodes
}

// join joins n to the cluster of m by m's address alone. memberlist's Join
// is best effort (one push/pull), so it is retried.
func join(tb testing.TB, n, m *testNode) {
	tb.Helper()
	eventually(tb, 10*time.Second, func() error {
		if _, err := n.ml.Join([]string{m.c.addr()}); err != nil {
			return fmt.Errorf("%s joining %s: %w", n.name, m.c.addr(), err)
		}
		return nil
	})
}

// eventually polls cond every few milliseconds until it returns nil, and
// fails the test with cond's last reason after timeout.
func eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if f := os.Getenv("GOSSIP_DUMP"); f != "" {
				if w, err := os.Create(f); err == nil {
					_ = pprof.Lookup("goroutine").WriteTo(w, 1)
					w.Close()
				}
			}
			tb.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// converged says why nodes do not all see exactly want members alive.
func converged(nodes []*testNode, want int) error {
	for _, n := range nodes {
		alive := 0
		for _, m := range n.ml.Members() {
			if m.State == memberlist.StateAlive {
				alive++
			}
		}
		if alive != want {
			return fmt.Errorf("%s sees %d members alive, want %d", n.name, alive, want)
		}
	}
	return nil
}

// TestCluster: eight memberlists, joined through one address, converge; a
// graceful leave is seen as a leave; a killed member (its carrier cut) is
// declared dead by all within memberlist's timeouts.
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 8, nil)
	eventually(t, 10*time.Second, func() error { return converged(nodes, 8) })

	leaver, victim, rest := nodes[7], nodes[6], nodes[:6]
	// The leaver keeps answering probes after Leave (memberlist runs until
	// Shutdown), so the others can only learn it is gone from its leave.
	// (memberlist's NotifyLeave does not say which: Node.State is stale.)
	left := time.Now()
	if err := leaver.ml.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		for _, n := range nodes[:7] {
			if _, _, ok := n.events.goneState(leaver.name); !ok {
				return fmt.Errorf("%s has not seen %s leave", n.name, leaver.name)
			}
		}
		return nil
	})
	t.Logf("leave seen by all in %v", time.Since(left))
	eventually(t, 10*time.Second, func() error { return converged(nodes[:7], 7) })
	leaver.kill()

	killed := time.Now()
	victim.kill()
	eventually(t, 10*time.Second, func() error {
		for _, n := range rest {
			if _, _, ok := n.events.goneState(victim.name); !ok {
				return fmt.Errorf("%s has not noticed %s fail", n.name, victim.name)
			}
		}
		return nil
	})
	var last time.Duration
	for _, n := range rest {
		_, at, _ := n.events.goneState(victim.name)
		last = max(last, at.Sub(killed))
	}
	t.Logf("killed member declared dead by all in %v", last)
	eventually(t, 10*time.Second, func() error { return converged(rest, 6) })
}

// TestPushPull: periodic push/pull runs over streams, both ways, carrying
// a user state four times the stream window whole.
func TestPushPull(t *testing.T) {
	t.Parallel()
	const size = 4 * StreamWindow
	mc := func(i int) func() *memberlist.Config {
		return func() *memberlist.Config {
			c := fastConfig()
			c.PushPullInterval = 100 * time.Millisecond
			c.Delegate = &stateDelegate{local: bytes.Repeat([]byte{byte(i)}, size), merged: map[string]int{}}
			return c
		}
	}
	a := startNode(t, 1, mc(1)(), Config{})
	b := startNode(t, 2, mc(2)(), Config{})
	join(t, b, a)
	eventually(t, 10*time.Second, func() error {
		if n := a.state.mergedFrom(2); n < 2 {
			return fmt.Errorf("node 1 merged node 2's state %d times", n)
		}
		if n := b.state.mergedFrom(1); n < 2 {
			return fmt.Errorf("node 2 merged node 1's state %d times", n)
		}
		return nil
	})
	for _, n := range []*testNode{a, b} {
		n.state.mu.Lock()
		for k := range n.state.merged {
			if k != "1" && k != "2" {
				t.Errorf("%s merged a bad state: %s", n.name, k)
			}
		}
		n.state.mu.Unlock()
	}
	// Streams do not pile up: each push/pull's stream is closed on both sides.
	eventually(t, 2*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			if s := n.tr.Stats().Streams; s > 2 {
				return fmt.Errorf("%s has %d streams open", n.name, s)
			}
		}
		return nil
	})
}

// metaDelegate gives a member's Meta to memberlist and checks the others'
// with CheckNode, as the root package will.
type metaDelegate struct {
	meta    []byte
	mu      sync.Mutex
	refused map[string]error
}

func (d *metaDelegate) NodeMeta(int) []byte                  { return d.meta }
func (d *metaDelegate) NotifyMsg([]byte)                     {}
func (d *metaDelegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d *metaDelegate) LocalState(bool) []byte               { return nil }
func (d *metaDelegate) MergeRemoteState([]byte, bool)        {}
func (d *metaDelegate) NotifyAlive(n *memberlist.Node) error { return d.check(n) }

func (d *metaDelegate) check(n *memberlist.Node) error {
	_, err := CheckNode(n)
	if err != nil {
		d.mu.Lock()
		d.refused[n.Name] = err
		d.mu.Unlock()
	}
	return err
}

func (d *metaDelegate) wasRefused(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused[name] != nil
}

// TestMetaChecked: members carry their Meta; a member whose metadata names
// another node than its name is refused by the others and never listed.
func TestMetaChecked(t *testing.T) {
	t.Parallel()
	cfg := func(id uint16, claim uint16) (*memberlist.Config, *metaDelegate) {
		meta, err := AppendMeta(nil, Meta{ID: claim, Incarnation: 1, DataAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		d := &metaDelegate{meta: meta, refused: map[string]error{}}
		c := fastConfig()
		c.Delegate, c.Alive = d, d
		return c, d
	}
	c1, d1 := cfg(1, 1)
	c2, _ := cfg(2, 2)
	a := startNode(t, 1, c1, Config{})
	b := startNode(t, 2, c2, Config{})
	join(t, b, a)
	eventually(t, 10*time.Second, func() error { return converged([]*testNode{a, b}, 2) })
	for _, m := range a.ml.Members() {
		if got, err := CheckNode(m); err != nil {
			t.Fatalf("member %s: %v", m.Name, err)
		} else if id, _ := ParseNodeName(m.Name); got.ID != id {
			t.Fatalf("member %s has meta %+v", m.Name, got)
		}
	}
	c3, _ := cfg(3, 2) // node 3 claims to be node 2
	c3.Alive = nil     // (else it refuses itself)
	impostor := startNode(t, 3, c3, Config{})
	_, _ = impostor.ml.Join([]string{a.c.addr()})
	eventually(t, 10*time.Second, func() error {
		if !d1.wasRefused(impostor.name) {
			return fmt.Errorf("%s has not refused %s", a.name, impostor.name)
		}
		return nil
	})
	for _, m := range a.ml.Members() {
		if m.Name == impostor.name {
			t.Fatalf("%s lists the impostor", a.name)
		}
	}
}
