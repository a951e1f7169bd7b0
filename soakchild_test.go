package reign

// The child side of TestSoak: the test binary started with soakSpecEnv set
// runs one soak node (see runSoakChild) instead of the tests.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Environment of a soak child.
const (
	soakSpecEnv = "REIGN_SOAK_CHILD_SPEC" // cluster spec file; set: be a soak child
	soakIDEnv   = "REIGN_SOAK_CHILD_ID"   // this node's ID
	soakOutEnv  = "REIGN_SOAK_CHILD_OUT"  // where to write the summary
	soakSeedEnv = "REIGN_SOAK_CHILD_SEED" // random seed
)

// The soak cluster: node 1 is the test process (the flooder), nodes 2..4
// are children. Slot k (0 <= k < soakSlots) is a mailbox on node
// soakFirst+k%soakChildren, registered as "soak/k".
const (
	soakSlots    = 1000
	soakChildren = 3
	soakFirst    = NodeID(2)
	soakSinkNode = NodeID(4) // behind the throttling proxy; hosts "soak/sink"
	soakAliases  = 40        // names "soak/alias/j" claimed by random mailboxes
	soakWorkers  = 2         // worker goroutines per child
	soakLimit    = 256 << 10 // every node's SendBufferLimit
)

// soakMsg is one soak message: the Seq-th message From sent to its
// destination (per sender and destination, from 1).
type soakMsg struct {
	From Address
	Seq  uint64
}

func init() {
	if path := os.Getenv(soakSpecEnv); path != "" {
		os.Exit(runSoakChild(path))
	}
}

// soakConfig is the Config of every soak node.
func soakConfig(id NodeID, spec *ClusterSpec) Config {
	return Config{
		NodeID:            id,
		Cluster:           spec,
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  3 * time.Second,
		HandshakeTimeout:  3 * time.Second,
		SendBufferLimit:   soakLimit,
	}
}

// Summaries, written by a child that exits cleanly (gob).

type soakSummary struct {
	Node     NodeID
	Inc      uint32
	Boxes    []soakBoxSum
	Counts   soakCounts
	Sink     []soakSinkSum // node 4 only: flood receipts per flood goroutine
	FlushErr string
	Stats    Stats
	PeakHeap uint64
}

type soakCounts struct {
	Iterations, Sends, SendErrs, Links, Lookups, LookupMisses int64
	Registrations, AliasClaims, AliasReleases, Closes         int64
	MultipleClaims, Unexpected                                int64
	Notified                                                  [8]int64 // by Reason
}

type soakBoxSum struct {
	Slot   int
	Addr   string
	Closed bool // closed by its worker during the run
	Sent   []soakSentSum
	Recv   []soakRecvSum
}

type soakSentSum struct {
	To     string
	N      uint64 // messages sent (Send returned nil), Seq 1..N
	Reason int    // the MailboxClosed received for To, -1 if none
}

type soakRecvSum struct {
	From      string
	N, Last   uint64 // messages received, and the last Seq
	Bad       uint64 // received out of order or twice
	FirstBad  string
	FirstSeqs []uint64 // the first few Seqs, for diagnosis
}

type soakSinkSum struct {
	Stream      int
	N, Bytes    uint64
	Bad, Last   uint64
	FirstBadMsg string
}

// Child state.

type soakDest struct {
	n      uint64
	reason int
}

type soakRecv struct {
	n, last, bad uint64
	firstBad     string
	first        []uint64
}

type soakBox struct {
	slot   int
	addr   Address
	mb     *Mailbox
	closed bool
	dests  map[Address]*soakDest
	recv   map[Address]*soakRecv
	order  []Address // dests in order of first use
}

type soakChild struct {
	n      *Node
	id     NodeID
	rng    *rand.Rand
	mu     sync.Mutex // guards boxes (a worker owns its own slots' boxes)
	boxes  []*soakBox // every box ever made, closed ones included
	counts soakCounts
	cmu    sync.Mutex // guards counts
}

