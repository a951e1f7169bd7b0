package reign

import (
	"context"
	"fmt"
	"reflect"
)

// Request is what Call delivers to a server's mailbox: the body of the call
// and who waits for the reply. Handle it as a gen_server handles a call:
// receive it, work out the answer, and Reply. A Request may be kept and
// replied to later, or passed to another mailbox, on this node or another,
// that replies instead.
//
// The reply always travels back the way the Request came: to the node that
// sent it, over that connection, which passes it on if the Request was
// forwarded. A node never sends a reply to a third node on a Request's
// word (a peer could otherwise aim replies at any mailbox of the cluster).
type Request struct {
	Body    any // what the caller passed to Call
	replyTo Address
	ref     uint64 // the Call's reference (local caller), or the Request frame's CallRef
	from    origin // where the reply goes, if the Request came from another node
}

// origin is the node a Request came from, and the reference of that
// node's Request frame: the reply goes there and nowhere else.
type origin struct {
	node   NodeID
	inc    uint32 // that node's incarnation: a reply never goes to a later run
	remote bool   // false: the Request was made by Call on this node
}

// callReply carries a Reply back to the caller's private mailbox.
type callReply struct {
	ref   uint64
	value any
}

// ReplyTo returns the Address of the caller's private reply mailbox, which
// exists only while the call waits (Erlang's From): watch it, or compare
// it, to know the caller. Replies go through Reply, never by a Send to
// this Address.
func (r Request) ReplyTo() Address { return r.replyTo }

// Reply sends v to the caller as the result of its Call. A reply that
// arrives after the caller stopped waiting (its context ended, or it got a
// reply already) is discarded, never left in any mailbox; locally Reply
// then returns an error wrapping ErrMailboxClosed. v travels to another
// node like any message: its type must be registered on both nodes. If
// it cannot travel (its type is not registered here, or the codec cannot
// encode it), Reply returns a *CallError saying so, and the caller's Call
// fails at once with the same error.
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
	if !r.from.remote {
		return n.send(r.replyTo, callReply{ref: r.ref, value: v})
	}
	if err, ok := v.(error); ok && n.types.forType(reflect.TypeOf(v)) == nil {
		v = &RemoteError{Text: err.Error()}
	}
	return n.replyRemote(r.from, r.ref, r.replyTo, v)
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
// ErrNodeUnreachable if server's node is or becomes unreachable. It fails
// at once with a *CallError, which names the type and the side, if the
// request or the reply cannot travel: its type is not registered on the
// node that encodes or decodes it, or the codec refuses it. ctx bounds
// the wait; when it ends, Call returns ctx.Err() and a reply that comes
// later is discarded.
//
// Each Call uses a short-lived private mailbox on the node server is bound
// to, so calls are safe from any goroutine, concurrently. Across nodes the
// request carries a random 64-bit reference, and only the server's node
// can answer it.
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
	req := Request{Body: body, replyTo: from, ref: ref}
	if server.node != n.id {
		wref, err := n.sendRequest(server, req, true)
		if wref != 0 {
			defer n.calls.remove(wref)
		}
		if err != nil {
			return nil, err
		}
	} else if err := n.send(server, req); err != nil {
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

// CallSide says on which side of a call a *CallError happened.
type CallSide uint8

const (
	// CallerSide: the caller's node could not encode the request or
	// decode the reply.
	CallerSide CallSide = iota + 1
	// ServerSide: a node on the server's side (the server's, or one the
	// request was forwarded through) could not decode the request, or
	// encode, pass on or decode the reply.
	ServerSide
)

// String returns "caller" or "server".
func (s CallSide) String() string {
	switch s {
	case CallerSide:
		return "caller"
	case ServerSide:
		return "server"
	}
	return "side(" + itoa(int(s)) + ")"
}

// CallError is why a Call failed because its request or its reply could
// not travel: a type not registered on a node that must decode or encode
// it, a body the codec refuses, or a reply a forwarding node could not
// pass on. It wraps the condition (ErrUnknownType, ErrDecode, ErrEncode,
// ErrReservedType, ErrFrameTooLarge, ErrNodeUnreachable or, for a
// forwarded request whose mailbox is closed, ErrMailboxClosed), so
// errors.Is works on it.
type CallError struct {
	Side  CallSide // which side failed
	Node  NodeID   // the node where it failed
	Reply bool     // the reply's body failed (false: the request's)
	Type  string   // the body's type: its registered name, or its Go type
	Err   error    // the condition
}

// Error names the side, the node, the part of the call and its type.
func (e *CallError) Error() string {
	part := "request"
	if e.Reply {
		part = "reply"
	}
	if e.Type != "" {
		part += fmt.Sprintf(" of type %q", e.Type)
	}
	return fmt.Sprintf("reign: call failed on the %v's side (node %d): %s: %s",
		e.Side, e.Node, part, trimPrefix(e.Err.Error()))
}

// Unwrap returns the condition.
func (e *CallError) Unwrap() error { return e.Err }

// remoteCause is the condition of a CallError that another node reported:
// its text, from that node, and the sentinel its code names.
type remoteCause struct {
	kind error
	text string
}

func (e *remoteCause) Error() string {
	if e.text == "" {
		return e.kind.Error()
	}
	return e.text
}

func (e *remoteCause) Unwrap() error { return e.kind }
