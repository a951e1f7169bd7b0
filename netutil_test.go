package reign

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// certDir mints one throwaway cluster CA and node certificates 1..9 per
// test binary run; every test cluster uses them with its own addresses.
var certDir = sync.OnceValues(func() (string, error) {
	certDirMade.Store(true)
	dir, err := os.MkdirTemp("", "reign-test-certs-")
	if err != nil {
		return "", err
	}
	_, err = certs.WriteSet(dir, 9, certs.SetOptions{})
	return dir, err
})

// certDirMade records that certDir ran, so TestMain removes its folder
// (and does not mint certificates just to remove them).
var certDirMade atomic.Bool

// testSpec returns a cluster spec with no nodes yet whose certificates are
// the throwaway ones certDir mints.
func testSpec(t testing.TB) *ClusterSpec {
	t.Helper()
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	return &ClusterSpec{
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
}

// listenLoopback returns a listener on 127.0.0.1:0 for each of nodes
// 1..size: their ports are the nodes' addresses, with no race for them.
func listenLoopback(t testing.TB, size int) map[NodeID]net.Listener {
	t.Helper()
	lns := map[NodeID]net.Listener{}
	for id := NodeID(1); int(id) <= size; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
	}
	return lns
}

// testCluster is a cluster of real nodes in this process, talking mutual
// TLS over 127.0.0.1.
type testCluster struct {
	t     testing.TB
	spec  *ClusterSpec
	mod   func(*Config)
	mu    sync.Mutex
	nodes map[NodeID]*Node
	stop  map[NodeID]func()
}

// newTestCluster makes a spec for nodes 1..size on 127.0.0.1 ports that
// are free now, and starts every node. mod, if non-nil, adjusts each
// node's Config.
func newTestCluster(t testing.TB, size int, mod func(*Config)) *testCluster {
	t.Helper()
	spec := testSpec(t)
	lns := listenLoopback(t, size)
	for id := NodeID(1); int(id) <= size; id++ {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: lns[id].Addr().String()})
	}
	tc := &testCluster{t: t, spec: spec, mod: mod, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc.stopAll)
	for id, ln := range lns {
		tc.start(id, ln)
	}
	return tc
}

func (tc *testCluster) config(id NodeID, ln net.Listener) Config {
	cfg := Config{
		NodeID:            id,
		Cluster:           tc.spec,
		Listener:          ln,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
		HandshakeTimeout:  2 * time.Second,
	}
	if tc.mod != nil {
		tc.mod(&cfg)
	}
	return cfg
}

// start makes and serves node id on ln (nil: listen on its spec address).
func (tc *testCluster) start(id NodeID, ln net.Listener) *Node {
	tc.t.Helper()
	n := tc.make(id, ln)
	tc.serve(id, n, nil)
	return n
}

// startAtOnce makes every node of lns, then starts their Serves at the
// same moment.
func (tc *testCluster) startAtOnce(lns map[NodeID]net.Listener) {
	tc.t.Helper()
	gate := make(chan struct{})
	for id, ln := range lns {
		tc.serve(id, tc.make(id, ln), gate)
	}
	close(gate)
}

// make makes node id on ln (nil: listen on its spec address).
func (tc *testCluster) make(id NodeID, ln net.Listener) *Node {
	tc.t.Helper()
	if ln == nil {
		ns, _ := tc.spec.Node(id)
		checkFor(tc.t, 5*time.Second, func() error {
			var err error
			ln, err = net.Listen("tcp", ns.Address)
			return err
		})
	}
	n, err := NewNode(tc.config(id, ln))
	if err != nil {
		tc.t.Fatal(err)
	}
	for _, v := range []any{testMsg{}, netPing{}} {
		if err := n.RegisterType(v); err != nil {
			tc.t.Fatal(err)
		}
	}
	return n
}

// serve runs n's Serve as node id once gate is closed (nil: at once).
func (tc *testCluster) serve(id NodeID, n *Node, gate <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if gate != nil {
			<-gate
		}
		_ = n.Serve(ctx)
	}()
	tc.mu.Lock()
	tc.nodes[id] = n
	tc.stop[id] = func() { cancel(); <-done }
	tc.mu.Unlock()
}

// node returns the running node id.
func (tc *testCluster) node(id NodeID) *Node {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.nodes[id]
}

// kill stops node id's Serve and waits for it.
func (tc *testCluster) kill(id NodeID) {
	tc.mu.Lock()
	stop := tc.stop[id]
	delete(tc.stop, id)
	tc.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (tc *testCluster) stopAll() {
	tc.mu.Lock()
	ids := make([]NodeID, 0, len(tc.stop))
	for id := range tc.stop {
		ids = append(ids, id)
	}
	tc.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); tc.kill(id) }()
	}
	wg.Wait()
}

// connected waits until every running node has every other one up.
func (tc *testCluster) connected() {
	tc.t.Helper()
	tc.mu.Lock()
	var ns []*Node
	for _, n := range tc.nodes {
		ns = append(ns, n)
	}
	tc.mu.Unlock()
	checkFor(tc.t, 10*time.Second, func() error {
		for _, n := range ns {
			if up := n.Stats().PeersUp; up != len(ns)-1 {
				return fmt.Errorf("%v has %d peers up, want %d", n, up, len(ns)-1)
			}
		}
		return nil
	})
}

type testMsg struct {
	Seq  int
	From Address
	Text string
}

type netPing struct {
	N     int
	Reply Address
}

// flushPeers makes a Call between every ordered pair of nodes: a frame
// either node sent the other before it has then been handled (one
// connection per pair, in order), so a test can check that nothing more
// came without sleeping.
func flushPeers(t *testing.T, nodes ...*Node) {
	t.Helper()
	servers := make([]Address, len(nodes))
	for i, n := range nodes {
		servers[i], _ = startServer(t, n, doubler)
	}
	for i, from := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			v, err := Call(testCtx(t), from.BindAddress(servers[j]), 21)
			if err != nil || v != 42 {
				t.Fatalf("flush call from %v to %v: %v, %v", from, nodes[j], v, err)
			}
		}
	}
}
