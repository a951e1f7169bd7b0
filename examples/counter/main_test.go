package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs each node as its own
// OS process.
func TestMain(m *testing.M) { proctest.Main(m, run) }

const wait = 10 * time.Second // a bound, never a pause: each poll returns as soon as it holds

// client makes no keep-alive connections (none is left behind for goleak).
var client = &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true}}

// A cluster is a cluster spec and a state file per node, in a temporary
// folder, and the nodes running.
type cluster struct {
	spec, dir string
	args      []string // flags every node gets
	procs     map[int]*proctest.Process
	http      map[int]string // each running node's HTTP address
}

func newCluster(t *testing.T, n int, args ...string) *cluster {
	return &cluster{spec: proctest.WriteSpec(t, n), dir: t.TempDir(), args: args,
		procs: map[int]*proctest.Process{}, http: map[int]string{}}
}

var upLine = regexp.MustCompile(`counter \d+> node \d+ up: own entry (\d+) and value (\d+) from .*, http on (127\.0\.0\.1:\d+)`)

// start starts node id (again, if it ran before: same state file) and
// returns its own entry as it loaded it from disk.
func (c *cluster) start(t *testing.T, id int) uint64 {
	t.Helper()
	return c.startWith(t, id, c.spec)
}

// startWith is start with the cluster spec file spec and, after the
// flags every node gets, the flags extra.
func (c *cluster) startWith(t *testing.T, id int, spec string, extra ...string) uint64 {
	t.Helper()
	args := append([]string{"-config", spec, "-http", "127.0.0.1:0",
		"-db", filepath.Join(c.dir, fmt.Sprintf("node%d.db", id))}, c.args...)
	args = append(args, extra...)
	p := proctest.Start(t, append(args, strconv.Itoa(id))...)
	m := p.WaitForMatch(t, wait, 0, upLine)
	c.procs[id], c.http[id] = p, m[3]
	own, _ := strconv.ParseUint(m[1], 10, 64)
	return own
}

// kill kills node id (kill -9).
func (c *cluster) kill(t *testing.T, id int) {
	t.Helper()
	c.procs[id].Kill()
	_ = c.procs[id].Wait(t, wait) // "signal: killed"
	delete(c.procs, id)
	delete(c.http, id)
}

// stop stops every node, which must exit cleanly.
func (c *cluster) stop(t *testing.T) {
	t.Helper()
	for _, p := range c.procs {
		p.Stop()
	}
	for id, p := range c.procs {
		if err := p.Wait(t, wait); err != nil {
			t.Fatalf("node %d: %v\n%s", id, err, p.Output())
		}
		proctest.InOrder(t, fmt.Sprintf("node %d's output", id), p.Output(), " up: ", "stopped")
	}
}

// state is GET /?format=json.
type state struct {
	Value  uint64            `json:"value"`
	Counts map[string]uint64 `json:"counts"`
}

func get(addr, path string) (state, error) {
	var st state
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", resp.Status, body)
	}
	return st, json.Unmarshal(body, &st)
}

// inc adds amount on node id.
func (c *cluster) inc(t *testing.T, id int, amount uint64) {
	t.Helper()
	if _, err := get(c.http[id], fmt.Sprintf("/inc?amount=%d&format=json", amount)); err != nil {
		t.Errorf("inc on node %d: %v", id, err)
	}
}

