package gen

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/reign-go/reign"
	"github.com/thejerf/suture/v4"
)

// ErrUnhandled is what a callback returns (or wraps) for a message it does
// not handle. From HandleCall, the caller's Call fails at once with an
// error wrapping it; from HandleCast, the server stops with it, as an
// Erlang server with no matching clause crashes; from HandleInfo, the
// message is dropped.
var ErrUnhandled = errors.New("reign: unhandled message")

// Server is a gen_server's callback module: the one callback every server
// has. A server may also implement Initer, CastHandler, InfoHandler and
// Terminator. Its methods are called one at a time, on Serve's goroutine.
type Server interface {
	// HandleCall answers req, the body a caller passed to Call. The reply
	// (or, if err is non-nil, err) is sent to the caller; return
	// ErrUnhandled for a request the server does not know.
	HandleCall(p *Process, req any) (reply any, err error)
}

// Initer is a Server with an init callback, run at every (re)start after
// the name is registered and before the first message. An error stops the
// server with it as the reason.
type Initer interface {
	Init(p *Process) error
}

// CastHandler is a Server that takes casts: every message that is not a
// call nor one of the system's (see HandleInfo). An error stops the server.
type CastHandler interface {
	HandleCast(p *Process, msg any) error
}

// InfoHandler is a Server that takes the system's messages:
// reign.MailboxClosed, reign.MultipleClaim, reign.NodeUp, reign.NodeDown,
// reign.GroupChanged, Timeout, and the messages of
// timers set with Process.SendAfter. An error other than ErrUnhandled stops
// the server.
type InfoHandler interface {
	HandleInfo(p *Process, msg any) error
}

// Terminator is a Server with a terminate callback, run once when a server
// that started (Init succeeded) stops, whatever the reason, before its
// mailbox closes: reason is nil for a normal stop, a *PanicError after a
// panic, the context's cause on shutdown.
type Terminator interface {
	Terminate(p *Process, reason error)
}

// Timeout is the message HandleInfo receives when no message arrived within
// the time a callback set with Process.SetTimeout.
type Timeout struct{}

// timerMsg carries the message of a Process.SendAfter timer, so that it
// goes to HandleInfo. It never leaves its node.
type timerMsg struct{ msg any }

// PanicError is the exit reason of a server whose callback panicked.
type PanicError struct {
	Server string // the server's name
	Value  any    // what the callback panicked with
	Stack  []byte // the panicking goroutine's stack
}

// Error names the server and the panic's value (not the stack).
func (e *PanicError) Error() string {
	return fmt.Sprintf("reign: server %q panicked: %v", e.Server, e.Value)
}

// Unwrap returns the panic's value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Process is a running server's view of itself, passed to every callback:
// its Address, its node, and the ways to change how it goes on. It is only
// for use by the callbacks of its server, on their goroutine.
type Process struct {
	s        *Service
	self     reign.Address
	ctx      context.Context
	timeout  time.Duration
	stopping bool
	reason   error
	req      reign.Request // the call being handled
	deferred bool
	started  bool // Init succeeded: Terminate is due
}

// Self returns the server's Address (Erlang's self()). It changes when the
// server is restarted.
func (p *Process) Self() reign.Address { return p.self }

// Node returns the node the server runs on.
func (p *Process) Node() *reign.Node { return p.s.node }

// Name returns the server's registered name.
func (p *Process) Name() string { return p.s.name }

// Context returns Serve's context: done when the server is being shut down.
func (p *Process) Context() context.Context { return p.ctx }

// Stop makes the server stop with reason once the current callback returns
// (after sending its reply, in HandleCall): Erlang's {stop, Reason, ...}.
// A nil reason is a normal stop.
func (p *Process) Stop(reason error) { p.stopping, p.reason = true, reason }

// SetTimeout makes the server's next wait for a message last at most d:
// if nothing arrives by then, HandleInfo receives Timeout{}. It applies to
// the next wait only, as the Timeout of Erlang's {reply, R, S, Timeout}
// does; zero or less means no timeout.
func (p *Process) SetTimeout(d time.Duration) { p.timeout = d }

// SendAfter sends msg to this server's HandleInfo after d, unless the
// timer is cancelled first (erlang:send_after(D, self(), Msg)).
func (p *Process) SendAfter(d time.Duration, msg any) *Timer {
	return SendAfter(d, p.self, timerMsg{msg})
}

// DeferReply tells HandleCall's caller to wait: the values HandleCall
// returns are ignored, and the returned Request is answered later with its
// Reply, perhaps by another goroutine or server (Erlang's {noreply, S}
// followed by gen_server:reply(From, Reply)). If the server exits first,
// the caller's Call fails with the reason. Only for use inside HandleCall.
func (p *Process) DeferReply() reign.Request {
	p.deferred = true
	return p.req
}

