package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs each node as its own
// OS process.
func TestMain(m *testing.M) { proctest.Main(m, run) }

const wait = 15 * time.Second // a bound, never a pause: every poll returns as soon as it sees what it waits for

// client talks to the nodes' HTTP handlers; no idle connections are kept,
// so no goroutine outlives the test.
var client = &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true}}

// A cluster is the test's nodes: their spec, their dictionary files and
// the running processes.
type cluster struct {
	spec, dir string
	procs     map[int]*proctest.Process
	http      map[int]string // node -> its HTTP address
}

var upLine = regexp.MustCompile(`hive (\d+)> node \d+ up, (\d+) bees loaded from .*, http on (\S+)`)

// start starts node id (again, after a kill: same dictionary file) and
// returns how many bees it loaded from its file.
func (c *cluster) start(t *testing.T, id int) int {
	t.Helper()
	p := proctest.Start(t, "-config", c.spec, "-http", "127.0.0.1:0",
		"-db", filepath.Join(c.dir, fmt.Sprintf("beehive_node.%d.db", id)), strconv.Itoa(id))
	m := p.WaitForMatch(t, wait, 0, upLine)
	c.procs[id], c.http[id] = p, m[3]
	loaded, _ := strconv.Atoi(m[2])
	return loaded
}

// kill kills node id (kill -9) and waits until the others have dropped
// its claims: key, one of its names, has no owner left on them.
func (c *cluster) kill(t *testing.T, id int, key string) {
	t.Helper()
	c.procs[id].Kill()
	_ = c.procs[id].Wait(t, wait) // "signal: killed"
	delete(c.procs, id)
	for other := range c.procs {
		c.waitOwner(t, other, key, 0)
	}
}

var helloLine = regexp.MustCompile(`^hello (.+) \((\d+)\)\n$`)

// post says hello from name on node id, and returns the count and the
// node of the bee that counted it.
func (c *cluster) post(t *testing.T, id int, name string) (n, hive int) {
	t.Helper()
	n, hive, err := c.tryPost(id, name)
	if err != nil {
		t.Fatal(err)
	}
	return n, hive
}

func (c *cluster) tryPost(id int, name string) (n, hive int, err error) {
	resp, err := client.Post("http://"+c.http[id]+"/apps/hello-world/"+name, "", nil)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := helloLine.FindStringSubmatch(string(body))
	if resp.StatusCode != http.StatusOK || m == nil || m[1] != name {
		return 0, 0, fmt.Errorf("POST %s on node %d: %s: %q", name, id, resp.Status, body)
	}
	n, _ = strconv.Atoi(m[2])
	hive, _ = strconv.Atoi(resp.Header.Get("Beehive-Hive"))
	return n, hive, nil
}

// waitOwner polls node id until it sees exactly one bee own key, on node
// hive (0: until it sees none).
func (c *cluster) waitOwner(t *testing.T, id int, key string, hive int) {
	t.Helper()
	want := fmt.Sprintf("on hive %d\n", hive)
	var last string
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		resp, err := client.Get("http://" + c.http[id] + "/apps/hello-world/" + key)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %q", resp.Status, body)
			if hive == 0 && resp.StatusCode == http.StatusNotFound ||
				hive != 0 && strings.Count(string(body), "\n") == 1 && strings.HasSuffix(string(body), want) {
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d never saw %s owned by hive %d (0: nobody); last: %s", id, key, hive, last)
		}
	}
}

// race POSTs perNode hellos for each of names to each of nodes, all at
// once, and fails unless each name's answers are exactly 1..n: no hello
// counted twice or lost, though several nodes claimed the name at once.
func race(t *testing.T, c *cluster, names []string, nodes []int, perNode int) {
	t.Helper()
	counts := map[string][]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	gate := make(chan struct{})
	errs := make(chan error, len(names)*len(nodes)*perNode)
	for _, name := range names {
		for _, id := range nodes {
			for range perNode {
				wg.Go(func() {
					<-gate
					n, _, err := c.tryPost(id, name)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					counts[name] = append(counts[name], n)
					mu.Unlock()
				})
			}
		}
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	t.Logf("%d concurrent hellos on nodes %v answered in %v", len(names)*len(nodes)*perNode, nodes, time.Since(start))
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want []int
	for i := range len(nodes) * perNode {
		want = append(want, i+1)
	}
	for _, name := range names {
		got := counts[name]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: counts answered %v, want each of %v once", name, got, want)
		}
	}
}

