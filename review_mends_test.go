package reign

// Mends of the last review, each through real nodes over real sockets:
// relayed replies that must not wait on the origin's send buffer, the
// per-origin bound on forwarded calls, Broadcast against each peer's frame
// limit, JoinGroup on a closing mailbox, and the group bounds' counters.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// fillTo fills node 4's send buffer to the stalled peer past its limit:
// two goroutines send to a mailbox of the peer until the connection ends
// (one ends up writing inline, stuck in the socket; the other's frames
// then pile up in the buffer, and its Send waits for room, as any
// sender's does). It returns once the buffer is over the limit.
func fillTo(t *testing.T, h *hostileCluster, f *recPeer) {
	t.Helper()
	to := Address{n: h.n4, node: absent, inc: f.inc, id: 1}
	text := strings.Repeat("x", 16<<10)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; to.Send(testMsg{Seq: i, Text: text}) == nil; i++ {
				select {
				case <-f.stop:
					return
				default:
				}
			}
		}()
	}
	t.Cleanup(func() { f.close(); wg.Wait() }) // closing ends the connection, and the Sends
	// over the limit, and staying there: the socket takes no more
	p := h.n4.cl.peer(absent)
	cn := p.live.Load()
	over := func() bool {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return len(cn.out) > cn.limit
	}
	checkFor(t, 10*time.Second, func() error {
		sent := p.traffic.msgsOut.Load()
		time.Sleep(200 * time.Millisecond)
		return unless(over() && p.traffic.msgsOut.Load() == sent, "node 4 still sends to the peer")
	})
}

// TestForwardedReplyNeverBlocksReader: node 1 (fake) calls a server on
// node 4 that forwards the Request to node 3, and stops reading. Node 3's
// reply arrives on node 4's reader for node 3, which relays it to node 1.
// Before, the relay waited for room in node 1's full send buffer, on that
// reader: nothing more from node 3 was read until node 1's connection
// timed out. Now the relay never waits: past the send buffer's limit the
// reply is queued against ControlBufferLimit, and node 1 gets it when it
// reads again; a reply that would cross ControlBufferLimit closes node
// 1's connection with CloseLimitExceeded instead (its Call fails there
// through its link), and node 3 is still served.
func TestForwardedReplyNeverBlocksReader(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		name string
		body string
	}{
		{"queued", "small"},
		{"over-control-limit", strings.Repeat("y", 8<<10)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testForwardedReply(t, tt.body)
		})
	}
}