// Service runs a Server under a registered name: a suture.Service. Add it
// to a suture.Supervisor (next to the *reign.Node it runs on) to get
// gen_server:start_link and a supervisor's restarts. Serve it on one
// goroutine at a time.
type Service struct {
	node *reign.Node
	name string
	srv  Server
}

// New returns a Service that runs srv on node, registered as name.
func New(node *reign.Node, name string, srv Server) *Service {
	return &Service{node: node, name: name, srv: srv}
}

// String returns the server's name, for suture's logs.
func (s *Service) String() string { return s.name }

// Serve runs the server until it stops (see the package documentation,
// "Exits"): it makes a mailbox, registers the name, runs Init and then the
// callbacks one message at a time. When it returns, Terminate has run, the
// mailbox is closed with the reason and the name released.
func (s *Service) Serve(ctx context.Context) (err error) {
	self, mb := s.node.NewMailbox()
	p := &Process{s: s, self: self, ctx: ctx}
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Server: s.name, Value: r, Stack: debug.Stack()}
		}
		err = s.exit(p, mb, err)
	}()
	if err := s.node.Register(s.name, self); err != nil {
		return err
	}
	if i, ok := s.srv.(Initer); ok {
		if err := i.Init(p); err != nil {
			return err
		}
	}
	p.started = true
	for !p.stopping {
		if err := ctx.Err(); err != nil { // a busy mailbox does not delay a shutdown
			return err
		}
		msg, err := s.receive(ctx, p, mb)
		if err != nil {
			return err
		}
		if err := s.handle(p, msg); err != nil {
			return err
		}
	}
	return p.reason
}

// receive waits for the next message, or makes a Timeout if the last
// callback set one and it passed first.
func (s *Service) receive(ctx context.Context, p *Process, mb *reign.Mailbox) (any, error) {
	if p.timeout <= 0 {
		return mb.Receive(ctx)
	}
	wait, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	msg, err := mb.Receive(wait)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return Timeout{}, nil
	}
	return msg, err
}

// handle passes one message to its callback. A non-nil error stops the
// server with it.
func (s *Service) handle(p *Process, msg any) error {
	p.timeout = 0
	switch m := msg.(type) {
	case reign.Request:
		p.req, p.deferred = m, false
		reply, err := s.srv.HandleCall(p, m.Body)
		p.req = reign.Request{}
		if p.deferred {
			return nil
		}
		if errors.Is(err, ErrUnhandled) {
			err = fmt.Errorf("%w: server %q has no handler for call %T", ErrUnhandled, s.name, m.Body)
		}
		if err != nil {
			_ = m.Reply(err)
		} else {
			_ = m.Reply(reply) // a caller that gave up is no failure of the server
		}
		return nil
	case reign.MailboxClosed, reign.MultipleClaim, reign.NodeUp, reign.NodeDown, reign.GroupChanged, Timeout:
		return s.info(p, m)
	case timerMsg:
		return s.info(p, m.msg)
	}
	if h, ok := s.srv.(CastHandler); ok {
		err := h.HandleCast(p, msg)
		if errors.Is(err, ErrUnhandled) {
			return fmt.Errorf("%w: server %q has no handler for cast %T", ErrUnhandled, s.name, msg)
		}
		return err
	}
	return fmt.Errorf("%w: server %q takes no casts, got %T", ErrUnhandled, s.name, msg)
}

func (s *Service) info(p *Process, msg any) error {
	if h, ok := s.srv.(InfoHandler); ok {
		if err := h.HandleInfo(p, msg); !errors.Is(err, ErrUnhandled) {
			return err
		}
	}
	return nil
}

// exit ends a run that stopped with reason: Terminate, then the mailbox's
// close with the cause, and what Serve returns.
func (s *Service) exit(p *Process, mb *reign.Mailbox, reason error) (ret error) {
	shutdown := p.ctx.Err() != nil && errors.Is(reason, p.ctx.Err())
	if shutdown {
		reason = context.Cause(p.ctx)
	}
	if t, ok := s.srv.(Terminator); ok && p.started {
		func() {
			defer func() {
				if r := recover(); r != nil && reason == nil {
					reason = &PanicError{Server: s.name, Value: r, Stack: debug.Stack()}
				}
			}()
			t.Terminate(p, reason)
		}()
	}
	switch {
	case shutdown:
		mb.Close() // asked to stop: not a crash
		return reason
	case reason == nil:
		mb.Close()
		return suture.ErrDoNotRestart
	}
	mb.CloseWithError(reason)
	return reason
}
