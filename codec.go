package reign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
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
	w   appendWriter
	enc *msgpack.Encoder
}

type msgpackDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

// appendWriter is an io.Writer and io.ByteWriter that appends to a slice,
// so msgpack writes straight into the caller's buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
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
	e.w.b = dst
	err := e.enc.Encode(v)
	out := e.w.b
	e.w.b = nil
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

// typeInfo is one registered message type.
type typeInfo struct {
	name  string
	t     reflect.Type
	bind  binder         // binds the Addresses in a decoded value; nil if it has none
	index int            // registration order on its node: index into per-connection tables
	boxed bool           // decoded values can be boxed in place (boxAt): not pointer-shaped, not zero-size
	rtype unsafe.Pointer // t's type word, for boxAt
	// reserved: values of the type carry the node's authority (a link
	// fired, a name claimed twice) and are made only by the node itself,
	// from control frames; one in a message body from the wire is a
	// forgery, refused by decodeMessage, and encodeMessage refuses to
	// send one.
	reserved bool
}

// reservedTypes are the types whose values only the node makes: see
// typeInfo.reserved. They stay registered, so that a peer naming them in a
// TypeDef gets a refusal that is counted rather than an unknown type.
var reservedTypes = map[reflect.Type]bool{
	reflect.TypeFor[MailboxClosed](): true,
	reflect.TypeFor[MultipleClaim](): true,
	reflect.TypeFor[NodeUp]():        true, // nodeevents.go
	reflect.TypeFor[NodeDown]():      true,
	reflect.TypeFor[GroupChanged]():  true,
}

// typeRegistry is one node's set of message types: never shared between
// nodes. Reads take no lock (copy-on-write maps); registration is rare.
type typeRegistry struct {
	mu     sync.Mutex
	byType atomic.Pointer[map[reflect.Type]*typeInfo]
	byName atomic.Pointer[map[string]*typeInfo]

	// droppedReserved counts message bodies from peers refused because
	// their type is reserved (a forged MailboxClosed or MultipleClaim).
	droppedReserved atomic.Uint64
}

// droppedReserved is the number of messages from peers this node refused
// because their type is one only a node makes (MailboxClosed,
// MultipleClaim): forgeries. For Stats.
func (n *Node) droppedReserved() uint64 { return n.types.droppedReserved.Load() }

// builtinTypes are registered on every node, so plain values and the
// library's own messages can cross between nodes without ceremony.
var builtinTypes = []any{
	"", []byte(nil), false,
	int(0), int8(0), int16(0), int32(0), int64(0),
	uint(0), uint8(0), uint16(0), uint32(0), uint64(0),
	float32(0), float64(0),
	[]string(nil), map[string]string(nil), map[string]any(nil), []any(nil),
	Address{}, MailboxClosed{}, MultipleClaim{}, (*RemoteError)(nil), GroupChanged{},
	NodeUp{}, NodeDown{}, // reserved (nodeevents.go): registered so a peer naming them is refused and counted
}

// typeName is the name a type is registered under by default: its package
// path and name for a named type, its Go syntax otherwise, and "*" before
// either for a pointer type.
func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer && t.Name() == "" {
		return "*" + typeName(t.Elem())
	}
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

