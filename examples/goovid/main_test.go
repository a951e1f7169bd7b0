package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs each box as its own
// OS process, and writes to its standard input as a user types.
func TestMain(m *testing.M) { proctest.MainStdin(m, run) }

const wait = 10 * time.Second // a bound, never a pause: each WaitFor returns as soon as it sees its line

// A grid is one of the shipped configurations moved to free ports on
// 127.0.0.1, with its files in a temporary folder.
type grid struct {
	config string            // the configuration file
	certs  string            // reign_init's files for its boxes
	box    map[string]string // the shipped box address -> this grid's
}

// newGrid writes configs/name with its boxes moved to free ports and its
// kvs logs in a temporary folder, after edit (if not nil) has changed it.
func newGrid(t *testing.T, name string, edit func(agents map[string]map[string]any)) *grid {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("configs", name))
	if err != nil {
		t.Fatal(err)
	}
	var agents map[string]map[string]any
	if err := json.Unmarshal(data, &agents); err != nil {
		t.Fatal(err)
	}
	var boxes []string
	for _, a := range agents {
		if b := a["box"].(string); !slices.Contains(boxes, b) {
			boxes = append(boxes, b)
		}
	}
	slices.Sort(boxes)
	dir := t.TempDir()
	g := &grid{config: filepath.Join(dir, name), certs: proctest.WriteCerts(t, len(boxes)), box: map[string]string{}}
	for i, addr := range proctest.FreeAddrs(t, len(boxes)) {
		g.box[boxes[i]] = addr
	}
	for _, a := range agents {
		a["box"] = g.box[a["box"].(string)]
		if attrs, _ := a["attrs"].(map[string]any); attrs["log"] != nil {
			attrs["log"] = filepath.Join(dir, attrs["log"].(string))
		}
	}
	if edit != nil {
		edit(agents)
	}
	if data, err = json.Marshal(agents); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// start starts the box the shipped configuration puts at box.
func (g *grid) start(t *testing.T, box string) *proctest.Process {
	return proctest.Start(t, "-certs", g.certs, g.config, g.box[box])
}

// The KVS demo: tty and client on one box, kvs on another. Puts and gets
// cross boxes; the kvs box is killed (kill -9) and restarted, and every
// put answered before is still there, replayed from its log; a get typed
// while the kvs is down waits and is answered once it is back.
func TestKVSAcrossBoxesSurvivesKill(t *testing.T) {
	g := newGrid(t, "kvs.json", nil)
	kvs := g.start(t, "127.0.0.1:5001")
	kvs.WaitFor(t, wait, "agent 300 (kvs) up")
	tty := g.start(t, "127.0.0.1:5000")
	for _, cmd := range []string{"put a 1", "put b two words", "put a 11", "get a", "get nothing", "bogus"} {
		tty.Input(t, cmd)
	}
	tty.WaitFor(t, wait, "get nothing: no such entry")

	kvs.Kill()
	_ = kvs.Wait(t, wait) // "signal: killed"
	tty.WaitFor(t, wait, "is gone (noconnection)")
	tty.Input(t, "get b") // the kvs is down: this waits for it
	start := time.Now()
	kvs = g.start(t, "127.0.0.1:5001")
	kvs.WaitFor(t, wait, "3 puts replayed, 2 keys")
	tty.WaitFor(t, wait, "b = two words")
	t.Logf("kvs box restarted and answering in %v", time.Since(start))
	tty.Input(t, "get a")
	tty.Input(t, "put c 3")
	tty.Input(t, "get c")
	tty.WaitFor(t, wait, "c = 3")

	// Again, with nothing sent while the kvs is down: the link's
	// MailboxClosed alone makes the client look the kvs up again (its old
	// Address would reach no one: it names the killed incarnation).
	mark := tty.Mark()
	kvs.Kill()
	_ = kvs.Wait(t, wait)
	tty.WaitForSince(t, wait, mark, "is gone (noconnection)")
	kvs = g.start(t, "127.0.0.1:5001")
	kvs.WaitFor(t, wait, "4 puts replayed, 3 keys")
	tty.WaitForSince(t, wait, mark, "agent 300 is <") // found again: its new Address
	tty.Input(t, "get c")
	tty.WaitForSince(t, wait, mark, "c = 3")

	tty.Stop()
	if err := tty.Wait(t, wait); err != nil {
		t.Fatalf("tty box: %v\n%s", err, tty.Output())
	}
	kvs.Stop()
	if err := kvs.Wait(t, wait); err != nil {
		t.Fatalf("kvs box: %v\n%s", err, kvs.Output())
	}
	t.Logf("tty box:\n%s\nkvs box (restarted):\n%s", tty.Output(), kvs.Output())
	proctest.InOrder(t, "the tty box's output", tty.Output(),
		"agent 100 (tty) up",
		`invalid command "bogus"`,
		"put a: ok", "put b: ok", "put a: ok", "a = 11", "get nothing: no such entry",
		"is gone (noconnection)",
		"b = two words", "a = 11", "put c: ok", "c = 3",
		"is gone (noconnection)", "agent 300 is <", "c = 3",
		"stopped",
	)
}

