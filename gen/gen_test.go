package gen_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
	"github.com/thejerf/suture/v4"
)

// places runs each failure-path test twice: server and client on one
// node, and on two nodes of a cluster over mutual TLS.
var places = []struct {
	name  string
	nodes func(t *testing.T) (server, client *reign.Node)
}{
	{"local", func(t *testing.T) (*reign.Node, *reign.Node) { n := localNode(t); return n, n }},
	{"remote", func(t *testing.T) (*reign.Node, *reign.Node) { return testCluster(t) }},
}

// each runs test in both places, in parallel.
func each(t *testing.T, test func(t *testing.T, server, client *reign.Node, remote bool)) {
	t.Parallel()
	for _, pl := range places {
		t.Run(pl.name, func(t *testing.T) {
			t.Parallel()
			s, c := pl.nodes(t)
			test(t, s, c, pl.name == "remote")
		})
	}
}

// watch makes a mailbox on n that monitors a, and returns it.
func watch(t *testing.T, n *reign.Node, a reign.Address) *reign.Mailbox {
	w, mb := n.NewMailbox()
	t.Cleanup(mb.Close)
	n.BindAddress(a).OnCloseNotify(w)
	return mb
}

// exitOf receives the MailboxClosed a watcher of server gets.
func exitOf(t *testing.T, w *reign.Mailbox) reign.MailboxClosed {
	t.Helper()
	mc, ok := recv(t, w).(reign.MailboxClosed)
	if !ok {
		t.Fatalf("the watcher got %T, want MailboxClosed", mc)
	}
	return mc
}