func (r *typeRegistry) register(name string, v any) error {
	if v == nil {
		return &ConfigError{Field: "RegisterType", Msg: "nil value"}
	}
	t := reflect.TypeOf(v)
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Interface:
		return &ConfigError{Field: "RegisterType", Msg: fmt.Sprintf("message type %v cannot be encoded", t)}
	}
	if name == "" {
		name = typeName(t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	byType, byName := r.maps()
	if old, ok := byName[name]; ok {
		if old.t == t {
			return nil
		}
		return &ConfigError{Field: "RegisterType", Msg: fmt.Sprintf("type name %q is already registered for %v", name, old.t)}
	}
	if old, ok := byType[t]; ok {
		return &ConfigError{Field: "RegisterType", Msg: fmt.Sprintf("type %v is already registered as %q", t, old.name)}
	}
	info := &typeInfo{name: name, t: t, bind: makeBinder(t), index: len(byType),
		boxed: !pointerShaped(t) && t.Size() > 0, rtype: rtypeOf(t), reserved: reservedTypes[t]}
	nt := make(map[reflect.Type]*typeInfo, len(byType)+1)
	nn := make(map[string]*typeInfo, len(byName)+1)
	for k, v := range byType {
		nt[k] = v
	}
	for k, v := range byName {
		nn[k] = v
	}
	nt[t], nn[name] = info, info
	r.byType.Store(&nt)
	r.byName.Store(&nn)
	return nil
}

func (r *typeRegistry) maps() (map[reflect.Type]*typeInfo, map[string]*typeInfo) {
	var bt map[reflect.Type]*typeInfo
	var bn map[string]*typeInfo
	if p := r.byType.Load(); p != nil {
		bt = *p
	}
	if p := r.byName.Load(); p != nil {
		bn = *p
	}
	return bt, bn
}

func (r *typeRegistry) forType(t reflect.Type) *typeInfo {
	if p := r.byType.Load(); p != nil {
		return (*p)[t]
	}
	return nil
}

func (r *typeRegistry) forName(name string) *typeInfo {
	if p := r.byName.Load(); p != nil {
		return (*p)[name]
	}
	return nil
}

// encodeMessage appends msg's encoding to dst and returns its type.
func (n *Node) encodeMessage(dst []byte, msg any) ([]byte, *typeInfo, error) {
	if msg == nil {
		return dst, nil, &TypeError{Type: "nil"}
	}
	info := n.types.forType(reflect.TypeOf(msg))
	if info == nil {
		return dst, nil, &TypeError{Type: reflect.TypeOf(msg).String()}
	}
	if info.reserved {
		return dst, nil, fmt.Errorf("%w: %s", ErrReservedType, info.name)
	}
	out, err := n.codec.Marshal(dst, msg)
	if err != nil {
		return dst, nil, fmt.Errorf("%w: %s: %v", ErrEncode, info.name, err)
	}
	return out, info, nil
}

// errCodecPanic marks a codec that panicked on hostile input.
var errCodecPanic = errors.New("codec panicked")

// decodeMessage decodes data, from another node, as a value of the
// registered type info and binds the Addresses in it to n. It never panics:
// a codec that panics on malformed input yields an error wrapping
// ErrDecode, as does input nested deeper than MaxDecodeDepth (with
// ErrTooDeep). A reserved type is refused (ErrReservedType) and counted.
func (n *Node) decodeMessage(info *typeInfo, data []byte) (v any, err error) {
	if info.reserved {
		n.types.droppedReserved.Add(1)
		return nil, fmt.Errorf("%w: a %s from another node", ErrReservedType, info.name)
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("%w: %s: %w: %v", ErrDecode, info.name, errCodecPanic, p)
		}
	}()
	p := reflect.New(info.t)
	if err := n.codec.Unmarshal(data, p.Interface()); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDecode, info.name, err)
	}
	if info.bind != nil && !info.bind(p.Elem(), n, 0) {
		// Only a Codec of the application's can get here: ours refuse
		// such input before decoding it.
		return nil, fmt.Errorf("%w: %s: %w", ErrDecode, info.name, ErrTooDeep)
	}
	if info.boxed {
		return boxAt(info.rtype, p.UnsafePointer()), nil
	}
	return p.Elem().Interface(), nil
}

// eface is the layout of an interface{} value: its type word and its data
// word. For a type that is not pointer-shaped, the data word points to a
// heap copy of the value, which is exactly what reflect.New allocated.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// rtypeOf returns the type word an interface holding a value of type t has:
// the *rtype behind the reflect.Type interface.
func rtypeOf(t reflect.Type) unsafe.Pointer {
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&t))[1]
}

// boxAt returns an interface holding the value at ptr, of the type whose
// type word is typ, without copying it: ptr must point to a heap value of
// that type, not pointer-shaped, that nothing else will modify. This saves
// the second allocation of reflect's Elem().Interface().
func boxAt(typ, ptr unsafe.Pointer) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, ptr
	return v
}

// pointerShaped reports whether values of t are stored directly in an
// interface's data word (pointers, maps, channels, funcs, and structs and
// arrays that hold just one of those).
func pointerShaped(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Struct:
		return t.NumField() == 1 && pointerShaped(t.Field(0).Type)
	case reflect.Array:
		return t.Len() == 1 && pointerShaped(t.Elem())
	}
	return false
}

// A binder binds every Address reachable in v (which is addressable) to n.
// v is depth levels deep (see MaxDecodeDepth: a struct, slice, array or
// map is a level, a pointer is not). It returns false, leaving the rest
// unbound, at a level deeper than MaxDecodeDepth: binders recurse once per
// level, and a recursive type (a list) can be as deep as the input.
type binder func(v reflect.Value, n *Node, depth int) bool

