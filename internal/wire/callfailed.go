package wire

import "encoding/binary"

// What a CallFailed frame says went wrong: the numbers are part of the
// protocol. ONLY APPEND.
const (
	CallFailedUnknownType uint8 = 0 // the body's type is not registered on Node
	CallFailedUndecodable uint8 = 1 // Node's codec could not decode the body
	CallFailedReserved    uint8 = 2 // the body's type is reserved to nodes (a forgery)
	CallFailedUnencodable uint8 = 3 // Node's codec could not encode the body
	CallFailedTooLarge    uint8 = 4 // the body encodes to more than a frame holds
	CallFailedUnreachable uint8 = 5 // Node lost the next node on the request's path
	CallFailedNoMailbox   uint8 = 6 // the request's mailbox is closed, or never existed
)

// The part of a call a CallFailed frame is about. ONLY APPEND.
const (
	CallPartRequest uint8 = 0 // the Request's body
	CallPartReply   uint8 = 1 // the reply's body
)

// MaxCallFailedText bounds each string of a CallFailed frame (Type and
// Text), in bytes: longer strings are malformed. Senders cut them.
const MaxCallFailedText = 1024

// CallFailed is the payload of a CallFailed frame: the sender cannot
// deliver or answer the Request the receiver sent it with CallRef, so the
// receiver fails that call at once. Node is the node where it went wrong
// (the sender, or a node further along a forwarded request's path); Part
// says whether the request's body or the reply's failed; Code is one of
// the CallFailed constants; Type names the body's type (as registered, or
// as the Go type when it has no registered name); Text is the error's
// text, for people.
//
//	CallRef  uint64
//	Node     uint16
//	Part     uint8
//	Code     uint8
//	Type     uvarint length (at most MaxCallFailedText), bytes
//	Text     uvarint length (at most MaxCallFailedText), bytes
type CallFailed struct {
	CallRef uint64
	Node    uint16
	Part    uint8
	Code    uint8
	Type    string
	Text    string
}

// AppendCallFailed appends the payload of a CallFailed frame to dst.
// Strings longer than MaxCallFailedText are cut to it (at a byte: the
// receiver treats the text as opaque).
func AppendCallFailed(dst []byte, f CallFailed) []byte {
	dst = binary.BigEndian.AppendUint64(dst, f.CallRef)
	dst = binary.BigEndian.AppendUint16(dst, f.Node)
	dst = append(dst, f.Part, f.Code)
	dst = appendString(dst, cut(f.Type))
	return appendString(dst, cut(f.Text))
}

func cut(s string) string {
	if len(s) > MaxCallFailedText {
		return s[:MaxCallFailedText]
	}
	return s
}

// ParseCallFailed decodes the payload of a CallFailed frame. Parts and
// codes this version does not know are returned as they are; a string
// over MaxCallFailedText is malformed.
func ParseCallFailed(p []byte) (CallFailed, error) {
	d := dec{b: p, ok: true}
	v := CallFailed{CallRef: d.u64(), Node: d.u16(), Part: d.u8(), Code: d.u8()}
	typ, text := d.bytes(), d.bytes()
	if len(typ) > MaxCallFailedText || len(text) > MaxCallFailedText {
		d.ok = false
	}
	if err := d.done("CallFailed"); err != nil {
		return CallFailed{}, err
	}
	v.Type, v.Text = string(typ), string(text)
	return v, nil
}
