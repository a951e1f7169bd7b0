package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestGroupRoundTrip(t *testing.T) {
	t.Parallel()
	for _, g := range []Group{
		{Name: "g", Member: Ref{Inc: 1, ID: 2}},
		{Name: strings.Repeat("x", 300), Member: Ref{Inc: 0xffffffff, ID: 1<<64 - 1}},
		{},
	} {
		enc := AppendGroup([]byte{9}, g)[1:]
		got, err := ParseGroup(enc)
		if err != nil || got != g {
			t.Fatalf("%+v: parsed as %+v, %v", g, got, err)
		}
		for cut := 0; cut < len(enc); cut++ {
			if _, err := ParseGroup(enc[:cut]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%+v cut at %d: %v, want ErrMalformed", g, cut, err)
			}
		}
		if _, err := ParseGroup(append(enc, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%+v with a trailing byte: %v, want ErrMalformed", g, err)
		}
	}
	// a length past the payload, and a padded uvarint
	for _, p := range [][]byte{{200}, {0x81, 0x00, 'a'}} {
		if _, err := ParseGroup(p); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: %v, want ErrMalformed", p, err)
		}
	}
}

// FuzzGroup: ParseGroup never panics, fails only with ErrMalformed, and
// what parses re-encodes to the same bytes.
func FuzzGroup(f *testing.F) {
	f.Add(AppendGroup(nil, Group{Name: "workers", Member: Ref{Inc: 7, ID: 1<<32 | 3}}))
	f.Add(AppendGroup(nil, Group{Name: strings.Repeat("g", 200), Member: Ref{Inc: 1, ID: 1}}))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroup(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if enc := AppendGroup(nil, g); !bytes.Equal(enc, data) {
			t.Fatalf("%x parsed as %+v re-encodes to %x", data, g, enc)
		}
	})
}
