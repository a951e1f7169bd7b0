package reign

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// BenchmarkBroadcast measures fan-out: node 1 broadcasts small messages to
// a group with one member on each of the other nodes, over mutual TLS on
// 127.0.0.1, all in this process; the time runs until every member has
// received every message, and deliveries/s counts messages received. The
// nodes form a star (node 1's spec names them all, each other node's only
// itself and node 1), so 64 nodes make 63 connections rather than 2,016.
// "send-loop" is the same fan-out with an Address.Send per member, for
// comparison (it writes inline to each connection in turn).
//
//	go test -run '^$' -bench Broadcast -benchtime 20000x
func BenchmarkBroadcast(b *testing.B) {
	for _, size := range []int{16, 64} {
		for _, loop := range []bool{false, true} {
			name := fmt.Sprintf("nodes=%d/broadcast", size)
			if loop {
				name = fmt.Sprintf("nodes=%d/send-loop", size)
			}
			b.Run(name, func(b *testing.B) { benchBroadcast(b, size, loop) })
		}
	}
}

func benchBroadcast(b *testing.B, size int, sendLoop bool) {
	hub, total := starCluster(b, size)
	members := hub.Members("bench")
	msg := testMsg{Seq: 1, Text: "hi"}
	want := int64(b.N) * int64(size-1)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		if sendLoop {
			for _, a := range members {
				if err := a.Send(msg); err != nil {
					b.Fatal(err)
				}
			}
			continue
		}
		if k, err := hub.Broadcast("bench", msg); err != nil || k != size-1 {
			b.Fatalf("Broadcast = %d, %v", k, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for total.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries after a minute", total.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
	// The process's CPU time per delivery, sender and receivers together:
	// on a machine shared with other work, wall-clock rates understate
	// what the code does with the cores it gets.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(want), "cpu-ns/delivery")
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// starCluster starts nodes 1..size as a star around node 1, with one
// member of the group "bench" on each node but node 1, each drained by a
// goroutine that counts what it receives in total. It returns node 1 once
// it sees every member.
func starCluster(b *testing.B, size int) (*Node, *atomic.Int64) {
	b.Helper()
	dir := b.TempDir()
	if _, err := certs.WriteSet(dir, size, certs.SetOptions{}); err != nil {
		b.Fatal(err)
	}
	base := ClusterSpec{
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
	lns := make([]net.Listener, size+1)
	all := make([]NodeSpec, 0, size)
	for id := 1; id <= size; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[id] = ln
		all = append(all, NodeSpec{ID: NodeID(id), Address: ln.Addr().String()})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	total := new(atomic.Int64)
	var hub *Node
	for id := 1; id <= size; id++ {
		spec := base
		spec.Nodes = all
		if id > 1 {
			spec.Nodes = []NodeSpec{all[0], all[id-1]}
		}
		n, err := NewNode(Config{NodeID: NodeID(id), Cluster: &spec, Listener: lns[id]})
		if err != nil {
			b.Fatal(err)
		}
		if err := n.RegisterType(testMsg{}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = n.Serve(ctx) })
		if id == 1 {
			hub = n
			continue
		}
		a, mb := n.NewMailbox()
		if err := n.JoinGroup("bench", a); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer mb.Close()
			for {
				if _, err := mb.Receive(ctx); err != nil {
					return
				}
				total.Add(1)
			}
		})
	}
	checkFor(b, time.Minute, func() error {
		return unless(len(hub.Members("bench")) == size-1, "node 1 sees %d members of %d", len(hub.Members("bench")), size-1)
	})
	return hub, total
}
