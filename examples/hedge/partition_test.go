package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/faultnet"
	"github.com/reign-go/reign/internal/proctest"
)

// throughProxies writes a copy of the spec at path in which nodes 2 and 3
// are reached through a fault proxy each, and returns its path and the
// proxies. Given to node 1 (the lower ID dials), it routes node 1's two
// connections, and only those, through the proxies.
func throughProxies(t *testing.T, path string) (string, []*faultnet.Proxy) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var proxies []*faultnet.Proxy
	for _, n := range spec["nodes"].([]any) {
		n := n.(map[string]any)
		if n["id"].(float64) == 1 {
			continue
		}
		p, err := faultnet.NewProxy(n["address"].(string))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies = append(proxies, p)
		n["address"] = p.Addr()
	}
	if data, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(filepath.Dir(path), "node1.json")
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out, proxies
}

// A partition that cuts the leader (node 1) off from the two others: it
// sees no majority and steps down, so it stops answering as leader, while
// the majority side elects node 2 and takes puts. When the partition
// heals, node 1 finds node 2's claim and stays a follower (no
// MultipleClaim to resolve), and the leader brings its log up to date.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	spec := proctest.WriteSpec(t, 3)
	spec1, proxies := throughProxies(t, spec)
	c := &cluster{spec: spec, https: proctest.FreeAddrs(t, 3),
		dirs: []string{t.TempDir(), t.TempDir(), t.TempDir()}, procs: make([]*proctest.Process, 3)}
	c.procs[0] = proctest.Start(t, "-config", spec1, "-http", c.https[0], "-data", c.dirs[0], "1")
	c.procs[0].WaitFor(t, wait, "http on")
	c.start(t, 2)
	if l := c.agree(t, 1, 2); l != 1 { // node 1 and 2 first: node 1 leads
		t.Fatalf("node %d leads, want 1", l)
	}
	c.start(t, 3)
	c.agree(t, 1, 2, 3)
	c.must(t, 3, "/put", "before partition", 200)

	for _, p := range proxies {
		p.Refuse(true)
		p.Cut()
	}
	cut := time.Now()
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		code, out := c.do(t, 1, "/leader", "")
		if code != http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1, cut off, still names a leader: %s\n%s", out, c.outputs())
		}
	}
	c.procs[0].WaitFor(t, wait, "node 1 steps down: sees 1 of 3 nodes, no majority")
	if l := c.agree(t, 2, 3); l != 2 {
		t.Fatalf("the majority side elected node %d, want 2", l)
	}
	t.Logf("majority side led by node 2 %v after the cut", time.Since(cut))
	c.must(t, 3, "/put", "during partition", 200)

	for _, p := range proxies {
		p.Refuse(false)
	}
	healed := time.Now()
	if l := c.agree(t, 1, 2, 3); l != 2 {
		t.Fatalf("after the partition healed node %d leads, want 2", l)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		code, out := c.do(t, 1, "/get", "during")
		if code == http.StatusOK && out == "partition\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1 lacks the put made during the partition: %d %q\n%s", code, out, c.outputs())
		}
	}
	t.Logf("node 1 rejoined and caught up %v after the heal", time.Since(healed))
	if out := c.procs[0].Output(); strings.Contains(out, "claims the leadership too") {
		t.Fatalf("node 1 claimed the leadership again:\n%s", out)
	}
	for _, p := range c.procs {
		p.Stop()
	}
	for i, p := range c.procs {
		if err := p.Wait(t, wait); err != nil {
			t.Fatalf("node %d: %v\n%s", i+1, err, p.Output())
		}
	}
}
