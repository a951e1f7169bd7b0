// Package msgpackfast is reign's MsgpackCodec fast path for plain struct
// types, and the pre-scan that bounds the nesting depth and length claims of
// every msgpack message before the library decodes it. It is internal so it
// can change freely: its bytes are the library's, which is the contract.
package msgpackfast

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// This file is MsgpackCodec's fast path for plain struct types. It writes
// and reads exactly the bytes github.com/vmihailenco/msgpack/v5 does with
// the settings MsgpackCodec uses (its defaults, plus UseArrayEncodedStructs
// for Compact), so a node with the fast path talks to a node without it. It
// works from a plan built once per type, with each field's offset, and
// reads and writes fields through unsafe pointers: no reflection per
// message.
//
// A plain struct type is a struct whose fields are all exported, none
// embedded and none with a msgpack struct tag, each of them a bool, an
// integer, a float, a string, a []byte, an Address (the Special type) or a
// plain struct, nested at most MaxDepth deep, with no type involved
// implementing any of msgpack's or encoding's marshaling interfaces. Every
// other type goes through the library unchanged.
//
// What the library does for such a type, and so what the fast path does:
//   - a struct is a map (fixmap/map16/map32 header) of field name (as a
//     msgpack string) to value, in field order; with Compact an array of the
//     values in field order. The library reads only the "msgpack" tag by
//     default, so a json tag changes nothing.
//   - int and uint are written in the fewest bytes (EncodeInt, EncodeUint);
//     int8..int64 and uint8..uint64 at the full width of their Go type
//     (0xd0-0xd3, 0xcc-0xcf), since compact integers are off by default.
//   - float32 is 0xca, float64 0xcb; compact floats are off by default.
//   - a string is fixstr/str8/str16/str32; a []byte is nil when nil, else
//     bin8/bin16/bin32 (bin8 even when empty).
//   - an Address (the Special type) is nil when zero, else bin8 of its
//     Len-byte binary form (Address.EncodeMsgpack: 14 bytes).
//
// Decoding takes the fast path only for input laid out the way it would
// write it (any field count or key order different, an unknown key, an
// encoding it does not expect, a value the library would reject, or
// trailing bytes), and only into a value that is all zero, as the node's
// are; on any surprise it clears the value and leaves the whole input to
// the caller (Scan, then the library), so results and errors are the
// library's, but for one case:
// a string or []byte whose length the input cannot back fails at once
// (where the library would fail too, having first allocated a []byte of
// the claimed size, up to 4 GiB). Strings and []byte
// are copied out of the input, never aliased, and every length is checked
// against the bytes left before anything is allocated.
//
// One thing the plan cannot see: msgpack.RegisterExt or msgpack.Register
// called on a plain type after its plan was built (the plan checks, when it
// is built, that the library encodes the type's zero value as the plan
// does). Reign registers nothing with msgpack, and asks users not to.

// fastKind is how one field is encoded.
type fastKind uint8

const (
	fkBool    fastKind = iota
	fkInt              // int: fewest bytes (EncodeInt)
	fkInt8             // int8..int64: full width
	fkInt16            //
	fkInt32            //
	fkInt64            //
	fkUint             // uint: fewest bytes (EncodeUint)
	fkUint8            // uint8..uint64: full width
	fkUint16           //
	fkUint32           //
	fkUint64           //
	fkFloat32          //
	fkFloat64          //
	fkString           //
	fkBytes            // []byte
	fkSpecial          // the Special type (reign's Address)
	fkStruct           // a nested plain struct
)

// fastField is one field of a plain struct.
type fastField struct {
	off  uintptr   // offset in the struct
	kind fastKind  //
	key  []byte    // the field name as the library writes a map key
	sub  *fastPlan // the nested struct's plan, for fkStruct
}

// fastPlan encodes and decodes one plain struct type.
type fastPlan struct {
	fields []fastField
	mapHdr []byte   // the header of the struct as a map
	arrHdr []byte   // the header of the struct as an array (Compact)
	size   uintptr  // the struct's size
	sp     *Special // how to write the Special type's fields
}

