package reign

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// Fixes found by reviewing the trust boundary: each test drives a real
// node (node 4 of a hostile cluster) with a peer that holds a valid
// certificate and writes raw frames.

// unlinkedClosed writes a Closed frame for a link nobody made and waits
// until node 4 has counted it: every frame the peer wrote before it has
// been handled by then (frames are handled in order).
func unlinkedClosed(t *testing.T, h *hostileCluster, f *fakePeer, watcher Address) {
	t.Helper()
	before := h.n4.Stats().DroppedUnlinkedClosed
	cl := wire.Closed{Target: wire.Ref{Inc: f.inc, ID: 7}, Watcher: ref(watcher), Reason: uint8(Abnormal), Text: "forged"}
	writeFrames(t, f, wire.AppendFrame(nil, wire.TypeClosed, wire.AppendClosed(nil, cl)))
	checkFor(t, testTimeout, func() error {
		got := h.n4.Stats().DroppedUnlinkedClosed
		return unless(got == before+1, "DroppedUnlinkedClosed %d, want %d", got, before+1)
	})
}

// done closes the fake peer's connection and waits until node 4 has seen
// it end, as the hostile cluster's own check at cleanup expects.
func done(t *testing.T, h *hostileCluster, f *fakePeer) {
	t.Helper()
	f.close()
	checkFor(t, testTimeout, func() error {
		return unless(h.n4.Stats().PeersUp == 2, "node 4 has %d peers up, want 2", h.n4.Stats().PeersUp)
	})
}

// A LinkFor{Remove} removes only a link the same peer asked for, never
// one the node's own code made.
func TestLinkForRemoveOnlyItsOwn(t *testing.T) {
	t.Parallel()
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	n := h.n4
	target, tm := n.NewMailbox()
	watcher, wm := newTestMailbox(t, n)
	target.OnCloseNotify(watcher)
	lf := wire.LinkFor{Target: wire.Addr{Node: uint16(n.id), Inc: n.inc, ID: target.id}, Watcher: ref(watcher), Remove: true}
	writeFrames(t, f, wire.AppendFrame(nil, wire.TypeLinkFor, wire.AppendLinkFor(nil, lf)))
	other, _ := newTestMailbox(t, n)
	unlinkedClosed(t, h, f, other) // the Remove has been handled
	tm.Close()
	if mc, ok := recv(t, wm).(MailboxClosed); !ok || mc.Address != target {
		t.Fatalf("the watcher got %#v, want the MailboxClosed of its target", mc)
	}
	done(t, h, f)
}

// A Closed frame for a link nobody made tells nobody, and is counted.
func TestClosedWithoutLinkDropped(t *testing.T) {
	t.Parallel()
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	watcher, wm := newTestMailbox(t, h.n4)
	unlinkedClosed(t, h, f, watcher)
	if v, ok := wm.ReceiveAsync(); ok {
		t.Fatalf("an unsolicited Closed was delivered: %#v", v)
	}
	done(t, h, f)
}

// A server that forwards a Request to an Address from an earlier run of
// a connected node fails its caller at once, as for a closed mailbox
// (the caller watches the server, which is alive).
func TestForwardToStaleAddressFailsCall(t *testing.T) {
	t.Parallel()
	h := newHostileCluster(t, nil)
	n := h.n4
	srv, sm := newTestMailbox(t, n)
	stale := Address{n: n, node: h.echo2.node, inc: h.echo2.inc + 1, id: h.echo2.id}
	go func() {
		if v, err := sm.Receive(context.Background()); err == nil {
			_ = stale.Send(v.(Request))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := Call(ctx, srv, testMsg{Seq: 1})
	var ce *CallError
	if !errors.As(err, &ce) || !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Call through a forward to a stale Address: %v, want a CallError wrapping ErrMailboxClosed", err)
	}
}

// A Reply with an undefined type number closes the connection without
// first taking the call's record, so the connection's end still fails the
// forwarded call at once.
func TestReplyBadTypeStillFailsForward(t *testing.T) {
	t.Parallel()
	h := newHostileCluster(t, nil)
	cert := nodeCert(t, absent)
	tc := dialTLS(t, h.addr, &cert)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteHello(tc, attackerHello(absent, 0x5eed)); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(tc, DefaultMaxFrameSize)
	if _, err := wire.ReadHello(r); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Time{})
	t.Cleanup(func() { _ = tc.Close() })
	checkFor(t, testTimeout, func() error {
		return unless(h.n4.Stats().PeersUp == 3, "node 4 has %d peers up, want 3", h.n4.Stats().PeersUp)
	})
	n := h.n4
	srv, sm := newTestMailbox(t, n)
	peerMb := Address{n: n, node: absent, inc: 0x5eed, id: 5}
	go func() {
		if v, err := sm.Receive(context.Background()); err == nil {
			_ = peerMb.Send(v.(Request))
		}
	}()
	go func() {
		for {
			ft, p, err := r.Next()
			if err != nil {
				return
			}
			if ft == wire.TypeRequest {
				rq, _ := wire.ParseRequest(p)
				rp := wire.Reply{To: wire.Ref{Inc: rq.ReplyTo.Inc, ID: rq.ReplyTo.ID}, CallRef: rq.CallRef, TypeID: 99}
				_, _ = tc.Write(wire.AppendFrame(nil, wire.TypeReply, wire.AppendReply(nil, rp)))
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Call(ctx, srv, testMsg{Seq: 1}); !errors.Is(err, ErrNodeUnreachable) {
		t.Fatalf("Call forwarded to a peer that broke the protocol: %v, want ErrNodeUnreachable", err)
	}
}
