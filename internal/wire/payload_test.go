package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"testing"
)

// kind is one payload encoding: parse, then re-encode what was parsed.
type kind struct {
	name string
	rt   func(p []byte) (enc []byte, v any, err error)
	rest bool // the last field takes the rest of the payload
}

func roundTrip[T any](parse func([]byte) (T, error), app func([]byte, T) []byte) func([]byte) ([]byte, any, error) {
	return func(p []byte) ([]byte, any, error) {
		v, err := parse(p)
		if err != nil {
			return nil, nil, err
		}
		return app(nil, v), v, nil
	}
}

// whole adapts ParseAddr/ParseRef, which return the rest, to a parser that
// wants the input to be exactly one value.
func whole[T any](parse func([]byte) (T, []byte, error)) func([]byte) (T, error) {
	return func(b []byte) (T, error) {
		v, rest, err := parse(b)
		if err == nil && len(rest) != 0 {
			var zero T
			return zero, ErrMalformed
		}
		return v, err
	}
}

var kinds = map[string]kind{
	"Hello":   {name: "Hello", rt: roundTrip(ParseHello, AppendHello)},
	"TypeDef": {name: "TypeDef", rt: roundTrip(ParseTypeDef, AppendTypeDef)},
	"Message": {name: "Message", rt: roundTrip(ParseMessage, AppendMessage), rest: true},
	"Link":    {name: "Link", rt: roundTrip(ParseLink, AppendLink)},
	"Closed":  {name: "Closed", rt: roundTrip(ParseClosed, AppendClosed)},
	"Request": {name: "Request", rt: roundTrip(ParseRequest, AppendRequest), rest: true},
	"Reply":   {name: "Reply", rt: roundTrip(ParseReply, AppendReply), rest: true},
	"Claim":   {name: "Claim", rt: roundTrip(ParseClaim, AppendClaim)},
	"Goodbye": {name: "Goodbye", rt: roundTrip(ParseGoodbye, AppendGoodbye)},
	"Empty": {name: "Empty", rt: func(p []byte) ([]byte, any, error) {
		return nil, struct{}{}, ParseEmpty(p)
	}},
	"Addr": {name: "Addr", rt: roundTrip(whole(ParseAddr), AppendAddr)},
	"Ref":  {name: "Ref", rt: roundTrip(whole(ParseRef), AppendRef)},
}

type sample struct {
	kind string
	v    any
	enc  []byte
}

var (
	maxRef = Ref{Inc: math.MaxUint32, ID: math.MaxUint64}
	refA   = Ref{Inc: 7, ID: 42}
	refB   = Ref{Inc: 0x01020304, ID: 0x05060708090a0b0c}
)

// samples returns valid values of every payload, with their encodings.
func samples() []sample {
	var s []sample
	add := func(kind string, v any, enc []byte) { s = append(s, sample{kind, v, enc}) }
	for _, h := range []Hello{
		{MinVersion: 1, MaxVersion: 1, Node: 3, Incarnation: 99, Codec: "msgpack", MaxFrame: 16 << 20},
		{MinVersion: 1, MaxVersion: 9, Node: math.MaxUint16, Incarnation: math.MaxUint32, Codec: "", MaxFrame: math.MaxUint32},
	} {
		add("Hello", h, AppendHello(nil, h))
	}
	for _, d := range []TypeDef{{1, "main.Chat"}, {0, ""}, {math.MaxUint32, "x"}, {300, string(make([]byte, 200))}} {
		add("TypeDef", d, AppendTypeDef(nil, d))
	}
	for _, m := range []Message{
		{To: refA, TypeID: 1, Body: []byte("body")},
		{To: maxRef, TypeID: math.MaxUint32, Body: []byte{0}},
	} {
		add("Message", m, AppendMessage(nil, m))
	}
	for _, l := range []Link{{refA, refB}, {maxRef, Ref{}}} {
		add("Link", l, AppendLink(nil, l))
	}
	for _, c := range []Closed{{refA, refB, ReasonNoProc, ""}, {maxRef, refA, 255, ""}} {
		add("Closed", c, AppendClosed(nil, c))
	}
	for _, r := range []Request{
		{To: refA, ReplyTo: Addr{2, 7, 9}, CallRef: 1, TypeID: 5, Body: []byte("ask")},
		{To: maxRef, ReplyTo: Addr{65535, 4294967295, math.MaxUint64}, CallRef: math.MaxUint64, TypeID: 128, Body: []byte{1, 2}},
	} {
		add("Request", r, AppendRequest(nil, r))
	}
	for _, r := range []Reply{
		{To: refB, CallRef: 1, TypeID: 5, Body: []byte("answer")},
		{To: maxRef, CallRef: math.MaxUint64, TypeID: 1 << 20, Body: []byte{9}},
	} {
		add("Reply", r, AppendReply(nil, r))
	}
	for _, c := range []Claim{{"chat", refA}, {"", maxRef}, {"é/ü", refB}} {
		add("Claim", c, AppendClaim(nil, c))
	}
	for _, g := range []Goodbye{{GoodbyeShutdown}, {GoodbyeDuplicate}} {
		add("Goodbye", g, AppendGoodbye(nil, g))
	}
	add("Addr", Addr{Node: 5, Inc: 6, ID: 7}, AppendAddr(nil, Addr{Node: 5, Inc: 6, ID: 7}))
	add("Ref", refB, AppendRef(nil, refB))
	return s
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		enc, v, err := kinds[s.kind].rt(s.enc)
		if err != nil {
			t.Fatalf("%s %+v: %v", s.kind, s.v, err)
		}
		if !reflect.DeepEqual(v, s.v) {
			t.Fatalf("%s: parsed %+v, want %+v", s.kind, v, s.v)
		}
		if !bytes.Equal(enc, s.enc) {
			t.Fatalf("%s: re-encoded %x, want %x", s.kind, enc, s.enc)
		}
	}
	// Empty payloads.
	if err := ParseEmpty(nil); err != nil {
		t.Fatal(err)
	}
	if err := ParseEmpty([]byte{0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseEmpty(1 byte) = %v", err)
	}
}

