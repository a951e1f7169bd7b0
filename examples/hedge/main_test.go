package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs each member as its
// own OS process.
func TestMain(m *testing.M) { proctest.Main(m, run) }

const wait = 10 * time.Second // a bound, never a pause: polls return as soon as they succeed

// client keeps no idle connections, so none outlives a test (goleak).
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}

// A cluster is three members on free 127.0.0.1 ports, each with its own
// data folder (kept across a restart).
type cluster struct {
	spec  string
	https []string
	dirs  []string
	procs []*proctest.Process // by node ID - 1
}

func (c *cluster) start(t *testing.T, id int) {
	c.procs[id-1] = proctest.Start(t, "-config", c.spec, "-http", c.https[id-1], "-data", c.dirs[id-1], strconv.Itoa(id))
	c.procs[id-1].WaitFor(t, wait, "http on")
}

// do sends body to path on member id and returns the status and body.
func (c *cluster) do(t *testing.T, id int, path, body string) (int, string) {
	t.Helper()
	resp, err := client.Post("http://"+c.https[id-1]+path, "text/plain", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// must is do, failing the test unless the status is want.
func (c *cluster) must(t *testing.T, id int, path, body string, want int) string {
	t.Helper()
	code, out := c.do(t, id, path, body)
	if code != want {
		t.Fatalf("node %d %s %q: %d %q, want %d\n%s", id, path, body, code, out, want, c.outputs())
	}
	return out
}

func (c *cluster) outputs() string {
	var b strings.Builder
	for i, p := range c.procs {
		if p != nil {
			fmt.Fprintf(&b, "--- node %d:\n%s", i+1, p.Output())
		}
	}
	return b.String()
}

// agree polls until every member in ids names the same leader (one of
// ids), and returns it.
func (c *cluster) agree(t *testing.T, ids ...int) int {
	t.Helper()
	var why string
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var seen []string
		for _, id := range ids {
			code, out := c.do(t, id, "/leader", "")
			if code != http.StatusOK {
				out = "none"
			}
			seen = append(seen, strings.TrimSpace(out))
		}
		l, _ := strconv.Atoi(seen[0])
		if slices.Contains(ids, l) && !slices.ContainsFunc(seen, func(s string) bool { return s != seen[0] }) {
			return l
		}
		why = fmt.Sprintf("members %v see leaders %v", ids, seen)
	}
	t.Fatalf("no agreed leader within %v: %s\n%s", wait, why, c.outputs())
	return 0
}

func without(ids []int, x int) []int {
	return slices.DeleteFunc(slices.Clone(ids), func(i int) bool { return i == x })
}

// Three member processes: they elect a leader; a put on a follower is on
// every member's disk when acknowledged; send reaches the leader;
// broadcast collects three replies; a semaphore of limit 2 refuses a
// third holder until a holder is killed (kill -9); then the leader is
// killed, the two others elect a new one, which has the log and the
// surviving slot, and the store stays readable and writable.
func TestThreeMembers(t *testing.T) {
	c := &cluster{spec: proctest.WriteSpec(t, 3), https: proctest.FreeAddrs(t, 3),
		dirs: []string{t.TempDir(), t.TempDir(), t.TempDir()}, procs: make([]*proctest.Process, 3)}
	all := []int{1, 2, 3}
	for _, id := range all {
		c.start(t, id)
	}
	start := time.Now()
	leader := c.agree(t, all...)
	t.Logf("node %d leads, agreed in %v", leader, time.Since(start))
	f := without(all, leader) // the followers

	// put on a follower: acknowledged once on a majority; this test's
	// members are all reachable, so all three have it at once
	if out := c.must(t, f[0], "/put", "samplekey samplevalue", 200); !strings.HasPrefix(out, "put samplekey: entry ") {
		t.Fatalf("put: %q", out)
	}
	c.must(t, f[1], "/put", "other 1", 200)
	for _, id := range all {
		if got := c.must(t, id, "/get", "samplekey", 200); got != "samplevalue\n" {
			t.Fatalf("get on node %d: %q", id, got)
		}
	}
	c.must(t, f[0], "/get", "nothing", 404)

	want := fmt.Sprintf("leader %d got \"hello-world\" from node %d\n", leader, f[1])
	if got := c.must(t, f[1], "/send", "hello-world", 200); got != want {
		t.Fatalf("send: %q, want %q", got, want)
	}
	want = "node 1: node 1 got \"hello-all\"\nnode 2: node 2 got \"hello-all\"\nnode 3: node 3 got \"hello-all\"\n"
	if got := c.must(t, f[0], "/broadcast", "hello-all", 200); got != want {
		t.Fatalf("broadcast: %q, want %q", got, want)
	}

	// the semaphore: two slots, held by the followers; the leader waits
	// for one, which it gets when a holder's process is killed
	const sem = "/sem/acquire?name=jobs&limit=2"
	c.must(t, f[0], sem, "", 200)
	c.must(t, f[1], sem, "", 200)
	c.must(t, leader, sem, "", 409)
	c.must(t, f[0], sem, "", 409) // a holder gets no second slot past the limit
	c.must(t, leader, sem+"&wait=200ms", "", 409)
	got := make(chan string, 1)
	go func() { _, out := c.do(t, leader, sem+"&wait=4s", ""); got <- out }()
	killed := time.Now()
	c.procs[f[1]-1].Kill()
	_ = c.procs[f[1]-1].Wait(t, wait)
	if out := <-got; !strings.HasPrefix(out, `acquired "jobs"`) {
		t.Fatalf("the leader's wait for the killed holder's slot: %q\n%s", out, c.outputs())
	}
	t.Logf("killed holder's slot granted %v after kill -9", time.Since(killed))
	c.procs[leader-1].WaitFor(t, wait, fmt.Sprintf("node %d's member is gone (noconnection): 1 semaphore slots released", f[1]))

	// the killed member restarts, with its disk: the leader brings it up
	// to date
	c.start(t, f[1])
	c.must(t, f[1], "/put", "third 3", 200) // waits for a leader
	for _, id := range all {
		if got := c.must(t, id, "/get", "other", 200); got != "1\n" {
			t.Fatalf("get on node %d: %q", id, got)
		}
	}

	// kill -9 of the leader: the two others elect one of themselves
	killed = time.Now()
	c.procs[leader-1].Kill()
	_ = c.procs[leader-1].Wait(t, wait)
	next := c.agree(t, f...)
	t.Logf("node %d leads after node %d was killed; agreed in %v", next, leader, time.Since(killed))
	for _, id := range f {
		for key, want := range map[string]string{"samplekey": "samplevalue\n", "other": "1\n", "third": "3\n"} {
			if got := c.must(t, id, "/get", key, 200); got != want {
				t.Fatalf("get %s on node %d after the leader died: %q, want %q", key, id, got, want)
			}
		}
	}
	c.must(t, f[1], "/put", "after failover", 200)
	for _, id := range f {
		if got := c.must(t, id, "/get", "after", 200); got != "failover\n" {
			t.Fatalf("get on node %d: %q", id, got)
		}
	}
	// the new leader learned f[0]'s slot from it; the dead leader's is free
	c.must(t, f[1], sem, "", 200)
	c.must(t, f[1], sem, "", 409)
	c.must(t, f[0], "/sem/release?name=jobs&limit=2", "", 200)
	c.must(t, f[1], sem, "", 200)

	for _, id := range f {
		c.procs[id-1].Stop()
	}
	for _, id := range f {
		if err := c.procs[id-1].Wait(t, wait); err != nil {
			t.Fatalf("node %d: %v\n%s", id, err, c.procs[id-1].Output())
		}
	}
	t.Log(c.outputs())
	proctest.InOrder(t, fmt.Sprintf("node %d's output", next), c.procs[next-1].Output(),
		fmt.Sprintf("hedge %d: node %d takes the leadership", next, next),
		"stopped")
}