// The chat: each agent's contact 1 is routed to the two others, so one
// send reaches both, on two other boxes.
func TestChatMulticast(t *testing.T) {
	g := newGrid(t, "chat.json", nil)
	names := map[string]string{"127.0.0.1:5000": "alice", "127.0.0.1:5001": "bob", "127.0.0.1:5002": "charles"}
	boxes := map[string]*proctest.Process{}
	for box, name := range names {
		boxes[name] = g.start(t, box)
	}
	for _, p := range boxes {
		p.WaitFor(t, wait, "(chat) up")
	}
	boxes["alice"].Input(t, "hello from alice")
	boxes["bob"].WaitFor(t, wait, "[bob] alice > hello from alice")
	boxes["charles"].WaitFor(t, wait, "[charles] alice > hello from alice")
	boxes["charles"].Input(t, "hi, this is charles")
	boxes["alice"].WaitFor(t, wait, "[alice] charles > hi, this is charles")
	boxes["bob"].WaitFor(t, wait, "[bob] charles > hi, this is charles")

	for name, p := range boxes {
		p.Stop()
		if err := p.Wait(t, wait); err != nil {
			t.Fatalf("%s's box: %v\n%s", name, err, p.Output())
		}
		if strings.Contains(p.Output(), name+" > ") {
			t.Errorf("%s got its own line back:\n%s", name, p.Output())
		}
	}
}

// A configuration naming an agent or a box it lacks is refused, with a
// message that names it; so is an agent whose attributes need a route the
// agent lacks.
func TestBadConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		edit   func(map[string]map[string]any)
		box    string // the shipped box to start, or a literal address
		want   string
	}{
		{
			name: "route to a missing agent", config: "kvs.json", box: "127.0.0.1:5000",
			edit: func(a map[string]map[string]any) { a["200"]["routes"].(map[string]any)["2"] = map[string]any{"320": 1} },
			want: "agent 200: route 2 names agent 320, which is not in the configuration",
		},
		{
			name: "missing box", config: "kvs.json", box: "127.0.0.1:1",
			want: "box 127.0.0.1:1 is not in the configuration: no agent lives there",
		},
		{
			name: "contact without a route", config: "chat.json", box: "127.0.0.1:5001",
			edit: func(a map[string]map[string]any) { a["10"]["attrs"].(map[string]any)["contacts"] = []int{1, 2} },
			want: "agent 10 (chat, on box 127.0.0.1:",
		},
		{
			name: "unknown agent type", config: "kvs.json", box: "127.0.0.1:5001",
			edit: func(a map[string]map[string]any) { a["100"]["type"] = "teletype" },
			want: `agent 100: unknown type "teletype" (known: chat, client, dummy, kvs, tty)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrid(t, tc.config, tc.edit)
			box := g.box[tc.box]
			if box == "" {
				box = tc.box
			}
			p := proctest.Start(t, "-certs", g.certs, g.config, box)
			if err := p.Wait(t, wait); err == nil {
				t.Fatalf("the box ran with a bad configuration:\n%s", p.Output())
			}
			if !strings.Contains(p.Output(), tc.want) {
				t.Fatalf("the refusal does not say %q:\n%s", tc.want, p.Output())
			}
			t.Logf("%s", p.Output())
		})
	}
}
