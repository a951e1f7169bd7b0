package reign

import (
	"reflect"
	"testing"

	"github.com/reign-go/reign/internal/msgpackfast"
)

type boxSmall struct{ A, B int }
type boxOnePtr struct{ P *int }
type boxArr [3]string
type boxNested struct {
	S   string
	M   map[string]int
	Arr boxArr
	A   Address
}

// TestBoxAtMatchesReflect: an interface built in place by boxAt holds the
// same dynamic type and value as reflect's copy, for every kind of type a
// message can have, and decodeMessage uses it only where it applies.
func TestBoxAtMatchesReflect(t *testing.T) {
	x := 7
	values := []any{
		boxSmall{1, 2}, boxOnePtr{&x}, boxArr{"a", "b", "c"}, 42, "text", 3.5, true,
		boxNested{S: "s", M: map[string]int{"k": 1}, Arr: boxArr{"x"}},
		[]byte("bytes"), map[string]string{"a": "b"}, &boxSmall{3, 4}, struct{}{}, [1]*int{&x},
	}
	for _, v := range values {
		rt := reflect.TypeOf(v)
		p := reflect.New(rt)
		p.Elem().Set(reflect.ValueOf(v))
		want := p.Elem().Interface()
		if msgpackfast.PointerShaped(rt) || rt.Size() == 0 {
			continue
		}
		got := boxAt(rtypeOf(rt), p.UnsafePointer())
		if reflect.TypeOf(got) != rt || !reflect.DeepEqual(got, want) {
			t.Fatalf("%T: boxAt gave %#v, want %#v", v, got, want)
		}
	}
	for _, c := range []struct {
		v     any
		shape bool
	}{{boxOnePtr{}, true}, {[1]*int{}, true}, {map[int]int{}, true}, {&x, true}, {boxSmall{}, false}, {"", false}, {0, false}} {
		if got := msgpackfast.PointerShaped(reflect.TypeOf(c.v)); got != c.shape {
			t.Errorf("PointerShaped(%T) = %v", c.v, got)
		}
	}
}

func TestDecodeMessageBoxesInPlace(t *testing.T) {
	n := newTestNode(t)
	for _, v := range []any{boxSmall{5, 6}, boxOnePtr{}, boxNested{S: "n", M: map[string]int{"z": 26}}} {
		if err := n.RegisterType(v); err != nil {
			t.Fatal(err)
		}
		b, info, err := n.encodeMessage(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := n.decodeMessage(info, b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("decoded %#v, want %#v", got, v)
		}
	}
	if raceEnabled {
		return // allocation counts are not meaningful under the race detector
	}
	b, info, _ := n.encodeMessage(nil, boxSmall{1, 2})
	allocs := testing.AllocsPerRun(100, func() { _, _ = n.decodeMessage(info, b) })
	if allocs > 1 {
		t.Errorf("decoding a small struct allocates %v times, want 1", allocs)
	}
}
