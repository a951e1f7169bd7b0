package reign

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/reign-go/reign/internal/msgpackfast"
	"github.com/vmihailenco/msgpack/v5"
)

type testPing struct {
	From Address
	N    int
}

type testNested struct {
	Name  string
	A     Address
	Zero  Address
	P     *Address
	NilP  *Address
	S     []Address
	Keys  map[Address]string
	Vals  map[string]Address
	Arr   [2]Address
	Inner *testPing
	Pings []testPing
}

// testList is a recursive type with an Address in each node.
type testList struct {
	Addr Address
	Val  int
	Next *testList
}

type testUnregistered struct{ X int }

// testHolder carries arbitrary data, which msgpack decodes as []any,
// map[string]any and so on.
type testHolder struct{ V any }

var testCodecs = []Codec{MsgpackCodec{}, JSONCodec{}}

// codecNode returns a node using codec with the test message types
// registered.
func codecNode(t testing.TB, id NodeID, codec Codec) *Node {
	t.Helper()
	n := newTestNodeConfig(t, Config{NodeID: id, Codec: codec})
	for _, v := range []any{testPing{}, testNested{}, &testPing{}, testList{}, testHolder{}} {
		if err := n.RegisterType(v); err != nil {
			t.Fatalf("RegisterType(%T): %v", v, err)
		}
	}
	return n
}

// roundTrip encodes msg on from and decodes it on to.
func roundTrip(t testing.TB, from, to *Node, msg any) any {
	t.Helper()
	data, info, err := from.encodeMessage(nil, msg)
	if err != nil {
		t.Fatalf("encodeMessage(%T): %v", msg, err)
	}
	info2 := to.types.forName(info.name)
	if info2 == nil {
		t.Fatalf("type %q not registered on the decoding node", info.name)
	}
	v, err := to.decodeMessage(info2, data)
	if err != nil {
		t.Fatalf("decodeMessage(%s, %q): %v", info.name, data, err)
	}
	return v
}

// nestedMsg builds a testNested from four addresses, each passed through
// bind, so the same message can be built bound to different nodes.
func nestedMsg(addrs [4]Address, bind func(Address) Address) testNested {
	a, b, c, d := bind(addrs[0]), bind(addrs[1]), bind(addrs[2]), bind(addrs[3])
	p := c
	return testNested{
		Name:  "n",
		A:     a,
		P:     &p,
		S:     []Address{a, b, {}},
		Keys:  map[Address]string{a: "a", b: "b"},
		Vals:  map[string]Address{"c": c, "d": d},
		Arr:   [2]Address{d, a},
		Inner: &testPing{From: b, N: 3},
		Pings: []testPing{{From: c, N: 1}, {From: d, N: 2}},
	}
}