func testForwardedReply(t *testing.T, body string) {
	h := newHostileCluster(t, func(cfg *Config) {
		cfg.HeartbeatTimeout = 20 * time.Second // a stall would last this long
		cfg.SendBufferLimit = 64 << 10
		cfg.ControlBufferLimit = 4 << 10
	})
	f := dialStallPeer(t, h)
	replied := make(chan struct{}, 1)
	srv3, _ := startServer(t, h.n3, func(v any) {
		if r, ok := v.(Request); ok {
			_ = r.Reply(r.Body)
			replied <- struct{}{}
		}
	})
	fwd, _ := startServer(t, h.n4, func(v any) {
		if r, ok := v.(Request); ok {
			_ = h.n4.BindAddress(srv3).Send(r)
		}
	})
	probe, pmb := h.n4.NewMailbox()
	t.Cleanup(pmb.Close)
	fillTo(t, h, f)
	before := h.n4.Stats()

	b := defineTypes(t, h, "")
	b = wire.AppendFrame(b, wire.TypeRequest, wire.AppendRequest(nil, wire.Request{
		To: ref(fwd), ReplyTo: wire.Addr{Node: uint16(absent), Inc: f.inc, ID: 9}, CallRef: 77, TypeID: 1, Body: msgpackOf(t, body)}))
	writeFrames(t, f, b)
	select {
	case <-replied:
	case <-time.After(testTimeout):
		t.Fatal("node 3's server got no forwarded Request")
	}
	// Node 3's reply went out before this message, on the same
	// connection: node 4 reads it only once the relay is done.
	mustSend(t, h.n3.BindAddress(probe), testMsg{Seq: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := pmb.Receive(ctx); err != nil {
		t.Fatalf("node 4's reader for node 3 is stuck relaying a reply to a peer that does not read: %v", err)
	}
	if len(body) < h.n4.cfg.ControlBufferLimit {
		if !f.isUp(h) {
			t.Fatal("node 4 closed the stalled peer's connection for a small reply")
		}
		f.read()
		fr := f.next(t)
		rp, err := wire.ParseReply(fr.payload)
		if fr.t != wire.TypeReply || err != nil || rp.CallRef != 77 || rp.To.ID != 9 {
			t.Fatalf("node 1 got %v %+v (%v), want the Reply to its call 77", fr.t, rp, err)
		}
		return
	}
	checkFor(t, 5*time.Second, func() error {
		st := h.n4.Stats()
		return unless(st.LimitsExceeded[LimitControl] == before.LimitsExceeded[LimitControl]+1 &&
			st.Closes[CloseLimitExceeded] == before.Closes[CloseLimitExceeded]+1,
			"limits %v, closes %v", st.LimitsExceeded, st.Closes)
	})
}

func (f *recPeer) isUp(h *hostileCluster) bool {
	return h.n4.Stats().Peers[absent].Up
}

// TestForwardedBoundPerPeer: a peer (the fake node 1) makes node 4's
// forwarding server pass 65,536 calls to node 3, where nobody answers
// them. Before, that bound was node 4's, for all peers: node 2's call
// through the same server was then refused (and, told nothing, waited
// for its timeout). Now each peer has its own (MaxPeerForwarded): node
// 2's call goes through, and node 1's next forward crosses its bound and
// closes its connection with CloseLimitExceeded, counted as "forwarded".
func TestForwardedBoundPerPeer(t *testing.T) {
	checkGoroutines(t)
	const bound = 1 << 16 // DefaultMaxPeerForwarded
	h := newHostileCluster(t, nil)
	f := dialRecPeer(t, h)
	srv3, _ := startServer(t, h.n3, func(v any) {
		if r, ok := v.(Request); ok && r.Body == "honest" {
			_ = r.Reply("answered")
		}
	})
	var forwarded, refused atomic.Int64
	fwd, _ := startServer(t, h.n4, func(v any) {
		if r, ok := v.(Request); ok {
			if h.n4.BindAddress(srv3).Send(r) == nil {
				forwarded.Add(1)
			} else {
				refused.Add(1)
			}
		}
	})
	request := func(b []byte, i int) []byte {
		return wire.AppendFrame(b, wire.TypeRequest, wire.AppendRequest(nil, wire.Request{
			To: ref(fwd), ReplyTo: wire.Addr{Node: uint16(absent), Inc: 0x5eed, ID: 9}, CallRef: uint64(i + 1), TypeID: 1, Body: msgpackOf(t, "x")}))
	}
	b := defineTypes(t, h, "")
	for i := range bound {
		b = request(b, i)
		if len(b) > 64<<10 {
			writeFrames(t, f, b)
			b = b[:0]
		}
	}
	writeFrames(t, f, b)
	checkFor(t, 60*time.Second, func() error {
		return unless(forwarded.Load() == bound, "forwarded %d of node 1's calls (%d refused)", forwarded.Load(), refused.Load())
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if v, err := Call(ctx, h.n2.BindAddress(fwd), "honest"); err != nil || v != "answered" {
		t.Fatalf("node 2's forwarded call, node 1 at its bound: %v, %v", v, err)
	}

	before := h.n4.Stats()
	writeFrames(t, f, request(nil, bound))
	checkFor(t, 5*time.Second, func() error {
		st := h.n4.Stats()
		return unless(st.LimitsExceeded[LimitForwarded] == before.LimitsExceeded[LimitForwarded]+1 &&
			st.Closes[CloseLimitExceeded] == before.Closes[CloseLimitExceeded]+1 && refused.Load() == 1,
			"limits %v, closes %v, refused %d", st.LimitsExceeded, st.Closes, refused.Load())
	})
	f.hangUp(t, h)
}

// TestBroadcastSkipsSmallFrameLimit: node 3 accepts frames of at most 64
// KiB; node 1 broadcasts 100 KiB to a group with members on nodes 1, 2
// and 3. Before, Broadcast checked only node 1's own frame limit, and
// node 3's refusal came as an error after the others had been sent to,
// against its doc (an error meant "sent to nobody"), and was counted
// nowhere. Now the members on node 3 are skipped and counted
// (Stats.BroadcastSkipped), the others get it, the error wraps
// ErrFrameTooLarge and names node 3, and node 3 still gets what fits.
func TestBroadcastSkipsSmallFrameLimit(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, func(c *Config) {
		if c.NodeID == 3 {
			c.MaxFrameSize = 64 << 10
		}
	})
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)
	a1, m1 := newTestMailbox(t, n1)
	a2, m2 := newTestMailbox(t, n2)
	a3, m3 := newTestMailbox(t, n3)
	b3, mb3 := newTestMailbox(t, n3)
	for _, j := range []struct {
		n *Node
		a Address
	}{{n1, a1}, {n2, a2}, {n3, a3}, {n3, b3}} {
		if err := j.n.JoinGroup("g", j.a); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, testTimeout, func() error {
		return unless(len(n1.Members("g")) == 4, "node 1 sees %d members", len(n1.Members("g")))
	})
	big := strings.Repeat("z", 100<<10)
	k, err := n1.Broadcast("g", big)
	if k != 2 || !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "[3]") {
		t.Fatalf("Broadcast of 100 KiB = %d, %v; want 2 and ErrFrameTooLarge naming node 3", k, err)
	}
	if got := n1.Stats().BroadcastSkipped; got != 2 {
		t.Fatalf("BroadcastSkipped = %d, want 2 (node 3's members)", got)
	}
	for _, m := range []*Mailbox{m1, m2} {
		if v := recv(t, m); v != big {
			t.Fatalf("a member got %.20v", v)
		}
	}
	if k, err := n1.Broadcast("g", "small"); k != 4 || err != nil {
		t.Fatalf("Broadcast of a small message = %d, %v", k, err)
	}
	for _, m := range []*Mailbox{m1, m2, m3, mb3} {
		if v := recv(t, m); v != "small" {
			t.Fatalf("a member got %.20v, want the small message (and never the big one)", v)
		}
	}
}

// TestJoinGroupMailboxClosing: the mailbox closes while JoinGroup runs
// (here: another goroutine closes it when the Tracer sees the join's
// GroupChanged sent to a watcher, after the membership was made and
// before JoinGroup returns; the Tracer waits until the mailbox is gone
// from the node's table, the first step of Close).
// The membership is dropped with the mailbox; before, JoinGroup still
// returned nil, as if the mailbox were a member. Now it returns an error
// wrapping ErrMailboxClosed, and no node lists the mailbox.
func TestJoinGroupMailboxClosing(t *testing.T) {
	t.Parallel()
	var closing atomic.Pointer[Mailbox]
	var closer sync.WaitGroup
	t.Cleanup(closer.Wait)
	tc := newTestCluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.Tracer = func(ev TraceEvent) {
				if _, ok := ev.Msg.(GroupChanged); ok && ev.Kind == TraceSend {
					if m := closing.Swap(nil); m != nil {
						closer.Go(m.Close)
						for m.n.table.lookup(m.id) != nil {
							time.Sleep(time.Millisecond)
						}
					}
				}
			}
		}
	})
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	w, wm := newTestMailbox(t, n1)
	if _, err := n1.MonitorGroup("g", w); err != nil {
		t.Fatal(err)
	}
	a, m := n1.NewMailbox()
	closing.Store(m)
	if err := n1.JoinGroup("g", a); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("JoinGroup of a mailbox that closed during the call = %v, want ErrMailboxClosed", err)
	}
	if closing.Load() != nil {
		t.Fatal("the mailbox did not close during JoinGroup")
	}
	_ = recv(t, wm) // the join
	if gc, ok := recv(t, wm).(GroupChanged); !ok || len(gc.Left) != 1 || gc.Left[0] != a {
		t.Fatalf("the watcher got %+v, want the mailbox's leave", gc)
	}
	flushPeers(t, n1, n2) // what node 1 sent node 2 has arrived
	b, _ := newTestMailbox(t, n2)
	if err := n2.JoinGroup("g", b); err != nil {
		t.Fatal(err)
	}
	if ms := n2.Members("g"); len(ms) != 1 || ms[0] != b {
		t.Fatalf("node 2 lists %v, want only its own member", ms)
	}
}