// Special describes the one struct type the fast path writes as a
// fixed-length bin, or nil when zero, through methods of its own: reign's
// Address, whose package this one cannot import. The functions get a
// pointer to a value of Type.
type Special struct {
	Type   reflect.Type
	Len    int                                     // the bin's length, under 256
	IsZero func(p unsafe.Pointer) bool             // written as nil
	Append func(b []byte, p unsafe.Pointer) []byte // appends Len bytes
	Load   func(p unsafe.Pointer, b []byte) bool   // decodes Len bytes; false if they are no value
}

// Codec is the fast path for one Special type. Its only state is a cache
// of per-type plans, a pure function of the type with no node's state in
// it, so one Codec serves every node of a process. It is safe for
// concurrent use.
type Codec struct {
	special Special
	plans   sync.Map // reflect.Type -> *fastPlan; nil when the type is not plain
}

// New returns a Codec that encodes s.Type as s says.
func New(s Special) *Codec { return &Codec{special: s} }

// Plain reports whether t is a plain struct type, which the fast path
// encodes and decodes.
func (c *Codec) Plain(t reflect.Type) bool { return c.planFor(t) != nil }

// planFor returns t's plan, or nil if t is not a plain struct type.
func (c *Codec) planFor(t reflect.Type) *fastPlan {
	if v, ok := c.plans.Load(t); ok {
		return v.(*fastPlan)
	}
	p := c.buildPlan(t, 1)
	if p != nil && (PointerShaped(t) || !agreesWithLibrary(p, t)) {
		p = nil
	}
	c.plans.Store(t, p)
	return p
}

// The interfaces through which a type takes over its own msgpack encoding,
// in any of the ways the library looks for.
var fastCustomTypes = []reflect.Type{
	reflect.TypeFor[msgpack.CustomEncoder](),
	reflect.TypeFor[msgpack.CustomDecoder](),
	reflect.TypeFor[msgpack.Marshaler](),
	reflect.TypeFor[msgpack.Unmarshaler](),
	reflect.TypeFor[encoding.BinaryMarshaler](),
	reflect.TypeFor[encoding.BinaryUnmarshaler](),
	reflect.TypeFor[encoding.TextMarshaler](),
	reflect.TypeFor[encoding.TextUnmarshaler](),
}

// customized reports whether t or *t implements one of fastCustomTypes.
func customized(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, it := range fastCustomTypes {
		if t.Implements(it) || pt.Implements(it) {
			return true
		}
	}
	return false
}

var fastKinds = map[reflect.Kind]fastKind{
	reflect.Bool: fkBool,
	reflect.Int:  fkInt, reflect.Int8: fkInt8, reflect.Int16: fkInt16, reflect.Int32: fkInt32, reflect.Int64: fkInt64,
	reflect.Uint: fkUint, reflect.Uint8: fkUint8, reflect.Uint16: fkUint16, reflect.Uint32: fkUint32, reflect.Uint64: fkUint64,
	reflect.Float32: fkFloat32, reflect.Float64: fkFloat64,
	reflect.String: fkString,
}

// buildPlan returns t's plan, or nil if t is not a plain struct type or
// nests structs deeper than MaxDepth (depth is t's own: 1 at the top).
func (c *Codec) buildPlan(t reflect.Type, depth int) *fastPlan {
	if t.Kind() != reflect.Struct || t == c.special.Type || customized(t) || depth > MaxDepth {
		return nil
	}
	p := &fastPlan{size: t.Size(), sp: &c.special}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Anonymous {
			return nil
		}
		if _, tagged := sf.Tag.Lookup("msgpack"); tagged {
			return nil
		}
		f := fastField{off: sf.Offset, key: appendMsgpackString(nil, sf.Name)}
		ft := sf.Type
		switch {
		case ft == c.special.Type:
			f.kind = fkSpecial
		case customized(ft):
			return nil
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Uint8:
			f.kind = fkBytes
		case ft.Kind() == reflect.Struct:
			if f.sub = c.buildPlan(ft, depth+1); f.sub == nil {
				return nil
			}
			f.kind = fkStruct
		default:
			k, ok := fastKinds[ft.Kind()]
			if !ok {
				return nil
			}
			f.kind = k
		}
		p.fields = append(p.fields, f)
	}
	p.mapHdr = appendMsgpackLen(nil, 0x80, 0xde, len(p.fields))
	p.arrHdr = appendMsgpackLen(nil, 0x90, 0xdc, len(p.fields))
	return p
}