// The hello-world application over three node processes: concurrent
// hellos for the same new names on two nodes are each counted once (the
// counts answered are exactly 1..n); every node agrees on one owner per
// name; a node started late takes the new names that reach it first and
// forwards the others; a node killed (kill -9) and restarted keeps its
// counts; a name re-created elsewhere while its owner was down is merged
// back, losing no hello.
func TestHelloWorldCluster(t *testing.T) {
	c := &cluster{spec: proctest.WriteSpec(t, 3), dir: t.TempDir(), procs: map[int]*proctest.Process{}, http: map[int]string{}}
	c.start(t, 1)
	c.start(t, 2)
	// connected both ways: each node's first name is seen by the other
	if n, hive := c.post(t, 1, "warmup1"); n != 1 || hive != 1 {
		t.Fatalf("warmup1 on node 1: (%d) counted on hive %d", n, hive)
	}
	c.post(t, 2, "warmup2")
	c.waitOwner(t, 2, "warmup1", 1)
	c.waitOwner(t, 1, "warmup2", 2)

	// The race: 4 hellos for each new name on each node, all at once.
	names := []string{"alice", "bob", "carol", "dave"}
	race(t, c, names, []int{1, 2}, 4)
	owner := map[string]int{}
	for _, name := range names {
		// one owner, the same on every node, and it goes on counting
		n1, h1 := c.post(t, 1, name)
		n2, h2 := c.post(t, 2, name)
		if n1 != 9 || n2 != 10 || h1 != h2 {
			t.Errorf("%s: then (%d) on hive %d and (%d) on hive %d, want (9) and (10) on one hive", name, n1, h1, n2, h2)
		}
		owner[name] = h1
		c.waitOwner(t, 1, name, h1)
		c.waitOwner(t, 2, name, h1)
	}
	t.Logf("owners: %v", owner)

	// Node 3 starts late: it sees the names owned already, and takes the
	// new ones that reach it first.
	if loaded := c.start(t, 3); loaded != 0 {
		t.Fatalf("a new node loaded %d bees", loaded)
	}
	c.waitOwner(t, 3, "alice", owner["alice"])
	if n, hive := c.post(t, 3, "alice"); n != 11 || hive != owner["alice"] {
		t.Errorf("alice on the late node: (%d) on hive %d, want (11) on hive %d", n, hive, owner["alice"])
	}
	for _, name := range []string{"erin", "frank"} {
		if n, hive := c.post(t, 3, name); n != 1 || hive != 3 {
			t.Errorf("%s, new on the late node: (%d) on hive %d, want (1) on hive 3", name, n, hive)
		}
		c.waitOwner(t, 1, name, 3)
		c.waitOwner(t, 2, name, 3)
	}
	if n, hive := c.post(t, 1, "erin"); n != 2 || hive != 3 {
		t.Errorf("erin on node 1: (%d) on hive %d, want (2) on hive 3", n, hive)
	}
	// The race again, with three nodes claiming each new name.
	onNode3 := 2 // erin and frank
	for _, name := range []string{"gina", "hugo", "ida"} {
		race(t, c, []string{name}, []int{1, 2, 3}, 3)
		n, hive := c.post(t, 1, name)
		if n != 10 {
			t.Errorf("%s, after the race: (%d), want (10)", name, n)
		}
		if hive == 3 {
			onNode3++
		}
	}

	// Hellos forwarded from another node to alice's bee, one after the other.
	const forwarded = 50
	from := owner["alice"]%3 + 1
	start := time.Now()
	for range forwarded {
		c.post(t, from, "alice")
	}
	t.Logf("%d hellos POSTed one after the other to node %d for a bee on node %d: %v each", forwarded, from, owner["alice"], time.Since(start)/forwarded)
	if n, _ := c.post(t, 3, "alice"); n != 12+forwarded {
		t.Errorf("alice after %d more: (%d), want (%d)", forwarded, n, 12+forwarded)
	}

	// kill -9 and restart node 3: its bees come back from its file.
	c.kill(t, 3, "erin")
	if loaded := c.start(t, 3); loaded != onNode3 {
		t.Errorf("restarted node 3 loaded %d bees, want %d (erin, frank and the names it won)", loaded, onNode3)
	}
	c.waitOwner(t, 1, "erin", 3)
	if n, hive := c.post(t, 1, "erin"); n != 3 || hive != 3 {
		t.Errorf("erin after node 3's restart: (%d) on hive %d, want (3) on hive 3", n, hive)
	}
	if n, hive := c.post(t, 3, "frank"); n != 2 || hive != 3 {
		t.Errorf("frank after node 3's restart: (%d) on hive %d, want (2) on hive 3", n, hive)
	}

	// Node 3 down again: frank, said to node 2, gets a new bee there
	// (count 1: node 3's count is on its disk). When node 3 is back, the
	// two bees merge on the lower node, 2, and no hello is lost: 2+1.
	c.kill(t, 3, "frank")
	if n, hive := c.post(t, 2, "frank"); n != 1 || hive != 2 {
		t.Errorf("frank while node 3 is down: (%d) on hive %d, want (1) on hive 2", n, hive)
	}
	c.start(t, 3)
	c.procs[3].WaitFor(t, wait, "handed 2 hellos to hive 2")
	for id := range c.procs {
		c.waitOwner(t, id, "frank", 2)
	}
	if n, hive := c.post(t, 1, "frank"); n != 4 || hive != 2 {
		t.Errorf("frank after the merge: (%d) on hive %d, want (4) on hive 2", n, hive)
	}
	if n, hive := c.post(t, 3, "erin"); n != 4 || hive != 3 {
		t.Errorf("erin after the second restart: (%d) on hive %d, want (4) on hive 3", n, hive)
	}

	for id, p := range c.procs {
		p.Stop()
		if err := p.Wait(t, wait); err != nil {
			t.Errorf("node %d: %v\n%s", id, err, p.Output())
		}
	}
	for id, p := range c.procs {
		t.Logf("node %d:\n%s", id, p.Output())
	}
}