func TestCallCastAndReplies(t *testing.T) {
	each(t, func(t *testing.T, sn, cn *reign.Node, remote bool) {
		c := newCounter()
		supervise(t, gen.New(sn, "counter", c))
		lookup(t, cn, "counter", reign.Address{})
		ctx := testCtx(t)

		for want := 1; want <= 3; want++ {
			if got, err := gen.Call[int](ctx, cn, "counter", Incr{}); got != want || err != nil {
				t.Fatalf("Call(Incr) = %v, %v; want %d", got, err, want)
			}
		}
		if err := gen.Cast(cn, "counter", Add{N: 10}); err != nil {
			t.Fatal(err)
		}
		addr := lookup(t, cn, "counter", reign.Address{})
		if got, err := gen.Call[int](ctx, cn, addr, Get{}); got != 13 || err != nil { // by Address
			t.Fatalf("Call(Get) = %v, %v; want 13", got, err)
		}
		if got, err := gen.Call[string](ctx, cn, "counter", Later{}); got != "later" || err != nil {
			t.Fatalf("deferred reply: %q, %v", got, err)
		}

		// an error reply: the caller's error, and the server goes on
		_, err := gen.Call[int](ctx, cn, "counter", Fail{})
		if !remote && !errors.Is(err, errFail) {
			t.Fatalf("Call(Fail) = %v, want errFail", err)
		}
		var re *reign.RemoteError
		if remote && (!errors.As(err, &re) || re.Text != "with 13: test: refused") {
			t.Fatalf("Call(Fail) across nodes = %v (%T), want a RemoteError with the text", err, err)
		}

		// the wrong reply type
		if _, err := gen.Call[string](ctx, cn, "counter", Get{}); err == nil || !strings.Contains(err.Error(), "the reply is a int, not a string") {
			t.Fatalf("Call[string](Get) = %v, want a reply type error", err)
		}

		// an unhandled call fails at once, and the server goes on
		start := time.Now()
		_, err = gen.Call[int](ctx, cn, "counter", Unknown{})
		if err == nil || !strings.Contains(err.Error(), `server "counter" has no handler for call gen_test.Unknown`) {
			t.Fatalf("Call(Unknown) = %v, want an unhandled-call error", err)
		}
		if !remote && !errors.Is(err, gen.ErrUnhandled) {
			t.Fatalf("Call(Unknown) = %v, want ErrUnhandled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("an unhandled call took %v to fail", d)
		}
		if got, err := gen.Call[int](ctx, cn, "counter", Get{}); got != 13 || err != nil {
			t.Fatalf("after the failures, Call(Get) = %v, %v; want 13", got, err)
		}

		// no such name
		if _, err := gen.Call[int](ctx, cn, "nobody", Get{}); !errors.Is(err, gen.ErrNoServer) {
			t.Fatalf("Call to an unknown name = %v, want ErrNoServer", err)
		}
		if err := gen.Cast(cn, "nobody", Add{}); !errors.Is(err, gen.ErrNoServer) {
			t.Fatalf("Cast to an unknown name = %v, want ErrNoServer", err)
		}
		if c.inits != 1 {
			t.Fatalf("the server was started %d times, want 1", c.inits)
		}
	})
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	n := localNode(t)
	supervise(t, gen.New(n, "slow", newCounter()))
	lookup(t, n, "slow", reign.Address{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := gen.Call[string](ctx, n, "slow", Nap{D: int64(300 * time.Millisecond)})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no reply") {
		t.Fatalf("Call past its deadline = %v, want DeadlineExceeded", err)
	}
	// the late reply is discarded, and the server is fine
	if got, err := gen.Call[int](testCtx(t), n, "slow", Incr{}); got != 1 || err != nil {
		t.Fatalf("after a timeout, Call(Incr) = %v, %v", got, err)
	}
}

func TestPanicFailsCallerAndMonitorsAndRestarts(t *testing.T) {
	each(t, func(t *testing.T, sn, cn *reign.Node, remote bool) {
		c := newCounter()
		supervise(t, gen.New(sn, "crashy", c))
		first := lookup(t, cn, "crashy", reign.Address{})
		w := watch(t, cn, first)
		if _, err := gen.Call[int](testCtx(t), cn, "crashy", Incr{}); err != nil {
			t.Fatal(err)
		}

		_, err := gen.Call[int](testCtx(t), cn, "crashy", Boom{})
		if !errors.Is(err, reign.ErrMailboxClosed) {
			t.Fatalf("Call(Boom) = %v, want ErrMailboxClosed", err)
		}
		var pe *gen.PanicError
		if !remote && (!errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0) {
			t.Fatalf("Call(Boom) = %v, want a *PanicError", err)
		}
		if !strings.Contains(err.Error(), `server "crashy" panicked: boom`) {
			t.Fatalf("Call(Boom) = %v, want the panic's text", err)
		}
		mc := exitOf(t, w)
		if mc.Reason != reign.Abnormal || mc.Err == nil {
			t.Fatalf("the monitor got %+v, want Abnormal with a cause", mc)
		}
		if !remote && !errors.As(mc.Err, &pe) {
			t.Fatalf("the monitor's Err = %v, want the *PanicError", mc.Err)
		}
		if !strings.HasPrefix(mc.Err.Error(), `reign: server "crashy" panicked: boom`) {
			t.Fatalf("the monitor's Err = %v, want the panic's text", mc.Err)
		}
		if reason := <-c.terms; !errors.As(reason, &pe) {
			t.Fatalf("Terminate got %v, want the *PanicError", reason)
		}

		// suture restarts it: a new mailbox, fresh state from Init
		second := lookup(t, cn, "crashy", first)
		if got, err := gen.Call[int](testCtx(t), cn, second, Get{}); got != 0 || err != nil {
			t.Fatalf("after the restart, Call(Get) = %v, %v; want 0", got, err)
		}
	})
}

func TestCastErrorStopsTheServer(t *testing.T) {
	each(t, func(t *testing.T, sn, cn *reign.Node, remote bool) {
		c := newCounter()
		supervise(t, gen.New(sn, "caster", c))
		first := lookup(t, cn, "caster", reign.Address{})
		w := watch(t, cn, first)
		if err := gen.Cast(cn, first, CastFail{}); err != nil {
			t.Fatal(err)
		}
		mc := exitOf(t, w)
		if mc.Reason != reign.Abnormal || (!remote && !errors.Is(mc.Err, errCast)) || !strings.Contains(mc.Err.Error(), errCast.Error()) {
			t.Fatalf("the monitor got %+v, want Abnormal with errCast", mc)
		}
		if reason := <-c.terms; !errors.Is(reason, errCast) {
			t.Fatalf("Terminate got %v", reason)
		}
		lookup(t, cn, "caster", first) // restarted

		// a cast nobody handles is a crash too, as in Erlang
		second := lookup(t, cn, "caster", first)
		w = watch(t, cn, second)
		if err := gen.Cast(cn, second, Get{}); err != nil { // Get is a call, not a cast
			t.Fatal(err)
		}
		if mc := exitOf(t, w); mc.Reason != reign.Abnormal || !strings.Contains(mc.Err.Error(), "no handler for cast gen_test.Get") {
			t.Fatalf("an unhandled cast: the monitor got %+v", mc)
		}
	})
}

func TestStopWithReason(t *testing.T) {
	each(t, func(t *testing.T, sn, cn *reign.Node, remote bool) {
		var prev reign.Address
		for _, why := range []string{"", "test: enough"} {
			c := newCounter()
			svc := gen.New(sn, "stopper", c)
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			go func() { done <- svc.Serve(ctx) }()
			a := lookup(t, cn, "stopper", prev) // not the last run's stale claim
			prev = a
			w := watch(t, cn, a)
			if got, err := gen.Call[string](testCtx(t), cn, a, StopMe{Why: why}); got != "bye" || err != nil {
				t.Fatalf("Call(StopMe) = %q, %v; want the reply before the stop", got, err)
			}
			err := <-done
			cancel()
			mc := exitOf(t, w)
			reason := <-c.terms
			if why == "" {
				if !errors.Is(err, suture.ErrDoNotRestart) || mc.Reason != reign.Normal || mc.Err != nil || reason != nil {
					t.Fatalf("normal stop: Serve = %v, monitor %+v, Terminate(%v)", err, mc, reason)
				}
				continue
			}
			if err == nil || err.Error() != why || mc.Reason != reign.Abnormal || mc.Err == nil || reason != err {
				t.Fatalf("stop with %q: Serve = %v, monitor %+v, Terminate(%v)", why, err, mc, reason)
			}
			if (!remote && mc.Err != err) || mc.Err.Error() != err.Error() {
				t.Fatalf("the monitor's Err is %v, not the reason", mc.Err)
			}
			if _, ok := cn.Lookup("stopper"); ok && !remote {
				t.Fatal("the name outlived the server")
			}
		}
	})
}

func TestShutdownAndInitError(t *testing.T) {
	t.Parallel()
	n := localNode(t)
	c := newCounter()
	svc := gen.New(n, "down", c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	a := lookup(t, n, "down", reign.Address{})
	w := watch(t, n, a)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after shutdown = %v", err)
	}
	if mc := exitOf(t, w); mc.Reason != reign.Normal {
		t.Fatalf("a shutdown looks like %+v to monitors, want a normal close", mc)
	}
	if reason := <-c.terms; !errors.Is(reason, context.Canceled) {
		t.Fatalf("Terminate(%v), want the context's cause", reason)
	}

	bad := &badInit{counter: newCounter()}
	err := gen.New(n, "bad", bad).Serve(context.Background())
	if !errors.Is(err, errInit) {
		t.Fatalf("Serve with a failing Init = %v", err)
	}
	if len(bad.terms) != 0 {
		t.Fatal("Terminate ran although Init failed")
	}
	if _, ok := n.Lookup("bad"); ok {
		t.Fatal("the name outlived a failed Init")
	}
}

var errInit = errors.New("test: no init")

type badInit struct{ *counter }

func (b *badInit) Init(*gen.Process) error { return errInit }

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	n := localNode(t)
	c := newCounter()
	supervise(t, gen.New(n, "idle", c))
	lookup(t, n, "idle", reign.Address{})
	ctx := testCtx(t)
	start := time.Now()
	if _, err := gen.Call[string](ctx, n, "idle", Idle{D: int64(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if m := <-c.info; m != (gen.Timeout{}) {
		t.Fatalf("HandleInfo got %T, want Timeout", m)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("the timeout came after %v", d)
	}
	// A message before the timeout cancels it, and it applies to one
	// wait only: after Get, no Timeout comes (a timer sent later to
	// self arrives first).
	if _, err := gen.Call[string](ctx, n, "idle", Idle{D: int64(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Call[int](ctx, n, "idle", Get{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Call[string](ctx, n, "idle", Idle{D: int64(20 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Call[int](ctx, n, "idle", Get{}); err != nil { // cancels the 20 ms
		t.Fatal(err)
	}
	gen.SendAfter(100*time.Millisecond, lookup(t, n, "idle", reign.Address{}), Add{N: 1})
	eventually(t, func() error {
		if got, _ := gen.Call[int](ctx, n, "idle", Get{}); got != 1 {
			return errors.New("the timer's cast has not arrived")
		}
		return nil
	})
	if len(c.info) != 0 {
		t.Fatalf("HandleInfo got %v: a timeout applied to more than one wait", <-c.info)
	}
}

func TestTimers(t *testing.T) {
	t.Parallel()
	n := localNode(t)
	a, mb := n.NewMailbox()
	defer mb.Close()
	t1 := gen.SendAfter(20*time.Millisecond, a, "cancelled")
	if !gen.CancelTimer(t1) {
		t.Fatal("CancelTimer of a pending timer = false")
	}
	if gen.CancelTimer(t1) || gen.CancelTimer(nil) {
		t.Fatal("CancelTimer of a cancelled or nil timer = true")
	}
	t2 := gen.SendAfter(60*time.Millisecond, a, "fired")
	if got := recv(t, mb); got != "fired" {
		t.Fatalf("got %v: the cancelled timer fired", got)
	}
	if gen.CancelTimer(t2) {
		t.Fatal("CancelTimer of a fired timer = true")
	}

	// Process.SendAfter goes to HandleInfo
	c := &selfTimer{counter: newCounter()}
	supervise(t, gen.New(n, "ticker", c))
	if got := <-c.info; got != "tick" {
		t.Fatalf("HandleInfo got %v, want the timer's tick", got)
	}
	if !<-c.cancelled {
		t.Fatal("cancelling a pending self timer = false")
	}
}

// selfTimer sets two timers to itself in Init and cancels the first.
type selfTimer struct {
	*counter
	cancelled chan bool
}

func (s *selfTimer) Init(p *gen.Process) error {
	s.cancelled = make(chan bool, 1)
	t := p.SendAfter(time.Millisecond, "cancelled tick")
	s.cancelled <- gen.CancelTimer(t)
	p.SendAfter(5*time.Millisecond, "tick")
	return nil
}

// A client keeps calling by name while the server crashes and suture
// restarts it: every call either succeeds or fails at once with a reason
// that says so; none hangs; calls succeed again after each restart.
func TestRestartWhileClientKeepsCalling(t *testing.T) {
	each(t, func(t *testing.T, sn, cn *reign.Node, remote bool) {
		supervise(t, gen.New(sn, "flaky", newCounter()))
		lookup(t, cn, "flaky", reign.Address{})
		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := gen.Call[int](ctx, cn, "flaky", Incr{})
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, reign.ErrMailboxClosed), errors.Is(err, gen.ErrNoServer):
					failed.Add(1)
				default:
					t.Errorf("a call failed with %v", err)
					return
				}
			}
		})
		for crash := 0; crash < 5; crash++ {
			before := ok.Load()
			eventually(t, func() error {
				if ok.Load() < before+20 {
					return errors.New("the client's calls do not succeed")
				}
				return nil
			})
			_, err := gen.Call[int](testCtx(t), cn, "flaky", Boom{})
			if !errors.Is(err, reign.ErrMailboxClosed) {
				t.Errorf("Call(Boom) = %v", err)
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d calls succeeded, %d failed at once during restarts", ok.Load(), failed.Load())
	})
}

// A shutdown ends the server even while messages keep coming (Receive
// returns queued messages even when its context is done).
func TestShutdownWithABusyMailbox(t *testing.T) {
	t.Parallel()
	n := localNode(t)
	c := newCounter()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gen.New(n, "busy", c).Serve(ctx) }()
	a := lookup(t, n, "busy", reign.Address{})
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // slow casts, faster than the server takes them
		for {
			select {
			case <-stop:
				return
			default:
				if a.Send(Nap{D: int64(time.Millisecond)}) == nil {
					sent.Add(1)
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	eventually(t, func() error {
		if sent.Load() < 1000 {
			return errors.New("the casts are not sent")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("a busy server did not shut down")
	}
}