func listMsg(addrs [4]Address, bind func(Address) Address) testList {
	var l *testList
	for i := len(addrs) - 1; i >= 0; i-- {
		l = &testList{Addr: bind(addrs[i]), Val: i, Next: l}
	}
	return *l
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, codec := range testCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			t.Parallel()
			n1 := codecNode(t, 1, codec)
			n2 := codecNode(t, 2, codec)
			var addrs [4]Address
			var mbs [4]*Mailbox
			for i := range addrs {
				addrs[i], mbs[i] = newTestMailbox(t, n1)
			}
			same := func(a Address) Address { return a }
			msgs := map[string]func(bind func(Address) Address) any{
				"struct":  func(bind func(Address) Address) any { return testPing{From: bind(addrs[0]), N: 42} },
				"pointer": func(bind func(Address) Address) any { return &testPing{From: bind(addrs[1]), N: -1} },
				"nested":  func(bind func(Address) Address) any { return nestedMsg(addrs, bind) },
				"list":    func(bind func(Address) Address) any { return listMsg(addrs, bind) },
				"address": func(bind func(Address) Address) any { return bind(addrs[2]) },
				"string":  func(func(Address) Address) any { return "hello" },
				"int64":   func(func(Address) Address) any { return int64(-1 << 40) },
				"strings": func(func(Address) Address) any { return []string{"a", "b"} },
			}
			for name, mk := range msgs {
				// Decoded by the node that owns the mailboxes: equal to the
				// original, so every Address is bound and usable.
				if got, want := roundTrip(t, n1, n1, mk(same)), mk(same); !reflect.DeepEqual(got, want) {
					t.Errorf("%s on the same node:\n got %#v\nwant %#v", name, got, want)
				}
				// Decoded by another node: every Address bound to it.
				if got, want := roundTrip(t, n1, n2, mk(same)), mk(n2.BindAddress); !reflect.DeepEqual(got, want) {
					t.Errorf("%s on another node:\n got %#v\nwant %#v", name, got, want)
				}
			}

			// The decoded Addresses are usable: send through every one.
			got := roundTrip(t, n1, n1, nestedMsg(addrs, same)).(testNested)
			var all []Address
			all = append(all, got.A, *got.P, got.Arr[0], got.Arr[1], got.Inner.From)
			all = append(all, got.S[:2]...)
			for k := range got.Keys {
				all = append(all, k)
			}
			for _, v := range got.Vals {
				all = append(all, v)
			}
			for _, p := range got.Pings {
				all = append(all, p.From)
			}
			for _, a := range all {
				mustSend(t, a, "hi")
			}
			total := 0
			for _, m := range mbs {
				total += m.Len()
			}
			if total != len(all) {
				t.Errorf("%d sends through decoded Addresses, %d arrived", len(all), total)
			}
			if !got.Zero.IsZero() || got.NilP != nil || !got.S[2].IsZero() {
				t.Errorf("zero values did not survive: %v %v %v", got.Zero, got.NilP, got.S[2])
			}
			l := roundTrip(t, n1, n1, listMsg(addrs, same)).(testList)
			for p := &l; p != nil; p = p.Next {
				mustSend(t, p.Addr, p.Val)
			}
			for i, m := range mbs {
				msgs := drain(m)
				if len(msgs) == 0 || msgs[len(msgs)-1] != i {
					t.Errorf("mailbox %d: list send did not arrive last: %v", i, msgs)
				}
			}
		})
	}
}

func TestCodecUnknownType(t *testing.T) {
	t.Parallel()
	n := codecNode(t, 0, nil)
	for _, msg := range []any{testUnregistered{1}, &testUnregistered{}, nil, []testPing{}, make(chan int)} {
		_, _, err := n.encodeMessage(nil, msg)
		if !errors.Is(err, ErrUnknownType) {
			t.Errorf("encodeMessage(%T) = %v, want ErrUnknownType", msg, err)
		}
		var te *TypeError
		if !errors.As(err, &te) || te.Type == "" {
			t.Errorf("encodeMessage(%T): %v is not a *TypeError naming the type", msg, err)
		}
	}
	if n.types.forName(typeName(reflect.TypeFor[testUnregistered]())) != nil {
		t.Fatal("unregistered type found by name")
	}
}

func TestCodecMalformed(t *testing.T) {
	t.Parallel()
	for _, codec := range testCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			t.Parallel()
			n := codecNode(t, 1, codec)
			a, _ := newTestMailbox(t, n)
			good, info, err := n.encodeMessage(nil, nestedMsg([4]Address{a, a, a, a}, func(a Address) Address { return a }))
			if err != nil {
				t.Fatal(err)
			}
			inputs := [][]byte{nil, {}, {0xc1}, {0xff, 0xff}, []byte("{"), []byte(`{"A":"<1.2.3>"}`),
				[]byte(`{"A":12}`), []byte("\x81\xa1A\xc4\x03abc"), append(append([]byte{}, good...), 0x00)}
			for i := 1; i < len(good); i += 7 {
				inputs = append(inputs, good[:i])
			}
			for _, data := range inputs {
				v, err := n.decodeMessage(info, data)
				if !errors.Is(err, ErrDecode) {
					t.Errorf("decodeMessage(%q) = %v, %v; want ErrDecode", data, v, err)
				}
			}
			// Each type, including ones with no Address, rejects garbage.
			for _, name := range []string{"string", "int", "[]string", typeName(reflect.TypeFor[testList]())} {
				info := n.types.forName(name)
				if info == nil {
					t.Fatalf("no type %q", name)
				}
				if _, err := n.decodeMessage(info, []byte{0xc1, '{'}); !errors.Is(err, ErrDecode) {
					t.Errorf("decodeMessage(%s, garbage) = %v", name, err)
				}
			}
		})
	}
}

