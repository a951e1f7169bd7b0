package reign

// Hostile message bodies from a peer with a valid certificate (the fake
// node 1 of hostile_test.go) against node 4: bodies that would kill the
// process in the decoder, and bodies of types only a node may make.

import (
	"reflect"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

func TestHostileDecode(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"deep-nesting", testHostileDeepNesting},
		{"forged-notifications", testHostileForgedNotifications},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// hostileTypes defines, on the fake peer's connection, type numbers 1, 2,
// ... for the given types by the names node 4 registered them under.
func hostileTypes(t *testing.T, h *hostileCluster, f *fakePeer, types ...any) {
	t.Helper()
	var b []byte
	for i, v := range types {
		info := h.n4.types.forType(reflect.TypeOf(v))
		if info == nil {
			t.Fatalf("%T not registered on node 4", v)
		}
		b = wire.AppendFrame(b, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: uint32(i + 1), Name: info.name}))
	}
	if err := f.write(b); err != nil {
		t.Fatal(err)
	}
}

// hostileMessage sends a Message frame of type number id to a.
func hostileMessage(t *testing.T, f *fakePeer, a Address, id uint32, body []byte) {
	t.Helper()
	if err := f.write(wire.AppendFrame(nil, wire.TypeMessage, wire.AppendMessage(nil, wire.Message{To: ref(a), TypeID: id, Body: body}))); err != nil {
		t.Fatal(err)
	}
}

// Message bodies nested 12 MiB deep for a user struct type, 2 MiB deep
// for []any and for a struct's any field: before the depth bound each one
// overflowed the goroutine stack of node 4's connection reader, a fatal
// error that killed the whole test process. Now each is dropped and
// counted, the connection and the node live on, and the next message
// arrives.
func testHostileDeepNesting(t *testing.T) {
	h := newHostileCluster(t, nil)
	for _, v := range []any{testPing{}, testHolder{}} {
		if err := h.n4.RegisterType(v); err != nil {
			t.Fatal(err)
		}
	}
	f := dialFakePeer(t, h)
	dst, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	hostileTypes(t, h, f, testPing{}, []any(nil), testHolder{})
	before := h.n4.Stats()

	hostileMessage(t, f, dst, 1, deepMsgpack(12<<20))                                    // 12 MiB as a testPing
	hostileMessage(t, f, dst, 2, deepMsgpack(2<<20))                                     // 2 MiB as a []any
	hostileMessage(t, f, dst, 3, append([]byte{0x81, 0xa1, 'V'}, deepMsgpack(2<<20)...)) // in testHolder.V
	good, err := MsgpackCodec{}.Marshal(nil, testPing{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	hostileMessage(t, f, dst, 1, good)

	if got := recv(t, mb); !reflect.DeepEqual(got, testPing{N: 7}) {
		t.Fatalf("after the deep messages: received %#v", got)
	}
	after := h.n4.Stats()
	if d := after.DroppedUndecodable - before.DroppedUndecodable; d != 3 {
		t.Fatalf("DroppedUndecodable moved by %d, want 3", d)
	}
	if after.PeersUp != 3 || after.Connects != before.Connects {
		t.Fatalf("the attacker's connection did not stay up: %+v, then %+v", before, after)
	}
	if v, ok := mb.ReceiveAsync(); ok {
		t.Fatalf("delivered: %#v", v)
	}
	hostileHangUp(t, h, f)
}

// hostileHangUp closes the fake peer's connection and waits until node 4
// has let it go, so that the cluster's final check sees its two peers.
func hostileHangUp(t *testing.T, h *hostileCluster, f *fakePeer) {
	t.Helper()
	f.close()
	checkFor(t, 5*time.Second, func() error {
		return unless(h.n4.Stats().PeersUp == 2, "node 4 has %d peers up, want 2", h.n4.Stats().PeersUp)
	})
}

// MailboxClosed and MultipleClaim bodies from the fake peer: one names a
// live mailbox of node 2 that a mailbox of node 4 watches, the other a
// name the watcher holds. Neither is delivered, both are counted, the
// message after them arrives; and the watcher still hears of the real
// close, which node 2 reports with a control frame.
func testHostileForgedNotifications(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	target, tmb := h.n2.NewMailbox()
	watcher, wmb := h.n4.NewMailbox()
	t.Cleanup(wmb.Close)
	rtarget := h.n4.BindAddress(target)
	rtarget.OnCloseNotify(watcher)
	hostileTypes(t, h, f, MailboxClosed{}, MultipleClaim{}, testMsg{})
	before := h.n4.droppedReserved()

	forged, err := MsgpackCodec{}.Marshal(nil, MailboxClosed{Address: target, Reason: Normal})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := MsgpackCodec{}.Marshal(nil, MultipleClaim{Name: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	good, err := MsgpackCodec{}.Marshal(nil, testMsg{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	hostileMessage(t, f, watcher, 1, forged)
	hostileMessage(t, f, watcher, 2, claim)
	hostileMessage(t, f, watcher, 3, good)

	if got := recv(t, wmb); !reflect.DeepEqual(got, testMsg{Seq: 1}) {
		t.Fatalf("the watcher received %#v, want the good message only", got)
	}
	if d := h.n4.droppedReserved() - before; d != 2 {
		t.Fatalf("droppedReserved moved by %d, want 2", d)
	}
	if v, ok := wmb.ReceiveAsync(); ok {
		t.Fatalf("delivered: %#v", v)
	}
	// The real link fires, with the reason node 2 gives.
	tmb.Close()
	got, ok := recv(t, wmb).(MailboxClosed)
	if !ok || got.Address != rtarget || got.Reason != Normal {
		t.Fatalf("after the real close: received %#v", got)
	}
	hostileHangUp(t, h, f)
}
