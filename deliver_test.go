package reign

// The reader delivers the messages of consecutive Message frames for one
// mailbox in batches (conn.go: msgBatch). These tests send many frames in
// one write, so they arrive buffered together, from the fake node 1 of
// hostile_test.go to node 4, and check that batching changes nothing a
// user can see: order, what is traced and in which order, and the counters.

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/reign-go/reign/internal/wire"
)

// peerTrace collects node 4's trace events of messages from the fake peer.
type peerTrace struct {
	mu     sync.Mutex
	events []TraceEvent
}

func (p *peerTrace) add(e TraceEvent) {
	if e.Peer != absent || (e.Kind != TraceDeliver && e.Kind != TraceDrop) {
		return
	}
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *peerTrace) take() []TraceEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.events
	p.events = nil
	return out
}

// tracedCluster is a hostile cluster whose node 4 traces into the
// returned peerTrace, with a fake node 1 connected to it.
func tracedCluster(t *testing.T) (*hostileCluster, *fakePeer, *peerTrace) {
	t.Helper()
	tr := &peerTrace{}
	h := newHostileCluster(t, func(cfg *Config) {
		if cfg.NodeID == attacked {
			cfg.Tracer = tr.add
		}
	})
	return h, dialFakePeer(t, h), tr
}

func messageFrame(t *testing.T, b []byte, to Address, typeID uint32, v any) []byte {
	t.Helper()
	body := []byte{0xc1} // never valid msgpack
	if v != nil {
		body = msgpackOf(t, v)
	}
	return wire.AppendFrame(b, wire.TypeMessage, wire.AppendMessage(nil, wire.Message{To: ref(to), TypeID: typeID, Body: body}))
}

// Frames for two mailboxes, interleaved, with drops (a closed mailbox,
// an undecodable body) and a frame of another type among them, and runs
// longer than a batch, all in one write: each mailbox receives its
// messages in order, the tracer sees every delivery and drop in frame
// order, and the counters move by exactly the frames sent.
func TestDeliverBatchedInOrder(t *testing.T) {
	h, f, tr := tracedCluster(t)
	a, ma := h.n4.NewMailbox()
	b, mb := h.n4.NewMailbox()
	c, mc := h.n4.NewMailbox()
	t.Cleanup(ma.Close)
	t.Cleanup(mb.Close)
	mc.Close()
	from := h.n4.BindAddress(a) // an Address in the messages, to be bound

	type sent struct {
		to   Address
		seq  int // 0: undecodable
		drop error
	}
	var plan []sent
	for i := range 3 * maxBatch {
		to := a
		switch {
		case i%50 == 7:
			to = b
		case i == 100:
			plan = append(plan, sent{c, 1000, ErrMailboxClosed})
		case i == 120:
			plan = append(plan, sent{a, 0, ErrDecode})
		}
		plan = append(plan, sent{to, i + 1, nil})
	}
	var wr []byte
	wr = append(wr, defineTypes(t, h, testMsg{})...)
	for i, s := range plan {
		if i == 150 {
			wr = wire.AppendFrame(wr, wire.TypeHeartbeat, nil)
		}
		if s.seq == 0 {
			wr = messageFrame(t, wr, s.to, 1, nil)
		} else {
			wr = messageFrame(t, wr, s.to, 1, testMsg{Seq: s.seq, From: a})
		}
	}
	before := h.n4.Stats()
	if err := f.write(wr); err != nil {
		t.Fatal(err)
	}

	var want []string
	delivered := map[Address][]int{}
	for _, s := range plan {
		if s.drop == nil {
			delivered[s.to] = append(delivered[s.to], s.seq)
			want = append(want, fmt.Sprintf("deliver %d %v", s.seq, s.to))
		} else {
			want = append(want, fmt.Sprintf("drop %v %v", s.to, s.drop))
		}
	}
	for to, mbx := range map[Address]*Mailbox{a: ma, b: mb} {
		for _, seq := range delivered[to] {
			got, ok := recv(t, mbx).(testMsg)
			if !ok || got.Seq != seq || got.From != from || got.From.n != h.n4 {
				t.Fatalf("%v received %+v, want seq %d from %v, bound", to, got, seq, from)
			}
		}
	}
	var evs []TraceEvent
	checkFor(t, testTimeout, func() error {
		evs = append(evs, tr.take()...)
		return unless(len(evs) >= len(want), "%d trace events, want %d", len(evs), len(want))
	})
	var got []string
	for _, e := range evs {
		if e.Kind == TraceDeliver {
			got = append(got, fmt.Sprintf("deliver %d %v", e.Msg.(testMsg).Seq, e.To))
			continue
		}
		err := ErrMailboxClosed
		if !errors.Is(e.Err, err) {
			err = ErrDecode
		}
		got = append(got, fmt.Sprintf("drop %v %v", e.To, err))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("trace event %d: got %q, want %q", i, got[i], want[i])
			}
		}
		t.Fatalf("%d trace events, want %d", len(got), len(want))
	}
	after := h.n4.Stats()
	if d := after.DroppedClosed - before.DroppedClosed; d != 1 {
		t.Errorf("DroppedClosed moved by %d, want 1", d)
	}
	if d := after.DroppedUndecodable - before.DroppedUndecodable; d != 1 {
		t.Errorf("DroppedUndecodable moved by %d, want 1", d)
	}
	if d := after.Peers[absent].MessagesIn - before.Peers[absent].MessagesIn; d != uint64(len(plan)-2) {
		t.Errorf("MessagesIn moved by %d, want %d", d, len(plan)-2)
	}
}

