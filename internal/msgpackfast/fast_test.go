package msgpackfast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// addr stands for reign's Address, which this package cannot import: the
// Special type, encoded the same way (nil when zero, else a 14-byte bin of
// node, incarnation and id; an id with a zero generation, its top 32 bits,
// is no address).
type addr struct {
	node uint16
	inc  uint32
	id   uint64
}

const addrLen = 14

var addrType = reflect.TypeFor[addr]()

func (a addr) isZero() bool { return a == addr{} }

func (a addr) appendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, a.node)
	b = binary.BigEndian.AppendUint32(b, a.inc)
	return binary.BigEndian.AppendUint64(b, a.id)
}

func (a *addr) load(b []byte) bool {
	v := addr{binary.BigEndian.Uint16(b), binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint64(b[6:])}
	if !v.isZero() && v.id>>32 == 0 {
		return false
	}
	*a = v
	return true
}

func (a addr) EncodeMsgpack(e *msgpack.Encoder) error {
	if a.isZero() {
		return e.EncodeNil()
	}
	return e.EncodeBytes(a.appendBinary(nil))
}

func (a *addr) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeBytesLen()
	if err != nil || n == -1 {
		*a = addr{}
		return err
	}
	if n != addrLen {
		return fmt.Errorf("address of %d bytes", n)
	}
	var b [addrLen]byte
	if err := d.ReadFull(b[:]); err != nil {
		return err
	}
	if !a.load(b[:]) {
		return errors.New("address generation 0")
	}
	return nil
}

// testCodec is the fast path as reign sets it up, with addr for Address.
var testCodec = New(Special{
	Type:   addrType,
	Len:    addrLen,
	IsZero: func(p unsafe.Pointer) bool { return (*addr)(p).isZero() },
	Append: func(b []byte, p unsafe.Pointer) []byte { return (*addr)(p).appendBinary(b) },
	Load:   func(p unsafe.Pointer, b []byte) bool { return (*addr)(p).load(b) },
})

// unmarshal is MsgpackCodec.Unmarshal: the fast path, else Scan and the
// library.
func unmarshal(data []byte, ptr any) error {
	if done, err := testCodec.Unmarshal(data, ptr); done {
		return err
	}
	n, err := Scan(data)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%d bytes after the value", len(data)-n)
	}
	return msgpack.NewDecoder(bytes.NewReader(data)).Decode(ptr)
}

// nodeID is a named integer type, like reign's NodeID.
type nodeID uint16

// fastAll has a field of every kind the fast path handles.
type fastAll struct {
	B   bool
	I   int
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	U   uint
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	F32 float32
	F64 float64
	S   string
	Bs  []byte
	A   addr
	In  fastInner
	J   string        `json:"j"` // msgpack reads no json tag by default
	N   nodeID        // a named integer type
	D   time.Duration // another, with a String method
}

type fastInner struct {
	X  int64
	Y  string
	A  addr
	Bs []byte
}

// fastMsg is reign_bench's message.
type fastMsg struct {
	Seq     int64
	From    addr
	Payload []byte
}

type fastEmpty struct{}

// fast17 has enough fields for a map16/array16 header.
type fast17 struct {
	F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13, F14, F15, F16 int
}

// deepType returns a plain struct type nesting depth structs, each with
// one field In holding the next (the innermost is empty): reflect builds
// them, as the compiler would choke on 256 nested type literals.
func deepType(depth int) reflect.Type {
	t := reflect.TypeFor[fastEmpty]()
	for range depth - 1 {
		t = reflect.StructOf([]reflect.StructField{{Name: "In", Type: t}})
	}
	return t
}

// fastDeep nests plain structs MaxDepth deep, fastTooDeep one more.
var fastDeep, fastTooDeep = deepType(MaxDepth), deepType(MaxDepth + 1)

// fastPlainTypes are the plain types the tests run over.
var fastPlainTypes = []reflect.Type{
	reflect.TypeFor[fastAll](), reflect.TypeFor[fastInner](), reflect.TypeFor[fastMsg](),
	reflect.TypeFor[fastEmpty](), reflect.TypeFor[fast17](), fastDeep,
}

// libMarshal encodes v with the library alone, as MsgpackCodec did before
// the fast path.
func libMarshal(t testing.TB, v any, compact bool) []byte {
	t.Helper()
	var w AppendWriter
	enc := msgpack.NewEncoder(&w)
	enc.UseArrayEncodedStructs(compact)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("library Encode(%T): %v", v, err)
	}
	return w.B
}