// TestPayloadLayout pins the byte layouts that PROTOCOL.md documents.
func TestPayloadLayout(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"Addr", AppendAddr(nil, Addr{Node: 0x0102, Inc: 0x03040506, ID: 0x0708090a0b0c0d0e}), "0102 03040506 0708090a0b0c0d0e"},
		{"Hello", AppendHello(nil, Hello{MinVersion: 1, MaxVersion: 2, Node: 3, Incarnation: 4, MaxFrame: 5, Codec: "mp"}),
			"524549474e 0001 0002 0003 00000004 00000005 02 6d70"},
		{"TypeDef", AppendTypeDef(nil, TypeDef{ID: 300, Name: "T"}), "ac02 01 54"},
		{"Message", AppendMessage(nil, Message{To: Ref{1, 2}, TypeID: 3, Body: []byte{0xff}}), "00000001 0000000000000002 03 ff"},
		{"Link", AppendLink(nil, Link{Ref{1, 2}, Ref{3, 4}}), "00000001 0000000000000002 00000003 0000000000000004"},
		{"Closed", AppendClosed(nil, Closed{Ref{1, 2}, Ref{3, 4}, 3, ""}), "00000001 0000000000000002 00000003 0000000000000004 03"},
		{"Request", AppendRequest(nil, Request{Ref{1, 2}, Addr{9, 3, 4}, 5, 6, []byte{7}}),
			"00000001 0000000000000002 0009 00000003 0000000000000004 0000000000000005 06 07"},
		{"Reply", AppendReply(nil, Reply{Ref{1, 2}, 5, 6, []byte{7}}), "00000001 0000000000000002 0000000000000005 06 07"},
		{"Claim", AppendClaim(nil, Claim{"ab", Ref{1, 2}}), "02 6162 00000001 0000000000000002"},
		{"Goodbye", AppendGoodbye(nil, Goodbye{1}), "01"},
		{"Frame", AppendFrame(nil, TypeGoodbye, []byte{1}), "00000002 0d 01"},
	} {
		want, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(c.want), []byte(" "), nil)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.got, want) {
			t.Errorf("%s: got %x, want %s", c.name, c.got, c.want)
		}
	}
}