var addressType = reflect.TypeFor[Address]()

// makeBinder returns a binder for t, or nil if no Address can be reached in
// a value of type t (other than through interfaces, which codecs decode to
// plain data and which are left alone).
func makeBinder(t reflect.Type) binder {
	b := &binderBuilder{has: map[reflect.Type]bool{}, made: map[reflect.Type]*binder{}}
	b.analyze(t)
	return b.build(t)
}

type binderBuilder struct {
	has  map[reflect.Type]bool
	made map[reflect.Type]*binder
}

// children lists the types a value of type t holds directly (exported
// struct fields, elements, map keys); interfaces hold nothing we bind.
func children(t reflect.Type) []reflect.Type {
	switch t.Kind() {
	case reflect.Struct:
		var out []reflect.Type
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() {
				out = append(out, f.Type)
			}
		}
		return out
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return []reflect.Type{t.Elem()}
	case reflect.Map:
		return []reflect.Type{t.Key(), t.Elem()}
	}
	return nil
}

// analyze fills b.has for every type reachable from t: a fixed point over
// the type graph, so recursive types are judged by all their paths.
func (b *binderBuilder) analyze(t reflect.Type) {
	edges := map[reflect.Type][]reflect.Type{}
	stack := []reflect.Type{t}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, seen := edges[x]; seen {
			continue
		}
		if x == addressType {
			edges[x] = nil
			b.has[x] = true
			continue
		}
		edges[x] = children(x)
		stack = append(stack, edges[x]...)
	}
	for changed := true; changed; {
		changed = false
		for x, cs := range edges {
			if b.has[x] {
				continue
			}
			for _, c := range cs {
				if b.has[c] {
					b.has[x], changed = true, true
					break
				}
			}
		}
	}
}

func (b *binderBuilder) build(t reflect.Type) binder {
	if !b.has[t] {
		return nil
	}
	if p, ok := b.made[t]; ok {
		// recursive: call through the slot that the outer build fills
		return func(v reflect.Value, n *Node, depth int) bool { return (*p)(v, n, depth) }
	}
	slot := new(binder)
	b.made[t] = slot
	var f binder
	switch t.Kind() {
	case reflect.Struct:
		if t == addressType {
			f = func(v reflect.Value, n *Node, _ int) bool {
				a := (*Address)(v.Addr().UnsafePointer())
				if !a.IsZero() {
					a.n = n
				}
				return true
			}
			break
		}
		type fieldBinder struct {
			i int
			b binder
		}
		var fs []fieldBinder
		for i := 0; i < t.NumField(); i++ {
			if ft := t.Field(i); ft.IsExported() {
				if fb := b.build(ft.Type); fb != nil {
					fs = append(fs, fieldBinder{i, fb})
				}
			}
		}
		f = func(v reflect.Value, n *Node, depth int) bool {
			if depth++; depth > MaxDecodeDepth {
				return false
			}
			for _, fb := range fs {
				if !fb.b(v.Field(fb.i), n, depth) {
					return false
				}
			}
			return true
		}
	case reflect.Pointer:
		eb := b.build(t.Elem())
		f = func(v reflect.Value, n *Node, depth int) bool {
			return v.IsNil() || eb(v.Elem(), n, depth)
		}
	case reflect.Slice, reflect.Array:
		eb := b.build(t.Elem())
		f = func(v reflect.Value, n *Node, depth int) bool {
			if depth++; depth > MaxDecodeDepth {
				return false
			}
			for i := 0; i < v.Len(); i++ {
				if !eb(v.Index(i), n, depth) {
					return false
				}
			}
			return true
		}
	case reflect.Map:
		kb, eb := b.build(t.Key()), b.build(t.Elem())
		f = func(v reflect.Value, n *Node, depth int) bool {
			if depth++; depth > MaxDecodeDepth {
				return false
			}
			if v.Len() == 0 {
				return true
			}
			out := reflect.MakeMapWithSize(t, v.Len())
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			for it := v.MapRange(); it.Next(); {
				k.Set(it.Key())
				e.Set(it.Value())
				if kb != nil && !kb(k, n, depth) || eb != nil && !eb(e, n, depth) {
					return false
				}
				out.SetMapIndex(k, e)
			}
			v.Set(out)
			return true
		}
	}
	*slot = f
	return f
}