// fastTook reports whether the fast path alone decoded data into ptr.
func fastTook(data []byte, ptr any) bool {
	done, err := testCodec.Unmarshal(data, ptr)
	return done && err == nil
}

// libUnmarshal decodes data into ptr with the library alone, as
// MsgpackCodec.Unmarshal does without the fast path, but with a Skip first
// so that a length the data cannot back fails without the library
// allocating it.
func libUnmarshal(data []byte, ptr any) error {
	if err := msgpack.NewDecoder(bytes.NewReader(data)).Skip(); err != nil {
		return err
	}
	r := bytes.NewReader(data)
	if err := msgpack.NewDecoder(r).Decode(ptr); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d bytes after the value", r.Len())
	}
	return nil
}

// sameValue compares two values by their library encodings in both modes:
// exact to the bit, NaN included, and nil []byte apart from empty.
func sameValue(t testing.TB, got, want any) bool {
	t.Helper()
	return bytes.Equal(libMarshal(t, got, false), libMarshal(t, want, false)) &&
		bytes.Equal(libMarshal(t, got, true), libMarshal(t, want, true))
}

// fastRand fills values with random contents leaning on the edges of each
// encoding.
type fastRand struct{ r *rand.Rand }

func (g fastRand) int64() int64 {
	edges := []int64{0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256,
		32767, 32768, -32768, -32769, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1,
		math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MinInt64}
	if g.r.IntN(2) == 0 {
		return edges[g.r.IntN(len(edges))]
	}
	return int64(g.r.Uint64()) >> g.r.IntN(64)
}

func (g fastRand) length() int {
	lengths := []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000}
	if g.r.IntN(4) == 0 {
		return lengths[g.r.IntN(len(lengths))]
	}
	return g.r.IntN(40)
}

func (g fastRand) address() addr {
	if g.r.IntN(3) == 0 {
		return addr{}
	}
	return addr{node: uint16(g.r.Uint32()), inc: g.r.Uint32(), id: g.r.Uint64() | 1<<32}
}

func (g fastRand) fill(v reflect.Value) {
	if v.Type() == addrType {
		v.Set(reflect.ValueOf(g.address()))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(g.r.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(g.int64()) // truncated to the width: every bit pattern turns up
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(g.int64()))
	case reflect.Float32, reflect.Float64:
		fs := []float64{0, math.Copysign(0, -1), 1.5, -2, math.Inf(1), math.Inf(-1), math.NaN(),
			math.MaxFloat64, math.SmallestNonzeroFloat64, float64(g.int64())}
		if g.r.IntN(2) == 0 {
			v.SetFloat(fs[g.r.IntN(len(fs))])
		} else {
			v.SetFloat(g.r.NormFloat64() * 1e6)
		}
	case reflect.String:
		l := g.length()
		v.SetString(strings.Repeat("é", l/2+1)[:l]) // not always whole runes: msgpack does not care
	case reflect.Slice:
		if g.r.IntN(4) == 0 {
			v.SetBytes(nil)
			return
		}
		b := make([]byte, g.length())
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		v.SetBytes(b)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			g.fill(v.Field(i))
		}
	default:
		panic("fastRand: " + v.Type().String())
	}
}

// values returns zero and random values of t, as pointers.
func (g fastRand) values(t reflect.Type, n int) []reflect.Value {
	out := []reflect.Value{reflect.New(t)}
	for range n {
		p := reflect.New(t)
		g.fill(p.Elem())
		out = append(out, p)
	}
	return out
}

func TestMsgpackFastEncodeMatchesLibrary(t *testing.T) {
	t.Parallel()
	g := fastRand{rand.New(rand.NewPCG(1, 2))}
	for _, typ := range fastPlainTypes {
		if !testCodec.Plain(typ) {
			t.Fatalf("%v is not plain", typ)
		}
		for _, p := range g.values(typ, 300) {
			v := p.Elem().Interface()
			for _, compact := range []bool{false, true} {
				want := libMarshal(t, v, compact)
				got, ok := testCodec.Marshal([]byte("prefix"), v, compact)
				if !ok {
					t.Fatalf("%v took no fast path", typ)
				}
				if !bytes.Equal(got, append([]byte("prefix"), want...)) {
					t.Fatalf("%v compact=%v %+v:\n fast %x\n  lib %x", typ, compact, v, got, want)
				}
			}
		}
	}
}