// TestPayloadTruncationAndTrailing: every proper prefix of a valid payload is
// refused, and so is a valid payload followed by anything. Payloads whose
// last field is the rest of the payload are tested with an empty rest: a
// shorter body is a valid message, and trailing bytes are body.
func TestPayloadTruncationAndTrailing(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		k := kinds[s.kind]
		enc := s.enc
		if k.rest {
			switch v := s.v.(type) {
			case Message:
				v.Body = nil
				enc = AppendMessage(nil, v)
			case Request:
				v.Body = nil
				enc = AppendRequest(nil, v)
			case Reply:
				v.Body = nil
				enc = AppendReply(nil, v)
			}
			if _, _, err := k.rt(enc); err != nil {
				t.Fatalf("%s with empty body: %v", s.kind, err)
			}
		}
		for n := 0; n < len(enc); n++ {
			if _, v, err := k.rt(enc[:n:n]); err == nil {
				t.Fatalf("%s: prefix %x of %x parsed as %+v", s.kind, enc[:n], enc, v)
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMagic) {
				t.Fatalf("%s: prefix %d: unexpected error %v", s.kind, n, err)
			}
		}
		if k.rest {
			continue
		}
		for _, extra := range [][]byte{{0}, {1, 2, 3}} {
			long := append(bytes.Clone(enc), extra...)
			if _, v, err := k.rt(long); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: %x with trailing bytes: %+v, %v", s.kind, long, v, err)
			}
		}
	}
}

func TestPayloadBadLengthsAndVarints(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		p    []byte
		f    func([]byte) error
	}{
		{"TypeDef padded uvarint id", []byte{0x81, 0x00, 0}, errOf(ParseTypeDef)},
		{"TypeDef padded zero id", []byte{0x80, 0x00, 0}, errOf(ParseTypeDef)},
		{"TypeDef id over 32 bits", append(hexBytes("8080808010"), 0), errOf(ParseTypeDef)},
		{"TypeDef uvarint overflow", append(bytes.Repeat([]byte{0xff}, 10), 1, 0), errOf(ParseTypeDef)},
		{"TypeDef unterminated uvarint", []byte{0x80}, errOf(ParseTypeDef)},
		{"TypeDef name longer than payload", []byte{1, 5, 'a', 'b'}, errOf(ParseTypeDef)},
		{"TypeDef huge name length", append([]byte{1}, hexBytes("ffffffffffffffff7f")...), errOf(ParseTypeDef)},
		{"Claim name longer than payload", append([]byte{20, 'a'}, make([]byte, 12)...), errOf(ParseClaim)},
		{"Message padded type id", append(make([]byte, 12), 0x80, 0x00), errOf(ParseMessage)},
		{"Message type id over 32 bits", append(make([]byte, 12), hexBytes("8080808010")...), errOf(ParseMessage)},
		{"Hello codec longer than payload", append(AppendHello(nil, Hello{})[:len(Magic)+14], 3, 'x'), errOf(ParseHello)},
	} {
		if err := c.f(c.p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
}

func errOf[T any](f func([]byte) (T, error)) func([]byte) error {
	return func(b []byte) error { _, err := f(b); return err }
}

func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseAliasesBody(t *testing.T) {
	// Not parallel: AllocsPerRun.
	p := AppendMessage(nil, Message{To: refA, TypeID: 1, Body: []byte("body")})
	m, err := ParseMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Body[0] != &p[len(p)-4] || cap(m.Body) != len(m.Body) {
		t.Fatal("Body does not alias the payload's tail")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseMessage(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseMessage: %v allocs", allocs)
	}
}

// TestAppendThenBody: a nil Body followed by appending the body gives the
// same payload as passing the body, which is how a codec writes in place.
func TestAppendThenBody(t *testing.T) {
	t.Parallel()
	body := []byte("encoded by a codec")
	m := Message{To: refA, TypeID: 9}
	a := append(AppendMessage(nil, m), body...)
	m.Body = body
	if !bytes.Equal(a, AppendMessage(nil, m)) {
		t.Fatal("Message")
	}
	r := Request{To: refA, ReplyTo: Addr{2, 7, 9}, CallRef: 3, TypeID: 9}
	a = append(AppendRequest(nil, r), body...)
	r.Body = body
	if !bytes.Equal(a, AppendRequest(nil, r)) {
		t.Fatal("Request")
	}
	y := Reply{To: refA, CallRef: 3, TypeID: 9}
	a = append(AppendReply(nil, y), body...)
	y.Body = body
	if !bytes.Equal(a, AppendReply(nil, y)) {
		t.Fatal("Reply")
	}
}

func TestPingPayload(t *testing.T) {
	for _, v := range []uint64{0, 1, 1 << 63, ^uint64(0)} {
		got, err := ParsePing(AppendPing(nil, v))
		if err != nil || got != v {
			t.Errorf("ParsePing(AppendPing(%d)) = %d, %v", v, got, err)
		}
	}
	for _, n := range []int{0, 7, 9} {
		if _, err := ParsePing(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v, want ErrMalformed", n, err)
		}
	}
}