func runSoakChild(specPath string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "soak child:", err)
		return 2
	}
	id64, err := strconv.ParseUint(os.Getenv(soakIDEnv), 10, 16)
	if err != nil {
		return fail(err)
	}
	seed, _ := strconv.ParseUint(os.Getenv(soakSeedEnv), 10, 64)
	id := NodeID(id64)
	spec, err := LoadClusterSpec(specPath)
	if err != nil {
		return fail(err)
	}
	n, err := NewNode(soakConfig(id, spec))
	if err != nil {
		return fail(err)
	}
	if err := n.RegisterType(soakMsg{}); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx) }()

	var peak atomic.Uint64
	var bg sync.WaitGroup
	bgStop := make(chan struct{})
	bg.Go(func() { // heap sampler
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-bgStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	// The control mailbox answers the flush barrier's Calls.
	ctlAddr, ctl := n.NewMailbox()
	if err := n.Register(fmt.Sprintf("soak/ctl/%d", id), ctlAddr); err != nil {
		return fail(err)
	}
	bg.Go(func() {
		for {
			v, err := ctl.Receive(context.Background())
			if err != nil {
				return
			}
			if r, ok := v.(Request); ok {
				_ = r.Reply("flushed")
			}
		}
	})

	// The sink (node 4) reads the flood as fast as it comes.
	var sinkMu sync.Mutex
	sinks := map[int]*soakSinkSum{}
	var sink *Mailbox
	if id == soakSinkNode {
		var sinkAddr Address
		sinkAddr, sink = n.NewMailbox()
		if err := n.Register("soak/sink", sinkAddr); err != nil {
			return fail(err)
		}
		bg.Go(func() {
			for {
				v, err := sink.Receive(context.Background())
				if err != nil {
					return
				}
				b, ok := v.([]byte)
				if !ok || len(b) < 16 {
					continue
				}
				stream, seq := int(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint64(b[8:])
				sinkMu.Lock()
				s := sinks[stream]
				if s == nil {
					s = &soakSinkSum{Stream: stream}
					sinks[stream] = s
				}
				if seq <= s.Last && s.Bad == 0 {
					s.FirstBadMsg = fmt.Sprintf("seq %d after %d", seq, s.Last)
				}
				if seq <= s.Last {
					s.Bad++
				}
				s.N++
				s.Bytes += uint64(len(b))
				s.Last = seq
				sinkMu.Unlock()
			}
		})
	}

	c := &soakChild{n: n, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id)))}
	// Make this node's slots, each worker's share.
	shares := make([][]*soakBox, soakWorkers)
	k := 0
	for slot := int(id - soakFirst); slot < soakSlots; slot += soakChildren {
		b := c.newBox(slot)
		shares[k%soakWorkers] = append(shares[k%soakWorkers], b)
		k++
	}
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for w := range soakWorkers {
		rng := rand.New(rand.NewPCG(seed+uint64(w)+1, uint64(id)))
		workers.Go(func() { c.work(shares[w], rng, stop) })
	}

	// Commands from the test, one a line, on standard input.
	out := bufio.NewWriter(os.Stdout)
	say := func(s string) { fmt.Fprintln(out, s); _ = out.Flush() }
	var flushErr error
	in := bufio.NewScanner(os.Stdin)
	stopped := false
	for in.Scan() {
		switch in.Text() {
		case "stop":
			if !stopped {
				close(stop)
				workers.Wait()
				stopped = true
			}
			say("stopped")
		case "flush":
			flushErr = c.flush()
			say("flushed")
		case "finish":
			if !stopped {
				return fail(errors.New("finish before stop"))
			}
			for _, ws := range shares {
				for _, b := range ws {
					c.drain(b, -1)
				}
			}
			sum := c.summary()
			if flushErr != nil {
				sum.FlushErr = flushErr.Error()
			}
			sinkMu.Lock()
			for _, s := range sinks {
				sum.Sink = append(sum.Sink, *s)
			}
			sinkMu.Unlock()
			sum.PeakHeap = peak.Load()
			sum.Stats = n.Stats()
			f, err := os.Create(os.Getenv(soakOutEnv))
			if err != nil {
				return fail(err)
			}
			if err := gob.NewEncoder(f).Encode(sum); err != nil {
				return fail(err)
			}
			if err := f.Close(); err != nil {
				return fail(err)
			}
			say("done")
		case "exit":
			ctl.Close()
			if sink != nil {
				sink.Close()
			}
			close(bgStop)
			bg.Wait()
			cancel()
			<-served
			return 0
		}
	}
	return 0 // standard input closed: the test is gone
}

// newBox makes and registers the mailbox of slot.
func (c *soakChild) newBox(slot int) *soakBox {
	a, mb := c.n.NewMailbox()
	b := &soakBox{slot: slot, addr: a, mb: mb, dests: map[Address]*soakDest{}, recv: map[Address]*soakRecv{}}
	c.mu.Lock()
	c.boxes = append(c.boxes, b)
	c.mu.Unlock()
	if err := c.n.Register(fmt.Sprintf("soak/%d", slot), a); err != nil {
		panic(err)
	}
	c.count(func(k *soakCounts) { k.Registrations++ })
	return b
}

func (c *soakChild) count(f func(*soakCounts)) {
	c.cmu.Lock()
	f(&c.counts)
	c.cmu.Unlock()
}