func TestMsgpackFastDecodeMatchesLibrary(t *testing.T) {
	t.Parallel()
	g := fastRand{rand.New(rand.NewPCG(3, 4))}
	for _, typ := range fastPlainTypes {
		for _, p := range g.values(typ, 300) {
			for _, compact := range []bool{false, true} {
				data := libMarshal(t, p.Elem().Interface(), compact)
				want := reflect.New(typ)
				if err := libUnmarshal(data, want.Interface()); err != nil {
					t.Fatalf("library decode of %x: %v", data, err)
				}
				got := reflect.New(typ)
				if !fastTook(data, got.Interface()) {
					t.Fatalf("%v compact=%v: fast path declined %x", typ, compact, data)
				}
				if !sameValue(t, got.Elem().Interface(), want.Elem().Interface()) {
					t.Fatalf("%v: fast decode %+v, library %+v", typ, got.Elem(), want.Elem())
				}
				if !sameValue(t, got.Elem().Interface(), p.Elem().Interface()) {
					t.Fatalf("%v: decoded %+v, encoded %+v", typ, got.Elem(), p.Elem())
				}
				// Nothing aliases the input, which connections reuse.
				for i := range data {
					data[i] = 0xff
				}
				if !sameValue(t, got.Elem().Interface(), want.Elem().Interface()) {
					t.Fatalf("%v: the decoded value changed with its input", typ)
				}
			}
		}
	}
}

// mapPairs splits a library map encoding into its keys and raw values.
func mapPairs(t testing.TB, data []byte) (keys []string, vals []msgpack.RawMessage) {
	t.Helper()
	d := msgpack.NewDecoder(bytes.NewReader(data))
	n, err := d.DecodeMapLen()
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			t.Fatal(err)
		}
		v, err := d.DecodeRaw()
		if err != nil {
			t.Fatal(err)
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	return keys, vals
}

func joinPairs(t testing.TB, keys []string, vals []msgpack.RawMessage) []byte {
	t.Helper()
	var w AppendWriter
	enc := msgpack.NewEncoder(&w)
	if err := enc.EncodeMapLen(len(keys)); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if err := enc.EncodeString(keys[i]); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(vals[i]); err != nil {
			t.Fatal(err)
		}
	}
	return w.B
}

// TestMsgpackFastFallback feeds MsgpackCodec what the library accepts but
// the fast path does not expect: it must decode as the library does.
func TestMsgpackFastFallback(t *testing.T) {
	t.Parallel()
	g := fastRand{rand.New(rand.NewPCG(5, 6))}
	for _, p := range g.values(reflect.TypeFor[fastAll](), 50) {
		v := p.Elem().Interface().(fastAll)
		keys, vals := mapPairs(t, libMarshal(t, v, false))
		n := len(keys)
		swapped := func() ([]string, []msgpack.RawMessage) {
			k, x := append([]string(nil), keys...), append([]msgpack.RawMessage(nil), vals...)
			i, j := g.r.IntN(n), g.r.IntN(n-1)
			if j >= i {
				j++
			}
			k[i], k[j] = k[j], k[i]
			x[i], x[j] = x[j], x[i]
			return k, x
		}
		sk, sv := swapped()
		inputs := map[string][]byte{
			"reordered":   joinPairs(t, sk, sv),
			"unknown key": joinPairs(t, append([]string{"Zzz"}, keys...), append([]msgpack.RawMessage{{0x2a}}, vals...)),
			"missing key": joinPairs(t, keys[1:], vals[1:]),
			"key as str8": func() []byte {
				b := append([]byte{0xde, 0, byte(n), 0xd9, 1}, keys[0]...)
				b = append(b, vals[0]...)
				for i := 1; i < n; i++ {
					b = append(appendMsgpackString(b, keys[i]), vals[i]...)
				}
				return b
			}(),
			"int64 compact": func() []byte {
				x := append([]msgpack.RawMessage(nil), vals...)
				x[5] = msgpack.RawMessage{0x05} // I64 as a fixint
				return joinPairs(t, keys, x)
			}(),
			"bytes as str16": func() []byte {
				x := append([]msgpack.RawMessage(nil), vals...)
				x[14] = msgpack.RawMessage{0xda, 0, 2, 'h', 'i'}
				return joinPairs(t, keys, x)
			}(),
			"address as bin16": func() []byte {
				x := append([]msgpack.RawMessage(nil), vals...)
				x[15] = append(msgpack.RawMessage{0xc5, 0, addrLen}, addr{node: 1, inc: 2, id: 3 << 32}.appendBinary(nil)...)
				return joinPairs(t, keys, x)
			}(),
			"trailing": append(libMarshal(t, v, false), 0),
			"array32":  append([]byte{0xdd, 0, 0, 0, byte(n)}, libMarshal(t, v, true)[3:]...),
		}
		// The fast path reads these two as the library does.
		fastToo := map[string]bool{"int64 compact": true, "bytes as str16": true}
		for name, data := range inputs {
			var fast fastAll
			if fastTook(data, &fast) != fastToo[name] {
				t.Fatalf("%s: fast path taken: %v, want %v", name, !fastToo[name], fastToo[name])
			}
			if !fastToo[name] && !reflect.DeepEqual(fast, fastAll{}) {
				t.Fatalf("%s: a declined fast decode left %+v", name, fast)
			}
			var got, want fastAll
			errGot := unmarshal(data, &got)
			errWant := libUnmarshal(data, &want)
			if (errGot == nil) != (errWant == nil) {
				t.Fatalf("%s: codec error %v, library error %v", name, errGot, errWant)
			}
			if errGot == nil && !sameValue(t, got, want) {
				t.Fatalf("%s: codec %+v, library %+v", name, got, want)
			}
			if fastToo[name] && !sameValue(t, fast, want) {
				t.Fatalf("%s: fast path %+v, library %+v", name, fast, want)
			}
			if name == "reordered" && !sameValue(t, got, v) {
				t.Fatalf("reordered: %+v, want %+v", got, v)
			}
		}
	}
}

