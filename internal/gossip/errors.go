package gossip

import (
	"errors"
	"fmt"
)

// Errors returned by HandlePacket and HandleStream all wrap ErrProtocol: the
// peer broke the protocol and its connection should be closed. The more
// specific sentinels below tell which bound or rule it crossed, so the
// connection layer can map them to a close reason with errors.Is.
var (
	// ErrProtocol: a peer broke the membership protocol (every error from
	// HandlePacket and HandleStream wraps it).
	ErrProtocol = errors.New("reign: membership protocol error")

	// ErrMalformed: a Packet or Stream payload does not follow the encoding.
	ErrMalformed = errors.New("reign: malformed membership frame")

	// ErrPacketTooLarge: a packet exceeds Config.MaxPacketSize. Returned by
	// HandlePacket (wrapping ErrProtocol) and by WriteTo for an outbound
	// packet (not a protocol error: nothing was sent).
	ErrPacketTooLarge = errors.New("reign: membership packet too large")

	// ErrWindowExceeded: a peer sent more stream data than the receive
	// window it was granted, or granted more window than the protocol allows.
	ErrWindowExceeded = errors.New("reign: membership stream window exceeded")

	// ErrStreamSequence: a peer opened a stream out of sequence or sent a
	// frame for a stream that was never opened.
	ErrStreamSequence = errors.New("reign: membership stream out of sequence")
)

// Errors of streams and of the Transport's own calls.
var (
	// ErrTooManyStreams: opening a stream would exceed
	// Config.MaxStreamsPerPeer on that connection (DialTimeout), or the peer
	// refused our stream for that reason (a read or write on it).
	ErrTooManyStreams = errors.New("reign: too many membership streams")

	// ErrStreamReset: the peer closed the stream abnormally (idle timeout,
	// shutdown); the stream's data may be incomplete.
	ErrStreamReset = errors.New("reign: membership stream reset")

	// ErrStreamIdle: the stream saw no traffic for Config.StreamIdleTimeout
	// and was closed.
	ErrStreamIdle = errors.New("reign: membership stream idle")

	// ErrConnLost: the reign connection under the stream was lost.
	ErrConnLost = errors.New("reign: membership connection lost")

	// ErrClosed: the stream was closed locally, or the Transport shut down.
	ErrClosed = errors.New("reign: membership transport closed")

	// ErrWrongNode: the Dialer returned a connection to another node than
	// the one memberlist named.
	ErrWrongNode = errors.New("reign: connection is to another node")
)

// protocolError wraps ErrProtocol and a specific sentinel with a detail.
func protocolError(kind error, format string, args ...any) error {
	return &ProtocolError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// ProtocolError is the error HandlePacket and HandleStream return when a peer
// breaks the protocol. errors.Is matches both ErrProtocol and Kind.
type ProtocolError struct {
	Kind   error  // ErrMalformed, ErrPacketTooLarge, ErrWindowExceeded or ErrStreamSequence
	Detail string // what was wrong, for the log
}

// Error implements error.
func (e *ProtocolError) Error() string {
	return e.Kind.Error() + ": " + e.Detail
}

// Is reports whether target is ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// Unwrap returns Kind.
func (e *ProtocolError) Unwrap() error { return e.Kind }

// ErrPeerClosed: a write on a stream the peer has closed.
var ErrPeerClosed = errors.New("reign: membership stream closed by peer")
