package reign

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCall(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, _ := startServer(t, n, doubler)
	v, err := Call(testCtx(t), srv, 21)
	if err != nil || v != 42 {
		t.Fatalf("Call = %v, %v; want 42", v, err)
	}
	if got := n.table.open.Load(); got != 1 {
		t.Fatalf("%d mailboxes open after Call, want only the server's", got)
	}
}

func TestCallConcurrent(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, sm := startServer(t, n, doubler)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 50 {
				body := g*1000 + i
				v, err := Call(testCtx(t), srv, body)
				if err != nil || v != body*2 {
					t.Errorf("Call(%d) = %v, %v", body, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if k := numLinks(sm); k != 0 {
		t.Fatalf("server mailbox holds %d links after 1000 calls", k)
	}
}

func TestCallServerClosedBefore(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, m := n.NewMailbox()
	m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := Call(ctx, srv, 1)
	if !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Call to closed server = %v, want ErrMailboxClosed", err)
	}
	if d := time.Since(start); d > testTimeout {
		t.Fatalf("Call to a closed server took %v", d)
	}
	if got := n.table.open.Load(); got != 0 {
		t.Fatalf("%d mailboxes open after Call, want 0", got)
	}
}

func TestCallServerClosesWhileWaiting(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, sm := n.NewMailbox()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Call(ctx, srv, 1)
		errc <- err
	}()
	// The server takes the request and dies without replying.
	if _, ok := recv(t, sm).(Request); !ok {
		t.Fatal("server did not get a Request")
	}
	sm.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrMailboxClosed) {
			t.Fatalf("Call = %v, want ErrMailboxClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Call did not fail fast when the server closed")
	}
}

func TestCallTimeoutDiscardsLateReply(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, sm := newTestMailbox(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Call(ctx, srv, 1)
		errc <- err
	}()
	req, ok := recv(t, sm).(Request)
	if !ok {
		t.Fatal("server did not get a Request")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call = %v, want DeadlineExceeded", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Call ignored its deadline")
	}
	err := req.Reply("late")
	if !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("late Reply = %v, want ErrMailboxClosed", err)
	}
	if sm.Len() != 0 {
		t.Fatalf("server mailbox holds %d messages", sm.Len())
	}
	if n.table.lookup(req.ReplyTo().id) != nil || n.table.open.Load() != 1 {
		t.Fatal("the caller's reply mailbox is still open")
	}
	if k := numLinks(sm); k != 0 {
		t.Fatalf("server mailbox holds %d links after the call", k)
	}
}

func TestCallLinksDoNotGrow(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, sm := startServer(t, n, doubler)
	for i := range 500 {
		if _, err := Call(testCtx(t), srv, i); err != nil {
			t.Fatal(err)
		}
		if k := numLinks(sm); k != 0 {
			t.Fatalf("after call %d the server holds %d links", i, k)
		}
	}
}

func TestRequestReplyTo(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	watch, wm := newTestMailbox(t, n)
	seen := make(chan Address, 2)
	srv, _ := startServer(t, n, func(v any) {
		req := v.(Request)
		from := req.ReplyTo()
		seen <- from
		from.OnCloseNotify(watch) // like monitoring a gen_server's From
		_ = req.Reply(req.Body)
	})
	for i := range 2 {
		if v, err := Call(testCtx(t), srv, i); err != nil || v != i {
			t.Fatalf("Call = %v, %v", v, err)
		}
	}
	a, b := <-seen, <-seen
	if a.IsZero() || a.NodeID() != n.ID() || a == b || a == srv {
		t.Fatalf("ReplyTo: %v, %v (server %v)", a, b, srv)
	}
	// Each private reply mailbox closes when its Call returns.
	for _, from := range []Address{a, b} {
		mc, ok := recv(t, wm).(MailboxClosed)
		if !ok || mc.Reason != Normal || (mc.Address != a && mc.Address != b) {
			t.Fatalf("watcher got %+v for %v", mc, from)
		}
	}
}

func TestReplyTwice(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	second := make(chan error, 1)
	srv, _ := startServer(t, n, func(v any) {
		req := v.(Request)
		_ = req.Reply(1)
		// The caller may still be waiting or may have returned: either
		// way the second reply must not be taken as an answer.
		second <- req.Reply(2)
	})
	v, err := Call(testCtx(t), srv, nil)
	if err != nil || v != 1 {
		t.Fatalf("Call = %v, %v; want the first reply", v, err)
	}
	if err := <-second; err != nil && !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("second Reply = %v", err)
	}
}

func TestCallBadArguments(t *testing.T) {
	t.Parallel()
	if err := (Request{}).Reply(1); !errors.Is(err, ErrZeroAddress) {
		t.Fatalf("Reply on zero Request = %v, want ErrZeroAddress", err)
	}
	if !(Request{}).ReplyTo().IsZero() {
		t.Fatal("zero Request has a ReplyTo")
	}
	if _, err := Call(testCtx(t), Address{}, 1); !errors.Is(err, ErrZeroAddress) {
		t.Fatalf("Call(zero) = %v", err)
	}
	n := newTestNode(t)
	a, _ := newTestMailbox(t, n)
	var u Address
	b, _ := a.MarshalBinary()
	_ = u.UnmarshalBinary(b)
	if _, err := Call(testCtx(t), u, 1); !errors.Is(err, ErrUnboundAddress) {
		t.Fatalf("Call(unbound) = %v", err)
	}
}
