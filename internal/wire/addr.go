package wire

import "encoding/binary"

// Sizes of the fixed encodings of Addr and Ref.
const (
	AddrSize = 14 // node (2) + incarnation (4) + id (8)
	RefSize  = 12 // incarnation (4) + id (8)
)

// Addr is a mailbox address in full: the node, the node's incarnation (fixed
// when that node starts, so addresses of an earlier run are told apart) and
// the mailbox's ID on that node. It is how an address travels inside message
// bodies.
type Addr struct {
	Node uint16
	Inc  uint32
	ID   uint64
}

// Ref is a mailbox address whose node is implied by the connection: the
// sender's or the receiver's node, as each frame type says.
type Ref struct {
	Inc uint32
	ID  uint64
}

// AppendAddr appends the 14-byte encoding of a to dst.
func AppendAddr(dst []byte, a Addr) []byte {
	dst = binary.BigEndian.AppendUint16(dst, a.Node)
	dst = binary.BigEndian.AppendUint32(dst, a.Inc)
	return binary.BigEndian.AppendUint64(dst, a.ID)
}

// ParseAddr decodes an Addr from the start of b and returns the bytes after
// it. Fewer than AddrSize bytes give an error wrapping ErrMalformed.
func ParseAddr(b []byte) (Addr, []byte, error) {
	if len(b) < AddrSize {
		return Addr{}, b, malformed("short address: %d bytes", len(b))
	}
	a := Addr{
		Node: binary.BigEndian.Uint16(b),
		Inc:  binary.BigEndian.Uint32(b[2:]),
		ID:   binary.BigEndian.Uint64(b[6:]),
	}
	return a, b[AddrSize:], nil
}

// AppendRef appends the 12-byte encoding of r to dst.
func AppendRef(dst []byte, r Ref) []byte {
	dst = binary.BigEndian.AppendUint32(dst, r.Inc)
	return binary.BigEndian.AppendUint64(dst, r.ID)
}

// ParseRef decodes a Ref from the start of b and returns the bytes after it.
// Fewer than RefSize bytes give an error wrapping ErrMalformed.
func ParseRef(b []byte) (Ref, []byte, error) {
	r, rest, ok := getRef(b)
	if !ok {
		return Ref{}, b, malformed("short reference: %d bytes", len(b))
	}
	return r, rest, nil
}

func getRef(b []byte) (Ref, []byte, bool) {
	if len(b) < RefSize {
		return Ref{}, b, false
	}
	return Ref{Inc: binary.BigEndian.Uint32(b), ID: binary.BigEndian.Uint64(b[4:])}, b[RefSize:], true
}
