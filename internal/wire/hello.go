package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The range of protocol versions this package speaks. Version 1 had frame
// types 1-13; version 2 adds 14-24 (CallFailed, the group frames, Gossip
// and GossipStream, LinkFor, Ping, Pong, ConnAccept, Idle) and Closed's
// optional Text. A version-1 node, which would close the connection on
// the first of those, is refused at the handshake instead.
const (
	MinVersion = 2
	MaxVersion = 2
)

// Magic starts every Hello payload.
const Magic = "REIGN"

// Hello is the payload of the Hello frame, the first frame each side sends.
// Its layout is frozen: every protocol version sends exactly this, so that
// any two versions can negotiate; a later version that needs more exchanges
// them in frames after the Hello.
//
//	Magic        "REIGN" (5)
//	MinVersion   uint16
//	MaxVersion   uint16
//	Node         uint16
//	Incarnation  uint32
//	MaxFrame     uint32
//	Codec        uvarint length, bytes
type Hello struct {
	MinVersion, MaxVersion uint16 // the protocol versions the sender speaks
	Node                   uint16 // the sender's node ID
	Incarnation            uint32 // fixed when the sender's node starts
	Codec                  string // the name of the sender's message codec
	MaxFrame               uint32 // the largest frame length the sender accepts
}

// AppendHello appends the payload of a Hello frame to dst.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, Magic...)
	dst = binary.BigEndian.AppendUint16(dst, h.MinVersion)
	dst = binary.BigEndian.AppendUint16(dst, h.MaxVersion)
	dst = binary.BigEndian.AppendUint16(dst, h.Node)
	dst = binary.BigEndian.AppendUint32(dst, h.Incarnation)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxFrame)
	return appendString(dst, h.Codec)
}

// ParseHello decodes the payload of a Hello frame. A payload that does not
// start with Magic gives an error wrapping ErrBadMagic. It checks the
// encoding only; Negotiate and Agree judge the values.
func ParseHello(p []byte) (Hello, error) {
	if len(p) < len(Magic) || string(p[:len(Magic)]) != Magic {
		return Hello{}, fmt.Errorf("%w: payload starts %q", ErrBadMagic, p[:min(len(p), len(Magic))])
	}
	d := dec{b: p[len(Magic):], ok: true}
	h := Hello{
		MinVersion:  d.u16(),
		MaxVersion:  d.u16(),
		Node:        d.u16(),
		Incarnation: d.u32(),
		MaxFrame:    d.u32(),
		Codec:       string(d.bytes()),
	}
	if err := d.done("Hello"); err != nil {
		return Hello{}, err
	}
	return h, nil
}

// Negotiate returns the highest protocol version in both sides' ranges, or an
// error wrapping ErrVersion when they do not overlap or a range is invalid
// (empty, or including version 0).
func Negotiate(local, remote Hello) (uint16, error) {
	for _, h := range [2]Hello{local, remote} {
		if h.MinVersion == 0 || h.MinVersion > h.MaxVersion {
			return 0, fmt.Errorf("%w: invalid version range %d..%d of node %d",
				ErrVersion, h.MinVersion, h.MaxVersion, h.Node)
		}
	}
	lo := max(local.MinVersion, remote.MinVersion)
	hi := min(local.MaxVersion, remote.MaxVersion)
	if lo > hi {
		return 0, fmt.Errorf("%w: local %d..%d, peer %d..%d", ErrVersion,
			local.MinVersion, local.MaxVersion, remote.MinVersion, remote.MaxVersion)
	}
	return hi, nil
}

// Agree checks everything the two Hellos of a connection must agree on and
// returns the version to speak: the versions must overlap (Negotiate), the
// codec names must be equal (else ErrCodec), and the peer's MaxFrame must be
// at least MinMaxFrame (else ErrMalformed). Checking the peer's Node against
// its certificate is the caller's job.
func Agree(local, remote Hello) (uint16, error) {
	v, err := Negotiate(local, remote)
	if err != nil {
		return 0, err
	}
	if local.Codec != remote.Codec {
		return 0, fmt.Errorf("%w: local %q, peer %q", ErrCodec, local.Codec, remote.Codec)
	}
	if remote.MaxFrame < MinMaxFrame {
		return 0, malformed("peer's maximum frame %d is below %d", remote.MaxFrame, MinMaxFrame)
	}
	return v, nil
}

// WriteHello writes h as one Hello frame, with one call to w.Write. A Hello
// larger than MinMaxFrame (an absurd codec name) gives an error wrapping
// ErrFrameTooLarge and writes nothing.
func WriteHello(w io.Writer, h Hello) error {
	var buf [64]byte
	b, start := BeginFrame(buf[:0], TypeHello)
	b = AppendHello(b, h)
	b, err := EndFrame(b, start, MinMaxFrame)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadHello reads the first frame of a connection, which must be a Hello
// (else an error wrapping ErrMalformed), and decodes it. Errors of r.Next are
// returned as they are.
func ReadHello(r *Reader) (Hello, error) {
	t, p, err := r.Next()
	if err != nil {
		return Hello{}, err
	}
	if t != TypeHello {
		return Hello{}, malformed("first frame is %v, want Hello", t)
	}
	return ParseHello(p)
}
