package reign

import (
	"context"
	"fmt"
	"reflect"

	"github.com/reign-go/reign/internal/wire"
)

// Request is what Call delivers to a server's mailbox: the body of the call
// and where to send the reply. Handle it as a gen_server handles a call:
// receive it, work out the answer, and Reply. A Request may be kept and
// replied to later, or passed to another mailbox (even on another node)
// that replies instead.
type Request struct {
	Body    any // what the caller passed to Call
	replyTo Address
	ref     uint64
}

// callReply carries a Reply back to the caller's private mailbox.
type callReply struct {
	ref   uint64
	value any
}

// ReplyTo returns the Address the reply goes to: the caller's private reply
// mailbox, which exists only while the call waits (Erlang's From).
func (r Request) ReplyTo() Address { return r.replyTo }

// Reply sends v to the caller as the result of its Call. A reply that
// arrives after the caller stopped waiting (its context ended, or it got a
// reply already) is discarded, never left in any mailbox; locally Reply
// then returns an error wrapping ErrMailboxClosed. v travels to another
// node like any message: its type must be registered on both nodes.
//
// v may be an error: the caller's Call then returns it as its error (the
// Go form of Erlang's {error, Reason} reply). To a caller on this node the
// error goes as it is; to one on another node, an error whose type is not
// registered goes as a *RemoteError carrying its text, so replying with
// fmt.Errorf(...) or a sentinel works across nodes.
func (r Request) Reply(v any) error {
	n := r.replyTo.n
	if n == nil {
		return r.replyTo.unboundErr()
	}
	if err, ok := v.(error); ok && r.replyTo.node != n.id && n.types.forType(reflect.TypeOf(v)) == nil {
		v = &RemoteError{Text: err.Error()}
	}
	return n.send(r.replyTo, callReply{ref: r.ref, value: v})
}

// Call sends Request{Body: body} to server and waits for the value the
// server passes to Reply, the way gen_server:call does. If that value is an
// error, Call returns it as its error, with a nil value (as net/rpc
// returns a server's error); across nodes it is a *RemoteError with the
// text, unless its type is registered on both nodes.
//
// It fails fast, with an error wrapping ErrMailboxClosed, if server's
// mailbox is closed or closes before replying (if it was closed with
// CloseWithError, the error wraps that cause too, so errors.Is finds it
// locally, and across nodes its text arrives), and with one wrapping
// ErrNodeUnreachable if server's node is or becomes unreachable. ctx bounds
// the wait; when it ends, Call returns ctx.Err() and a reply that comes
// later is discarded. Call works across nodes: Request is always
// decodable, and body and the reply travel as messages.
//
// Each Call uses a short-lived private mailbox on the node server is bound
// to, so calls are safe from any goroutine, concurrently.
func Call(ctx context.Context, server Address, body any) (any, error) {
	n := server.n
	if n == nil {
		return nil, server.unboundErr()
	}
	from, mb := n.NewMailbox()
	defer mb.Close()
	server.OnCloseNotify(from)
	defer server.RemoveNotify(from)
	ref := n.refs.Add(1)
	if err := n.send(server, Request{Body: body, replyTo: from, ref: ref}); err != nil {
		return nil, err
	}
	v, err := mb.ReceiveMatch(ctx, func(m any) bool {
		switch m := m.(type) {
		case callReply:
			return m.ref == ref
		case MailboxClosed:
			return m.Address == server
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	switch m := v.(type) {
	case callReply:
		if err, ok := m.value.(error); ok {
			return nil, err
		}
		return m.value, nil
	case MailboxClosed:
		if m.Reason == NoConnection || m.Reason == NodeShutdown {
			return nil, fmt.Errorf("%w: server %v lost before replying (%v)", ErrNodeUnreachable, server, m.Reason)
		}
		if m.Err != nil {
			return nil, fmt.Errorf("%w: server %v exited before replying: %w", ErrMailboxClosed, server, m.Err)
		}
		return nil, fmt.Errorf("%w: server %v closed (%v) before replying", ErrMailboxClosed, server, m.Reason)
	}
	return nil, fmt.Errorf("reign: internal error: call received %T", v)
}

// handleRequest delivers a peer's call to a local mailbox. ReplyTo may name
// a mailbox on any node: a Request can be forwarded. (If the server is
// gone, the caller's link to it says so.)
func handleRequest(c *conn, payload []byte) error {
	m, err := wire.ParseRequest(payload)
	if err != nil {
		return err
	}
	replyTo := Address{n: c.p.c.n, node: NodeID(m.ReplyTo.Node), inc: m.ReplyTo.Inc, id: m.ReplyTo.ID}
	return c.deliver(m.To, m.TypeID, m.Body, func(v any) any {
		return Request{Body: v, replyTo: replyTo, ref: m.CallRef}
	})
}

// handleReply delivers the answer to a call to its caller's reply mailbox.
// (A reply for a closed mailbox is a late one: the caller gave up.)
func handleReply(c *conn, payload []byte) error {
	m, err := wire.ParseReply(payload)
	if err != nil {
		return err
	}
	return c.deliver(m.To, m.TypeID, m.Body, func(v any) any {
		return callReply{ref: m.CallRef, value: v}
	})
}
