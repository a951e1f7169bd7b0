package reign

// TestSoak: three nodes in separate OS processes (the test binary run as
// soak children, see soakchild_test.go) with 1,000 mailboxes between them
// send bursts of messages to random mailboxes on other nodes, link to
// every destination before the first send, claim and release shared
// names, close mailboxes at random (a new one takes over the slot's name),
// while the test kills -9 and restarts one child at a time. Meanwhile the
// test process itself is node 1 and floods a mailbox on node 4 over a
// throttled link (a faultnet proxy that stalls node 4's incoming bytes
// three quarters of the time), with a small SendBufferLimit: its heap and
// its outgoing buffer must stay bounded by the limit, not by what it
// offered.
//
// At the end each child stops, a Call barrier flushes every connection,
// and each writes a summary of what each of its mailboxes sent (per
// destination: how many, and whether a MailboxClosed came back) and
// received (per sender: how many, the last sequence number, anything out
// of order or twice). Children killed on the way leave no summary. The
// accounting then checks every message of a known sender:
//
//   - nothing is received twice or out of order, ever;
//   - a destination that lost messages (received fewer than were sent) is
//     covered: its sender got a MailboxClosed for it, or the destination
//     was closed and only the tail is missing (its sender closed before
//     the notice could reach it), or the destination's node was killed;
//   - a sender still open at the end has a MailboxClosed for every
//     destination that closed or whose node was killed: no silent loss;
//   - a MailboxClosed with reason normal names a mailbox that did close.
//
// REIGN_SOAK sets the duration (a Go duration); unset, a short run of 4s
// exercises the accounting in every test run. -short skips it.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"github.com/reign-go/reign/internal/faultnet"
)

// soakProc is one run of a soak child process.
type soakProc struct {
	id   NodeID
	run  int
	out  string // summary file
	cmd  *exec.Cmd
	in   *os.File // its standard input, for commands
	outw *lineWriter
	done chan struct{} // closed when the process has been waited for
}

// lineWriter collects a child's standard output, line by line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.lines = append(w.lines, strings.TrimSpace(line))
	}
}

func (w *lineWriter) has(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if l == s {
			return true
		}
	}
	return false
}

type soakCluster struct {
	t     *testing.T
	dir   string // summaries
	spec  string // spec file
	seed  uint64
	mu    sync.Mutex
	procs map[NodeID]*soakProc
	runs  []*soakProc // every run, killed or not
}

func (sc *soakCluster) start(id NodeID) *soakProc {
	t := sc.t
	t.Helper()
	sc.mu.Lock()
	run := len(sc.runs)
	sc.mu.Unlock()
	p := &soakProc{id: id, run: run, out: filepath.Join(sc.dir, fmt.Sprintf("summary-%d-%d.gob", id, run)), outw: &lineWriter{}, done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		soakSpecEnv+"="+sc.spec,
		fmt.Sprintf("%s=%d", soakIDEnv, id),
		soakOutEnv+"="+p.out,
		fmt.Sprintf("%s=%d", soakSeedEnv, sc.seed+uint64(run)*7919),
	)
	cmd.Stdout = p.outw
	cmd.Stderr = os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	p.cmd, p.in = cmd, w
	go func() { _ = cmd.Wait(); close(p.done) }()
	sc.mu.Lock()
	sc.procs[id] = p
	sc.runs = append(sc.runs, p)
	sc.mu.Unlock()
	return p
}

// kill kills p with SIGKILL and waits for it.
func (p *soakProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.in.Close()
}

