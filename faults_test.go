package reign

// Network faults between two nodes, injected with internal/faultnet: a
// proxy sits between node 1 and node 2 (node 1 dials node 2 through it),
// while node 3 is reached directly by both. Each fault must fire the links
// to the far node's mailboxes with NoConnection within the heartbeat
// timeout, fail pending Calls with ErrNodeUnreachable, leave node 3 working
// throughout, and heal when lifted: the connection comes back and order
// per sender holds again.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/faultnet"
	"go.uber.org/goleak"
)

// Timing of the fault tests: short heartbeats so that loss is declared
// quickly, and a margin for a loaded machine (-race, 2 cores).
const (
	faultHeartbeat = 100 * time.Millisecond
	faultTimeout   = 800 * time.Millisecond
	faultHandshake = time.Second
	faultMargin    = 1500 * time.Millisecond
)

func faultConfig(cfg *Config) {
	cfg.HeartbeatInterval = faultHeartbeat
	cfg.HeartbeatTimeout = faultTimeout
	cfg.HandshakeTimeout = faultHandshake
}

// checkGoroutines fails t if goroutines started during t outlive it: the
// count returns near its starting value and goleak finds none of them.
// Call it first, so that its check runs after every other cleanup; use it
// only in tests that do not run in parallel with others.
func checkGoroutines(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		const slack = 2
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before+slack && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before+slack {
			t.Errorf("goroutines: %d at the start, %d at the end", before, n)
		}
		if err := goleak.Find(ignore); err != nil {
			t.Error(err)
		}
	})
}

// newProxiedCluster starts nodes 1, 2 and 3, where node 2's address in the
// spec is a faultnet proxy in front of its real listener: node 1 (the
// lower ID dials) reaches node 2 only through the proxy. Nodes 1 and 2
// reach node 3 directly.
func newProxiedCluster(t *testing.T, mod func(*Config)) (*testCluster, *faultnet.Proxy) {
	t.Helper()
	spec := testSpec(t)
	lns := listenLoopback(t, 3)
	p, err := faultnet.NewProxy(lns[2].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() }) // runs after the nodes stop
	for id := NodeID(1); id <= 3; id++ {
		addr := lns[id].Addr().String()
		if id == 2 {
			addr = p.Addr()
		}
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: addr})
	}
	tc := &testCluster{t: t, spec: spec, mod: func(cfg *Config) {
		faultConfig(cfg)
		if mod != nil {
			mod(cfg)
		}
	}, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc.stopAll)
	for id, ln := range lns {
		tc.start(id, ln)
	}
	tc.connected()
	return tc, p
}

// startEcho runs a mailbox on n that sends every testMsg back to its From.
func startEcho(t testing.TB, n *Node) Address {
	a, mb := n.NewMailbox()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v, err := mb.Receive(context.Background())
			if err != nil {
				return
			}
			if m, ok := v.(testMsg); ok {
				_ = m.From.Send(m)
			}
		}
	}()
	t.Cleanup(func() { mb.Close(); <-done })
	return a
}

// roundTrip sends a testMsg from a new mailbox of from to echo and waits
// for it to come back.
func callEcho(from *Node, echo Address, seq int) error {
	me, mb := from.NewMailbox()
	defer mb.Close()
	if err := from.BindAddress(echo).Send(testMsg{Seq: seq, From: me, Text: "ping"}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := mb.Receive(ctx)
	if err != nil {
		return fmt.Errorf("round trip %d from node %d to %v: %w", seq, from.ID(), echo, err)
	}
	if m, ok := v.(testMsg); !ok || m.Seq != seq {
		return fmt.Errorf("round trip %d: got %#v", seq, v)
	}
	return nil
}

// pinger keeps doing round trips from one node to an echo mailbox until
// stopped, and reports whether every one succeeded.
type pinger struct {
	stopc chan struct{}
	done  chan struct{}
	ok    atomic.Int64
	err   atomic.Pointer[error]
}

func startPinger(from *Node, echo Address) *pinger {
	p := &pinger{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stopc:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := callEcho(from, echo, i); err != nil {
				p.err.CompareAndSwap(nil, &err)
				return
			}
			p.ok.Add(1)
		}
	}()
	return p
}