func TestTypeRegistriesPerNode(t *testing.T) {
	t.Parallel()
	n1 := newTestNode(t)
	n2 := newTestNode(t)
	if err := n1.RegisterType(testUnregistered{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n1.encodeMessage(nil, testUnregistered{1}); err != nil {
		t.Fatalf("registered on n1, encode on n1: %v", err)
	}
	if _, _, err := n2.encodeMessage(nil, testUnregistered{1}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("registered on n1 only, encode on n2 = %v, want ErrUnknownType", err)
	}
	name := typeName(reflect.TypeFor[testUnregistered]())
	if n2.types.forName(name) != nil {
		t.Fatal("n1's registration is visible on n2")
	}
	// The same name may mean different types on different nodes.
	if err := n1.RegisterTypeName("shared", testPing{}); err != nil {
		t.Fatal(err)
	}
	if err := n2.RegisterTypeName("shared", testList{}); err != nil {
		t.Fatalf("name registered on n1 refused on n2: %v", err)
	}
}

func TestRegisterTypeErrors(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	bad := map[string]func() error{
		"nil":           func() error { return n.RegisterType(nil) },
		"func":          func() error { return n.RegisterType(func() {}) },
		"chan":          func() error { return n.RegisterType(make(chan int)) },
		"name conflict": func() error { return n.RegisterTypeName("string", testPing{}) },
		"renamed":       func() error { return n.RegisterTypeName("other name", "") },
	}
	for name, f := range bad {
		if err := f(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
	for range 2 {
		if err := n.RegisterType(testPing{}); err != nil {
			t.Fatalf("RegisterType twice: %v", err)
		}
		if err := n.RegisterTypeName("ping", testList{}); err != nil {
			t.Fatalf("RegisterTypeName twice: %v", err)
		}
		if err := n.RegisterType(""); err != nil {
			t.Fatalf("RegisterType of a builtin: %v", err)
		}
	}
	if n.types.forName("ping").t != reflect.TypeFor[testList]() {
		t.Fatal("RegisterTypeName did not use the given name")
	}
	// A failed registration changed nothing.
	if info := n.types.forName("string"); info == nil || info.t != reflect.TypeFor[string]() {
		t.Fatal("a refused registration replaced the builtin string")
	}
}

// fuzzTypes are the message types FuzzDecodeMessage decodes into.
var fuzzTypes = []any{testPing{}, testNested{}, testList{}, &testPing{}, "", map[string]any(nil), Address{}, map[string]string(nil), testHolder{}, []any(nil)}

// FuzzDecodeMessage feeds arbitrary bytes to both codecs for several
// registered types: decoding must never panic, and whatever decodes must
// encode again, to bytes that decode again.
func FuzzDecodeMessage(f *testing.F) {
	nodes := []*Node{codecNode(f, 1, MsgpackCodec{}), codecNode(f, 1, JSONCodec{})}
	a, _ := nodes[0].NewMailbox()
	same := func(a Address) Address { return a }
	addrs := [4]Address{a, a, {}, a}
	for ci, n := range nodes {
		for ti, msg := range []any{testPing{From: a, N: 1}, nestedMsg(addrs, same), listMsg(addrs, same), &testPing{}, "s",
			map[string]any{"k": 1}, a, map[string]string{"k": "v"}, testHolder{V: []any{1, "x"}}, []any{map[string]any{}}} {
			data, _, err := n.encodeMessage(nil, msg)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(ci), uint8(ti), data)
		}
	}
	// nesting at and past MaxDecodeDepth, for each type
	for ti := range fuzzTypes {
		for _, d := range []int{MaxDecodeDepth, MaxDecodeDepth + 1} {
			f.Add(uint8(0), uint8(ti), deepMsgpack(d))
			f.Add(uint8(1), uint8(ti), deepJSON(d))
		}
	}
	f.Fuzz(func(t *testing.T, codec, typ uint8, data []byte) {
		n := nodes[int(codec)%len(nodes)]
		info := n.types.forType(reflect.TypeOf(fuzzTypes[int(typ)%len(fuzzTypes)]))
		v, err := n.decodeMessage(info, data)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("decode error %v does not wrap ErrDecode", err)
			}
			return
		}
		if reflect.TypeOf(v) != info.t {
			t.Fatalf("decoded %T, want %v", v, info.t)
		}
		again, info2, err := n.encodeMessage(nil, v)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", v, err)
		}
		if info2 != info {
			t.Fatalf("re-encoded as %s, decoded as %s", info2.name, info.name)
		}
		if _, err := n.decodeMessage(info, again); err != nil {
			t.Fatalf("re-encoding %q of %#v does not decode: %v", again, v, err)
		}
	})
}