// A mailbox closes while the reader holds a batch for it: the whole batch
// is dropped, counted and traced as drops (with the messages), as single
// pushes to a closed mailbox were; the reader goes on with the next
// mailbox. The conn is not running: the test is its reader.
func TestDeliverBatchToClosedMailbox(t *testing.T) {
	var log traceLog
	tc := newTestCluster(t, 2, func(cfg *Config) { cfg.Tracer = log.add })
	tc.stopAll()
	cfg := tc.config(2, nil)
	cfg.Listener = nil
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RegisterType(testMsg{}); err != nil {
		t.Fatal(err)
	}
	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	c := newConn(n.cl.peer(1), x, handshaken{})
	if err := handleTypeDef(c, wire.AppendTypeDef(nil, wire.TypeDef{ID: 1, Name: n.typeNameOf(testMsg{})})); err != nil {
		t.Fatal(err)
	}
	a, ma := n.NewMailbox()
	b, mb := n.NewMailbox()
	defer mb.Close()
	msg := func(to Address, seq int) {
		t.Helper()
		if err := handleMessage(c, wire.AppendMessage(nil, wire.Message{To: ref(to), TypeID: 1, Body: msgpackOf(t, testMsg{Seq: seq})})); err != nil {
			t.Fatal(err)
		}
	}
	before := n.Stats()
	msg(a, 1)
	msg(a, 2)
	msg(a, 3)
	if evs := log.take(); len(evs) != 0 || ma.Len() != 0 {
		t.Fatalf("before the batch was pushed: %d queued, events %q", ma.Len(), brief(evs))
	}
	ma.Close()
	log.take()
	msg(b, 4) // pushes a's batch, and holds b's
	c.flushBatch()
	evs := log.take()
	want := []string{
		fmt.Sprintf("drop reign.testMsg %v peer=1 err", a),
		fmt.Sprintf("drop reign.testMsg %v peer=1 err", a),
		fmt.Sprintf("drop reign.testMsg %v peer=1 err", a),
		fmt.Sprintf("deliver reign.testMsg %v peer=1", b),
	}
	if fmt.Sprint(brief(evs)) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %q\nwant %q", brief(evs), want)
	}
	for i, e := range evs[:3] {
		if !errors.Is(e.Err, ErrMailboxClosed) || e.Msg.(testMsg).Seq != i+1 {
			t.Fatalf("drop %d: %+v", i, e)
		}
	}
	after := n.Stats()
	if d := after.DroppedClosed - before.DroppedClosed; d != 3 {
		t.Errorf("DroppedClosed moved by %d, want 3", d)
	}
	if d := after.Peers[1].MessagesIn - before.Peers[1].MessagesIn; d != 1 {
		t.Errorf("MessagesIn moved by %d, want 1", d)
	}
	if got, ok := mb.ReceiveAsync(); !ok || got.(testMsg).Seq != 4 {
		t.Fatalf("b holds %v, %v", got, ok)
	}
}