// stop ends the pinger and fails t if a round trip failed or, with
// needOne, if none was made.
func (p *pinger) stop(t testing.TB, what string, needOne bool) {
	t.Helper()
	close(p.stopc)
	<-p.done
	if e := p.err.Load(); e != nil {
		t.Errorf("%s: %v", what, *e)
	}
	if needOne && p.ok.Load() == 0 {
		t.Errorf("%s: no round trip completed", what)
	}
}

// checkOrder sends count messages from each of senders goroutines of from
// to a new mailbox of to, and checks that they all arrive, each sender's in
// the order sent.
func checkOrder(t testing.TB, from, to *Node, senders, count int) {
	t.Helper()
	dst, mb := to.NewMailbox()
	defer mb.Close()
	rdst := from.BindAddress(dst)
	errc := make(chan error, senders)
	for s := 0; s < senders; s++ {
		go func() {
			for i := 0; i < count; i++ {
				if err := rdst.Send(testMsg{Seq: i, Text: fmt.Sprint(s)}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for s := 0; s < senders; s++ {
		if err := <-errc; err != nil {
			t.Fatalf("send from node %d to node %d: %v", from.ID(), to.ID(), err)
		}
	}
	next := make([]int, senders)
	for k := 0; k < senders*count; k++ {
		m := recv(t, mb).(testMsg)
		s, err := strconv.Atoi(m.Text)
		if err != nil || s < 0 || s >= senders {
			t.Fatalf("node %d to node %d: a stray message %+v", from.ID(), to.ID(), m)
		}
		if m.Seq != next[s] {
			t.Fatalf("node %d to node %d, sender %d: got message %d, want %d", from.ID(), to.ID(), s, m.Seq, next[s])
		}
		next[s]++
	}
}

// linkedPair makes a mailbox on node 2 watched from a mailbox of node 1,
// and waits until node 2 holds the link.
func linkedPair(t testing.TB, n1, n2 *Node) (far Address, watcher *Mailbox) {
	t.Helper()
	far, farMb := n2.NewMailbox()
	w, wmb := n1.NewMailbox()
	rfar := n1.BindAddress(far)
	rfar.OnCloseNotify(w)
	checkFor(t, 5*time.Second, func() error {
		farMb.mu.Lock()
		defer farMb.mu.Unlock()
		return unless(len(farMb.links) == 1, "len(farMb.links) == 1")
	})
	return rfar, wmb
}

// pendingCall starts a Call from n1 to a mailbox of n2 that never replies,
// and waits until the request is there. The Call's error comes on the
// channel.
func pendingCall(t testing.TB, n1, n2 *Node) <-chan error {
	t.Helper()
	srv, smb := n2.NewMailbox()
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := Call(ctx, n1.BindAddress(srv), 1)
		errc <- err
	}()
	checkFor(t, 5*time.Second, func() error { return unless(smb.Len() == 1, "smb.Len() == 1") })
	return errc
}

// expectLost waits for a MailboxClosed for a with reason NoConnection
// and returns how long after start it came.
func expectLost(t testing.TB, wmb *Mailbox, a Address, start time.Time, within time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within+time.Second)
	defer cancel()
	v, err := wmb.Receive(ctx)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("link to %v did not fire: %v", a, err)
	}
	mc, ok := v.(MailboxClosed)
	if !ok || mc.Address != a || mc.Reason != NoConnection {
		t.Fatalf("watcher got %#v, want MailboxClosed{%v, noconnection}", v, a)
	}
	if took > within {
		t.Fatalf("link fired after %v, want within %v", took, within)
	}
	return took
}

func expectCallUnreachable(t testing.TB, errc <-chan error, start time.Time, within time.Duration) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNodeUnreachable) {
			t.Fatalf("pending call: %v, want ErrNodeUnreachable", err)
		}
		if took := time.Since(start); took > within {
			t.Fatalf("pending call failed after %v, want within %v", took, within)
		}
	case <-time.After(within + time.Second):
		t.Fatal("pending call still waiting")
	}
}

