package reign

import "log/slog"

// CloseReason says why a connection to a peer ended, or why an incoming
// connection or a connection attempt was refused. Every path that ends a
// connection passes exactly one; it is logged under the "reason" key and
// counted per reason in Stats (per peer and in total), like nats-server's
// ClosedState.
//
// The numbers are not on the wire, but Stats are indexed by them: ONLY
// APPEND, and give each new reason a name in closeReasonNames.
type CloseReason uint8

// Connection close reasons.
const (
	// CloseUnknown is the zero value, never passed by the node itself.
	CloseUnknown CloseReason = iota
	// ClosePeerClosed: the peer closed the connection or reset it
	// without a Goodbye (its process died, or the network cut it).
	ClosePeerClosed
	// CloseGoodbye: the peer said Goodbye: it is shutting down cleanly.
	CloseGoodbye
	// CloseHeartbeatTimeout: the peer sent nothing for the heartbeat
	// timeout.
	CloseHeartbeatTimeout
	// CloseReadError: reading from the connection failed.
	CloseReadError
	// CloseWriteError: writing to the connection failed, or a write did
	// not finish within the heartbeat timeout (the peer stopped reading).
	CloseWriteError
	// CloseProtocolError: the peer sent a malformed frame, an unknown
	// frame type, a frame it may not send, or broke the type dictionary
	// or incarnation rules.
	CloseProtocolError
	// CloseReplaced: a newer connection from the same node (a restarted
	// process, or the same one after a half-open failure) replaced this
	// one.
	CloseReplaced
	// CloseDuplicateNode: another live process claims the peer's node ID
	// (or this node's, when the peer refused us): a configuration error.
	// One connection is kept; the refused process backs off.
	CloseDuplicateNode
	// CloseShutdown: this node is shutting down (its Serve's context
	// ended).
	CloseShutdown
	// CloseHandshakeFailed: the TLS or reign handshake failed (timeout,
	// no common protocol version, another codec, a bad Hello, or a
	// connection from a node that should have been dialed).
	CloseHandshakeFailed
	// CloseBadCertificate: the peer's certificate is not a usable reign
	// node certificate of this cluster (another CA, expired, wrong
	// usages, naming no node or several).
	CloseBadCertificate
	// ClosePeerIdentity: the peer's certificate is good but names another
	// node than the one expected or claimed, or a node not in the spec.
	ClosePeerIdentity
	// CloseTooManyHandshakes: too many incoming handshakes were in
	// progress; the connection was refused or its handshake evicted.
	CloseTooManyHandshakes
	// CloseLimitExceeded: the peer crossed a per-peer bound (type
	// dictionary, links, names, queued control replies).
	CloseLimitExceeded
	// CloseDuplicateConn: with membership either side may dial; the lower
	// node ID of the pair refused a connection the higher dialed, before
	// either side used it, because it had one of its own on the way.
	// Routine.
	CloseDuplicateConn
	// CloseMemberGone: membership declared the peer failed (or it left
	// and did not close its connection itself).
	CloseMemberGone
	// CloseGossipError: the peer broke the membership (gossip) protocol,
	// or sent gossip to a node whose membership is off.
	CloseGossipError
	// CloseIdle: with membership, a connection nothing needed (no links,
	// calls, names or groups either side) and that carried no traffic for
	// MembershipConfig.IdleTimeout was closed by agreement; the next use
	// connects again. Routine: not a node down.
	CloseIdle

	// numCloseReasons sizes the counters; keep it last.
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	CloseUnknown:           "unknown",
	ClosePeerClosed:        "peer closed",
	CloseGoodbye:           "goodbye",
	CloseHeartbeatTimeout:  "heartbeat timeout",
	CloseReadError:         "read error",
	CloseWriteError:        "write error",
	CloseProtocolError:     "protocol error",
	CloseReplaced:          "replaced",
	CloseDuplicateNode:     "duplicate node",
	CloseShutdown:          "shutdown",
	CloseHandshakeFailed:   "handshake failed",
	CloseBadCertificate:    "bad certificate",
	ClosePeerIdentity:      "peer identity",
	CloseTooManyHandshakes: "too many handshakes",
	CloseLimitExceeded:     "limit exceeded",
	CloseDuplicateConn:     "duplicate connection",
	CloseMemberGone:        "member gone",
	CloseGossipError:       "gossip protocol error",
	CloseIdle:              "idle",
}

// String returns the reason's name, such as "heartbeat timeout".
func (r CloseReason) String() string {
	if r < numCloseReasons {
		return closeReasonNames[r]
	}
	return "closereason(" + itoa(int(r)) + ")"
}

// LogValue logs the reason by name, whatever the slog handler.
func (r CloseReason) LogValue() slog.Value { return slog.StringValue(r.String()) }

// MarshalText returns the reason's name, so Stats encode as JSON with
// readable keys.
func (r CloseReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// connError is an error that ends a connection, with its close reason.
// Handlers return it (through protocolError and friends) so the reader
// closes the connection with the right reason.
type connError struct {
	reason CloseReason
	err    error
}

func (e *connError) Error() string { return e.reason.String() + ": " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// closeWith wraps err with the reason it closes a connection for.
func closeWith(r CloseReason, err error) error { return &connError{reason: r, err: err} }

// reasonOf returns the close reason err carries; a bare error from a
// frame handler is a protocol error.
func reasonOf(err error) CloseReason {
	if ce, ok := err.(*connError); ok {
		return ce.reason
	}
	return CloseProtocolError
}
