package gossip

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMeta(t *testing.T) {
	m := Meta{ID: 3, Incarnation: 0x01020304, DataAddr: "10.0.0.3:7000"}
	b, err := AppendMeta(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1, 0, 3, 1, 2, 3, 4, 13}, "10.0.0.3:7000"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("encodes as % x, want % x", b, want)
	}
	if got, err := ParseMeta(b); err != nil || got != m {
		t.Fatalf("parses as %+v, %v", got, err)
	}
	if _, err := AppendMeta(nil, Meta{DataAddr: strings.Repeat("x", memberlist.MetaMaxSize)}); err == nil {
		t.Fatal("oversize metadata accepted")
	}
	for _, bad := range [][]byte{nil, {2, 0, 3, 1, 2, 3, 4, 1, 'x'}, want[:7], want[:len(want)-1], append(want, 0), {1, 0, 3, 1, 2, 3, 4, 0}} {
		if _, err := ParseMeta(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMeta(% x): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestCheckNode(t *testing.T) {
	meta, _ := AppendMeta(nil, Meta{ID: 3, DataAddr: "127.0.0.1:3"})
	if m, err := CheckNode(&memberlist.Node{Name: NodeName(3), Meta: meta}); err != nil || m.ID != 3 {
		t.Fatalf("a good member: %+v, %v", m, err)
	}
	for name, n := range map[string]*memberlist.Node{
		"other-id":  {Name: NodeName(4), Meta: meta},
		"bad-name":  {Name: "node-3", Meta: meta},
		"no-meta":   {Name: NodeName(3)},
		"bad-meta":  {Name: NodeName(3), Meta: []byte{9}},
		"padded-id": {Name: "reign-node-03", Meta: meta},
	} {
		if _, err := CheckNode(n); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzMeta: whatever parses re-encodes to the same bytes.
func FuzzMeta(f *testing.F) {
	b, _ := AppendMeta(nil, Meta{ID: 3, Incarnation: 7, DataAddr: "127.0.0.1:7000"})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		got, err := AppendMeta(nil, m)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("% x parses as %+v, which encodes as % x (%v)", b, m, got, err)
		}
	})
}