// agreesWithLibrary reports whether the library encodes t's zero value as
// p does, in both modes: it would not if a msgpack.RegisterExt or
// msgpack.Register had given t an encoding of its own.
func agreesWithLibrary(p *fastPlan, t reflect.Type) bool {
	zero := reflect.New(t)
	for _, compact := range []bool{false, true} {
		var w AppendWriter
		enc := msgpack.NewEncoder(&w)
		enc.UseArrayEncodedStructs(compact)
		if err := enc.Encode(zero.Elem().Interface()); err != nil {
			return false
		}
		fast, ok := p.encode(nil, zero.UnsafePointer(), compact)
		if !ok || !bytes.Equal(fast, w.B) {
			return false
		}
	}
	return true
}

// Marshal appends v's encoding to dst if v is of a plain struct type, as
// the library with UseArrayEncodedStructs(compact) would; ok is false, and
// out meaningless, if it is not.
func (c *Codec) Marshal(dst []byte, v any, compact bool) (out []byte, ok bool) {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Struct {
		return nil, false
	}
	p := c.planFor(t)
	if p == nil {
		return nil, false
	}
	// A plain struct is not pointer-shaped, so the interface's data word
	// points to the value.
	return p.encode(dst, (*eface)(unsafe.Pointer(&v)).data, compact)
}

// Unmarshal decodes data into ptr if ptr points to an all-zero value of a
// plain struct type and data is laid out as the fast path writes it; done
// reports whether it did, or found data to be cut short (err). If done is
// false, *ptr is as it was and the library must decode (after Scan).
func (c *Codec) Unmarshal(data []byte, ptr any) (done bool, err error) {
	t := reflect.TypeOf(ptr)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return false, nil
	}
	p := c.planFor(t.Elem())
	if p == nil {
		return false, nil
	}
	base := (*eface)(unsafe.Pointer(&ptr)).data // a pointer is its own data word
	if base == nil || !zeroMemory(base, p.size) {
		return false, nil
	}
	return unmarshalAt(p, t.Elem(), data, base)
}

// unmarshalAt decodes data with p into the all-zero value of type t at
// base, clearing it again if the input is not laid out as p writes it.
func unmarshalAt(p *fastPlan, t reflect.Type, data []byte, base unsafe.Pointer) (done bool, err error) {
	rest, st := p.decode(data, base)
	if st == fastOK && len(rest) == 0 {
		return true, nil
	}
	reflect.NewAt(t, base).Elem().SetZero()
	if st == fastShort {
		// The library would fail here too, after allocating what the
		// length claims (it sizes a []byte by it): fail first.
		return true, fmt.Errorf("msgpack: a string or bin claims more than the %d bytes left: %w", len(rest), io.ErrUnexpectedEOF)
	}
	return false, nil
}

// eface is the layout of an interface{} value: its type word and its data
// word.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// PointerShaped reports whether values of t are stored directly in an
// interface's data word (pointers, maps, channels, funcs, and structs and
// arrays that hold just one of those).
func PointerShaped(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Struct:
		return t.NumField() == 1 && PointerShaped(t.Field(0).Type)
	case reflect.Array:
		return t.Len() == 1 && PointerShaped(t.Elem())
	}
	return false
}

// AppendWriter is an io.Writer and io.ByteWriter that appends to B, so
// msgpack writes straight into a caller's buffer.
type AppendWriter struct{ B []byte }

// Write appends p to B.
func (w *AppendWriter) Write(p []byte) (int, error) {
	w.B = append(w.B, p...)
	return len(p), nil
}

// WriteByte appends c to B.
func (w *AppendWriter) WriteByte(c byte) error {
	w.B = append(w.B, c)
	return nil
}

