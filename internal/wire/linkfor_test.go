package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestLinkForRoundTrip(t *testing.T) {
	t.Parallel()
	for _, l := range []LinkFor{
		{},
		{Target: Addr{Node: 3, Inc: 7, ID: 9}, Watcher: Ref{Inc: 1, ID: 2}},
		{Target: Addr{Node: 65535, Inc: 1<<32 - 1, ID: 1<<64 - 1}, Watcher: Ref{Inc: 5, ID: 6}, Remove: true},
	} {
		b := AppendLinkFor(nil, l)
		if len(b) != AddrSize+RefSize+1 {
			t.Fatalf("%+v encodes to %d bytes", l, len(b))
		}
		got, err := ParseLinkFor(b)
		if err != nil || got != l {
			t.Fatalf("%+v: parsed %+v, %v", l, got, err)
		}
	}
	good := AppendLinkFor(nil, LinkFor{Remove: true})
	for _, bad := range [][]byte{nil, good[:len(good)-1], append(bytes.Clone(good), 0), append(good[:len(good)-1:len(good)-1], 2)} {
		if _, err := ParseLinkFor(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzLinkFor: any payload parses or is malformed, never panics, and what
// parses re-encodes to the same bytes.
func FuzzLinkFor(f *testing.F) {
	f.Add(AppendLinkFor(nil, LinkFor{Target: Addr{Node: 3, Inc: 7, ID: 9}, Watcher: Ref{Inc: 1, ID: 2}}))
	f.Add(AppendLinkFor(nil, LinkFor{Remove: true}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		l, err := ParseLinkFor(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%x: %v", p, err)
			}
			return
		}
		if enc := AppendLinkFor(nil, l); !bytes.Equal(enc, p) {
			t.Fatalf("%x parsed as %+v re-encodes to %x", p, l, enc)
		}
	})
}