// A fault between nodes 1 and 2, and how to lift it.
type fault struct {
	name string
	// inject starts the fault. sink is a mailbox of node 2 that must never
	// receive anything, which inject may use to put data on the wire.
	inject func(t *testing.T, p *faultnet.Proxy, n1 *Node, sink Address)
	lift   func(p *faultnet.Proxy)
	// within bounds the time from inject to the links firing.
	within time.Duration
	// heldDown: while the fault lasts, node 1 cannot reconnect.
	heldDown bool
}

var bigText = strings.Repeat("mid-frame ", 10_000) // 100 kB: many TLS records

// sendBig puts a large message on the wire from node 1 to sink, so that a
// fault placed in the byte stream is hit inside its frame.
func sendBig(t *testing.T, n1 *Node, sink Address) {
	if err := n1.BindAddress(sink).Send(testMsg{Seq: -1, Text: bigText}); err != nil && !errors.Is(err, ErrNodeUnreachable) {
		t.Errorf("send: %v", err)
	}
}

var faults = []fault{
	{
		name:   "cut",
		inject: func(t *testing.T, p *faultnet.Proxy, _ *Node, _ Address) { p.Cut() },
		lift:   func(*faultnet.Proxy) {},
		within: faultTimeout, // a reset is noticed at once, not by heartbeat
	},
	{
		name:     "blackhole",
		inject:   func(t *testing.T, p *faultnet.Proxy, _ *Node, _ Address) { p.BlackHole(true) },
		lift:     func(p *faultnet.Proxy) { p.BlackHole(false) },
		within:   faultTimeout + faultMargin,
		heldDown: true,
	},
	{
		name:     "stall-up",
		inject:   func(t *testing.T, p *faultnet.Proxy, _ *Node, _ Address) { p.Stall(faultnet.Up, true) },
		lift:     func(p *faultnet.Proxy) { p.Stall(faultnet.Up, false) },
		within:   faultTimeout + faultMargin,
		heldDown: true,
	},
	{
		name:     "stall-down",
		inject:   func(t *testing.T, p *faultnet.Proxy, _ *Node, _ Address) { p.Stall(faultnet.Down, true) },
		lift:     func(p *faultnet.Proxy) { p.Stall(faultnet.Down, false) },
		within:   faultTimeout + faultMargin,
		heldDown: true,
	},
	{
		name: "close-mid-frame",
		inject: func(t *testing.T, p *faultnet.Proxy, n1 *Node, sink Address) {
			p.CloseAfter(faultnet.Up, 1000)
			sendBig(t, n1, sink)
		},
		lift:   func(*faultnet.Proxy) {},
		within: faultTimeout,
	},
	{
		name: "corrupt-up",
		inject: func(t *testing.T, p *faultnet.Proxy, n1 *Node, sink Address) {
			p.Corrupt(faultnet.Up, 500)
			sendBig(t, n1, sink)
		},
		lift:   func(*faultnet.Proxy) {},
		within: faultTimeout,
	},
	{
		name: "corrupt-down",
		inject: func(t *testing.T, p *faultnet.Proxy, _ *Node, _ Address) {
			p.Corrupt(faultnet.Down, 3) // the next heartbeat's record
		},
		lift:   func(*faultnet.Proxy) {},
		within: faultHeartbeat + faultTimeout,
	},
}

// TestFaults runs every fault of the table on its own cluster, in
// parallel; the goroutine check covers them all.
func TestFaults(t *testing.T) {
	checkGoroutines(t)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			testFault(t, f)
		})
	}
	t.Run("delay", func(t *testing.T) {
		t.Parallel()
		testDelay(t)
	})
}

