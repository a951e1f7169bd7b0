package reign

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMailboxFIFO(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	if m.Address() != a {
		t.Fatalf("Address() = %v, NewMailbox returned %v", m.Address(), a)
	}
	const k = 100
	for i := range k {
		mustSend(t, a, i)
		if got := m.Len(); got != i+1 {
			t.Fatalf("Len after %d sends = %d", i+1, got)
		}
	}
	for i := range k {
		if got := recv(t, m); got != i {
			t.Fatalf("message %d: got %v", i, got)
		}
	}
	if got := m.Len(); got != 0 {
		t.Fatalf("Len after draining = %d", got)
	}
}

func TestMailboxAsync(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	if v, ok := m.ReceiveAsync(); ok {
		t.Fatalf("ReceiveAsync on empty mailbox = %v, true", v)
	}
	if v, ok := m.ReceiveMatchAsync(func(any) bool { return true }); ok {
		t.Fatalf("ReceiveMatchAsync on empty mailbox = %v, true", v)
	}
	mustSend(t, a, "x")
	mustSend(t, a, 1)
	if v, ok := m.ReceiveMatchAsync(func(v any) bool { _, ok := v.(float64); return ok }); ok {
		t.Fatalf("ReceiveMatchAsync with no match = %v, true", v)
	}
	if v, ok := m.ReceiveMatchAsync(func(v any) bool { _, ok := v.(int); return ok }); !ok || v != 1 {
		t.Fatalf("ReceiveMatchAsync(int) = %v, %v", v, ok)
	}
	if v, ok := m.ReceiveAsync(); !ok || v != "x" {
		t.Fatalf("ReceiveAsync = %v, %v", v, ok)
	}
	if m.Len() != 0 {
		t.Fatalf("Len = %d", m.Len())
	}
}

// fillRing pushes first messages, takes all but one of them, and pushes
// second more, so that for small enough sizes the queue wraps around the
// end of the ring buffer. It returns the values left queued, oldest first.
func fillRing(t *testing.T, a Address, m *Mailbox, first, second int) []int {
	t.Helper()
	next := 0
	for range first {
		mustSend(t, a, next)
		next++
	}
	for i := range first - 1 {
		if v, ok := m.ReceiveAsync(); !ok || v != i {
			t.Fatalf("ReceiveAsync = %v, %v; want %d", v, ok, i)
		}
	}
	var want []int
	if first > 0 {
		want = append(want, first-1)
	}
	for range second {
		mustSend(t, a, next)
		want = append(want, next)
		next++
	}
	return want
}

func asInts(t *testing.T, vs []any) []int {
	t.Helper()
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = v.(int)
	}
	return out
}

// TestSelectiveReceiveOrder takes every position of queues laid out in the
// ring buffer in several ways (contiguous, wrapped around its end, after a
// growth) and checks that the other messages stay queued in order.
func TestSelectiveReceiveOrder(t *testing.T) {
	t.Parallel()
	layouts := []struct {
		name          string
		first, second int
	}{
		{"contiguous", 0, 7},
		{"full", 0, 8},
		{"wrapped", 6, 5},     // 6 in, 5 out, 5 in: slots 5,6,7,0,1,2
		{"wrappedFull", 6, 7}, // ring of 8 full, wrapping
		{"wrappedThenGrown", 6, 10},
		{"grownTwice", 3, 30},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			n := newTestNode(t)
			probe, pm := newTestMailbox(t, n)
			want := fillRing(t, probe, pm, l.first, l.second)
			for pos, target := range want {
				a, m := newTestMailbox(t, n)
				got := fillRing(t, a, m, l.first, l.second)
				if !slices.Equal(got, want) {
					t.Fatalf("layout differs: %v vs %v", got, want)
				}
				if l.first == 6 && l.second == 5 && m.head+m.count <= int32(len(m.buf)) {
					t.Fatalf("queue not wrapped: head %d count %d cap %d", m.head, m.count, len(m.buf))
				}
				v, ok := m.ReceiveMatchAsync(func(v any) bool { return v == target })
				if !ok || v != target {
					t.Fatalf("position %d: ReceiveMatchAsync = %v, %v; want %d", pos, v, ok, target)
				}
				if m.Len() != len(want)-1 {
					t.Fatalf("position %d: Len = %d, want %d", pos, m.Len(), len(want)-1)
				}
				rest := asInts(t, drain(m))
				exp := slices.Delete(slices.Clone(want), pos, pos+1)
				if !slices.Equal(rest, exp) {
					t.Fatalf("position %d: left %v, want %v", pos, rest, exp)
				}
			}
		})
	}
}

