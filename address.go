package reign

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// Address names a mailbox anywhere in the cluster: it is the Go equivalent
// of an Erlang PID. It is a small comparable value, usable as a map key,
// safe to copy and to use from any goroutine, and it can travel inside
// messages to other nodes, where it decodes to an Address bound to the
// receiving node and is fully usable there.
//
// An Address carries the ID of the node that owns the mailbox, that node's
// incarnation (fixed when the node process starts) and the mailbox's ID, so
// an Address from an earlier run of a node behaves as a closed mailbox and
// never reaches a mailbox of a later run.
//
// Two Addresses are == when they name the same mailbox and are bound to
// the same Node. Every Address a node hands out (NewMailbox, Lookup,
// decoded messages, MailboxClosed) is bound to it; one made by
// UnmarshalBinary or UnmarshalText is not, until Node.BindAddress.
//
// The zero Address is no mailbox; IsZero reports it.
type Address struct {
	n    *Node  // the node this value is bound to (sends go through it); nil if unbound
	id   uint64 // the mailbox's ID on its own node; 0 only in the zero Address
	inc  uint32 // the owning node's incarnation
	node NodeID // the owning node
}

// addressLen is the size of the binary form: node (2), incarnation (4), id (8),
// all big-endian. The wire protocol uses the same layout.
const addressLen = 14

// NodeID returns the ID of the node that owns the mailbox.
func (a Address) NodeID() NodeID { return a.node }

// IsZero reports whether a is the zero Address.
func (a Address) IsZero() bool { return a.id == 0 && a.inc == 0 && a.node == 0 }

// String formats a like an Erlang PID, <node.index.serial.incarnation>:
// the owning node, the mailbox's slot and generation on that node, and the
// node's incarnation, for example <2.17.1.3735928559>. The zero Address
// formats as <0.0.0.0>. MarshalText uses the same form.
func (a Address) String() string {
	var b [48]byte
	s := append(b[:0], '<')
	s = strconv.AppendUint(s, uint64(a.node), 10)
	s = append(s, '.')
	s = strconv.AppendUint(s, a.id&0xffffffff, 10)
	s = append(s, '.')
	s = strconv.AppendUint(s, a.id>>32, 10)
	s = append(s, '.')
	s = strconv.AppendUint(s, uint64(a.inc), 10)
	s = append(s, '>')
	return string(s)
}

// Send sends msg to the mailbox at a. It never blocks on a local mailbox.
// To a remote one it waits while that peer's outgoing buffer is over its
// limit, or, when the connection was quiet, while it writes the message to
// the socket itself (saving a hand-off to the connection's writer); never
// past the loss of the connection, and so never longer than about the
// heartbeat timeout when the peer stops reading.
//
// Sending to a local mailbox that is closed returns an error wrapping
// ErrMailboxClosed. A message to a remote mailbox is encoded by the node's
// codec (its type must be registered with RegisterType on both nodes, or
// the error wraps ErrUnknownType) and, as in Erlang, is dropped on the far
// side if that mailbox has closed; use OnCloseNotify to learn of that.
// A message sent to a remote node with no working connection returns an
// error wrapping ErrNodeUnreachable.
//
// Locally the message is passed by reference, not copied: do not modify
// it after sending.
func (a Address) Send(msg any) error {
	if a.n == nil {
		return a.unboundErr()
	}
	return a.n.send(a, msg)
}

func (a Address) unboundErr() error {
	if a.IsZero() {
		return ErrZeroAddress
	}
	return ErrUnboundAddress
}

// MarshalBinary encodes a in 14 bytes: node ID, incarnation and mailbox ID,
// big-endian. The node binding is not encoded.
func (a Address) MarshalBinary() ([]byte, error) {
	return a.appendBinary(make([]byte, 0, addressLen)), nil
}

func (a Address) appendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(a.node))
	b = binary.BigEndian.AppendUint32(b, a.inc)
	return binary.BigEndian.AppendUint64(b, a.id)
}