// work runs random operations on the boxes of its share until stop.
func (c *soakChild) work(share []*soakBox, rng *rand.Rand, stop <-chan struct{}) {
	var k soakCounts
	defer c.count(func(t *soakCounts) {
		t.Iterations += k.Iterations
		t.Sends += k.Sends
		t.SendErrs += k.SendErrs
		t.Links += k.Links
		t.Lookups += k.Lookups
		t.LookupMisses += k.LookupMisses
		t.AliasClaims += k.AliasClaims
		t.AliasReleases += k.AliasReleases
		t.Closes += k.Closes
	})
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if i%16 == 15 {
			time.Sleep(time.Millisecond) // leave the machine some air
		}
		k.Iterations++
		bi := rng.IntN(len(share))
		b := share[bi]
		c.drain(b, 64)
		switch r := rng.IntN(1000); {
		case r < 5: // close this mailbox; a new one takes its slot
			c.drain(b, -1)
			b.mb.Close()
			b.closed = true
			k.Closes++
			share[bi] = c.newBox(b.slot)
		case r < 20: // claim a shared name (several nodes may hold it)
			k.AliasClaims++
			if err := c.n.Register(fmt.Sprintf("soak/alias/%d", rng.IntN(soakAliases)), b.addr); err != nil {
				panic(err)
			}
		case r < 30:
			k.AliasReleases++
			c.n.Unregister(fmt.Sprintf("soak/alias/%d", rng.IntN(soakAliases)), b.addr)
		default: // a burst of messages to a mailbox on another node
			name := fmt.Sprintf("soak/%d", rng.IntN(soakSlots))
			if r < 100 {
				name = fmt.Sprintf("soak/alias/%d", rng.IntN(soakAliases))
			}
			k.Lookups++
			to, ok := c.n.Lookup(name)
			if !ok || to.NodeID() == c.id {
				k.LookupMisses++
				continue
			}
			d := b.dests[to]
			if d == nil {
				d = &soakDest{reason: -1}
				b.dests[to] = d
				b.order = append(b.order, to)
				to.OnCloseNotify(b.addr) // link first: every loss is then told
				k.Links++
			}
			for range 1 + rng.IntN(5) {
				if d.reason >= 0 {
					break // told it is gone: stop sending
				}
				if err := to.Send(soakMsg{From: b.addr, Seq: d.n + 1}); err != nil {
					k.SendErrs++ // not sent (no connection): the Seq is reused
					break
				}
				d.n++
				k.Sends++
			}
		}
	}
}

// drain records up to max (-1: all) queued messages of b.
func (c *soakChild) drain(b *soakBox, max int) {
	for i := 0; max < 0 || i < max; i++ {
		v, ok := b.mb.ReceiveAsync()
		if !ok {
			return
		}
		switch m := v.(type) {
		case soakMsg:
			r := b.recv[m.From]
			if r == nil {
				r = &soakRecv{}
				b.recv[m.From] = r
			}
			if m.Seq <= r.last {
				if r.bad == 0 {
					r.firstBad = fmt.Sprintf("seq %d after %d (%d received)", m.Seq, r.last, r.n)
				}
				r.bad++
			}
			if len(r.first) < 8 {
				r.first = append(r.first, m.Seq)
			}
			r.n++
			r.last = max64(r.last, m.Seq)
		case MailboxClosed:
			c.count(func(k *soakCounts) { k.Notified[m.Reason&7]++ })
			d := b.dests[m.Address]
			if d == nil {
				c.count(func(k *soakCounts) { k.Unexpected++ })
				continue
			}
			if d.reason < 0 {
				d.reason = int(m.Reason)
			}
		case MultipleClaim:
			c.count(func(k *soakCounts) { k.MultipleClaims++ })
		default:
			c.count(func(k *soakCounts) { k.Unexpected++ })
		}
	}
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// flush is the end-of-run barrier: a Call to the control mailbox of every
// other soak child returns after that node has dispatched every frame this
// node sent it before (frames are processed in order on a connection).
func (c *soakChild) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for id := soakFirst; id < soakFirst+soakChildren; id++ {
		if id == c.id {
			continue
		}
		for {
			a, ok := c.n.Lookup(fmt.Sprintf("soak/ctl/%d", id))
			if ok {
				if _, err := Call(ctx, a, "flush"); err == nil {
					break
				} else if ctx.Err() != nil {
					return fmt.Errorf("flush to node %d: %w", id, err)
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("flush to node %d: %w", id, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *soakChild) summary() soakSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := soakSummary{Node: c.id, Inc: c.n.inc, Counts: c.counts}
	for _, b := range c.boxes {
		bs := soakBoxSum{Slot: b.slot, Addr: b.addr.String(), Closed: b.closed}
		for _, to := range b.order {
			d := b.dests[to]
			bs.Sent = append(bs.Sent, soakSentSum{To: to.String(), N: d.n, Reason: d.reason})
		}
		for from, r := range b.recv {
			bs.Recv = append(bs.Recv, soakRecvSum{From: from.String(), N: r.n, Last: r.last, Bad: r.bad, FirstBad: r.firstBad, FirstSeqs: r.first})
		}
		s.Boxes = append(s.Boxes, bs)
	}
	return s
}
