package reign

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// The membership figures: run them one at a time, with nothing else on
// the machine, as
//
//	go test -run '^$' -bench 'Membership|FullMesh' -benchtime 1x .
//
// (REIGN_BENCH_NODES=16,64,256 picks the sizes, 16 and 64 by default;
// REIGN_BENCH_BATCH=32 starts the nodes 32 at a time, each batch joining
// once the cluster before it has converged, instead of all at once.)
//
// Each starts N nodes in this process over loopback, at default settings
// (memberlist's timings as MembershipConfig's defaults; heartbeats as
// Config's), and reports:
//
//	converge-s  time until N nodes started at once (each joining through
//	            node 1) all list each other alive
//	join-s      time until a new node is listed alive by every node
//	kill-s      time until every node has declared a stopped node failed
//	            (it stops without a leave, so only failure detection
//	            tells the others)
//	heapKiB/node, goroutines/node   of the idle cluster, per node
//	cpu%/node   CPU of the idle cluster, per node, percent of one core
//	conns/node  connections each node holds, once those made while the
//	            cluster formed have had time to close as idle

func BenchmarkMembership(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			for range b.N {
				benchMembership(b, n)
			}
		})
	}
}

func BenchmarkFullMesh(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			for range b.N {
				benchFullMesh(b, n)
			}
		})
	}
}

// benchSizes returns the cluster sizes to measure: REIGN_BENCH_NODES (a
// comma-separated list, such as 16,64,256), else 16 and 64.
func benchSizes() []int {
	v := os.Getenv("REIGN_BENCH_NODES")
	if v == "" {
		return []int{16, 64}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 1 {
			out = append(out, n)
		}
	}
	return out
}

// benchSpec returns a spec with no nodes yet and certificates for nodes
// 1..size, minted in a temporary folder.
func benchSpec(b *testing.B, size int) *ClusterSpec {
	dir := b.TempDir()
	if _, err := certs.WriteSet(dir, size, certs.SetOptions{}); err != nil {
		b.Fatal(err)
	}
	return &ClusterSpec{
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
}

// benchMember starts node id with default membership, joining join.
func benchMember(b *testing.B, base *ClusterSpec, id NodeID, join ...string) *memberNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	spec := *base
	spec.Nodes = []NodeSpec{{ID: id, Address: ln.Addr().String()}}
	n, err := NewNode(Config{NodeID: id, Cluster: &spec, Listener: ln, Membership: &MembershipConfig{Join: join}})
	if err != nil {
		b.Fatal(err)
	}
	return serveMember(b, n, ln.Addr().String())
}

// baseline returns the heap in use and goroutines now, after a GC.
func baseline() (uint64, int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

// idle reports the idle cluster's per-node cost.
func idle(b *testing.B, n int, heap0 uint64, g0 int, conns int) {
	heap, g := baseline()
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(5 * time.Second) // the measurement itself: an idle window
	cpu := float64(cpuTime()-c0) / float64(time.Since(t0))
	b.ReportMetric(float64(heap-heap0)/1024/float64(n), "heapKiB/node")
	b.ReportMetric(float64(g-g0)/float64(n), "goroutines/node")
	b.ReportMetric(100*cpu/float64(n), "cpu%/node")
	b.ReportMetric(float64(conns)/float64(n), "conns/node")
}

func benchMembership(b *testing.B, size int) {
	spec := benchSpec(b, size+1)
	heap0, g0 := baseline()
	nodes := []*memberNode{benchMember(b, spec, 1)}
	defer func() { stopAll(nodes) }() // at once, even on a failure (the cleanups stop them one by one)
	batch := size
	if v, err := strconv.Atoi(os.Getenv("REIGN_BENCH_BATCH")); err == nil && v > 0 {
		batch = v // grow the cluster batch by batch, each joining a converged one
	}
	start := time.Now()
	for len(nodes) < size {
		for range min(batch, size-len(nodes)) {
			nodes = append(nodes, benchMember(b, spec, NodeID(len(nodes)+1), nodes[0].addr))
		}
		checkFor(b, 120*time.Second, func() error { return members(len(nodes), nodes...) })
	}
	b.ReportMetric(time.Since(start).Seconds(), "converge-s")
	// let the connections settle: those gossip made while the cluster
	// formed close once idle (MembershipConfig.IdleTimeout);
	// REIGN_BENCH_SETTLE (a duration) waits longer, for memberlist to
	// finish retransmitting a large cluster's joins
	settle := DefaultIdleTimeout + 10*time.Second
	if d, err := time.ParseDuration(os.Getenv("REIGN_BENCH_SETTLE")); err == nil && d > settle {
		settle = d
	}
	time.Sleep(settle)
	conns := 0
	for _, n := range nodes {
		conns += n.Stats().PeersUp
	}
	idle(b, size, heap0, g0, conns)

	start = time.Now()
	nn := benchMember(b, spec, NodeID(size+1), nodes[0].addr)
	all := append(nodes, nn)
	checkFor(b, 60*time.Second, func() error { return members(size+1, all...) })
	b.ReportMetric(time.Since(start).Seconds(), "join-s")

	nn.cl.member.testNoLeave.Store(true)
	start = time.Now()
	nn.stop()
	checkFor(b, 60*time.Second, func() error { return members(size, nodes...) })
	b.ReportMetric(time.Since(start).Seconds(), "kill-s")
}

func stopAll(nodes []*memberNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(n.stop)
	}
	wg.Wait()
}

func benchFullMesh(b *testing.B, size int) {
	spec := benchSpec(b, size)
	heap0, g0 := baseline()
	lns := listenLoopback(b, size)
	for id := NodeID(1); int(id) <= size; id++ {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: lns[id].Addr().String()})
	}
	var nodes []*memberNode
	for id := NodeID(1); int(id) <= size; id++ {
		n, err := NewNode(Config{NodeID: id, Cluster: spec, Listener: lns[id]})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, serveMember(b, n, ""))
	}
	start := time.Now()
	checkFor(b, 120*time.Second, func() error {
		for _, n := range nodes {
			if up := n.Stats().PeersUp; up != size-1 {
				return fmt.Errorf("node %d has %d peers up", n.ID(), up)
			}
		}
		return nil
	})
	b.Logf("full mesh of %d in %v", size, time.Since(start))
	idle(b, size, heap0, g0, size*(size-1))
	stopAll(nodes)
}