// UnmarshalBinary decodes the form written by MarshalBinary. The result is
// not bound to a node: bind it with Node.BindAddress before sending.
// (Addresses inside messages are bound by the node that decodes them.)
func (a *Address) UnmarshalBinary(b []byte) error {
	*a = Address{}
	if len(b) != addressLen {
		return fmt.Errorf("%w: binary form has %d bytes, want %d", ErrBadAddress, len(b), addressLen)
	}
	v := Address{
		node: NodeID(binary.BigEndian.Uint16(b)),
		inc:  binary.BigEndian.Uint32(b[2:]),
		id:   binary.BigEndian.Uint64(b[6:]),
	}
	if !v.IsZero() && v.id>>32 == 0 {
		return fmt.Errorf("%w: mailbox generation 0", ErrBadAddress)
	}
	*a = v
	return nil
}

// MarshalText encodes a as its String form; the zero Address encodes as "".
func (a Address) MarshalText() ([]byte, error) {
	if a.IsZero() {
		return []byte{}, nil
	}
	return []byte(a.String()), nil
}

// UnmarshalText decodes the form written by MarshalText. Like
// UnmarshalBinary, the result is not bound to a node.
func (a *Address) UnmarshalText(text []byte) error {
	*a = Address{}
	s := string(text)
	if s == "" || s == "<0.0.0.0>" {
		return nil
	}
	if len(s) < 9 || s[0] != '<' || s[len(s)-1] != '>' {
		return fmt.Errorf("%w: %q", ErrBadAddress, s)
	}
	parts := strings.Split(s[1:len(s)-1], ".")
	if len(parts) != 4 {
		return fmt.Errorf("%w: %q", ErrBadAddress, s)
	}
	node, err1 := strconv.ParseUint(parts[0], 10, 16)
	slot, err2 := strconv.ParseUint(parts[1], 10, 32)
	gen, err3 := strconv.ParseUint(parts[2], 10, 32)
	inc, err4 := strconv.ParseUint(parts[3], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || gen == 0 {
		return fmt.Errorf("%w: %q", ErrBadAddress, s)
	}
	*a = Address{node: NodeID(node), id: gen<<32 | slot, inc: uint32(inc)}
	return nil
}

// EncodeMsgpack encodes a as msgpack bin data of its binary form, so an
// Address can be a field of a message. It implements msgpack.CustomEncoder.
func (a Address) EncodeMsgpack(e *msgpack.Encoder) error {
	if a.IsZero() {
		return e.EncodeNil()
	}
	var b [addressLen]byte
	return e.EncodeBytes(a.appendBinary(b[:0]))
}

// DecodeMsgpack decodes the form written by EncodeMsgpack. It implements
// msgpack.CustomDecoder. The node that decodes a message binds the
// Addresses in it.
func (a *Address) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	if n == -1 {
		*a = Address{}
		return nil
	}
	if n != addressLen {
		return fmt.Errorf("%w: msgpack form has %d bytes", ErrBadAddress, n)
	}
	var b [addressLen]byte
	if err := d.ReadFull(b[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	return a.UnmarshalBinary(b[:])
}

// ownAddress checks that a is an Address of this node's run (ErrZeroAddress,
// ErrNotLocal otherwise) and returns it bound to this node.
func (n *Node) ownAddress(a Address) (Address, error) {
	switch {
	case a.IsZero():
		return a, ErrZeroAddress
	case a.node != n.id || a.inc != n.inc:
		return a, fmt.Errorf("%w: %v is not a mailbox of %v", ErrNotLocal, a, n)
	}
	a.n = n
	return a, nil
}

// openMailbox is ownAddress for a mailbox that must be open now (a
// *SendError wrapping ErrMailboxClosed otherwise).
func (n *Node) openMailbox(a Address) (Address, error) {
	a, err := n.ownAddress(a)
	if err == nil && n.table.lookup(a.id) == nil {
		err = &SendError{To: a, Err: ErrMailboxClosed}
	}
	return a, err
}