// TestSelectiveReceiveModel runs random pushes and selective takes against
// a slice model of the queue.
func TestSelectiveReceiveModel(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	r := rand.New(rand.NewPCG(1, 2))
	var model []int
	next := 0
	for step := range 20000 {
		switch op := r.IntN(10); {
		case op < 5:
			mustSend(t, a, next)
			model = append(model, next)
			next++
		case op < 7:
			v, ok := m.ReceiveAsync()
			if len(model) == 0 {
				if ok {
					t.Fatalf("step %d: ReceiveAsync on empty = %v", step, v)
				}
				continue
			}
			if !ok || v != model[0] {
				t.Fatalf("step %d: ReceiveAsync = %v, %v; want %d", step, v, ok, model[0])
			}
			model = model[1:]
		default:
			if len(model) == 0 {
				continue
			}
			i := r.IntN(len(model))
			target := model[i]
			looked := 0
			v, ok := m.ReceiveMatchAsync(func(v any) bool { looked++; return v == target })
			if !ok || v != target {
				t.Fatalf("step %d: ReceiveMatchAsync = %v, %v; want %d", step, v, ok, target)
			}
			if looked != i+1 {
				t.Fatalf("step %d: match called %d times to find position %d", step, looked, i)
			}
			model = slices.Delete(model, i, i+1)
		}
		if m.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, model %d", step, m.Len(), len(model))
		}
	}
	if rest := asInts(t, drain(m)); !slices.Equal(rest, model) {
		t.Fatalf("left %v, model %v", rest, model)
	}
}

func TestReceiveMatchNilIsReceive(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	for i := range 3 {
		mustSend(t, a, i)
	}
	v, err := m.ReceiveMatch(testCtx(t), nil)
	if err != nil || v != 0 {
		t.Fatalf("ReceiveMatch(nil) = %v, %v", v, err)
	}
	if v, ok := m.ReceiveMatchAsync(nil); !ok || v != 1 {
		t.Fatalf("ReceiveMatchAsync(nil) = %v, %v", v, ok)
	}
	// ReceiveMatch(nil) also waits like Receive.
	got := make(chan any, 1)
	g := newGoGroup(t)
	g.Go(func() {
		v, _ := m.ReceiveMatch(testCtx(t), nil)
		got <- v
	})
	if v := <-got; v != 2 {
		t.Fatalf("ReceiveMatch(nil) = %v, want 2", v)
	}
	g.Go(func() {
		v, _ := m.ReceiveMatch(testCtx(t), nil)
		got <- v
	})
	checkFor(t, testTimeout, func() error { return unless(numWaiters(m) == 1, "numWaiters(m) == 1") })
	mustSend(t, a, 3)
	if v := <-got; v != 3 {
		t.Fatalf("ReceiveMatch(nil) after wait = %v, want 3", v)
	}
}

func TestReceiveQueuedWithDoneContext(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	mustSend(t, a, "queued")
	mustSend(t, a, "second")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := m.Receive(ctx); err != nil || v != "queued" {
		t.Fatalf("Receive(cancelled) with a queued message = %v, %v", v, err)
	}
	if v, err := m.ReceiveMatch(ctx, func(v any) bool { return v == "second" }); err != nil || v != "second" {
		t.Fatalf("ReceiveMatch(cancelled) with a queued match = %v, %v", v, err)
	}
}

