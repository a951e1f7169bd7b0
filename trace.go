package reign

import "reflect"

// This file is the tracing hook: Config.Tracer, if set, is told of every
// message sent, delivered or dropped and of every mailbox closed. With no
// tracer the cost is one nil check on each of those paths.

// TraceKind says what a TraceEvent reports.
type TraceKind uint8

// Trace event kinds.
const (
	// TraceSend: Address.Send was called with a message (to a local or a
	// remote mailbox) and accepted it. For a remote mailbox the message
	// is on its way: the far node traces its delivery or drop.
	TraceSend TraceKind = iota + 1
	// TraceDeliver: a message was queued in a local mailbox, sent from
	// this node or received from a peer (Peer says which).
	TraceDeliver
	// TraceDrop: a message was not delivered; Err says why (it wraps
	// ErrMailboxClosed, ErrUnknownType, ErrDecode or ErrNodeUnreachable,
	// for example).
	TraceDrop
	// TraceClose: the local mailbox To closed.
	TraceClose
)

var traceKindNames = [...]string{
	TraceSend:    "send",
	TraceDeliver: "deliver",
	TraceDrop:    "drop",
	TraceClose:   "close",
}

// String returns the kind's name: "send", "deliver", "drop" or "close".
func (k TraceKind) String() string {
	if int(k) < len(traceKindNames) && traceKindNames[k] != "" {
		return traceKindNames[k]
	}
	return "tracekind(" + itoa(int(k)) + ")"
}

// MarshalText encodes the kind as its name, so events log and encode as
// JSON readably.
func (k TraceKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// TraceEvent is one event given to Config.Tracer.
type TraceEvent struct {
	Kind TraceKind
	// To is the mailbox the message was sent to, or the mailbox that
	// closed (TraceClose).
	To Address
	// Peer is the node a message came from (TraceDeliver, and TraceDrop
	// of a message received from a peer) or was sent to (TraceSend, and
	// TraceDrop of a failed Send); it is this node's ID for local traffic.
	Peer NodeID
	// Type is the message's type: its Go type (as reflect prints it, for
	// example "main.Ping") or, for a message from a peer that could not
	// be decoded, the type name the peer sent. Empty for TraceClose.
	Type string
	// Msg is the message itself, nil when it is not at hand (a message
	// from a peer that was dropped before or while decoding, and
	// TraceClose). It is the value the receiver gets: do not modify it.
	Msg any
	// Err says why a message was dropped (TraceDrop); nil otherwise.
	Err error
	// Reason is why the mailbox closed (TraceClose).
	Reason Reason
}

// TypeName returns the name TraceEvent.Type uses for msg's type: its Go
// type as reflect prints it ("main.Ping", "*main.Ping", "string"), or
// "<nil>" for nil.
func TypeName(msg any) string {
	if msg == nil {
		return "<nil>"
	}
	return reflect.TypeOf(msg).String()
}

// traceMsg reports a message event to the tracer, which the caller has
// checked is set (callers test n.cfg.Tracer != nil first, so that no
// tracer costs one nil check). The connection code calls it for messages
// from peers: TraceDeliver after the push, TraceDrop with the reason
// when a message is dropped (closed mailbox, stale address, unknown type,
// undecodable body).
func (n *Node) traceMsg(kind TraceKind, peer NodeID, to Address, msg any, err error) {
	n.cfg.Tracer(TraceEvent{Kind: kind, To: to, Peer: peer, Type: TypeName(msg), Msg: msg, Err: err})
}

// traceDropped reports the drop of a message from peer that has no value
// (its type is unknown here, or its body could not be decoded): typeName
// is the type name the peer sent. The caller has checked the tracer is
// set.
func (n *Node) traceDropped(peer NodeID, to Address, typeName string, err error) {
	n.cfg.Tracer(TraceEvent{Kind: TraceDrop, To: to, Peer: peer, Type: typeName, Err: err})
}

// traceClose reports that the local mailbox m closed. Called by
// Mailbox.Close after it released the mailbox's lock, when a tracer is
// set.
func (n *Node) traceClose(a Address, reason Reason) {
	n.cfg.Tracer(TraceEvent{Kind: TraceClose, To: a, Peer: n.id, Reason: reason})
}

// traceSend reports a Send of msg to a: TraceSend and, for a local
// mailbox, TraceDeliver if it was queued; TraceDrop if Send failed. The
// caller has checked the tracer is set.
func (n *Node) traceSend(a Address, msg any, err error) {
	if err != nil {
		n.traceMsg(TraceDrop, a.node, a, msg, err)
		return
	}
	n.traceMsg(TraceSend, a.node, a, msg, nil)
	if a.node == n.id {
		n.traceMsg(TraceDeliver, n.id, a, msg, nil)
	}
}