func testFault(t *testing.T, f fault) {
	tc, p := newProxiedCluster(t, nil)
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	echo3 := startEcho(t, n3)
	far, wmb := linkedPair(t, n1, n2)
	calls := pendingCall(t, n1, n2)
	sink, sinkMb := n2.NewMailbox()
	before1, before2 := n1.Stats(), n2.Stats()

	ping1 := startPinger(n1, echo3)
	ping2 := startPinger(n2, echo3)
	start := time.Now()
	f.inject(t, p, n1, sink)

	took := expectLost(t, wmb, far, start, f.within)
	expectCallUnreachable(t, calls, start, f.within)
	t.Logf("%s: link fired after %v", f.name, took)
	if f.heldDown {
		// the fault still stands: node 1 cannot get through
		time.Sleep(2 * faultHeartbeat)
		if up := n1.Stats().PeersUp; up != 1 {
			t.Fatalf("node 1 has %d peers up through a %s", up, f.name)
		}
		if err := n1.BindAddress(sink).Send(testMsg{Seq: -2}); !errors.Is(err, ErrNodeUnreachable) {
			t.Fatalf("send during %s: %v, want ErrNodeUnreachable", f.name, err)
		}
	}

	f.lift(p)
	checkFor(t, 10*time.Second, func() error {
		s1, s2 := n1.Stats(), n2.Stats()
		return unless(s1.PeersUp == 2 && s2.PeersUp == 2 && s1.Connects > before1.Connects && s2.Connects > before2.Connects, "s1.PeersUp == 2 && s2.PeersUp == 2 && s1.Connects > before1.Connects && s2.Connects > before2.Connects")
	})
	t.Logf("%s: connected again %v after the fault began", f.name, time.Since(start))
	checkOrder(t, n1, n2, 2, 1000)
	checkOrder(t, n2, n1, 1, 500)
	if err := callEcho(n1, startEcho(t, n2), 1); err != nil {
		t.Fatal(err)
	}
	ping1.stop(t, "node 1 to node 3", true)
	ping2.stop(t, "node 2 to node 3", true)

	// Whatever was cut or corrupted was lost, never delivered damaged.
	for sinkMb.Len() > 0 {
		v, _ := sinkMb.ReceiveAsync()
		if m, ok := v.(testMsg); !ok || m.Seq != -1 || m.Text != bigText {
			t.Fatalf("%s: node 2 received a damaged message: %.80v", f.name, v)
		}
	}
	after2 := n2.Stats()
	if after2.DroppedUndecodable != before2.DroppedUndecodable || after2.DroppedUnknownType != before2.DroppedUnknownType {
		t.Fatalf("%s: node 2 dropped messages as undecodable: before %+v, after %+v", f.name, before2, after2)
	}
	t.Logf("%s: node 1 %+v; node 2 %+v", f.name, n1.Stats(), after2)
}

// testDelay: latency below the heartbeat timeout must not break the
// connection, and order holds through it.
func testDelay(t *testing.T) {
	tc, p := newProxiedCluster(t, nil)
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	echo3 := startEcho(t, n3)
	echo2 := startEcho(t, n2)
	_, wmb := linkedPair(t, n1, n2)
	before1, before2 := n1.Stats(), n2.Stats()
	ping := startPinger(n1, echo3)

	const delay = 150 * time.Millisecond // up to 2x per hop; below the timeout
	p.Delay(delay)
	start := time.Now()
	for time.Since(start) < 3*faultTimeout {
		rt := time.Now()
		if err := callEcho(n1, echo2, 7); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(rt); el < 2*delay {
			t.Fatalf("round trip through the delay took %v, less than %v", el, 2*delay)
		}
		checkOrder(t, n1, n2, 2, 200)
		checkOrder(t, n2, n1, 1, 200)
	}
	p.Delay(0)
	checkOrder(t, n1, n2, 2, 1000)
	ping.stop(t, "node 1 to node 3", true)

	if v, ok := wmb.ReceiveAsync(); ok {
		t.Fatalf("link fired under delay: %#v", v)
	}
	s1, s2 := n1.Stats(), n2.Stats()
	if s1.Connects != before1.Connects || s2.Connects != before2.Connects || s1.PeersUp != 2 || s2.PeersUp != 2 {
		t.Fatalf("the connection broke under delay: before %+v %+v, after %+v %+v", before1, before2, s1, s2)
	}
}

