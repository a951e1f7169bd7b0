package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// HeaderSize is the size of a frame header: a 4-byte big-endian length, then
// the 1-byte frame type.
const HeaderSize = 5

const (
	// DefaultMaxFrame is the maximum frame size used where a maxFrame
	// argument is zero or negative.
	DefaultMaxFrame = 16 << 20

	// MinMaxFrame is the smallest maximum frame size a node may announce in
	// its Hello; a Hello frame always fits in it.
	MinMaxFrame = 4 << 10

	// limitFrame is the largest length the 32-bit length field can carry,
	// kept below math.MaxInt so that HeaderSize+L never overflows an int.
	limitFrame = min(math.MaxUint32, math.MaxInt-HeaderSize)
)

// clampMax turns a maxFrame argument into the effective maximum length L.
func clampMax(maxFrame int) int {
	if maxFrame <= 0 {
		return DefaultMaxFrame
	}
	return min(maxFrame, limitFrame)
}

// Type is a frame type: the first byte after the length.
type Type uint8

// Frame types. The numbers are part of the protocol. ONLY APPEND: never
// renumber, never reuse a number; a new type gets the next number, a name
// in typeNames, and a section in PROTOCOL.md.
const (
	TypeHello        Type = 1  // handshake: Hello
	TypeHeartbeat    Type = 2  // liveness: empty payload
	TypeTypeDef      Type = 3  // TypeDef: defines a per-connection type number
	TypeMessage      Type = 4  // Message: a user message to a mailbox
	TypeLink         Type = 5  // Link: watch a mailbox of the receiver
	TypeUnlink       Type = 6  // Link payload: stop watching
	TypeClosed       Type = 7  // Closed: a watched mailbox closed
	TypeRequest      Type = 8  // Request: a call
	TypeReply        Type = 9  // Reply: the answer to a Request
	TypeRegClaim     Type = 10 // Claim: the sender claims a registry name
	TypeRegRelease   Type = 11 // Claim payload: the sender releases a name
	TypeRegSyncDone  Type = 12 // empty: end of the post-handshake claims
	TypeGoodbye      Type = 13 // Goodbye: the sender is leaving cleanly
	TypeCallFailed   Type = 14 // CallFailed: a Request could not be delivered or answered
	TypeGroupJoin    Type = 15 // Group: the sender's mailbox joins a process group
	TypeGroupLeave   Type = 16 // Group payload: the sender's mailbox leaves a group
	TypeGroupSync    Type = 17 // empty: end of the post-handshake group joins
	TypeGossip       Type = 18 // a membership (memberlist) packet
	TypeGossipStream Type = 19 // a membership (memberlist) stream frame
	TypeLinkFor      Type = 20 // LinkFor: link (or unlink) a watcher of the receiver's to any mailbox
	TypePing         Type = 21 // Ping: asks for a Pong echoing its payload (round-trip time)
	TypePong         Type = 22 // Ping payload: the answer to a Ping
	TypeConnAccept   Type = 23 // empty: with membership, the lower ID takes a connection the higher dialed
	TypeIdle         Type = 24 // Idle: with membership, closing a quiet connection both sides agree nothing needs

	// MaxType is the highest known frame type; dispatch tables indexed by
	// Type have MaxType+1 entries. Update it when appending a type.
	MaxType = TypeIdle
)

// typeNames is indexed by Type; the empty string marks an unknown number.
var typeNames = [MaxType + 1]string{
	TypeHello:        "Hello",
	TypeHeartbeat:    "Heartbeat",
	TypeTypeDef:      "TypeDef",
	TypeMessage:      "Message",
	TypeLink:         "Link",
	TypeUnlink:       "Unlink",
	TypeClosed:       "Closed",
	TypeRequest:      "Request",
	TypeReply:        "Reply",
	TypeRegClaim:     "RegClaim",
	TypeRegRelease:   "RegRelease",
	TypeRegSyncDone:  "RegSyncDone",
	TypeGoodbye:      "Goodbye",
	TypeCallFailed:   "CallFailed",
	TypeGroupJoin:    "GroupJoin",
	TypeGroupLeave:   "GroupLeave",
	TypeGroupSync:    "GroupSync",
	TypeGossip:       "Gossip",
	TypeGossipStream: "GossipStream",
	TypeLinkFor:      "LinkFor",
	TypePing:         "Ping",
	TypePong:         "Pong",
	TypeConnAccept:   "ConnAccept",
	TypeIdle:         "Idle",
}

// Known reports whether t is a frame type of this protocol version.
func (t Type) Known() bool {
	return t <= MaxType && typeNames[t] != ""
}

// String returns the frame type's name, or "Type(N)" for an unknown one.
func (t Type) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// CheckType returns nil for a known frame type, and an error wrapping
// ErrUnknownFrame otherwise. A Reader returns frames of unknown types; a
// receiver that cannot handle them calls this and closes the connection.
func CheckType(t Type) error {
	if t.Known() {
		return nil
	}
	return fmt.Errorf("%w: %d", ErrUnknownFrame, uint8(t))
}

// AppendFrame appends a whole frame of type t carrying payload to dst and
// returns the extended slice. It does not check a maximum frame size: use
// BeginFrame and EndFrame for that, which also avoid copying the payload.
// It panics if the payload cannot be represented at all (4 GiB or more),
// which is a programming error, never a consequence of input.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	l := 1 + uint64(len(payload))
	if l > math.MaxUint32 {
		panic("wire: AppendFrame payload larger than the 32-bit length field")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(l))
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// BeginFrame appends the header of a frame of type t to dst, with a zero
// length, and returns the extended slice and the offset of the frame. The
// caller appends the payload directly (for example with AppendMessage and
// then a codec's output) and then calls EndFrame with that offset.
func BeginFrame(dst []byte, t Type) (out []byte, start int) {
	start = len(dst)
	return append(dst, 0, 0, 0, 0, byte(t)), start
}

// EndFrame fills in the length of the frame that BeginFrame started at offset
// start of b; the frame extends to the end of b. If the frame's length
// (the type byte plus the payload) exceeds maxFrame (zero or negative
// means DefaultMaxFrame) it returns b truncated to start, discarding the
// partial frame, and an error wrapping ErrFrameTooLarge. An offset that
// cannot be a frame's start gives an error wrapping ErrMalformed and b
// unchanged.
func EndFrame(b []byte, start, maxFrame int) ([]byte, error) {
	if start < 0 || start > len(b)-HeaderSize {
		return b, malformed("EndFrame: start %d out of range for %d bytes", start, len(b))
	}
	l := len(b) - start - 4
	if lim := clampMax(maxFrame); l > lim {
		return b[:start], fmt.Errorf("%w: length %d exceeds maximum %d", ErrFrameTooLarge, l, lim)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(l))
	return b, nil
}