// TestMsgpackFastNonZeroTarget checks that a value that is not all zero is
// left to the library, which keeps the fields the input does not name.
func TestMsgpackFastNonZeroTarget(t *testing.T) {
	t.Parallel()
	data := libMarshal(t, map[string]any{"Seq": 7}, false)
	got := fastMsg{Payload: []byte("kept")}
	if err := unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Seq != 7 || string(got.Payload) != "kept" {
		t.Fatalf("got %+v", got)
	}
}

// TestMsgpackFastHostileLength: a []byte or string claiming more bytes
// than the input has fails at once, allocating nothing near the claim
// (the library alone would allocate a []byte of the claimed size).
func TestMsgpackFastHostileLength(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"bin32 payload": {0x93, 0x01, 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff, 'x'},
		"str32 payload": {0x93, 0x01, 0xc0, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'},
		"bin16 payload": {0x83, 0xa3, 'S', 'e', 'q', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, 0xa4, 'F', 'r', 'o', 'm', 0xc0,
			0xa7, 'P', 'a', 'y', 'l', 'o', 'a', 'd', 0xc5, 0xff, 0xff, 'x'},
	}
	for name, data := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var m fastMsg
		err := unmarshal(data, &m)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF", name, err)
		}
		if !reflect.DeepEqual(m, fastMsg{}) {
			t.Errorf("%s: left %+v", name, m)
		}
		if libUnmarshal(data, new(fastMsg)) == nil {
			t.Errorf("%s: the library accepts it", name)
		}
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 256<<20 { // the claim is 4 GiB; other parallel tests allocate too
			t.Errorf("%s: allocated %d bytes", name, grown)
		}
	}
}

type (
	fastTagged struct {
		A int `msgpack:"a"`
	}
	fastUnexported struct {
		A int
		b int
	}
	fastMap   struct{ M map[string]int }
	fastIface struct{ V any }
	fastPtr   struct{ P *int }
	fastInts  struct{ S []int }
	fastArr   struct{ A [4]byte }
	fastTime  struct{ T time.Time }
	fastEmbed struct {
		fastInner
	}
	fastCustomField struct{ C fastText }
	fastNested      struct{ In fastIface }
	fastText        int
	fastSelf        struct{ A int }
)

func (fastText) MarshalText() ([]byte, error) { return []byte("t"), nil }
func (*fastText) UnmarshalText([]byte) error  { return nil }

func (s fastSelf) EncodeMsgpack(e *msgpack.Encoder) error  { return e.EncodeInt(int64(s.A)) }
func (s *fastSelf) DecodeMsgpack(d *msgpack.Decoder) error { return d.Decode(&s.A) }