// zeroMemory reports whether the n bytes at p are all zero.
func zeroMemory(p unsafe.Pointer, n uintptr) bool {
	b := unsafe.Slice((*byte)(p), n)
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// encode appends the struct at base to b. It fails only for a string or
// []byte too long for msgpack (4 GiB), which the library is left to write.
func (p *fastPlan) encode(b []byte, base unsafe.Pointer, compact bool) ([]byte, bool) {
	if compact {
		b = append(b, p.arrHdr...)
	} else {
		b = append(b, p.mapHdr...)
	}
	for i := range p.fields {
		f := &p.fields[i]
		if !compact {
			b = append(b, f.key...)
		}
		at := unsafe.Add(base, f.off)
		switch f.kind {
		case fkBool:
			if *(*bool)(at) {
				b = append(b, 0xc3)
			} else {
				b = append(b, 0xc2)
			}
		case fkInt:
			b = appendMsgpackInt(b, int64(*(*int)(at)))
		case fkInt8:
			b = append(b, 0xd0, byte(*(*int8)(at)))
		case fkInt16:
			b = append(b, 0xd1)
			b = binary.BigEndian.AppendUint16(b, uint16(*(*int16)(at)))
		case fkInt32:
			b = append(b, 0xd2)
			b = binary.BigEndian.AppendUint32(b, uint32(*(*int32)(at)))
		case fkInt64:
			b = append(b, 0xd3)
			b = binary.BigEndian.AppendUint64(b, uint64(*(*int64)(at)))
		case fkUint:
			b = appendMsgpackUint(b, uint64(*(*uint)(at)))
		case fkUint8:
			b = append(b, 0xcc, *(*uint8)(at))
		case fkUint16:
			b = append(b, 0xcd)
			b = binary.BigEndian.AppendUint16(b, *(*uint16)(at))
		case fkUint32:
			b = append(b, 0xce)
			b = binary.BigEndian.AppendUint32(b, *(*uint32)(at))
		case fkUint64:
			b = append(b, 0xcf)
			b = binary.BigEndian.AppendUint64(b, *(*uint64)(at))
		case fkFloat32:
			b = append(b, 0xca)
			b = binary.BigEndian.AppendUint32(b, math.Float32bits(*(*float32)(at)))
		case fkFloat64:
			b = append(b, 0xcb)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(*(*float64)(at)))
		case fkString:
			s := *(*string)(at)
			if uint64(len(s)) > math.MaxUint32 {
				return b, false
			}
			b = appendMsgpackString(b, s)
		case fkBytes:
			s := *(*[]byte)(at)
			if s == nil {
				b = append(b, 0xc0)
				break
			}
			if uint64(len(s)) > math.MaxUint32 {
				return b, false
			}
			b = appendMsgpackLen(b, 0, 0xc5, len(s))
			b = append(b, s...)
		case fkSpecial:
			if p.sp.IsZero(at) {
				b = append(b, 0xc0)
			} else {
				b = append(b, 0xc4, byte(p.sp.Len))
				b = p.sp.Append(b, at)
			}
		case fkStruct:
			var ok bool
			if b, ok = f.sub.encode(b, at, compact); !ok {
				return b, false
			}
		}
	}
	return b, true
}

// fastStatus is how a fast decode went.
type fastStatus uint8

const (
	fastOK      fastStatus = iota
	fastDecline            // something unexpected: let the library decode
	fastShort              // a length the input cannot back, where the library reads it too
)

// decode decodes a struct from the start of b into base (all zero) and
// returns the bytes after it. It stops, leaving base partly written, on
// anything it does not expect.
func (p *fastPlan) decode(b []byte, base unsafe.Pointer) ([]byte, fastStatus) {
	if len(b) == 0 {
		return b, fastDecline
	}
	c := b[0]
	n, isMap := 0, false
	switch {
	case c == 0xc0: // nil: the zero value, which base holds
		return b[1:], fastOK
	case c >= 0x80 && c <= 0x8f:
		n, isMap, b = int(c&0x0f), true, b[1:]
	case c >= 0x90 && c <= 0x9f:
		n, b = int(c&0x0f), b[1:]
	case (c == 0xde || c == 0xdc) && len(b) >= 3:
		n, isMap, b = int(binary.BigEndian.Uint16(b[1:])), c == 0xde, b[3:]
	default:
		return b, fastDecline
	}
	if n != len(p.fields) {
		return b, fastDecline
	}
	for i := range p.fields {
		f := &p.fields[i]
		if isMap {
			if !bytes.HasPrefix(b, f.key) {
				return b, fastDecline
			}
			b = b[len(f.key):]
		}
		var st fastStatus
		if b, st = f.decode(b, unsafe.Add(base, f.off), p.sp); st != fastOK {
			return b, st
		}
	}
	return b, fastOK
}

