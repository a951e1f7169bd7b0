package reign

// Calls against a peer with a valid certificate (the fake node 1 of
// hostile_test.go) attacking node 4: forged replies, replies to mailboxes
// that made no call, requests whose reply address names a third node, and
// requests node 4 cannot decode, which it must answer with CallFailed.

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

func TestHostileCalls(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"forged-replies", testHostileForgedReplies},
		{"reply-without-call", testHostileReplyWithoutCall},
		{"reflected-request", testHostileReflectedRequest},
		{"undeliverable-request", testHostileUndeliverableRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// frame is one frame node 4 sent the recording peer.
type frame struct {
	t       wire.Type
	payload []byte
}

// recPeer is a fakePeer (node 1's certificate, a correct handshake) that
// also keeps the call frames node 4 sends it: Reply and CallFailed. A
// stalled one (dialStallPeer) reads nothing until read is called: it
// heartbeats, so node 4 keeps it, but node 4's writes to it back up.
type recPeer struct {
	conn   *tls.Conn
	inc    uint32
	wmu    sync.Mutex
	frames chan frame
	resume chan struct{} // closed by read: the reader starts
	stop   chan struct{}
	once   sync.Once
	ronce  sync.Once
	wg     sync.WaitGroup
}

func dialRecPeer(t *testing.T, h *hostileCluster) *recPeer {
	t.Helper()
	f := dialFakeReader(t, h)
	f.read()
	return f
}

// dialStallPeer is dialRecPeer for a peer that does not read until read.
func dialStallPeer(t *testing.T, h *hostileCluster) *recPeer {
	t.Helper()
	return dialFakeReader(t, h)
}

// read lets a stalled peer read.
func (f *recPeer) read() { f.ronce.Do(func() { close(f.resume) }) }

func dialFakeReader(t *testing.T, h *hostileCluster) *recPeer {
	t.Helper()
	cert := nodeCert(t, absent)
	tc := dialTLS(t, h.addr, &cert)
	if tc == nil {
		t.Fatal("TLS refused for a good certificate")
	}
	f := &recPeer{conn: tc, inc: 0x5eed, frames: make(chan frame, 64), resume: make(chan struct{}), stop: make(chan struct{})}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteHello(tc, attackerHello(absent, f.inc)); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(tc, DefaultMaxFrameSize)
	if _, err := wire.ReadHello(r); err != nil {
		t.Fatalf("node's hello: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	ended := make(chan struct{})
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		defer close(ended)
		select {
		case <-f.resume:
		case <-f.stop:
			return
		}
		for {
			ft, p, err := r.Next()
			if err != nil {
				return
			}
			if ft == wire.TypeReply || ft == wire.TypeCallFailed {
				select {
				case f.frames <- frame{ft, append([]byte(nil), p...)}:
				default: // the test reads what it expects; more is a failure it sees
				}
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		hb := wire.AppendFrame(nil, wire.TypeHeartbeat, nil)
		for {
			select {
			case <-f.stop:
				return
			case <-ended:
				return
			case <-time.After(faultHeartbeat):
			}
			if f.write(hb) != nil {
				return
			}
		}
	}()
	t.Cleanup(f.close)
	checkFor(t, 5*time.Second, func() error {
		return unless(h.n4.Stats().PeersUp == 3, "node 4 has %d peers up, want 3", h.n4.Stats().PeersUp)
	})
	return f
}

func (f *recPeer) write(b []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := f.conn.Write(b)
	return err
}

func (f *recPeer) close() {
	f.once.Do(func() { close(f.stop) })
	_ = f.conn.Close()
	f.wg.Wait()
}

// next returns the next call frame node 4 sent.
func (f *recPeer) next(t *testing.T) frame {
	t.Helper()
	select {
	case fr := <-f.frames:
		return fr
	case <-time.After(testTimeout):
		t.Fatal("node 4 sent no Reply or CallFailed")
	}
	return frame{}
}

// hangUp closes the peer and waits until node 4 has let it go.
func (f *recPeer) hangUp(t *testing.T, h *hostileCluster) {
	t.Helper()
	f.close()
	checkFor(t, 5*time.Second, func() error {
		return unless(h.n4.Stats().PeersUp == 2, "node 4 has %d peers up, want 2", h.n4.Stats().PeersUp)
	})
}

func writeFrames(t *testing.T, w interface{ write([]byte) error }, b []byte) {
	t.Helper()
	if err := w.write(b); err != nil {
		t.Fatal(err)
	}
}

// defineTypes defines type numbers 1, 2, ... on the peer's connection as
// node 4's names for the given values' types.
func defineTypes(t *testing.T, h *hostileCluster, vs ...any) []byte {
	t.Helper()
	var b []byte
	for i, v := range vs {
		b = wire.AppendFrame(b, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: uint32(i + 1), Name: h.n4.typeNameOf(v)}))
	}
	return b
}

func msgpackOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := MsgpackCodec{}.Marshal(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A Call from node 4 to node 2 is in flight, and the attacker knows
// everything about it: the reply mailbox, and even the reference on the
// wire (read off node 2's copy of the Request). It sprays 2,048 Reply
// frames and as many CallFailed frames with every reference near it.
// Before, one of them answered the call with the attacker's value; now
// only node 2 can answer it, and every forgery is dropped and counted.
func testHostileForgedReplies(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialRecPeer(t, h)
	srv, smb := h.n2.NewMailbox()
	t.Cleanup(smb.Close)
	type result struct {
		v   any
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := Call(testCtx(t), h.n4.BindAddress(srv), 1)
		res <- result{v, err}
	}()
	req, ok := recv(t, smb).(Request)
	if !ok {
		t.Fatal("the server did not get the Request")
	}
	before := h.n4.Stats().DroppedUnmatchedReply
	b := defineTypes(t, h, "")
	guesses := []uint64{req.ref}
	for r := range uint64(2047) {
		guesses = append(guesses, r+1)
	}
	forged := msgpackOf(t, "forged")
	for _, r := range guesses {
		b = wire.AppendFrame(b, wire.TypeReply, wire.AppendReply(nil, wire.Reply{To: ref(req.ReplyTo()), CallRef: r, TypeID: 1, Body: forged}))
		b = wire.AppendFrame(b, wire.TypeCallFailed, wire.AppendCallFailed(nil, wire.CallFailed{CallRef: r, Node: 2, Code: wire.CallFailedUnknownType, Type: "forged"}))
	}
	writeFrames(t, f, b)
	want := uint64(2 * len(guesses))
	checkFor(t, 5*time.Second, func() error {
		d := h.n4.Stats().DroppedUnmatchedReply - before
		return unless(d >= want, "%d of %d forged answers dropped", d, want)
	})
	select {
	case r := <-res:
		t.Fatalf("a forgery answered the call: %v, %v", r.v, r.err)
	default:
	}
	if err := req.Reply("genuine"); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || r.v != "genuine" {
		t.Fatalf("Call = %v, %v; want node 2's reply", r.v, r.err)
	}
	if d := h.n4.Stats().DroppedUnmatchedReply - before; d != want {
		t.Fatalf("DroppedUnmatchedReply moved by %d, want %d", d, want)
	}
	f.hangUp(t, h)
}

// A Reply frame to a user mailbox that made no Call: before, it delivered
// the internal callReply value into the mailbox; now it is dropped and
// counted, and the message after it arrives alone.
func testHostileReplyWithoutCall(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialRecPeer(t, h)
	dst, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	before := h.n4.Stats().DroppedUnmatchedReply
	b := defineTypes(t, h, "", testMsg{})
	for r := range uint64(16) {
		b = wire.AppendFrame(b, wire.TypeReply, wire.AppendReply(nil, wire.Reply{To: ref(dst), CallRef: r, TypeID: 1, Body: msgpackOf(t, "leak")}))
	}
	b = wire.AppendFrame(b, wire.TypeMessage, wire.AppendMessage(nil, wire.Message{To: ref(dst), TypeID: 2, Body: msgpackOf(t, testMsg{Seq: 1})}))
	writeFrames(t, f, b)
	if got, ok := recv(t, mb).(testMsg); !ok || got.Seq != 1 {
		t.Fatalf("the mailbox received %#v, want the message only", got)
	}
	if v, ok := mb.ReceiveAsync(); ok {
		t.Fatalf("also delivered: %#v", v)
	}
	if d := h.n4.Stats().DroppedUnmatchedReply - before; d != 16 {
		t.Fatalf("DroppedUnmatchedReply moved by %d, want 16", d)
	}
	f.hangUp(t, h)
}

// A Request to a server on node 4 whose ReplyTo names a mailbox of node
// 2 that is waiting in a Call. Before, node 4 sent its reply to node 2,
// which delivered it to that mailbox (the attacker answered a third
// party's call through an honest node); now the reply comes back to the
// attacker, and node 2 hears nothing.
func testHostileReflectedRequest(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialRecPeer(t, h)
	srv4, _ := startServer(t, h.n4, func(v any) {
		if r, ok := v.(Request); ok {
			_ = r.Reply("from node 4")
		}
	})
	// A Call on node 2 to a server on node 3 that holds the request:
	// its reply mailbox is the target.
	srv3, smb3 := h.n3.NewMailbox()
	t.Cleanup(smb3.Close)
	res := make(chan any, 1)
	go func() {
		v, err := Call(testCtx(t), h.n2.BindAddress(srv3), 1)
		if err != nil {
			v = err
		}
		res <- v
	}()
	req, ok := recv(t, smb3).(Request)
	if !ok {
		t.Fatal("node 3's server did not get the Request")
	}
	victim := req.ReplyTo()
	b := defineTypes(t, h, 0)
	for _, r := range []uint64{req.ref, 1, 2, 3} {
		b = wire.AppendFrame(b, wire.TypeRequest, wire.AppendRequest(nil, wire.Request{
			To: ref(srv4), ReplyTo: wire.Addr{Node: uint16(victim.node), Inc: victim.inc, ID: victim.id}, CallRef: r, TypeID: 1, Body: msgpackOf(t, 7)}))
	}
	writeFrames(t, f, b)
	for range 4 {
		fr := f.next(t)
		if fr.t != wire.TypeReply {
			t.Fatalf("node 4 answered with a %v", fr.t)
		}
		rp, err := wire.ParseReply(fr.payload)
		if err != nil || rp.To != ref(victim) {
			t.Fatalf("reply %+v, %v", rp, err)
		}
	}
	flushPeers(t, h.n4, h.n2) // whatever node 4 sent node 2 has arrived
	select {
	case v := <-res:
		t.Fatalf("node 2's Call was answered by the reflection: %v", v)
	default:
	}
	if err := req.Reply("from node 3"); err != nil {
		t.Fatal(err)
	}
	if v := <-res; v != "from node 3" {
		t.Fatalf("node 2's Call = %v", v)
	}
	f.hangUp(t, h)
}

// Requests node 4 cannot deliver: a type it does not know, a body its
// codec rejects, a reserved type, a closed mailbox. Each is answered at once with a
// CallFailed that names the type and the reason; before, each was
// dropped in silence and the caller waited for its timeout.
func testHostileUndeliverableRequest(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialRecPeer(t, h)
	srv, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	gone, gmb := h.n4.NewMailbox()
	gmb.Close()
	b := wire.AppendFrame(nil, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: 1, Name: "attacker.Unknown"}))
	b = append(b, wire.AppendFrame(nil, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: 2, Name: h.n4.typeNameOf(testMsg{})}))...)
	b = append(b, wire.AppendFrame(nil, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: 3, Name: h.n4.typeNameOf(MailboxClosed{})}))...)
	cases := []struct {
		to   Address
		id   uint32
		body []byte
		code uint8
		typ  string
	}{
		{srv, 1, msgpackOf(t, 1), wire.CallFailedUnknownType, "attacker.Unknown"},
		{srv, 2, []byte{0xc1}, wire.CallFailedUndecodable, h.n4.typeNameOf(testMsg{})},
		{srv, 3, msgpackOf(t, MailboxClosed{}), wire.CallFailedReserved, h.n4.typeNameOf(MailboxClosed{})},
		{gone, 2, msgpackOf(t, testMsg{}), wire.CallFailedNoMailbox, h.n4.typeNameOf(testMsg{})},
	}
	for i, c := range cases {
		b = wire.AppendFrame(b, wire.TypeRequest, wire.AppendRequest(nil, wire.Request{
			To: ref(c.to), ReplyTo: wire.Addr{Node: uint16(absent), Inc: 0x5eed, ID: 9}, CallRef: uint64(100 + i), TypeID: c.id, Body: c.body}))
	}
	writeFrames(t, f, b)
	for i, c := range cases {
		fr := f.next(t)
		if fr.t != wire.TypeCallFailed {
			t.Fatalf("case %d: node 4 answered with a %v", i, fr.t)
		}
		cf, err := wire.ParseCallFailed(fr.payload)
		if err != nil || cf.CallRef != uint64(100+i) || cf.Code != c.code || cf.Type != c.typ || cf.Node != uint16(attacked) || cf.Part != wire.CallPartRequest || cf.Text == "" {
			t.Fatalf("case %d: CallFailed %+v, %v", i, cf, err)
		}
	}
	if v, ok := mb.ReceiveAsync(); ok {
		t.Fatalf("delivered: %#v", v)
	}
	f.hangUp(t, h)
}

// callWithin calls server and fails t if the Call takes longer than a
// second: failures must be reported at once, not by a timeout.
func callWithin(t *testing.T, server Address, body any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	v, err := Call(ctx, server, body)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Call took %v (%v)", d, err)
	}
	return v, err
}

// wantCallError checks that err is a *CallError with these fields,
// wrapping sentinel.
func wantCallError(t *testing.T, err error, side CallSide, node NodeID, reply bool, typ string, sentinel error) {
	t.Helper()
	var ce *CallError
	if !errors.As(err, &ce) || ce.Side != side || ce.Node != node || ce.Reply != reply || ce.Type != typ || !errors.Is(err, sentinel) {
		t.Fatalf("error %v (%#v), want a CallError on the %v's side, node %d, reply %v, type %q, wrapping %v", err, ce, side, node, reply, typ, sentinel)
	}
}