func TestReceiveContextConsumesNothing(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := m.Receive(cancelled); !errors.Is(err, context.Canceled) || v != nil {
		t.Fatalf("Receive(cancelled) on empty = %v, %v", v, err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel2()
	if v, err := m.Receive(short); !errors.Is(err, context.DeadlineExceeded) || v != nil {
		t.Fatalf("Receive(expiring) on empty = %v, %v", v, err)
	}
	// A selective receive that times out consumes the messages it passed
	// over no more than the one it waited for.
	mustSend(t, a, "other")
	short2, cancel3 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel3()
	if v, err := m.ReceiveMatch(short2, func(v any) bool { return v == "wanted" }); !errors.Is(err, context.DeadlineExceeded) || v != nil {
		t.Fatalf("ReceiveMatch(expiring) = %v, %v", v, err)
	}
	if numWaiters(m) != 0 {
		t.Fatalf("%d waiters left behind by cancelled receives", numWaiters(m))
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d after a timed-out ReceiveMatch, want 1", m.Len())
	}
	mustSend(t, a, "wanted")
	if v := recv(t, m); v != "other" {
		t.Fatalf("Receive = %v, want other", v)
	}
	if v := recv(t, m); v != "wanted" {
		t.Fatalf("Receive = %v, want wanted", v)
	}
}

// TestReceiveTimeoutsRaceSends has receivers with very short timeouts race
// senders: every message must be received exactly once, and nothing may be
// left queued or waiting.
func TestReceiveTimeoutsRaceSends(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	const senders, per, receivers = 4, 2000, 4
	const total = senders * per
	var seen [total]atomic.Int32
	var received atomic.Int64
	deadline := time.Now().Add(testTimeout)
	var wg sync.WaitGroup
	for r := range receivers {
		wg.Go(func() {
			for received.Load() < total && time.Now().Before(deadline) {
				timeout := time.Duration(1+r*20) * time.Microsecond
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				var v any
				var err error
				if r%2 == 0 {
					v, err = m.Receive(ctx)
				} else {
					v, err = m.ReceiveMatch(ctx, func(v any) bool { _, ok := v.(int); return ok })
				}
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Receive: %v", err)
						return
					}
					continue
				}
				seen[v.(int)].Add(1)
				received.Add(1)
			}
		})
	}
	for s := range senders {
		wg.Go(func() {
			for i := range per {
				if err := a.Send(s*per + i); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Fatalf("message %d received %d times", i, c)
		}
	}
	if m.Len() != 0 || numWaiters(m) != 0 {
		t.Fatalf("left behind: Len %d, waiters %d", m.Len(), numWaiters(m))
	}
}

// TestConcurrentSendersReceivers checks, under -race, that with several
// senders and receivers every message is received exactly once and that
// each receiver sees each sender's messages in the order sent.
func TestConcurrentSendersReceivers(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	defer m.Close()
	const senders, per, receivers = 4, 5000, 4
	type msg struct{ from, seq int }
	var counts [senders][per]atomic.Int32
	var received atomic.Int64
	var wg sync.WaitGroup
	for range receivers {
		wg.Go(func() {
			last := [senders]int{-1, -1, -1, -1}
			ctx := testCtx(t)
			for {
				v, err := m.Receive(ctx)
				if errors.Is(err, ErrMailboxClosed) {
					return
				}
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				x := v.(msg)
				if x.seq <= last[x.from] {
					t.Errorf("sender %d: seq %d after %d", x.from, x.seq, last[x.from])
				}
				last[x.from] = x.seq
				counts[x.from][x.seq].Add(1)
				if received.Add(1) == senders*per {
					m.Close() // wakes the other receivers
				}
			}
		})
	}
	for s := range senders {
		wg.Go(func() {
			for i := range per {
				if err := a.Send(msg{s, i}); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for s := range senders {
		for i := range per {
			if c := counts[s][i].Load(); c != 1 {
				t.Fatalf("message %d/%d received %d times", s, i, c)
			}
		}
	}
}

func TestPerSenderFIFO(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	const senders, per = 5, 3000
	type msg struct{ from, seq int }
	g := newGoGroup(t)
	for s := range senders {
		g.Go(func() {
			for i := range per {
				if err := a.Send(msg{s, i}); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	next := make([]int, senders)
	for range senders * per {
		x := recv(t, m).(msg)
		if x.seq != next[x.from] {
			t.Fatalf("sender %d: got seq %d, want %d", x.from, x.seq, next[x.from])
		}
		next[x.from]++
	}
}

func TestCloseWakesReceivers(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	_, m := n.NewMailbox()
	const k = 3
	errs := make(chan error, k)
	g := newGoGroup(t)
	ctx := testCtx(t)
	for i := range k {
		g.Go(func() {
			var err error
			if i == 0 {
				_, err = m.Receive(ctx)
			} else {
				_, err = m.ReceiveMatch(ctx, func(any) bool { return false })
			}
			errs <- err
		})
	}
	checkFor(t, testTimeout, func() error { return unless(numWaiters(m) == k, "numWaiters(m) == k") })
	m.Close()
	for range k {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrMailboxClosed) {
				t.Fatalf("blocked receiver got %v, want ErrMailboxClosed", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not wake a blocked receiver")
		}
	}
	if _, err := m.Receive(ctx); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Receive after Close = %v", err)
	}
}

func TestCloseIdempotentAndDiscards(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	mustSend(t, a, 1)
	mustSend(t, a, 2)
	m.Close()
	m.Close()
	if m.Len() != 0 {
		t.Fatalf("Len after Close = %d", m.Len())
	}
	if v, ok := m.ReceiveAsync(); ok {
		t.Fatalf("ReceiveAsync after Close = %v", v)
	}
	if v, err := m.Receive(context.Background()); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Receive after Close = %v, %v", v, err)
	}
	if v, err := m.ReceiveMatch(context.Background(), nil); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("ReceiveMatch after Close = %v, %v", v, err)
	}
	if got := n.table.open.Load(); got != 0 {
		t.Fatalf("%d mailboxes still in the table", got)
	}
	m.Close()
}

func TestSendToClosed(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	m.Close()
	err := a.Send("late")
	if !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Send to closed = %v, want ErrMailboxClosed", err)
	}
	var se *SendError
	if !errors.As(err, &se) || se.To != a {
		t.Fatalf("Send to closed: %#v is not a *SendError for %v", err, a)
	}
	if s := err.Error(); s[:7] != "reign: " {
		t.Fatalf("error text %q does not start with reign:", s)
	}
}

func TestPanickingMatchReleasesLock(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	mustSend(t, a, 1)
	boom := func(any) bool { panic("boom") }
	for _, call := range []func(){
		func() { m.ReceiveMatchAsync(boom) },
		func() { _, _ = m.ReceiveMatch(testCtx(t), boom) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("match's panic did not reach the caller")
				}
			}()
			call()
		}()
	}
	// A match that panics only after the receiver has waited.
	mustSend(t, a, 2)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("match's panic did not reach the caller")
			}
		}()
		sent := false
		_, _ = m.ReceiveMatch(testCtx(t), func(v any) bool {
			if v == 3 {
				panic("boom")
			}
			if !sent && v == 2 {
				sent = true
				// Not allowed in real code (match must not send to its
				// mailbox): start a sender that waits for the lock.
				go func() { _ = a.Send(3) }()
			}
			return false
		})
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		mustSend(t, a, 4)
		for _, want := range []int{1, 2, 3, 4} {
			if v := recv(t, m); v != want {
				t.Errorf("Receive = %v, want %d", v, want)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("mailbox left locked after a panicking match")
	}
	if numWaiters(m) != 0 {
		t.Fatalf("%d waiters left after the panic", numWaiters(m))
	}
}

func TestBurstThenDrainShrinks(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	const k = 100_000
	for i := range k {
		mustSend(t, a, i)
	}
	if m.Len() != k {
		t.Fatalf("Len = %d", m.Len())
	}
	if len(m.buf) < k {
		t.Fatalf("buffer of %d holds %d messages?", len(m.buf), k)
	}
	for i := range k {
		if v, ok := m.ReceiveAsync(); !ok || v != i {
			t.Fatalf("ReceiveAsync = %v, %v; want %d", v, ok, i)
		}
	}
	m.mu.Lock()
	size := len(m.buf)
	m.mu.Unlock()
	if size > shrinkAbove {
		t.Fatalf("buffer still holds %d slots after draining", size)
	}
	mustSend(t, a, "after")
	if v := recv(t, m); v != "after" {
		t.Fatalf("Receive after shrink = %v", v)
	}
}

// TestNoGoroutinePerMailbox is not parallel: it counts goroutines, and
// parallel tests are paused while it runs.
func TestNoGoroutinePerMailbox(t *testing.T) {
	n := newTestNode(t)
	before := runtime.NumGoroutine()
	ms := make([]*Mailbox, 10_000)
	for i := range ms {
		var a Address
		a, ms[i] = n.NewMailbox()
		mustSend(t, a, i)
	}
	after := runtime.NumGoroutine()
	for _, m := range ms {
		m.Close()
	}
	// The previous test's goroutine may still be exiting, so the count
	// can drop; it must not rise.
	if after > before {
		t.Fatalf("goroutines: %d before 10,000 mailboxes, %d after", before, after)
	}
}

// A ReceiveMatch that waits looks only at what arrives after its last look:
// with 1,000 refused messages queued, each of 100 later arrivals costs one
// call of match, not another pass over the queue.
func TestReceiveMatchWaitingScansOnlyNewMessages(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, mb := n.NewMailbox()
	for i := 0; i < 1000; i++ {
		mustSend(t, a, i)
	}
	var calls atomic.Int64
	got := make(chan any, 1)
	go func() {
		v, err := mb.ReceiveMatch(testCtx(t), func(v any) bool {
			calls.Add(1)
			return v == "wanted"
		})
		if err != nil {
			v = err
		}
		got <- v
	}()
	checkFor(t, 5*time.Second, func() error { return unless(calls.Load() >= 1000, "calls.Load() >= 1000") })
	for i := 0; i < 100; i++ {
		mustSend(t, a, -i)
		time.Sleep(100 * time.Microsecond) // let the receiver look at each
	}
	mustSend(t, a, "wanted")
	if v := <-got; v != "wanted" {
		t.Fatalf("got %v", v)
	}
	// 1,000 + 100 + 1 looks, give or take the spin's extra passes over the
	// newest messages; a full rescan per arrival would be ~100,000
	if c := calls.Load(); c > 1000+101+200 {
		t.Fatalf("match was called %d times", c)
	}
	if mb.Len() != 1100 {
		t.Fatalf("%d left queued", mb.Len())
	}
}

// TestPushMany: pushMany queues a batch after what is queued, in order,
// across the ring buffer's wrap and growth, and wakes a waiting receiver;
// a closed mailbox refuses the whole batch. A model queue checks every
// step.
func TestPushMany(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	_, m := newTestMailbox(t, n)
	rng := rand.New(rand.NewPCG(1, 2))
	var model []any
	next := 0
	for range 2000 {
		if rng.IntN(2) == 0 {
			vs := make([]any, rng.IntN(70))
			for i := range vs {
				vs[i] = next
				next++
			}
			if err := m.pushMany(vs); err != nil {
				t.Fatal(err)
			}
			model = append(model, vs...)
		} else {
			for k := rng.IntN(40); k > 0 && len(model) > 0; k-- {
				v, ok := m.ReceiveAsync()
				if !ok || v != model[0] {
					t.Fatalf("received %v, %v; want %v", v, ok, model[0])
				}
				model = model[1:]
			}
		}
		if m.Len() != len(model) {
			t.Fatalf("Len %d, want %d", m.Len(), len(model))
		}
	}
	for len(model) > 0 {
		if v := recv(t, m); v != model[0] {
			t.Fatalf("received %v, want %v", v, model[0])
		}
		model = model[1:]
	}
	got := make(chan any, 1)
	go func() {
		v, _ := m.Receive(context.Background())
		got <- v
	}()
	checkFor(t, testTimeout, func() error { return unless(numWaiters(m) == 1, "the receiver does not wait") })
	if err := m.pushMany([]any{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "a" {
		t.Fatalf("the waiting receiver got %v", v)
	}
	m.Close()
	if err := m.pushMany([]any{"c"}); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("pushMany to a closed mailbox: %v", err)
	}
}