func TestMsgpackFastNotPlain(t *testing.T) {
	t.Parallel()
	one := 1
	for _, v := range []any{
		fastTagged{1}, fastUnexported{1, 2}, fastMap{map[string]int{"a": 1}}, fastIface{"x"},
		fastPtr{&one}, fastInts{[]int{1}}, fastArr{[4]byte{1}}, fastTime{time.Unix(1, 0)},
		fastEmbed{fastInner{X: 1}}, fastCustomField{3}, fastNested{fastIface{2}}, fastSelf{4},
		&fastMsg{Seq: 1}, addr{}, 5, "s", []byte("b"),
	} {
		typ := reflect.TypeOf(v)
		if typ.Kind() == reflect.Struct && testCodec.Plain(typ) {
			t.Errorf("%v has a fast plan", typ)
		}
		for _, compact := range []bool{false, true} {
			if _, ok := testCodec.Marshal(nil, v, compact); ok {
				t.Errorf("%v took the fast path", typ)
			}
			data := libMarshal(t, v, compact)
			p := reflect.New(typ)
			if done, _ := testCodec.Unmarshal(data, p.Interface()); done {
				t.Errorf("%v decoded by the fast path", typ)
			}
			if err := unmarshal(data, p.Interface()); err != nil {
				t.Errorf("%v: Unmarshal: %v", typ, err)
			}
		}
	}
}

// TestMsgpackFastTooDeep: a plain struct type nested deeper than MaxDepth
// has no plan, and its values are refused, whichever path decodes them.
func TestMsgpackFastTooDeep(t *testing.T) {
	t.Parallel()
	if !testCodec.Plain(fastDeep) || testCodec.Plain(fastTooDeep) {
		t.Fatalf("plain at MaxDepth: %v, at MaxDepth+1: %v", testCodec.Plain(fastDeep), testCodec.Plain(fastTooDeep))
	}
	data := libMarshal(t, reflect.New(fastTooDeep).Elem().Interface(), false)
	for _, typ := range []reflect.Type{fastTooDeep, reflect.TypeFor[any](), reflect.TypeFor[fastEmpty]()} {
		if err := unmarshal(data, reflect.New(typ).Interface()); !errors.Is(err, ErrTooDeep) {
			t.Errorf("into %.40v: %v, want ErrTooDeep", typ, err)
		}
	}
	data = libMarshal(t, reflect.New(fastDeep).Elem().Interface(), true)
	got := reflect.New(fastDeep)
	if !fastTook(data, got.Interface()) {
		t.Fatal("the fast path declined a value MaxDepth deep")
	}
}

// fastFuzzTypes are the types FuzzMsgpackFast decodes into.
var fastFuzzTypes = []reflect.Type{reflect.TypeFor[fastAll](), reflect.TypeFor[fastMsg](), reflect.TypeFor[fastEmpty](), fastDeep, reflect.TypeFor[[]any]()}

// FuzzMsgpackFast decodes arbitrary bytes as MsgpackCodec does (fast path,
// else Scan and the library) and through the library alone: both fail, or
// both give the same value. Nothing panics, and nothing nested deeper than
// MaxDepth decodes.
func FuzzMsgpackFast(f *testing.F) {
	g := fastRand{rand.New(rand.NewPCG(7, 8))}
	for _, typ := range fastFuzzTypes[:4] {
		for _, p := range g.values(typ, 3) {
			for _, compact := range []bool{false, true} {
				f.Add(libMarshal(f, p.Elem().Interface(), compact))
			}
		}
	}
	for _, depth := range []int{MaxDepth, MaxDepth + 1} {
		f.Add(nested([]byte{0x91}, depth, 0xc0))
		f.Add(nested([]byte{0x81, 0xa1, 'k'}, depth, 0xc0)) // maps: {"k": {"k": ...}}
	}
	f.Add(append([]byte{0x81, 0xa2, 'I', 'n'}, libMarshal(f, reflect.New(fastDeep).Elem().Interface(), false)...)) // fastTooDeep
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range fastFuzzTypes {
			got, want := reflect.New(typ), reflect.New(typ)
			errGot := unmarshal(data, got.Interface())
			if d, _, _ := refScan(data); errGot == nil && d > MaxDepth {
				t.Fatalf("%v: decoded a value %d deep", typ, d)
			}
			if errors.Is(errGot, ErrTooDeep) {
				// The library alone decodes any depth (of a small input).
				if d, _, _ := refScan(data); d <= MaxDepth {
					t.Fatalf("%v: ErrTooDeep for depth %d", typ, d)
				}
				continue
			}
			errWant := libUnmarshal(data, want.Interface())
			if (errGot == nil) != (errWant == nil) {
				t.Fatalf("%v: codec error %v, library error %v", typ, errGot, errWant)
			}
			if errGot != nil {
				continue // the messages may differ: libUnmarshal Skips first
			}
			if !sameValue(t, got.Elem().Interface(), want.Elem().Interface()) {
				t.Fatalf("%v: codec %+v, library %+v", typ, got.Elem(), want.Elem())
			}
		}
	})
}
