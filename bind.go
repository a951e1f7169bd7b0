package reign

import (
	"reflect"
	"unsafe"
)

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

// maxInlineAddresses bounds the offsets addressOffsets lists: a type with
// more Addresses than this (a large array of them) uses its binder.
const maxInlineAddresses = 64

// addressOffsets returns the offsets of the Addresses in a value of type t
// when all of them lie inline in it: in t itself or in its exported struct
// fields and array elements, nested at most MaxDecodeDepth levels, at most
// maxInlineAddresses of them, none behind a pointer, slice or map. Binding
// such a value is a store per offset (bindAt), with no reflection. ok is
// false otherwise, and for a type with no Address: the binder (or nothing)
// does.
func addressOffsets(t reflect.Type) (offs []uintptr, ok bool) {
	var walk func(t reflect.Type, base uintptr, depth int) bool
	walk = func(t reflect.Type, base uintptr, depth int) bool {
		if t == addressType {
			offs = append(offs, base)
			return len(offs) <= maxInlineAddresses
		}
		switch t.Kind() {
		case reflect.Struct:
			if depth++; depth > MaxDecodeDepth {
				return false
			}
			for i := 0; i < t.NumField(); i++ {
				if f := t.Field(i); f.IsExported() && !walk(f.Type, base+f.Offset, depth) {
					return false
				}
			}
		case reflect.Array:
			if depth++; depth > MaxDecodeDepth {
				return false
			}
			if t.Len() > 0 && makeBinder(t.Elem()) != nil {
				for i := 0; i < t.Len(); i++ {
					if !walk(t.Elem(), base+uintptr(i)*t.Elem().Size(), depth) {
						return false
					}
				}
			}
		case reflect.Pointer, reflect.Slice, reflect.Map:
			return makeBinder(t) == nil // an Address behind it: the binder's job
		}
		return true
	}
	if !walk(t, 0, 0) || len(offs) == 0 {
		return nil, false
	}
	return offs, true
}

// bindAt binds to n the non-zero Addresses at offsets offs (addressOffsets)
// of the value at p, as the binder would.
func bindAt(p unsafe.Pointer, offs []uintptr, n *Node) {
	for _, off := range offs {
		if a := (*Address)(unsafe.Add(p, off)); !a.IsZero() {
			a.n = n
		}
	}
}
