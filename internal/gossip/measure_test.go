package gossip

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestMeasure measures an N-member cluster over this transport, in one
// process, at memberlist's default LAN settings: the time for a new member
// to be seen by all, for a killed one to be noticed by all, and the idle
// cost per member (CPU, heap, goroutines). It is not a timed test: it runs
// only when asked, for example
//
//	GOSSIP_MEASURE=16,64 go test -run TestMeasure -v ./internal/gossip/
func TestMeasure(t *testing.T) {
	spec := os.Getenv("GOSSIP_MEASURE")
	if spec == "" {
		t.Skip("set GOSSIP_MEASURE=16,64 to measure")
	}
	idle := 10 * time.Second
	if s := os.Getenv("GOSSIP_MEASURE_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		idle = d
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			t.Fatalf("bad N %q", f)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) { measure(t, n, idle) })
	}
}

func lanConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.LogOutput = io.Discard
	return c
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func measure(t *testing.T, n int, idle time.Duration) {
	g0, h0 := runtime.NumGoroutine(), heap()
	// memberlist's Shutdown does not wait for a probe in flight (it waits
	// out its ProbeInterval, 1 s here): wait for the goroutines to end
	// after every other cleanup, so goleak does not see them.
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	start := time.Now()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, i+1, lanConfig(), Config{})
		if i > 0 {
			join(t, nodes[i], nodes[0])
		}
	}
	eventually(t, 60*time.Second, func() error { return converged(nodes, n) })
	t.Logf("N=%d: %d members started, joined and converged in %v", n, n, time.Since(start).Round(time.Millisecond))

	// Idle: let connections settle (every member probes others over time),
	// then measure.
	time.Sleep(2 * time.Second)
	conns := 0
	for _, nd := range nodes {
		conns += nd.c.connCount()
	}
	g1, h1 := runtime.NumGoroutine(), heap()
	c0, w0 := cpuTime(), time.Now()
	time.Sleep(idle)
	cpu, wall := cpuTime()-c0, time.Since(w0)
	t.Logf("N=%d idle: %.2f%% of a core per member (%.1f%% for all), heap %.0f KiB per member, %.1f goroutines per member (%d incl. the carrier's 2 per connection end; %d connection ends)",
		n, 100*float64(cpu)/float64(wall)/float64(n), 100*float64(cpu)/float64(wall),
		float64(h1-h0)/1024/float64(n), float64(g1-g0)/float64(n), g1-g0, conns)

	// A new member, seen by all.
	added := time.Now()
	newcomer := startNode(t, n+1, lanConfig(), Config{})
	join(t, newcomer, nodes[n/2])
	all := append(append([]*testNode(nil), nodes...), newcomer)
	eventually(t, 60*time.Second, func() error { return converged(all, n+1) })
	t.Logf("N=%d: a new member seen by all in %v", n, time.Since(added).Round(time.Millisecond))

	// A killed member, noticed by all.
	victim, rest := all[1], append([]*testNode{all[0]}, all[2:]...)
	killed := time.Now()
	victim.kill()
	eventually(t, 120*time.Second, func() error {
		for _, nd := range rest {
			if _, _, ok := nd.events.goneState(victim.name); !ok {
				return fmt.Errorf("%s has not noticed %s fail", nd.name, victim.name)
			}
		}
		return nil
	})
	var first, last time.Duration
	for i, nd := range rest {
		_, at, _ := nd.events.goneState(victim.name)
		d := at.Sub(killed)
		if i == 0 || d < first {
			first = d
		}
		last = max(last, d)
	}
	t.Logf("N=%d: a killed member noticed first in %v, by all in %v", n, first.Round(time.Millisecond), last.Round(time.Millisecond))

	// Stop all at once, so the cleanup does not wait on failure detection.
	for _, nd := range all {
		_ = nd.ml.Shutdown()
	}
}