// command sends cmd to every live child and waits until each says reply.
func (sc *soakCluster) command(cmd, reply string, timeout time.Duration) error {
	sc.mu.Lock()
	var ps []*soakProc
	for _, p := range sc.procs {
		ps = append(ps, p)
	}
	sc.mu.Unlock()
	for _, p := range ps {
		if _, err := fmt.Fprintln(p.in, cmd); err != nil {
			return fmt.Errorf("node %d: %s: %w", p.id, cmd, err)
		}
	}
	if reply == "" {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for _, p := range ps {
		for !p.outw.has(reply) {
			select {
			case <-p.done:
				return fmt.Errorf("node %d exited during %q", p.id, cmd)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %d: no %q within %v after %q", p.id, reply, timeout, cmd)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("REIGN_SOAK")
	if s == "" {
		return 4 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("REIGN_SOAK=%q: want a positive Go duration", s)
	}
	return d
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: starts processes and runs for seconds")
	}
	// Not parallel: the flooder's heap is measured in this process.
	dur := soakDuration(t)
	certs0, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addrs := freePorts(t, 4)
	proxy, err := faultnet.NewProxy(addrs[3])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	var nodes []map[string]any
	for i, a := range addrs {
		ns := map[string]any{"id": i + 1, "address": a}
		if NodeID(i+1) == soakSinkNode {
			ns["address"], ns["listen_address"] = proxy.Addr(), a
		}
		nodes = append(nodes, ns)
	}
	specJSON, _ := json.Marshal(map[string]any{
		"nodes":             nodes,
		"cluster_cert_path": filepath.Join(certs0, certs.CACertFile),
		"node_cert_path":    filepath.Join(certs0, "reign_node.%d.crt"),
		"node_key_path":     filepath.Join(certs0, "reign_node.%d.key"),
	})
	specPath := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(specPath, specJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadClusterSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, duration %v", seed, dur)
	sc := &soakCluster{t: t, dir: dir, spec: specPath, seed: seed, procs: map[NodeID]*soakProc{}}
	t.Cleanup(func() { // whatever happened, no child outlives the test
		sc.mu.Lock()
		runs := sc.runs
		sc.mu.Unlock()
		for _, p := range runs {
			p.kill()
		}
	})

	// Node 1, the flooder, in this process.
	n1, err := NewNode(soakConfig(1, spec))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = n1.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })

	for id := soakFirst; id < soakFirst+soakChildren; id++ {
		sc.start(id)
	}
	// Everyone up: node 1 sees all three children and every slot's name.
	checkFor(t, 60*time.Second, func() error {
		if up := n1.Stats().PeersUp; up != soakChildren {
			return fmt.Errorf("node 1 has %d peers up, want %d", up, soakChildren)
		}
		if _, ok := n1.Lookup("soak/sink"); !ok {
			return errors.New("soak/sink is not registered yet")
		}
		for k := range soakSlots {
			if _, ok := n1.Lookup(fmt.Sprintf("soak/%d", k)); !ok {
				return fmt.Errorf("soak/%d is not registered yet", k)
			}
		}
		return nil
	})

	// The flood, the heap sampler and the throttle.
	base := soakHeap(true)
	fl := startSoakFlood(n1)
	var bg sync.WaitGroup
	bgStop := make(chan struct{})
	var throttleCycles atomic.Int64
	bg.Go(func() { // node 4's link: stalled 150 ms, flowing 50 ms
		defer proxy.Stall(faultnet.Up, false)
		for {
			proxy.Stall(faultnet.Up, true)
			select {
			case <-bgStop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			proxy.Stall(faultnet.Up, false)
			throttleCycles.Add(1)
			select {
			case <-bgStop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	// Restarts: R of them, evenly spaced, rotating over the children.
	restarts := max(1, min(8, int(dur/(15*time.Second))))
	order := []NodeID{3, 4, 2}
	began := time.Now()
	var restarted []string
	for i := 1; i <= restarts; i++ {
		at := began.Add(dur * time.Duration(i) / time.Duration(restarts+1))
		sleepUntil(at)
		id := order[(i-1)%len(order)]
		sc.mu.Lock()
		p := sc.procs[id]
		sc.mu.Unlock()
		p.kill()
		sc.mu.Lock()
		delete(sc.procs, id)
		sc.mu.Unlock()
		killedAt := time.Since(began)
		sc.start(id)
		restarted = append(restarted, fmt.Sprintf("node %d at %v", id, killedAt.Round(time.Millisecond)))
	}
	sleepUntil(began.Add(dur))
	elapsed := time.Since(began)

	// Wind down: no more throttling, no more flood; children stop, flush
	// every connection, then summarize.
	close(bgStop)
	bg.Wait()
	flood := fl.stop()
	if err := sc.command("stop", "stopped", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sc.command("flush", "flushed", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// node 1's own barrier for the flood, through the same kind of Call
	checkFor(t, 30*time.Second, func() error {
		a, ok := n1.Lookup(fmt.Sprintf("soak/ctl/%d", soakSinkNode))
		if !ok {
			return fmt.Errorf("soak/ctl/%d is not registered yet", soakSinkNode)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_, err := Call(cctx, a, "flush")
		return err
	})
	if err := sc.command("finish", "done", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sc.command("exit", "", 0); err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	final := sc.procs
	sc.mu.Unlock()
	for _, p := range final {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("node %d did not exit", p.id)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("node %d exited with %d", p.id, code)
		}
	}

	// Read the summaries of the runs that ended cleanly.
	var sums []*soakSummary
	for _, p := range sc.runs {
		f, err := os.Open(p.out)
		if errors.Is(err, os.ErrNotExist) {
			continue // killed
		}
		if err != nil {
			t.Fatal(err)
		}
		s := new(soakSummary)
		err = gob.NewDecoder(f).Decode(s)
		f.Close()
		if err != nil {
			t.Fatalf("summary of node %d run %d: %v", p.id, p.run, err)
		}
		if s.FlushErr != "" {
			t.Errorf("node %d: flush barrier: %s", s.Node, s.FlushErr)
		}
		sums = append(sums, s)
	}
	if len(sums) != soakChildren {
		t.Fatalf("%d summaries, want %d (one per child's last run)", len(sums), soakChildren)
	}

	acc := soakAccount(t, sums)
	var k soakCounts
	var sinkN, sinkBytes uint64
	for _, s := range sums {
		c := s.Counts
		k.Iterations += c.Iterations
		k.Sends += c.Sends
		k.SendErrs += c.SendErrs
		k.Links += c.Links
		k.Lookups += c.Lookups
		k.LookupMisses += c.LookupMisses
		k.Registrations += c.Registrations
		k.AliasClaims += c.AliasClaims
		k.AliasReleases += c.AliasReleases
		k.Closes += c.Closes
		k.MultipleClaims += c.MultipleClaims
		k.Unexpected += c.Unexpected
		for r := range c.Notified {
			k.Notified[r] += c.Notified[r]
		}
		for _, sk := range s.Sink {
			sinkN += sk.N
			sinkBytes += sk.Bytes
			if sk.Bad != 0 {
				t.Errorf("flood stream %d: %d out of order at the sink, first: %s", sk.Stream, sk.Bad, sk.FirstBadMsg)
			}
		}
	}
	if k.Unexpected != 0 {
		t.Errorf("%d unexpected messages (a MailboxClosed for an address never linked, or an unknown type)", k.Unexpected)
	}

	t.Logf("ran %v; restarts (kill -9): %d: %s", elapsed.Round(time.Millisecond), len(restarted), strings.Join(restarted, ", "))
	t.Logf("messages (by the %d surviving runs' mailboxes): sent %d, delivered %d, lost and notified %d, lost to a closed mailbox after its sender closed %d, sent to killed incarnations %d (notified %d); throughput %.0f msgs/s (senders of killed runs not counted)",
		len(sums), acc.sent, acc.delivered, acc.lostNotified, acc.lostClosedTail, acc.toKilled, acc.toKilledNotified, float64(acc.sent)/elapsed.Seconds())
	t.Logf("received from killed runs' senders: %d messages, from %d senders, all in order", acc.fromKilled, acc.fromKilledSenders)
	t.Logf("links: %d made; fired: normal %d, noconnection %d, nodeshutdown %d, noproc %d; sender/destination pairs %d, %d of them notified",
		k.Links, k.Notified[Normal], k.Notified[NoConnection], k.Notified[NodeShutdown], k.Notified[NoProc], acc.pairs, acc.pairsNotified)
	t.Logf("registry: %d slot registrations, %d alias claims, %d alias releases, %d MultipleClaim, %d lookups (%d missed or local); %d mailboxes closed; %d worker iterations; %d sends refused (no connection)",
		k.Registrations, k.AliasClaims, k.AliasReleases, k.MultipleClaims, k.Lookups, k.LookupMisses, k.Closes, k.Iterations, k.SendErrs)
	for _, s := range sums {
		t.Logf("node %d (last run): peak heap in use %d MiB, connects %d, dropped closed %d, stale %d", s.Node, s.PeakHeap>>20, s.Stats.Connects, s.Stats.DroppedClosed, s.Stats.DroppedStale)
	}

	// The flood: node 1's buffer to node 4 and its heap stayed bounded.
	t.Logf("flood node 1 -> node 4 (throttled, %d stall cycles): %d MiB accepted by Send in %d messages (%.1f MiB/s), %d refused, Send waited %v in all (longest %v); sink received %d messages, %d MiB in its last run",
		throttleCycles.Load(), flood.bytes>>20, flood.msgs, float64(flood.bytes)/(1<<20)/elapsed.Seconds(), flood.errs, flood.waited.Round(time.Millisecond), flood.longest.Round(time.Millisecond), sinkN, sinkBytes>>20)
	t.Logf("node 1 heap in use: %d KiB at the start, %d KiB peak (garbage included); outgoing buffer to node 4: peak %d KiB, limit %d KiB",
		base>>10, flood.peakHeap>>10, flood.peakBuf>>10, soakLimit>>10)
	if flood.msgs == 0 {
		t.Error("the flood sent nothing")
	}
	if flood.waited == 0 {
		t.Error("the flood never waited: the throttle did not fill the buffer")
	}
	if lim := uint64(soakLimit + 2*soakFloodSize + 64<<10); flood.peakBuf > lim {
		t.Errorf("node 1's buffer to node 4 reached %d bytes; the limit is %d (+ one message and control frames)", flood.peakBuf, soakLimit)
	}
	if flood.peakHeap > base+32<<20 {
		t.Errorf("node 1's heap in use peaked at %d KiB from %d KiB with a %d KiB send buffer limit", flood.peakHeap>>10, base>>10, soakLimit>>10)
	}
}

// sleepUntil waits until t.
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

func soakHeap(gc bool) uint64 {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// The flood: soakFloodStreams goroutines of node 1 each send
// soakFloodSize-byte messages to "soak/sink" as fast as Send lets them.
const (
	soakFloodStreams = 2
	soakFloodSize    = 32 << 10
)

type soakFlood struct {
	n        *Node
	stopc    chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	msgs     uint64
	bytes    uint64
	errs     uint64
	waited   time.Duration
	longest  time.Duration
	peakHeap uint64
	peakBuf  uint64
}

func startSoakFlood(n *Node) *soakFlood {
	f := &soakFlood{n: n, stopc: make(chan struct{})}
	for s := range soakFloodStreams {
		f.wg.Go(func() { f.stream(s) })
	}
	f.wg.Go(f.sample)
	return f
}

func (f *soakFlood) stopped() bool {
	select {
	case <-f.stopc:
		return true
	default:
		return false
	}
}

func (f *soakFlood) stream(s int) {
	payload := make([]byte, soakFloodSize)
	binary.BigEndian.PutUint64(payload, uint64(s))
	var seq uint64
	for !f.stopped() {
		to, ok := f.n.Lookup("soak/sink")
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		seq++
		binary.BigEndian.PutUint64(payload[8:], seq)
		start := time.Now()
		err := to.Send(payload)
		d := time.Since(start)
		f.mu.Lock()
		if err != nil {
			f.errs++
		} else {
			f.msgs++
			f.bytes += uint64(len(payload))
		}
		if d > time.Millisecond {
			f.waited += d
		}
		f.longest = max(f.longest, d)
		f.mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// sample records node 1's peak heap and the peak of its outgoing buffer to
// node 4 (white-box).
func (f *soakFlood) sample() {
	p := f.n.cl.peer(soakSinkNode)
	for i := 0; !f.stopped(); i++ {
		var buf uint64
		if cn := p.live.Load(); cn != nil {
			cn.mu.Lock()
			buf = uint64(len(cn.out))
			cn.mu.Unlock()
		}
		var heap uint64
		if i%10 == 0 {
			heap = soakHeap(false)
		}
		f.mu.Lock()
		f.peakBuf = max(f.peakBuf, buf)
		f.peakHeap = max(f.peakHeap, heap)
		f.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *soakFlood) stop() *soakFlood {
	close(f.stopc)
	f.wg.Wait()
	return f
}

// The accounting.

type soakAcc struct {
	pairs, pairsNotified          int
	sent, delivered, lostNotified uint64
	lostClosedTail, toKilled      uint64
	toKilledNotified              uint64
	fromKilled                    uint64
	fromKilledSenders             int
}

func soakAccount(t *testing.T, sums []*soakSummary) soakAcc {
	t.Helper()
	var acc soakAcc
	known := map[uint32]bool{} // incarnations with a summary
	boxes := map[string]*soakBoxSum{}
	for _, s := range sums {
		known[s.Inc] = true
		for i := range s.Boxes {
			boxes[s.Boxes[i].Addr] = &s.Boxes[i]
		}
	}
	incOf := func(addr string) uint32 {
		var a Address
		if err := a.UnmarshalText([]byte(addr)); err != nil {
			t.Fatalf("bad address %q in a summary", addr)
		}
		return a.inc
	}
	var errs []string
	fail := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		} else if len(errs) == 20 {
			errs = append(errs, "...")
		}
	}
	// receiver side: never twice, never out of order
	received := map[[2]string]*soakRecvSum{}
	fromKilled := map[string]bool{}
	for _, b := range boxes {
		for i := range b.Recv {
			r := &b.Recv[i]
			received[[2]string{r.From, b.Addr}] = r
			if r.Bad != 0 {
				fail("%s received %d messages from %s twice or out of order; first: %s; first seqs %v", b.Addr, r.Bad, r.From, r.FirstBad, r.FirstSeqs)
			}
			if !known[incOf(r.From)] {
				acc.fromKilled += r.N
				fromKilled[r.From] = true
			} else if boxes[r.From] == nil {
				fail("%s received from %s, which its node's summary does not know", b.Addr, r.From)
			}
		}
	}
	acc.fromKilledSenders = len(fromKilled)
	// sender side: every message delivered once, or its loss covered
	seen := map[[2]string]bool{}
	for _, b := range boxes {
		for _, p := range b.Sent {
			acc.pairs++
			acc.sent += p.N
			notified := p.Reason >= 0
			if notified {
				acc.pairsNotified++
			}
			key := [2]string{b.Addr, p.To}
			seen[key] = true
			d := boxes[p.To]
			if d == nil {
				if known[incOf(p.To)] {
					fail("%s sent to %s, which its node's summary does not know", b.Addr, p.To)
					continue
				}
				acc.toKilled += p.N
				if notified {
					acc.toKilledNotified += p.N
				} else if !b.Closed {
					fail("%s (open to the end) sent %d messages to %s, whose node was killed, and was never told", b.Addr, p.N, p.To)
				}
				continue
			}
			if p.Reason == int(Normal) && !d.Closed {
				fail("%s was told %s closed normally, but it never closed", b.Addr, p.To)
			}
			if d.Closed && !notified && !b.Closed {
				fail("%s (open to the end) was never told that %s closed", b.Addr, p.To)
			}
			var n, last uint64
			if r := received[key]; r != nil {
				n, last = r.N, r.Last
			}
			acc.delivered += n
			switch {
			case last > p.N:
				fail("%s received seq %d from %s, which sent only %d", p.To, last, b.Addr, p.N)
			case n == p.N:
				// all delivered, in order (no message out of order or twice)
			case notified:
				acc.lostNotified += p.N - n
			case d.Closed && n == last:
				acc.lostClosedTail += p.N - n // the tail, after the destination closed
			default:
				fail("%s lost %d of %d messages from %s (last received %d) with no MailboxClosed (reason %d); destination closed %v, sender closed %v",
					p.To, p.N-n, p.N, b.Addr, last, p.Reason, d.Closed, b.Closed)
			}
		}
	}
	for key, r := range received {
		if !seen[key] && known[incOf(key[0])] && boxes[key[0]] != nil {
			fail("%s received %d messages from %s, which has no record of sending to it", key[1], r.N, key[0])
		}
	}
	sort.Strings(errs)
	for _, e := range errs {
		t.Error(e)
	}
	return acc
}