// TestFaultSlowReceiver: node 1 sends to node 2 while the proxy stops
// forwarding node 1's bytes, so node 1's per-peer buffer fills. With a 64
// KiB SendBufferLimit, Send blocks while over the limit and returns an
// error wrapping ErrNodeUnreachable once the connection is declared lost,
// never later; the memory held stays of the order of the limit, though 50
// MB are offered; node 3 keeps working meanwhile.
func TestFaultSlowReceiver(t *testing.T) {
	checkGoroutines(t)
	const limit = 64 << 10
	tc, p := newProxiedCluster(t, func(cfg *Config) { cfg.SendBufferLimit = limit })
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	echo3 := startEcho(t, n3)
	dst, dmb := n2.NewMailbox()
	rdst := n1.BindAddress(dst)
	payload := bytes.Repeat([]byte{0xab}, 16<<10)
	const total = 50 << 20

	heapInuse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heapInuse()

	p.Stall(faultnet.Up, true)
	var (
		inSend    atomic.Int64 // UnixNano when the Send under way began; 0: none
		accepted  atomic.Int64 // bytes Send took
		longest   atomic.Int64 // ns, the longest Send
		firstErr  error
		errAfter  time.Duration
		failed    int
		sendStart = time.Now()
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sent := 0; sent < total; sent += len(payload) {
			s := time.Now()
			inSend.Store(s.UnixNano())
			err := rdst.Send(payload)
			inSend.Store(0)
			d := time.Since(s)
			if int64(d) > longest.Load() {
				longest.Store(int64(d))
			}
			if err != nil {
				if firstErr == nil {
					firstErr, errAfter = err, time.Since(sendStart)
				}
				failed++
				continue
			}
			accepted.Add(int64(len(payload)))
		}
	}()

	// Wait until a Send blocks, then look at the heap and check that node
	// 3 is unaffected.
	var peak uint64
	var sampler sync.WaitGroup
	stopSampling := make(chan struct{})
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopSampler := sync.OnceFunc(func() { close(stopSampling); sampler.Wait() })
	defer stopSampler()
	blocked := false
	for !blocked {
		select {
		case <-done:
			t.Fatalf("Send never blocked on a stalled connection: %d KiB accepted, longest Send %v, first error after %v: %v",
				accepted.Load()>>10, time.Duration(longest.Load()), errAfter, firstErr)
		case <-time.After(5 * time.Millisecond):
		}
		if since := inSend.Load(); since != 0 && time.Since(time.Unix(0, since)) > 50*time.Millisecond {
			blocked = true
		}
	}
	held := heapInuse() // while a Send waits for room: what is retained
	if err := callEcho(n1, echo3, 1); err != nil {
		t.Fatalf("node 3 while node 2's buffer is full: %v", err)
	}
	select {
	case <-done:
	case <-time.After(faultTimeout + faultMargin + 5*time.Second):
		t.Fatal("Send still blocked after the connection should have been declared lost")
	}
	stopSampler()
	after := heapInuse()
	t.Logf("Send: %d KiB accepted of %d MiB offered, %d failed, longest Send %v, first error after %v: %v",
		accepted.Load()>>10, total>>20, failed, time.Duration(longest.Load()), errAfter, firstErr)
	t.Logf("heap in use: %d KiB before, %d KiB while Send blocks, %d KiB peak (garbage included), %d KiB after",
		base>>10, held>>10, peak>>10, after>>10)

	if !errors.Is(firstErr, ErrNodeUnreachable) {
		t.Fatalf("blocked Send returned %v, want ErrNodeUnreachable", firstErr)
	}
	if l := time.Duration(longest.Load()); l > faultTimeout+faultMargin {
		t.Fatalf("a Send blocked for %v, longer than the heartbeat timeout %v + %v", l, faultTimeout, faultMargin)
	}
	if a := accepted.Load(); a > total/2 {
		t.Fatalf("Send accepted %d bytes into a stalled connection", a)
	}
	// Retained: the buffer (up to the limit plus one message), the batch
	// being written (as much again), TLS and reader buffers: well under 1
	// MiB. The peak without GC includes the garbage of 50,000 encodings
	// and failed sends; it must still be nowhere near 50 MB.
	if held > base+1<<20 || after > base+1<<20 {
		t.Fatalf("heap in use grew from %d KiB to %d KiB while blocked, %d KiB after", base>>10, held>>10, after>>10)
	}
	if peak > base+16<<20 {
		t.Fatalf("heap in use peaked at %d KiB, from %d KiB", peak>>10, base>>10)
	}

	p.Stall(faultnet.Up, false)
	tc.connected()
	for dmb.Len() > 0 { // what got through before the stall, intact
		if v, _ := dmb.ReceiveAsync(); !bytes.Equal(v.([]byte), payload) {
			t.Fatal("damaged message")
		}
	}
	checkOrder(t, n1, n2, 2, 500)
}
