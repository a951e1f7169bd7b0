package gossip

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// The payload codecs of the two membership frame types. The frame type
// numbers themselves belong to internal/wire; this package encodes and
// parses only the payloads. Layouts are specified in
// PROTOCOL.md ("Membership") and pinned by TestFrameLayout.
//
// A Packet frame's payload is one memberlist packet, whole (at least one
// byte, at most Config.MaxPacketSize); it needs no codec.

// Op is what a Stream frame does. The numbers are part of the protocol.
// ONLY APPEND.
type Op uint8

// Stream operations.
const (
	OpOpen   Op = 1 // the sender opens stream ID (sent by the opener only)
	OpData   Op = 2 // bytes of the stream, within the receiver's window
	OpClose  Op = 3 // the sender is done with the stream, with a reason
	OpWindow Op = 4 // the sender consumed bytes: the receiver may send that many more
)

func (o Op) String() string {
	switch o {
	case OpOpen:
		return "open"
	case OpData:
		return "data"
	case OpClose:
		return "close"
	case OpWindow:
		return "window"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// CloseReason says why a stream was closed. The numbers are part of the
// protocol. ONLY APPEND. A receiver accepts any value; one it does not know
// is treated as abnormal (like CloseIdle).
type CloseReason uint8

// Close reasons.
const (
	CloseNormal   CloseReason = 0 // the sender closed the stream (EOF)
	CloseRefused  CloseReason = 1 // the receiver refused an Open: too many streams, or not accepting
	CloseIdle     CloseReason = 2 // no traffic for the sender's idle timeout
	CloseShutdown CloseReason = 3 // the sender's membership is shutting down
)

func (r CloseReason) String() string {
	switch r {
	case CloseNormal:
		return "normal"
	case CloseRefused:
		return "refused"
	case CloseIdle:
		return "idle"
	case CloseShutdown:
		return "shutdown"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// StreamWindow is each direction's receive window per stream, fixed by the
// protocol: a stream's receiver buffers at most this many bytes that its
// reader has not consumed, and a sender never has more than this in flight.
// The window is returned with OpWindow frames as the reader consumes.
const StreamWindow = 64 << 10

// maxChunk bounds the data of one OpData frame a sender makes, so streams
// interleave with other frames on the connection. Receivers check only the
// window.
const maxChunk = 16 << 10

// flagAcceptor, in a Stream frame's first byte, says the frame's sender is
// the stream's acceptor, so the receiver is its opener. Stream IDs are
// numbered by each opener independently; this bit says whose numbering the
// ID is in.
const flagAcceptor = 0x80

// StreamFrame is the payload of a Stream frame.
//
//	OpByte     uint8: bit 7 Acceptor, bits 0-6 Op
//	ID         uvarint, ≥ 1
//	Data       rest, ≥ 1 byte          (OpData)
//	Reason     uint8                   (OpClose)
//	Increment  uvarint, 1..StreamWindow (OpWindow)
//	(nothing)                          (OpOpen)
type StreamFrame struct {
	Op Op
	// Acceptor is true when the frame's sender accepted the stream (the
	// frame's receiver opened it), false when the sender opened it.
	Acceptor  bool
	ID        uint64
	Data      []byte      // OpData
	Reason    CloseReason // OpClose
	Increment uint32      // OpWindow
}

// AppendStreamFrame appends f's encoding to b. f must be valid (as
// ParseStreamFrame would return it); AppendStreamFrame does not check.
func AppendStreamFrame(b []byte, f StreamFrame) []byte {
	op := byte(f.Op)
	if f.Acceptor {
		op |= flagAcceptor
	}
	b = append(b, op)
	b = binary.AppendUvarint(b, f.ID)
	switch f.Op {
	case OpData:
		b = append(b, f.Data...)
	case OpClose:
		b = append(b, byte(f.Reason))
	case OpWindow:
		b = binary.AppendUvarint(b, uint64(f.Increment))
	}
	return b
}

// ParseStreamFrame parses a Stream frame's payload. Data aliases p. Errors
// wrap ErrMalformed (and ErrProtocol).
func ParseStreamFrame(p []byte) (StreamFrame, error) {
	var f StreamFrame
	if len(p) == 0 {
		return f, malformed("empty stream frame")
	}
	f.Op = Op(p[0] &^ flagAcceptor)
	f.Acceptor = p[0]&flagAcceptor != 0
	p = p[1:]
	id, p, ok := uvarint(p)
	if !ok || id == 0 {
		return f, malformed("bad stream ID")
	}
	f.ID = id
	switch f.Op {
	case OpOpen:
		if f.Acceptor {
			return f, malformed("open from the acceptor")
		}
	case OpData:
		if len(p) == 0 {
			return f, malformed("empty data")
		}
		f.Data, p = p, nil
	case OpClose:
		if len(p) == 0 {
			return f, malformed("close without a reason")
		}
		f.Reason, p = CloseReason(p[0]), p[1:]
	case OpWindow:
		var inc uint64
		inc, p, ok = uvarint(p)
		if !ok || inc == 0 || inc > StreamWindow {
			return f, malformed("bad window increment")
		}
		f.Increment = uint32(inc)
	default:
		return f, malformed("unknown op %d", uint8(f.Op))
	}
	if len(p) != 0 {
		return f, malformed("%d trailing bytes after %v", len(p), f.Op)
	}
	return f, nil
}

// uvarint reads a minimally encoded uvarint (binary.Uvarint also accepts
// padded forms such as 0x80 0x00, which would give a value two encodings).
func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || (n > 1 && b[n-1] == 0) {
		return 0, b, false
	}
	return v, b[n:], true
}

func malformed(format string, args ...any) error {
	return &ProtocolError{Kind: ErrMalformed, Detail: fmt.Sprintf(format, args...)}
}
