package reign

import (
	"errors"
	"fmt"

	"github.com/reign-go/reign/internal/wire"
)

// Sentinel errors. Every error this package returns either is one of these or
// wraps one, so callers test with errors.Is. Their text starts with "reign: ".
var (
	// ErrMailboxClosed: the mailbox has been closed (or never existed on
	// this run of its node).
	ErrMailboxClosed = errors.New("reign: mailbox closed")

	// ErrNodeUnreachable: there is no working connection to the node that
	// owns the address, or it was lost while waiting.
	ErrNodeUnreachable = errors.New("reign: node unreachable")

	// ErrUnknownType: a message's type is not registered with the node
	// (on sending), or names a type the receiving node does not know.
	ErrUnknownType = errors.New("reign: unknown message type")

	// ErrDecode: a message's bytes could not be decoded by the codec.
	ErrDecode = errors.New("reign: message could not be decoded")

	// ErrEncode: the codec could not encode a message.
	ErrEncode = errors.New("reign: message could not be encoded")

	// ErrFrameTooLarge: a frame, or an encoded message, exceeds the
	// configured maximum frame size.
	ErrFrameTooLarge = wire.ErrFrameTooLarge

	// ErrZeroAddress: the operation was given the zero Address.
	ErrZeroAddress = errors.New("reign: zero address")

	// ErrUnboundAddress: the Address was built by UnmarshalBinary or
	// UnmarshalText and is not bound to a node yet; see Node.BindAddress.
	ErrUnboundAddress = errors.New("reign: address not bound to a node")

	// ErrNotLocal: the operation needs a mailbox of this node.
	ErrNotLocal = errors.New("reign: address is not a local mailbox")

	// ErrBadConfig: NewNode was given an unusable Config or ClusterSpec;
	// the *ConfigError that wraps it names the field.
	ErrBadConfig = errors.New("reign: bad configuration")

	// ErrBadAddress: bytes or text that do not encode an Address.
	ErrBadAddress = errors.New("reign: malformed address")
)

// ConfigError reports which field of a Config or ClusterSpec is wrong.
// It wraps ErrBadConfig and, where there is one, the underlying cause.
type ConfigError struct {
	Field string // e.g. "Config.NodeID" or "nodes[2].address"
	Msg   string // what is wrong with it
	Err   error  // the underlying cause, if any
}

// Error names the field and says what is wrong with it.
func (e *ConfigError) Error() string {
	s := "reign: bad configuration: " + e.Field + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrBadConfig and the cause, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadConfig, e.Err}
	}
	return []error{ErrBadConfig}
}

// TypeError is returned when a message's type cannot be sent or received.
// It wraps ErrUnknownType.
type TypeError struct {
	Type string // the Go type, or the name read from the wire
}

// Error names the type and how to fix it.
func (e *TypeError) Error() string {
	return fmt.Sprintf("reign: unknown message type %q (register it with Node.RegisterType on both nodes)", e.Type)
}

// Unwrap returns ErrUnknownType.
func (e *TypeError) Unwrap() error { return ErrUnknownType }

// SendError reports a failed Send with the Address it was for. It wraps the
// condition: ErrMailboxClosed, ErrNodeUnreachable, ErrUnknownType, ...
type SendError struct {
	To  Address
	Err error
}

// Error names the Address and the condition.
func (e *SendError) Error() string {
	return "reign: send to " + e.To.String() + ": " + trimPrefix(e.Err.Error())
}

// Unwrap returns the condition.
func (e *SendError) Unwrap() error { return e.Err }

func trimPrefix(s string) string {
	const p = "reign: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// ErrBadName: a registry name that is empty or longer than MaxNameLen.
var ErrBadName = errors.New("reign: bad registry name")

// ErrHandshake: a connection's reign handshake failed (no common protocol
// version, another codec, a malformed or missing Hello, a timeout).
var ErrHandshake = errors.New("reign: handshake failed")

// Errors of the codec layer: decoding what peers send.
var (
	// ErrTooDeep: a message from another node nests deeper than
	// MaxDecodeDepth; it is refused before it is decoded.
	ErrTooDeep = errors.New("reign: message nested too deep")

	// ErrReservedType: a message's type is one whose values only a node
	// makes, from what it sees itself (MailboxClosed, MultipleClaim,
	// NodeUp, NodeDown): it cannot be sent to another node, and one
	// arriving from another node is a forgery, refused and counted.
	ErrReservedType = errors.New("reign: message type is reserved to the node")
)

// Connection-layer sentinels.
var (
	// ErrBadCertificate: a certificate is not a usable reign node
	// certificate: not signed by the cluster's CA, expired or not yet
	// valid, missing the server or client authentication usage, or not
	// naming exactly one node.
	ErrBadCertificate = errors.New("reign: bad certificate")

	// ErrPeerIdentity: the peer's certificate is good but names another
	// node than the one expected.
	ErrPeerIdentity = errors.New("reign: peer identity mismatch")

	// ErrAlreadyServing: Serve was called while another Serve of the same
	// Node is running.
	ErrAlreadyServing = errors.New("reign: Serve is already running for this node")

	// ErrDuplicateNode: two live processes claim the same node ID; the
	// cluster keeps the connection of one and refuses the other's.
	ErrDuplicateNode = errors.New("reign: duplicate node ID")
)

// Per-peer bounds sentinels.
var (
	// ErrLimitExceeded: a peer crossed one of the per-peer bounds of
	// Config; its connection was closed with CloseLimitExceeded. A
	// *LimitError says which.
	ErrLimitExceeded = errors.New("reign: per-peer limit exceeded")
)

// Call sentinels.
var (
	// ErrTooManyForwarded: a Request forwarded to another node could not
	// be sent, because this node already awaits answers to as many
	// forwarded Requests as it holds: Config.MaxPeerForwarded of those
	// that came from the same peer (which is then disconnected), or
	// 65,536 of this node's own callers (whose Call then fails at once).
	ErrTooManyForwarded = errors.New("reign: too many forwarded calls awaiting answers")
)

// Process groups' sentinels (groups.go).
var (
	// ErrBadGroupName: a process group name that is empty or longer than
	// MaxGroupNameLen.
	ErrBadGroupName = errors.New("reign: bad group name")

	// ErrNotJoined: LeaveGroup of a mailbox that is not a member of the
	// group (Erlang pg's not_joined).
	ErrNotJoined = errors.New("reign: not a member of the group")

	// ErrGroupLimit: a peer crossed Config.MaxPeerGroups or
	// Config.MaxPeerGroupMembers; its connection was closed with
	// CloseLimitExceeded. The error also wraps the *LimitError (and so
	// ErrLimitExceeded) naming the bound.
	ErrGroupLimit = errors.New("reign: peer crossed a process group limit")
)
