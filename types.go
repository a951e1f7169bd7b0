package reign

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/reign-go/reign/internal/msgpackfast"
)

// typeInfo is one registered message type.
type typeInfo struct {
	name   string
	t      reflect.Type
	bind   binder         // binds the Addresses in a decoded value; nil if it has none
	addrs  []uintptr      // with inline set, the offsets of its Addresses (addressOffsets)
	inline bool           // the Addresses all lie inline: bind with bindAt, not bind
	index  int            // registration order on its node: index into per-connection tables
	boxed  bool           // decoded values can be boxed in place (boxAt): not pointer-shaped, not zero-size
	rtype  unsafe.Pointer // t's type word, for boxAt
	// reserved: values of the type carry the node's authority (a link
	// fired, a name claimed twice) and are made only by the node itself,
	// from control frames; one in a message body from the wire is a
	// forgery, refused by decodeMessage, and encodeMessage refuses to
	// send one.
	reserved bool
	// plan is the msgpack fast path's plan for t, nil if t is not a plain
	// struct type: with MsgpackCodec the node encodes and decodes through
	// it without looking it up per message.
	plan *msgpackfast.Plan
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
	byType atomic.Pointer[map[unsafe.Pointer]*typeInfo] // by type word (rtypeOf): hashing a pointer is cheaper than a reflect.Type
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
	if old, ok := byType[rtypeOf(t)]; ok {
		return &ConfigError{Field: "RegisterType", Msg: fmt.Sprintf("type %v is already registered as %q", t, old.name)}
	}
	info := &typeInfo{name: name, t: t, bind: makeBinder(t), index: len(byType),
		boxed: !msgpackfast.PointerShaped(t) && t.Size() > 0, rtype: rtypeOf(t), reserved: reservedTypes[t],
		plan: fastPath.PlanOf(t)}
	info.addrs, info.inline = addressOffsets(t)
	nt := make(map[unsafe.Pointer]*typeInfo, len(byType)+1)
	nn := make(map[string]*typeInfo, len(byName)+1)
	for k, v := range byType {
		nt[k] = v
	}
	for k, v := range byName {
		nn[k] = v
	}
	nt[info.rtype], nn[name] = info, info
	r.byType.Store(&nt)
	r.byName.Store(&nn)
	return nil
}

func (r *typeRegistry) maps() (map[unsafe.Pointer]*typeInfo, map[string]*typeInfo) {
	var bt map[unsafe.Pointer]*typeInfo
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
	if t == nil {
		return nil
	}
	return r.forWord(rtypeOf(t))
}

// forValue returns the registered type of v, nil if none (or v is nil).
func (r *typeRegistry) forValue(v any) *typeInfo {
	return r.forWord((*eface)(unsafe.Pointer(&v)).typ)
}

// forWord returns the registered type whose type word is w.
func (r *typeRegistry) forWord(w unsafe.Pointer) *typeInfo {
	if p := r.byType.Load(); p != nil && w != nil {
		return (*p)[w]
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
	info := n.types.forValue(msg)
	if info == nil {
		return dst, nil, &TypeError{Type: reflect.TypeOf(msg).String()}
	}
	if info.reserved {
		return dst, nil, fmt.Errorf("%w: %s", ErrReservedType, info.name)
	}
	if out, ok := n.fastEncode(dst, info, msg); ok {
		return out, info, nil
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
	ptr := p.UnsafePointer() // once: reflect's accessor is not free
	done := false
	if info.plan != nil {
		if _, ok := n.codec.(MsgpackCodec); ok {
			// MsgpackCodec.Unmarshal's fast path, without its lookup:
			// p is fresh, so all zero.
			done, err = info.plan.Unmarshal(data, ptr)
		}
	}
	if !done {
		err = n.codec.Unmarshal(data, p.Interface())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDecode, info.name, err)
	}
	if info.inline {
		bindAt(ptr, info.addrs, n)
	} else if info.bind != nil && !info.bind(p.Elem(), n, 0) {
		// Only a Codec of the application's can get here: ours refuse
		// such input before decoding it.
		return nil, fmt.Errorf("%w: %s: %w", ErrDecode, info.name, ErrTooDeep)
	}
	if info.boxed {
		return boxAt(info.rtype, ptr), nil
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

// fastEncode appends msg's encoding to dst through info's plan when the
// node's codec is MsgpackCodec and msg is a plain struct: the bytes
// MsgpackCodec.Marshal writes, without its per-message plan lookup. ok is
// false when it did not (the codec must then encode msg).
func (n *Node) fastEncode(dst []byte, info *typeInfo, msg any) ([]byte, bool) {
	if info.plan == nil {
		return dst, false
	}
	mc, ok := n.codec.(MsgpackCodec)
	if !ok {
		return dst, false
	}
	return info.plan.Marshal(dst, msg, mc.Compact)
}

// plainInfo returns v's type when the node's codec is MsgpackCodec and v
// is a plain struct type that may be sent (registered, not reserved): the
// fast path encodes it. Otherwise it returns nil.
func (n *Node) plainInfo(v any) *typeInfo {
	if v == nil {
		return nil
	}
	if _, ok := n.codec.(MsgpackCodec); !ok {
		return nil
	}
	info := n.types.forValue(v)
	if info == nil || info.reserved || info.plan == nil {
		return nil
	}
	return info
}
