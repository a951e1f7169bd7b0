package gen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign"
)

// DefaultTimeout bounds a Call whose context has no deadline: Erlang's
// gen_server:call default of 5 seconds.
const DefaultTimeout = 5 * time.Second

// ErrNoServer: no server is registered under the name given to Call or
// Cast (Erlang's noproc). They fail with it at once, as gen_server:call
// does, rather than wait for the name: to wait for a server that is
// starting, call reign.Node.WaitName first, within the same ctx.
var ErrNoServer = errors.New("reign: no server registered under that name")

// Target is how Call and Cast name a server: its registered name, looked
// up in the cluster-wide registry at each call, so calls reach a restarted
// server; or its Address.
type Target interface {
	string | reign.Address
}

// Call sends req to the server to and waits for its reply, which must be an
// R (or nil, which gives R's zero value): gen_server:call. The caller names
// the reply's type: n, err := gen.Call[int](ctx, node, "ch3", Alloc{}).
//
// node is the calling node, on which a name is looked up. If ctx has no
// deadline, the call waits at most DefaultTimeout (a little more, by up to
// a tenth of a second, when ctx is one that never ends, such as
// context.Background()). It fails:
//   - with ErrNoServer if no server is registered under the name;
//   - with the server's error if HandleCall returned one (wrapping
//     ErrUnhandled for a request it does not handle);
//   - wrapping reign.ErrMailboxClosed and the exit reason if the server
//     exits before replying (across nodes, the reason as a
//     *reign.RemoteError), or reign.ErrNodeUnreachable if its node is lost;
//   - wrapping context.DeadlineExceeded if no reply comes in time (a late
//     reply is discarded).
func Call[R any, T Target](ctx context.Context, node *reign.Node, to T, req any) (R, error) {
	var zero R
	addr, err := resolve(node, to)
	if err != nil {
		return zero, err
	}
	if _, ok := ctx.Deadline(); !ok {
		if ctx.Done() == nil { // Background, TODO: share a deadline
			ctx = defaultDeadline()
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
			defer cancel()
		}
	}
	v, err := reign.Call(ctx, addr, req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return zero, fmt.Errorf("reign: call %T to %v: no reply: %w", req, addr, err)
		}
		return zero, err
	}
	if v == nil {
		return zero, nil
	}
	r, ok := v.(R)
	if !ok {
		return zero, fmt.Errorf("reign: call %T to %v: the reply is a %T, not a %T", req, addr, v, zero)
	}
	return r, nil
}

// coarse is the window within which calls share one default deadline.
const coarse = 100 * time.Millisecond

// sharedDeadline is the context that ends DefaultTimeout (plus up to
// coarse) after the calls of the current window started; nil between
// windows.
var sharedDeadline atomic.Pointer[deadlineCtx]

type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc // unused: the context ends at its deadline
}

// defaultDeadline returns a context that ends at least DefaultTimeout from
// now, for a Call whose context neither ends nor has a deadline. A context
// of its own for every call would cost more than a local call (it reads
// the clock and arms a runtime timer, twice a microsecond on a busy
// machine), so the calls that start within one coarse window share one,
// made by the first of them and forgotten when the window ends: a call
// waits between DefaultTimeout and DefaultTimeout+coarse, and at most
// DefaultTimeout/coarse of these contexts are pending at any time.
func defaultDeadline() context.Context {
	if d := sharedDeadline.Load(); d != nil {
		return d.ctx
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout+coarse)
	d := &deadlineCtx{ctx: ctx, cancel: cancel}
	if sharedDeadline.CompareAndSwap(nil, d) {
		time.AfterFunc(coarse, func() { sharedDeadline.CompareAndSwap(d, nil) })
	}
	return ctx
}

// Cast sends msg to the server to without waiting (gen_server:cast); the
// server's HandleCast receives it. Unlike Erlang's cast it reports what it
// can see at once: ErrNoServer for an unknown name, reign.ErrMailboxClosed
// for a closed local server, an unregistered type.
func Cast[T Target](node *reign.Node, to T, msg any) error {
	addr, err := resolve(node, to)
	if err != nil {
		return err
	}
	return addr.Send(msg)
}

// resolve returns the Address of to: a name's current claim, or the
// Address itself.
func resolve[T Target](node *reign.Node, to T) (reign.Address, error) {
	switch to := any(to).(type) {
	case reign.Address:
		return to, nil
	case string:
		if node == nil {
			return reign.Address{}, fmt.Errorf("%w: %q: no node to look it up on", ErrNoServer, to)
		}
		if a, ok := node.Lookup(to); ok {
			return a, nil
		}
		return reign.Address{}, fmt.Errorf("%w: %q", ErrNoServer, to)
	}
	panic("unreachable")
}

// Timer is a pending SendAfter; cancel it with CancelTimer.
type Timer struct{ t *time.Timer }

// SendAfter sends msg to to after d (erlang:send_after): the runtime's
// timer fires it, with no goroutine waiting until then. A send that fails
// when it fires (the mailbox closed) is dropped, as in Erlang.
func SendAfter(d time.Duration, to reign.Address, msg any) *Timer {
	return &Timer{t: time.AfterFunc(d, func() { _ = to.Send(msg) })}
}

// CancelTimer stops t (erlang:cancel_timer): it reports whether t was
// still pending, and so whether its message will never be sent. A nil t
// is never pending.
func CancelTimer(t *Timer) bool {
	return t != nil && t.t.Stop()
}
