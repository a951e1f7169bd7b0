package reign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/reign-go/reign/internal/msgpackfast"
)

// MaxDecodeDepth is how deeply a message from another node may nest: a
// struct, slice, array or map (a msgpack map or array, a JSON object or
// array) is one level, a top-level struct is at depth 1, a scalar at 0.
// Decoders recurse once per level, and a frame of 12 MiB of nested arrays
// would overflow a goroutine's stack, a fatal error that recover cannot
// catch; so both codecs refuse deeper messages before decoding them, with
// an error wrapping ErrTooDeep, and the node drops the message (counted in
// Stats.DroppedUndecodable). A linked structure (a list of pointers, a
// tree) longer than this must travel as a slice.
const MaxDecodeDepth = 256

// The msgpack pre-scan's bound is MaxDecodeDepth (this fails to compile
// if they differ).
const _ = uint(MaxDecodeDepth-msgpackfast.MaxDepth) + uint(msgpackfast.MaxDepth-MaxDecodeDepth)

// Codec turns message values into bytes and back for messages that cross to
// another node. The node does the rest: it names each message's type on the
// wire (by the name it was registered under with RegisterType), picks the Go
// type to decode into from its own registrations (never from names read off
// the wire by reflection) and binds the Addresses inside decoded messages.
//
// A Codec must be safe for concurrent use and must not keep state shared
// between the nodes that use it: one Codec value may serve several nodes.
// Every node of a cluster must use a codec of the same Name.
//
// Unmarshal reads what another node sent, which may be hostile: it must
// fail, never panic nor exhaust the stack, on any input. In particular it
// must refuse input nested deeper than MaxDecodeDepth (wrapping
// ErrTooDeep), as MsgpackCodec and JSONCodec do by scanning the input once
// before decoding, and must not allocate more than the input can back. The
// node binds the Addresses in what it decodes to at most MaxDecodeDepth
// levels too.
type Codec interface {
	// Name identifies the codec and its settings in the handshake.
	Name() string
	// Marshal appends the encoding of v to dst and returns the result.
	Marshal(dst []byte, v any) ([]byte, error)
	// Unmarshal decodes data into the value ptr points to. ptr is always a
	// non-nil pointer to a value of a registered type.
	Unmarshal(data []byte, ptr any) error
}

// MsgpackCodec is the default Codec: MessagePack through
// github.com/vmihailenco/msgpack/v5. It uses none of msgpack's
// package-global registrations. Address fields are encoded as 14-byte bin
// values. The zero value is ready to use.
type MsgpackCodec struct {
	// Compact encodes structs as arrays of their fields, in order, like
	// Erlang tuples, rather than as maps keyed by field name: messages are
	// smaller and encode and decode about 20-25% faster, but every node must then
	// have the same fields in the same order for each message type. The
	// default (false) lets nodes add a field to a message type one node at
	// a time. The handshake keeps the two modes from meeting.
	Compact bool
}

// Name returns "msgpack", or "msgpack-compact" with Compact.
func (c MsgpackCodec) Name() string {
	if c.Compact {
		return "msgpack-compact"
	}
	return "msgpack"
}

type msgpackEncoder struct {
	w   msgpackfast.AppendWriter
	enc *msgpack.Encoder
}

type msgpackDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

// The pools cache encoder and decoder objects; they hold no node's state.
var (
	msgpackEncoders = sync.Pool{New: func() any {
		e := new(msgpackEncoder)
		e.enc = msgpack.NewEncoder(&e.w)
		return e
	}}
	msgpackDecoders = sync.Pool{New: func() any {
		d := new(msgpackDecoder)
		d.dec = msgpack.NewDecoder(&d.r)
		return d
	}}
)

// fastPath is MsgpackCodec's fast path for plain struct types (see
// internal/msgpackfast), told how to write an Address. It holds a cache of
// per-type plans and no node's state.
var fastPath = msgpackfast.New(msgpackfast.Special{
	Type:   addressType,
	Len:    addressLen,
	IsZero: func(p unsafe.Pointer) bool { return (*Address)(p).IsZero() },
	Append: func(b []byte, p unsafe.Pointer) []byte { return (*Address)(p).appendBinary(b) },
	Load:   func(p unsafe.Pointer, b []byte) bool { return (*Address)(p).UnmarshalBinary(b) == nil },
})

// Marshal appends v's MessagePack encoding to dst.
func (c MsgpackCodec) Marshal(dst []byte, v any) ([]byte, error) {
	if out, ok := fastPath.Marshal(dst, v, c.Compact); ok {
		return out, nil // plain struct types: the library's bytes, faster
	}
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.enc.UseArrayEncodedStructs(c.Compact)
	e.w.B = dst
	err := e.enc.Encode(v)
	out := e.w.B
	e.w.B = nil
	msgpackEncoders.Put(e)
	return out, err
}

// Unmarshal decodes data into ptr; trailing bytes are an error, and so is
// a value nested deeper than MaxDecodeDepth (ErrTooDeep).
func (MsgpackCodec) Unmarshal(data []byte, ptr any) error {
	if done, err := fastPath.Unmarshal(data, ptr); done {
		return err // plain struct types: the library's result, faster
	}
	// Walk the value once without building it, in a loop (msgpack's own
	// Skip recurses): it fails on nesting deeper than MaxDecodeDepth,
	// which would make Decode recurse past the stack's limit, and on any
	// length that the data cannot back, which Decode would allocate
	// first (it sizes []any, slices, maps and []byte by the length read
	// from the input). Plain structs, the common case, took the fast
	// path above: their depth is their type's, and it checks lengths as
	// it goes.
	n, err := msgpackfast.Scan(data)
	if err == msgpackfast.ErrTooDeep {
		return ErrTooDeep
	}
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%d bytes after the value", len(data)-n)
	}
	d := msgpackDecoders.Get().(*msgpackDecoder)
	// The decoder reads straight from d.r (a bytes.Reader is an
	// io.ByteScanner, so msgpack adds no buffer of its own): resetting the
	// reader is all a pooled decoder needs.
	d.r.Reset(data)
	err = d.dec.Decode(ptr)
	d.r.Reset(nil)
	if err == nil {
		// Not after a failure: msgpack keeps, in the decoder, the buffer
		// it grew for a string's claimed length even when the data ran
		// out, so pooling it would let hostile inputs pin gigabytes.
		msgpackDecoders.Put(d)
	}
	return err
}

// JSONCodec encodes messages as JSON with encoding/json; Addresses travel
// in their text form. It is slower and larger than MsgpackCodec and shows
// that the codec is pluggable; it suits debugging with a packet capture.
// The zero value is ready to use.
type JSONCodec struct{}

// Name returns "json".
func (JSONCodec) Name() string { return "json" }

// Marshal appends v's JSON encoding to dst.
func (JSONCodec) Marshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// Unmarshal decodes JSON data into ptr. A value nested deeper than
// MaxDecodeDepth is an error (ErrTooDeep).
func (JSONCodec) Unmarshal(data []byte, ptr any) error {
	if jsonTooDeep(data) {
		return ErrTooDeep
	}
	return json.Unmarshal(data, ptr)
}

// jsonTooDeep reports whether data opens objects and arrays more than
// MaxDecodeDepth deep, in one pass with a counter. encoding/json stops
// at 10,000 levels, which its recursive decoder survives, but it grows the
// reading goroutine's stack by megabytes to get there; and the bound is
// the same for every codec. Malformed JSON is left to encoding/json.
func jsonTooDeep(data []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > MaxDecodeDepth {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}