// decode decodes the field from the start of b into at (zero), as the
// library's decoder for its kind would, and returns the bytes after it.
func (f *fastField) decode(b []byte, at unsafe.Pointer, sp *Special) ([]byte, fastStatus) {
	if len(b) == 0 {
		return b, fastDecline
	}
	switch f.kind {
	case fkBool:
		switch b[0] {
		case 0xc3:
			*(*bool)(at) = true
		case 0xc2, 0xc0:
		default:
			return b, fastDecline
		}
		return b[1:], fastOK
	case fkFloat32:
		if b[0] == 0xca {
			if len(b) < 5 {
				return b, fastDecline
			}
			*(*float32)(at) = math.Float32frombits(binary.BigEndian.Uint32(b[1:]))
			return b[5:], fastOK
		}
		n, rest, ok := readMsgpackInt(b)
		if !ok {
			return b, fastDecline
		}
		*(*float32)(at) = float32(int64(n))
		return rest, fastOK
	case fkFloat64:
		switch {
		case b[0] == 0xca && len(b) >= 5:
			*(*float64)(at) = float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:])))
			return b[5:], fastOK
		case b[0] == 0xcb && len(b) >= 9:
			*(*float64)(at) = math.Float64frombits(binary.BigEndian.Uint64(b[1:]))
			return b[9:], fastOK
		}
		n, rest, ok := readMsgpackInt(b)
		if !ok {
			return b, fastDecline
		}
		*(*float64)(at) = float64(int64(n))
		return rest, fastOK
	case fkString:
		n, rest, ok := readMsgpackBytesLen(b)
		if !ok {
			return b, fastDecline
		}
		if n > len(rest) {
			return b, fastShort
		}
		if n > 0 {
			*(*string)(at) = string(rest[:n])
		}
		return rest[max(n, 0):], fastOK
	case fkBytes:
		n, rest, ok := readMsgpackBytesLen(b)
		if !ok {
			return b, fastDecline
		}
		if n > len(rest) {
			return b, fastShort
		}
		switch {
		case n == 0:
			*(*[]byte)(at) = []byte{} // empty, not nil, as the library decodes it; allocates nothing
		case n > 0:
			*(*[]byte)(at) = append(make([]byte, 0, n), rest[:n]...)
		}
		return rest[max(n, 0):], fastOK
	case fkSpecial:
		if b[0] == 0xc0 {
			return b[1:], fastOK
		}
		n := sp.Len
		if len(b) < 2+n || b[0] != 0xc4 || int(b[1]) != n {
			return b, fastDecline
		}
		if !sp.Load(at, b[2:2+n]) {
			return b, fastDecline
		}
		return b[2+n:], fastOK
	case fkStruct:
		return f.sub.decode(b, at)
	}
	n, rest, ok := readMsgpackInt(b)
	if !ok {
		return b, fastDecline
	}
	switch f.kind {
	case fkInt:
		*(*int)(at) = int(n)
	case fkInt8:
		*(*int8)(at) = int8(n)
	case fkInt16:
		*(*int16)(at) = int16(n)
	case fkInt32:
		*(*int32)(at) = int32(n)
	case fkInt64:
		*(*int64)(at) = int64(n)
	case fkUint:
		*(*uint)(at) = uint(n)
	case fkUint8:
		*(*uint8)(at) = uint8(n)
	case fkUint16:
		*(*uint16)(at) = uint16(n)
	case fkUint32:
		*(*uint32)(at) = uint32(n)
	case fkUint64:
		*(*uint64)(at) = n
	}
	return rest, fastOK
}