// TestMsgpackHostileLengths: a length prefix that the data cannot back must
// fail at once, not make the decoder allocate what it claims (a few bytes
// claiming 4 billion elements would kill the process).
func TestMsgpackHostileLengths(t *testing.T) {
	t.Parallel()
	n := codecNode(t, 1, MsgpackCodec{})
	inputs := map[string][]byte{
		"map32":         []byte("\xdf\xe1A\xeaO\xc2\x0c"),
		"array32":       []byte("\xdd\xff\xff\xff\xff\xc0"),
		"str32":         []byte("\xdb\xff\xff\xff\xffab"),
		"nested map32":  []byte("\x81\xa1V\xdf\xff\xff\xff\xff\xc0"),
		"nested array":  []byte("\x81\xa1V\xdd\xff\xff\xff\xff\xc0"),
		"map16 of nils": []byte("\xde\xff\xff\xa0\xc0"),
	}
	for _, typ := range []any{map[string]any(nil), []any(nil), testHolder{}, "", testNested{}} {
		info := n.types.forType(reflect.TypeOf(typ))
		for name, data := range inputs {
			if _, err := n.decodeMessage(info, data); !errors.Is(err, ErrDecode) {
				t.Errorf("%s as %s: %v, want ErrDecode", name, info.name, err)
			}
		}
	}
	// A holder of generic data still round-trips.
	msg := testHolder{V: map[string]any{"a": []any{"x", true, nil}}}
	got := roundTrip(t, n, n, msg).(testHolder)
	if m, ok := got.V.(map[string]any); !ok || len(m["a"].([]any)) != 3 {
		t.Fatalf("testHolder round trip = %#v", got)
	}
}

// TestMsgpackHostileLengthsRetainNothing: decoding many short messages that
// claim huge strings must not leave memory held by the codec (msgpack
// keeps the buffer it grew for a claimed length in its decoder).
func TestMsgpackHostileLengthsRetainNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB")
	}
	n := codecNode(t, 1, MsgpackCodec{})
	info := n.types.forType(reflect.TypeFor[map[string]any]())
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for range 100 {
		if _, err := n.decodeMessage(info, []byte("\xc6\xc6{\"\" ")); !errors.Is(err, ErrDecode) {
			t.Fatalf("bin32 claiming 3 GB: %v", err)
		}
	}
	// One GC: what a pool holds stays reachable through it.
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(before); grown > 64<<20 {
		t.Fatalf("heap grew by %d MB after 100 hostile messages", grown>>20)
	}
}

