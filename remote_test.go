package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestRemoteSendAndReplyAcrossThreeNodes(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, nil)
	tc.connected()
	n1, n2, n3 := tc.node(1), tc.node(2), tc.node(3)

	echo, emb := n1.NewMailbox()
	if err := n1.Register("echo", echo); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		_, ok2 := n2.Lookup("echo")
		_, ok3 := n3.Lookup("echo")
		return unless(ok2 && ok3, "ok2 && ok3")
	})
	for _, n := range []*Node{n2, n3} {
		me, mb := n.NewMailbox()
		target, _ := n.Lookup("echo")
		if err := target.Send(testMsg{Seq: int(n.ID()), From: me, Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, emb).(testMsg)
		if m.Seq != int(n.ID()) || m.From != (Address{n: n1, node: n.ID(), inc: me.inc, id: me.id}) {
			t.Fatalf("got %+v", m)
		}
		if err := m.From.Send(testMsg{Seq: 100, Text: "back"}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, mb).(testMsg); got.Seq != 100 || got.Text != "back" {
			t.Fatalf("reply %+v", got)
		}
	}
}

func TestRemoteOrderPerSender(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	dst, mb := n2.NewMailbox()
	remote := n1.BindAddress(dst)
	const count = 20000
	go func() {
		for i := 0; i < count; i++ {
			if err := remote.Send(i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < count; i++ {
		if v := recv(t, mb); v != i {
			t.Fatalf("message %d: got %v", i, v)
		}
	}
}

func TestRemoteLinkFiresOnCloseAndOnNodeLoss(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	a, amb := n2.NewMailbox()
	b, _ := n2.NewMailbox()
	watcher, wmb := n1.NewMailbox()
	ra, rb := n1.BindAddress(a), n1.BindAddress(b)
	ra.OnCloseNotify(watcher)
	rb.OnCloseNotify(watcher)
	// the link frame must reach n2 before the close: wait for it
	checkFor(t, 5*time.Second, func() error {
		amb.mu.Lock()
		defer amb.mu.Unlock()
		return unless(len(amb.links) == 1, "len(amb.links) == 1")
	})
	amb.Close()
	if mc := recv(t, wmb).(MailboxClosed); mc.Address != ra || mc.Reason != Normal {
		t.Fatalf("got %+v", mc)
	}
	tc.kill(2)
	if mc := recv(t, wmb).(MailboxClosed); mc.Address != rb || mc.Reason != NodeShutdown {
		t.Fatalf("got %+v", mc)
	}
	// linking to a node that is gone fires at once
	rb.OnCloseNotify(watcher)
	if mc := recv(t, wmb).(MailboxClosed); mc.Address != rb || mc.Reason != NoConnection {
		t.Fatalf("got %+v", mc)
	}
}

func TestRemoteCall(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	srv, smb := n2.NewMailbox()
	go func() {
		for {
			v, err := smb.Receive(context.Background())
			if err != nil {
				return
			}
			r := v.(Request)
			_ = r.Reply(r.Body.(int) * 2)
		}
	}()
	rs := n1.BindAddress(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		v, err := Call(ctx, rs, i)
		if err != nil || v != 2*i {
			t.Fatalf("call %d: %v %v", i, v, err)
		}
	}
	smb.Close()
	_, err := Call(ctx, rs, 1)
	if !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("call to closed server: %v", err)
	}
}

// A Call whose server's node dies (its connection is cut, no Goodbye)
// after the request arrived fails at once with ErrNodeUnreachable, long
// before its context ends.
func TestRemoteCallFailsFastWhenServerNodeDies(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	arrived := make(chan struct{})
	var once sync.Once
	srv, _ := startServer(t, n2, func(v any) { // never replies
		if _, ok := v.(Request); ok {
			once.Do(func() { close(arrived) })
		}
	})
	rs := n1.BindAddress(srv)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := Call(ctx, rs, 1)
		errc <- err
	}()
	select {
	case <-arrived:
	case err := <-errc:
		t.Fatalf("the call ended before its request arrived: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("the request never arrived")
	}
	before := n1.Stats().Peers[2].Closes
	start := time.Now()
	// the death: node 2's socket closes under it, without a Goodbye
	cn := n2.cl.peer(1).live.Load()
	_ = cn.nc.(*tls.Conn).NetConn().Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNodeUnreachable) {
			t.Fatalf("got %v", err)
		}
		t.Logf("call failed %v after the death", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("call still waiting")
	}
	after := n1.Stats().Peers[2].Closes
	if after[CloseGoodbye] != before[CloseGoodbye] || after[ClosePeerClosed] == before[ClosePeerClosed] {
		t.Fatalf("node 1 saw %v, then %v: want a lost peer, not a goodbye", before, after)
	}
}

func TestRestartedNodeGetsNewIncarnation(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1 := tc.node(1)
	old, _ := tc.node(2).NewMailbox()
	rold := n1.BindAddress(old)
	tc.kill(2)
	n2 := tc.start(2, nil)
	tc.connected()
	fresh, fmb := n2.NewMailbox() // likely the very same slot and generation
	if fresh.id != old.id {
		t.Logf("slot differs: %v vs %v", fresh, old)
	}
	if err := rold.Send(1); err != nil {
		t.Fatal(err)
	}
	if err := n1.BindAddress(fresh).Send(2); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, fmb); v != 2 {
		t.Fatalf("the old address reached the new mailbox: %v", v)
	}
	w, wmb := n1.NewMailbox()
	rold.OnCloseNotify(w)
	if mc := recv(t, wmb).(MailboxClosed); mc.Reason != NoProc {
		t.Fatalf("got %+v", mc)
	}
}

// TestRemoteSendTooLarge sends values over the frame limit, of a plain
// struct type (encoded straight into the connection's buffer) and of
// another type (encoded aside): each fails with ErrFrameTooLarge, nothing
// of it reaches the peer, and the messages after it, of the same types,
// arrive in order.
func TestRemoteSendTooLarge(t *testing.T) {
	t.Parallel()
	const maxFrame = 4096
	tc := newTestCluster(t, 2, func(c *Config) { c.MaxFrameSize = maxFrame })
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	dst, mb := n2.NewMailbox()
	remote := n1.BindAddress(dst)
	big := string(make([]byte, maxFrame))
	for i, v := range []any{testMsg{Seq: 1, Text: big}, big} {
		if err := remote.Send(v); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("send %d of %d bytes: %v, want ErrFrameTooLarge", i, maxFrame, err)
		}
	}
	for i, v := range []any{testMsg{Seq: 2, Text: "small"}, "small", testMsg{Seq: 3}} {
		if err := remote.Send(v); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if m, ok := recv(t, mb).(testMsg); !ok || m.Seq != 2 || m.Text != "small" {
		t.Fatalf("first message %#v, want testMsg 2", m)
	}
	if s, ok := recv(t, mb).(string); !ok || s != "small" {
		t.Fatalf("second message %#v, want \"small\"", s)
	}
	if m, ok := recv(t, mb).(testMsg); !ok || m.Seq != 3 {
		t.Fatalf("third message %#v, want testMsg 3", m)
	}
}