// readMsgpackInt reads any msgpack integer, or nil as 0, as the library's
// DecodeInt64 and DecodeUint64 do (which agree bit for bit): signed
// encodings are sign-extended, and the caller truncates to its width.
func readMsgpackInt(b []byte) (uint64, []byte, bool) {
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return uint64(int64(int8(c))), b[1:], true
	case c == 0xc0:
		return 0, b[1:], true
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return 0, b, false
	}
	if len(b) < 1+size {
		return 0, b, false
	}
	var n uint64
	switch c {
	case 0xcc:
		n = uint64(b[1])
	case 0xd0:
		n = uint64(int64(int8(b[1])))
	case 0xcd:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	case 0xd1:
		n = uint64(int64(int16(binary.BigEndian.Uint16(b[1:]))))
	case 0xce:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	case 0xd2:
		n = uint64(int64(int32(binary.BigEndian.Uint32(b[1:]))))
	default:
		n = binary.BigEndian.Uint64(b[1:])
	}
	return n, b[1+size:], true
}

// readMsgpackBytesLen reads a string or bin header, as the library's
// bytesLen does (it takes either for a string or a []byte), with -1 for nil.
func readMsgpackBytesLen(b []byte) (int, []byte, bool) {
	c := b[0]
	switch {
	case c == 0xc0:
		return -1, b[1:], true
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), b[1:], true
	case (c == 0xd9 || c == 0xc4) && len(b) >= 2:
		return int(b[1]), b[2:], true
	case (c == 0xda || c == 0xc5) && len(b) >= 3:
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case (c == 0xdb || c == 0xc6) && len(b) >= 5:
		return int(binary.BigEndian.Uint32(b[1:])), b[5:], true
	}
	return 0, b, false
}

// appendMsgpackInt appends n as the library's EncodeInt does: in the
// fewest bytes.
func appendMsgpackInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendMsgpackUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// appendMsgpackUint appends n as the library's EncodeUint does: in the
// fewest bytes.
func appendMsgpackUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

// appendMsgpackString appends s as the library's EncodeString does.
func appendMsgpackString(b []byte, s string) []byte {
	if len(s) < 32 {
		b = append(b, 0xa0|byte(len(s)))
	} else if len(s) < 256 {
		b = append(b, 0xd9, byte(len(s)))
	} else {
		b = appendMsgpackLen(b, 0, 0xda, len(s))
	}
	return append(b, s...)
}

// appendMsgpackLen appends a length header in the layout msgpack shares
// between maps, arrays and bin: fix|n when n < 16 (fix is nonzero), else
// the 16-bit code, then the 32-bit code (code16+1) with a big-endian
// length. With fix 0 it writes bin: code16-1 (bin8) when n < 256.
func appendMsgpackLen(b []byte, fix, code16 byte, n int) []byte {
	switch {
	case fix != 0 && n < 16:
		return append(b, fix|byte(n))
	case fix == 0 && n < 256:
		return append(b, code16-1, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code16+1), uint32(n))
}

// Plan is the fast path's plan for one plain struct type, for a caller
// that keeps it beside the type (reign's type registry): using it skips
// the per-message lookup of Marshal and Unmarshal.
type Plan struct {
	p *fastPlan
	t reflect.Type
}

// PlanOf returns t's plan, or nil if t is not a plain struct type.
func (c *Codec) PlanOf(t reflect.Type) *Plan {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	p := c.planFor(t)
	if p == nil {
		return nil
	}
	return &Plan{p: p, t: t}
}

// Marshal is Codec.Marshal for a v of the plan's type (anything else
// returns ok false).
func (pl *Plan) Marshal(dst []byte, v any, compact bool) (out []byte, ok bool) {
	if reflect.TypeOf(v) != pl.t {
		return nil, false
	}
	return pl.p.encode(dst, (*eface)(unsafe.Pointer(&v)).data, compact)
}

// Unmarshal is Codec.Unmarshal into the value at base, which must point to
// an all-zero value of the plan's type (a fresh one): done and err are as
// Codec.Unmarshal's, and if done is false the value is all zero again.
func (pl *Plan) Unmarshal(data []byte, base unsafe.Pointer) (done bool, err error) {
	return unmarshalAt(pl.p, pl.t, data, base)
}