// BenchmarkDecodeGeneric decodes a message the fast path does not take
// (generic data: []any, map[string]any), so the msgpack library decodes
// it after the depth and length pre-scan.
func BenchmarkDecodeGeneric(b *testing.B) {
	for _, codec := range testCodecs {
		b.Run(codec.Name(), func(b *testing.B) {
			n := codecNode(b, 1, codec)
			msg := testHolder{V: map[string]any{"seq": 12345, "tags": []any{"a", "b", true}, "inner": map[string]any{"x": 1.5}}}
			data, info, err := n.encodeMessage(nil, msg)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.decodeMessage(info, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// deepMsgpack is an array holding an array ... depth deep, in msgpack.
func deepMsgpack(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), 0xc0)
}

// deepJSON is depth nested JSON arrays around a null.
func deepJSON(depth int) []byte {
	return []byte(strings.Repeat("[", depth) + "null" + strings.Repeat("]", depth))
}

// deepList is a testList of length nodes, which nests length levels deep
// (a struct is a level, a pointer is not).
func deepList(length int, a Address) testList {
	l := testList{Addr: a}
	for i := 1; i < length; i++ {
		next := l
		l = testList{Addr: a, Val: i, Next: &next}
	}
	return l
}

// TestDecodeTooDeep: both codecs refuse, before decoding, anything nested
// deeper than MaxDecodeDepth, into any type, down to a frame's worth of
// nesting (which overflowed the goroutine stack, killing the process,
// before the bound); and accept what is nested MaxDecodeDepth deep.
func TestDecodeTooDeep(t *testing.T) {
	t.Parallel()
	for _, codec := range testCodecs {
		t.Run(codec.Name(), func(t *testing.T) {
			t.Parallel()
			n := codecNode(t, 1, codec)
			deep := deepMsgpack
			if codec.Name() == "json" {
				deep = deepJSON
			}
			wrap := func(prefix, suffix string, inner []byte) []byte {
				return append(append([]byte(prefix), inner...), suffix...)
			}
			holder, end, unknown := `{"V":`, "}", `{"N":1,"Zzz":`
			if codec.Name() != "json" {
				holder, end, unknown = "\x81\xa1V", "", "\x82\xa1N\x01\xa3Zzz"
			}
			for _, typ := range []any{[]any(nil), testHolder{}, map[string]any(nil), testList{}, testPing{}, "", []string(nil)} {
				info := n.types.forType(reflect.TypeOf(typ))
				for _, data := range [][]byte{deep(MaxDecodeDepth + 1), deep(12 << 20), wrap(holder, end, deep(MaxDecodeDepth))} {
					v, err := n.decodeMessage(info, data)
					if !errors.Is(err, ErrDecode) || !errors.Is(err, ErrTooDeep) {
						t.Fatalf("%s, %d bytes nested: %v, %v; want ErrDecode and ErrTooDeep", info.name, len(data), v, err)
					}
				}
			}
			// in a field the type does not have, which the decoder skips
			ping := n.types.forType(reflect.TypeFor[testPing]())
			if _, err := n.decodeMessage(ping, wrap(unknown, end, deep(MaxDecodeDepth))); !errors.Is(err, ErrTooDeep) {
				t.Fatalf("nested in an unknown field: %v, want ErrTooDeep", err)
			}
			if v, err := n.decodeMessage(ping, wrap(unknown, end, deep(MaxDecodeDepth-1))); err != nil || v.(testPing).N != 1 {
				t.Fatalf("nested to the bound in an unknown field: %v, %v", v, err)
			}
			// At the bound: decodes.
			for _, typ := range []any{[]any(nil), testHolder{}} {
				data := deep(MaxDecodeDepth)
				if _, ok := typ.(testHolder); ok {
					data = wrap(holder, end, deep(MaxDecodeDepth-1))
				}
				if _, err := n.decodeMessage(n.types.forType(reflect.TypeOf(typ)), data); err != nil {
					t.Fatalf("%T nested %d deep: %v", typ, MaxDecodeDepth, err)
				}
			}
			// A list is as deep as it is long.
			a, _ := newTestMailbox(t, n)
			if got := roundTrip(t, n, n, deepList(MaxDecodeDepth, a)).(testList); got.Next.Addr != a {
				t.Fatalf("a list %d long: %+v", MaxDecodeDepth, got)
			}
			data, info, err := n.encodeMessage(nil, deepList(MaxDecodeDepth+1, a))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.decodeMessage(info, data); !errors.Is(err, ErrTooDeep) {
				t.Fatalf("a list %d long: %v, want ErrTooDeep", MaxDecodeDepth+1, err)
			}
		})
	}
}

// TestBindTooDeep: binding the Addresses in a decoded value stops at
// MaxDecodeDepth, for a Codec of the application's that would decode a
// deeper value.
func TestBindTooDeep(t *testing.T) {
	t.Parallel()
	n := codecNode(t, 1, nil)
	info := n.types.forType(reflect.TypeFor[testList]())
	a := Address{node: 2, inc: 1, id: 1 << 32}
	for _, c := range []struct {
		length int
		ok     bool
	}{{MaxDecodeDepth, true}, {MaxDecodeDepth + 1, false}, {100000, false}} {
		l := deepList(c.length, a)
		if got := info.bind(reflect.ValueOf(&l).Elem(), n, 0); got != c.ok {
			t.Fatalf("a list %d long: bind = %v, want %v", c.length, got, c.ok)
		}
		if c.ok && (l.Addr.n != n || l.Next.Next.Addr.n != n) {
			t.Fatalf("a list %d long: not bound", c.length)
		}
	}
	// The map binder counts its level too.
	m := map[string]Address{"a": a}
	mb := makeBinder(reflect.TypeOf(m))
	if !mb(reflect.ValueOf(&m).Elem(), n, MaxDecodeDepth-1) || mb(reflect.ValueOf(&m).Elem(), n, MaxDecodeDepth) {
		t.Fatal("a map binder does not count its level")
	}
}

// TestJSONDepthScan: the JSON pre-scan counts brackets outside strings only.
func TestJSONDepthScan(t *testing.T) {
	t.Parallel()
	open := strings.Repeat("[", MaxDecodeDepth)
	for data, want := range map[string]bool{
		open + "]":                             false,
		open + "[":                             true,
		`"` + open + `["`:                      false,
		`["\"` + open + `["]`:                  false,
		`["\\"` + open[1:] + "[[" + `"]`:       true,
		`{"a":` + open[2:] + `{"b":1}` + "}":   false,
		`{"a":` + open[1:] + `[{"b":1}]` + "}": true,
	} {
		if got := jsonTooDeep([]byte(data)); got != want {
			t.Errorf("jsonTooDeep(%.20q...) = %v, want %v", data, got, want)
		}
	}
}

// TestMsgpackFastPathAddress: the fast path, with its Address hook, writes
// and reads the library's bytes for reign's own plain types.
func TestMsgpackFastPathAddress(t *testing.T) {
	t.Parallel()
	a := Address{node: 3, inc: 7, id: 9<<32 | 5}
	for _, v := range []any{testPing{From: a, N: 2}, testPing{}, testMsg{Seq: 1, From: a, Text: "t"},
		MultipleClaim{Name: "x"}} { // (MailboxClosed has an error field: not plain, and reserved anyway)
		if !fastPath.Plain(reflect.TypeOf(v)) {
			t.Fatalf("%T is not plain", v)
		}
		for _, compact := range []bool{false, true} {
			var w msgpackfast.AppendWriter
			enc := msgpack.NewEncoder(&w)
			enc.UseArrayEncodedStructs(compact)
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
			got, err := MsgpackCodec{Compact: compact}.Marshal(nil, v)
			if err != nil || !bytes.Equal(got, w.B) {
				t.Fatalf("%T: Marshal = %x, %v; the library writes %x", v, got, err, w.B)
			}
			p := reflect.New(reflect.TypeOf(v))
			if done, err := fastPath.Unmarshal(got, p.Interface()); !done || err != nil {
				t.Fatalf("%T: the fast path declined %x: %v", v, got, err)
			}
			if !reflect.DeepEqual(p.Elem().Interface(), v) {
				t.Fatalf("%T: decoded %+v, want %+v", v, p.Elem(), v)
			}
		}
	}
	// a generation-0 mailbox ID is no Address: the library decides
	bad := []byte("\x82\xa4From\xc4\x0e\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\xa1N\x01")
	if err := (MsgpackCodec{}).Unmarshal(bad, new(testPing)); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("generation 0: %v, want ErrBadAddress", err)
	}
}

// TestReservedTypes: MailboxClosed and MultipleClaim are made only by the
// node: they cannot be sent to another node, one decoded from another node
// is refused and counted, and they still go between local mailboxes and
// through a Codec.
func TestReservedTypes(t *testing.T) {
	t.Parallel()
	n := codecNode(t, 1, nil)
	a, m := newTestMailbox(t, n)
	for _, v := range []any{MailboxClosed{Address: a, Reason: Normal}, MultipleClaim{Name: "x"}} {
		if _, _, err := n.encodeMessage(nil, v); !errors.Is(err, ErrReservedType) {
			t.Fatalf("encodeMessage(%T) = %v, want ErrReservedType", v, err)
		}
		data, err := MsgpackCodec{}.Marshal(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		info := n.types.forType(reflect.TypeOf(v))
		before := n.droppedReserved()
		if got, err := n.decodeMessage(info, data); !errors.Is(err, ErrReservedType) || got != nil {
			t.Fatalf("decodeMessage(%T) = %v, %v; want ErrReservedType", v, got, err)
		}
		if after := n.droppedReserved(); after != before+1 {
			t.Fatalf("droppedReserved went from %d to %d", before, after)
		}
		p := reflect.New(info.t)
		if err := (MsgpackCodec{}).Unmarshal(data, p.Interface()); err != nil {
			t.Fatalf("the codec alone: %v", err)
		}
		if again, _ := (MsgpackCodec{}).Marshal(nil, p.Elem().Interface()); !bytes.Equal(again, data) {
			t.Fatalf("the codec alone: %x, then %x", data, again)
		}
		mustSend(t, a, v)
		if got := recv(t, m); !reflect.DeepEqual(got, v) {
			t.Fatalf("local send of %T: received %#v", v, got)
		}
	}
	// Registering them again is still allowed, and changes nothing.
	if err := n.RegisterType(MailboxClosed{}); err != nil {
		t.Fatal(err)
	}
	if err := n.RegisterTypeName("other", MultipleClaim{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("MultipleClaim under another name: %v", err)
	}
}

// TestBindInline: for a type whose Addresses all lie inline, binding
// through their offsets (bindAt) gives what the binder gives: every
// non-zero Address bound, zero ones left alone, Addresses behind an
// interface untouched; types with an Address behind a pointer, slice or
// map, or none at all, keep the binder.
func TestBindInline(t *testing.T) {
	t.Parallel()
	n := codecNode(t, 1, nil)
	a := Address{node: 2, inc: 1, id: 1 << 32}
	b := Address{node: 3, inc: 1, id: 2 << 32}
	type inner struct {
		X    int
		Addr Address
		skip Address // unexported: not bound
	}
	type outer struct {
		A     Address
		In    inner
		Arr   [3]Address
		Nums  [4]int
		Any   any
		Zero  Address
		Ptr   *int
		Slice []int
	}
	offs, ok := addressOffsets(reflect.TypeFor[outer]())
	if !ok || len(offs) != 6 {
		t.Fatalf("outer: %v, %v; want 6 offsets", offs, ok)
	}
	v := outer{A: a, In: inner{Addr: b, skip: a}, Arr: [3]Address{a, {}, b}, Any: a}
	w := v
	bindAt(unsafe.Pointer(&v), offs, n)
	if !makeBinder(reflect.TypeFor[outer]())(reflect.ValueOf(&w).Elem(), n, 0) {
		t.Fatal("the binder failed")
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("bindAt gave %+v, the binder %+v", v, w)
	}
	if v.A.n != n || v.In.Addr.n != n || v.Arr[0].n != n || v.Arr[2].n != n || v.Arr[1].n != nil || v.Zero.n != nil ||
		v.In.skip.n != nil || v.Any.(Address).n != nil {
		t.Fatalf("bound wrongly: %+v", v)
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[struct{ P *Address }](),
		reflect.TypeFor[struct{ S []Address }](),
		reflect.TypeFor[struct{ M map[string]Address }](),
		reflect.TypeFor[struct{ I int }](),
		reflect.TypeFor[[maxInlineAddresses + 1]Address](),
		reflect.TypeFor[testList](),
	} {
		if offs, ok := addressOffsets(typ); ok {
			t.Errorf("%v: inline at %v, want the binder", typ, offs)
		}
	}
	if offs, ok := addressOffsets(addressType); !ok || len(offs) != 1 || offs[0] != 0 {
		t.Errorf("Address: %v, %v", offs, ok)
	}
}