// converge polls every running node until each has exactly want, and its
// value is their sum.
func (c *cluster) converge(t *testing.T, want map[string]uint64) {
	t.Helper()
	var sum uint64
	for _, v := range want {
		sum += v
	}
	start := time.Now()
	for id, addr := range c.http {
		for {
			st, err := get(addr, "/?format=json")
			if err == nil && maps.Equal(st.Counts, want) && st.Value == sum {
				break
			}
			if time.Since(start) > wait {
				t.Fatalf("node %d has %+v (%v), want %v (value %d)", id, st, err, want, sum)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d nodes at %d, %v, after %v", len(c.http), sum, want, time.Since(start))
}

// hammer increments concurrently on each of nodes: 4 clients per node, 25
// increments each, of 1 to 5; it adds what it sent to want.
func (c *cluster) hammer(t *testing.T, want map[string]uint64, nodes ...int) {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for _, id := range nodes {
		for range 4 {
			wg.Go(func() {
				for i := range 25 {
					c.inc(t, id, uint64(i%5+1))
				}
			})
		}
		want[strconv.Itoa(id)] += 4 * 5 * (1 + 2 + 3 + 4 + 5)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d increments (%d clients) in %v", 100*len(nodes), 4*len(nodes), time.Since(start))
}

// Three nodes: concurrent increments on two converge everywhere to the
// exact sum; a third node started late converges; a node killed (kill -9)
// after its increments reached another keeps them on the survivors, and
// restarted it resumes its own entry from disk and counts on from there.
func TestConvergeLateKillRestart(t *testing.T) {
	c := newCluster(t, 3, "-interval", "100ms")
	want := map[string]uint64{}
	c.start(t, 1)
	c.start(t, 2)
	c.hammer(t, want, 1, 2)
	c.converge(t, want)

	if own := c.start(t, 3); own != 0 {
		t.Fatalf("node 3 started with its own entry at %d, want 0", own)
	}
	c.converge(t, want) // the late node catches up, without a new increment
	c.hammer(t, want, 1, 2, 3)
	c.converge(t, want)

	// node 2 counts more, and once node 1 has it, dies
	for range 10 {
		c.inc(t, 2, 7)
	}
	want["2"] += 70
	addr3 := c.http[3]
	delete(c.http, 3) // node 2 dies as soon as node 1 has its increments
	c.converge(t, want)
	c.kill(t, 2)
	c.http[3] = addr3
	c.hammer(t, want, 1, 3)
	c.converge(t, want) // node 2's entry is intact on 1 and 3

	own := c.start(t, 2)
	if own != want["2"] {
		t.Fatalf("node 2 restarted with its own entry at %d, want %d (from its disk)", own, want["2"])
	}
	c.inc(t, 2, 5) // counts on from its entry: a reset entry would be hidden by the others' maximum
	want["2"] += 5
	c.converge(t, want)
	c.stop(t)
}

// Each way of exchanging state alone suffices: push/pull without
// broadcasts; and broadcasts with the periodic push/pull too rare to
// happen, where a node that starts late catches up by the push/pull with
// each member it sees join.
func TestPushPullAndBroadcastAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"push/pull", []string{"-broadcast=false", "-interval", "50ms"}},
		{"broadcast", []string{"-interval", "1h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2, tc.args...)
			want := map[string]uint64{}
			c.start(t, 1)
			c.hammer(t, want, 1)
			c.start(t, 2)
			c.converge(t, want)
			c.procs[1].WaitFor(t, wait, "on node 2 joined")
			c.procs[2].WaitFor(t, wait, "on node 1 joined")
			c.hammer(t, want, 1, 2)
			c.converge(t, want)
			c.stop(t)
		})
	}
}

// Dynamic membership: nodes 1 and 2 run from a spec that names only
// them; node 4, minted later from the same CA (as reign_init -add-node
// does), starts with a spec naming only itself and -join node 1's
// address. It converges to the exact total with no new increment, its
// increments reach nodes 1 and 2, and killed (kill -9) once node 1 has
// its last increments, none of them is lost on nodes 1 and 2.
func TestJoinRunningCluster(t *testing.T) {
	dir := proctest.WriteCerts(t, 2)
	addrs := proctest.FreeAddrs(t, 3)
	c := &cluster{
		spec: proctest.WriteSpecIn(t, dir, "cluster.json", map[int]string{1: addrs[0], 2: addrs[1]}),
		dir:  t.TempDir(), args: []string{"-membership", "-interval", "100ms"},
		procs: map[int]*proctest.Process{}, http: map[int]string{},
	}
	want := map[string]uint64{}
	c.start(t, 1)
	c.start(t, 2)
	c.hammer(t, want, 1, 2)
	c.converge(t, want)

	proctest.AddNode(t, dir, 4) // the running nodes are not told: the CA signed it
	spec4 := proctest.WriteSpecIn(t, dir, "node4.json", map[int]string{4: addrs[2]})
	if own := c.startWith(t, 4, spec4, "-join", addrs[0]); own != 0 {
		t.Fatalf("node 4 started with its own entry at %d, want 0", own)
	}
	c.converge(t, want) // the joining node catches up, without a new increment
	for _, id := range []int{1, 2} {
		c.procs[id].WaitFor(t, wait, "on node 4 joined")
		c.procs[4].WaitFor(t, wait, fmt.Sprintf("on node %d joined", id))
	}
	c.hammer(t, want, 1, 2, 4)
	c.converge(t, want) // node 4's increments are on nodes 1 and 2

	// node 4 counts more, and once node 1 has it, dies
	for range 10 {
		c.inc(t, 4, 7)
	}
	want["4"] += 70
	addr2 := c.http[2]
	delete(c.http, 2)
	c.converge(t, want)
	c.kill(t, 4)
	c.http[2] = addr2
	c.hammer(t, want, 1, 2)
	c.converge(t, want) // node 4's entry is intact on 1 and 2
	for _, id := range []int{1, 2} {
		c.procs[id].WaitFor(t, wait, "on node 4 left")
	}
	c.stop(t)
}
