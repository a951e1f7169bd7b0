package msgpackfast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// nested returns level repeated depth times, then leaf: with level an
// array or map header (and a key), a value depth deep.
func nested(level []byte, depth int, leaf byte) []byte {
	return append(bytes.Repeat(level, depth), leaf)
}

// refScan is Scan written the obvious way, by recursion, for small inputs:
// the length of the value at the start of b, whether it is whole, and the
// deepest level of arrays and maps it opened before it stopped.
func refScan(b []byte) (depth, n int, ok bool) {
	var walk func(i, d int) (int, bool)
	walk = func(i, d int) (int, bool) {
		if i >= len(b) {
			return i, false
		}
		c := b[i]
		be := func(at, size int) (int, bool) { // a big-endian length of size bytes at b[at:]
			if at+size > len(b) {
				return 0, false
			}
			var v uint64
			for _, x := range b[at : at+size] {
				v = v<<8 | uint64(x)
			}
			return int(v), v <= uint64(len(b))
		}
		var elems int
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			return i + 1, true
		case c <= 0x8f:
			elems, i = 2*int(c&0x0f), i+1
		case c <= 0x9f:
			elems, i = int(c&0x0f), i+1
		case c <= 0xbf:
			i += 1 + int(c&0x1f)
			return i, i <= len(b)
		case c == 0xc1:
			return i, false
		case c >= 0xca && c <= 0xd3:
			i += 1 + map[byte]int{0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[c]
			return i, i <= len(b)
		case c >= 0xd4 && c <= 0xd8:
			i += 2 + 1<<(c-0xd4)
			return i, i <= len(b)
		case c == 0xdc || c == 0xdd || c == 0xde || c == 0xdf:
			size := map[byte]int{0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4}[c]
			l, ok := be(i+1, size)
			if !ok {
				return i, false
			}
			elems, i = l, i+1+size
			if c >= 0xde {
				elems *= 2
			}
		default: // str, bin, ext with a length
			size := map[byte]int{0xc4: 1, 0xc5: 2, 0xc6: 4, 0xc7: 1, 0xc8: 2, 0xc9: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}[c]
			l, ok := be(i+1, size)
			if !ok {
				return i, false
			}
			i += 1 + size + l
			if c >= 0xc7 && c <= 0xc9 {
				i++ // the ext type
			}
			return i, i <= len(b)
		}
		depth = max(depth, d+1)
		for range elems {
			var ok bool
			if i, ok = walk(i, d+1); !ok {
				return i, false
			}
		}
		return i, true
	}
	n, ok = walk(0, 0)
	return depth, n, ok
}

// checkScan checks Scan against refScan on b.
func checkScan(t *testing.T, b []byte) {
	t.Helper()
	n, err := Scan(b)
	depth, wantN, ok := refScan(b)
	switch {
	case errors.Is(err, ErrTooDeep):
		if depth <= MaxDepth {
			t.Fatalf("Scan(%x): ErrTooDeep at depth %d", b, depth)
		}
	case depth > MaxDepth || !ok: // too deep, or cut short before that showed
		if err == nil {
			t.Fatalf("Scan(%x) = %d; want an error (depth %d)", b, n, depth)
		}
	case err != nil || n != wantN:
		t.Fatalf("Scan(%x) = %d, %v; want %d", b, n, err, wantN)
	}
}

func TestScanMatchesLibrary(t *testing.T) {
	t.Parallel()
	g := fastRand{rand.New(rand.NewPCG(9, 10))}
	values := []any{nil, true, 1, -1, 1 << 40, 1.5, float32(2), "s", []byte{1}, []any{}, map[string]any{},
		[]any{1, []any{2, map[string]any{"a": []byte("x")}}}, map[string]any{"k": []any{nil, "v"}}}
	for _, typ := range fastPlainTypes {
		for _, p := range g.values(typ, 20) {
			values = append(values, p.Elem().Interface())
		}
	}
	for _, v := range values {
		for _, compact := range []bool{false, true} {
			data := libMarshal(t, v, compact)
			for _, tail := range [][]byte{nil, {0xc0}} {
				b := append(append([]byte(nil), data...), tail...)
				if n, err := Scan(b); err != nil || n != len(data) {
					t.Fatalf("Scan(%x) = %d, %v; want %d", b, n, err, len(data))
				}
				checkScan(t, b)
			}
			if _, err := msgpack.NewDecoder(bytes.NewReader(data)).DecodeInterface(); err != nil {
				t.Fatal(err)
			}
			for i := range data {
				if _, err := Scan(data[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Scan of %x cut at %d: %v, want io.ErrUnexpectedEOF", data, i, err)
				}
			}
		}
	}
	// every ext form
	for _, b := range [][]byte{{0xd4, 1, 2}, {0xd8, 1, 15: 0, 16: 0, 17: 0}, {0xc7, 1, 5, 'x'}, {0xc8, 0, 1, 5, 'x'}, {0xc9, 0, 0, 0, 1, 5, 'x'}} {
		if n, err := Scan(b); err != nil || n != len(b) {
			t.Fatalf("Scan(%x) = %d, %v", b, n, err)
		}
	}
}

// TestScanDepth: arrays and maps nest MaxDepth deep, not one more, and a
// key counts as deep as a value.
func TestScanDepth(t *testing.T) {
	t.Parallel()
	for _, level := range [][]byte{{0x91}, {0xdc, 0, 1}, {0xdd, 0, 0, 0, 1}, {0x81, 0xc0}, {0xdf, 0, 0, 0, 1, 0xa1, 'k'}, {0x92, 0xc0}} {
		ok := nested(level, MaxDepth, 0xc0)
		if _, err := Scan(ok); err != nil {
			t.Fatalf("%x at the limit: %v", level, err)
		}
		deep := nested(level, MaxDepth+1, 0xc0)
		if _, err := Scan(deep); !errors.Is(err, ErrTooDeep) {
			t.Fatalf("%x past the limit: %v, want ErrTooDeep", level, err)
		}
		checkScan(t, ok)
		checkScan(t, deep)
	}
	// A key counts too: {[]: {[]: ...}} reaches MaxDepth+1 through the
	// last key.
	keyed := nested([]byte{0x81, 0x90}, MaxDepth, 0xc0)
	if _, err := Scan(keyed); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("an array key at depth %d: %v", MaxDepth+1, err)
	}
	checkScan(t, keyed)
	// an empty array counts as a level
	if _, err := Scan(append(bytes.Repeat([]byte{0x91}, MaxDepth), 0x90)); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("an empty array at depth %d: %v", MaxDepth+1, err)
	}
}

// TestScanAllocatesNothing: a frame's worth of nesting fails fast, with
// no allocation (not parallel: AllocsPerRun counts the whole process).
func TestScanAllocatesNothing(t *testing.T) {
	huge := bytes.Repeat([]byte{0x91}, 12<<20)
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := Scan(huge); !errors.Is(err, ErrTooDeep) {
			t.Fatalf("12 MiB of nested arrays: %v", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Scan allocated %v times", allocs)
	}
}

// TestScanHostileLengths: lengths that the bytes left cannot back fail.
func TestScanHostileLengths(t *testing.T) {
	t.Parallel()
	u32 := func(code byte, n uint32, rest ...byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{code}, n), rest...)
	}
	inputs := map[string][]byte{
		"array32 4G":        u32(0xdd, 0xffffffff, 0xc0),
		"map32 4G":          u32(0xdf, 0xffffffff, 0xc0, 0xc0),
		"map32 2G pairs":    u32(0xdf, 0x80000000, 0xc0, 0xc0),
		"array16 too many":  {0xdc, 0, 3, 1, 2},
		"fixmap short":      {0x81, 0xc0},
		"str32 4G":          u32(0xdb, 0xffffffff, 'a'),
		"bin32 4G":          u32(0xc6, 0xffffffff, 'a'),
		"ext32 4G":          u32(0xc9, 0xffffffff, 1, 'a'),
		"siblings":          {0x93, 0xc4, 3, 'a', 'b', 'c', 0xc0},
		"nested many":       {0x92, 0xdc, 0, 9, 1, 2, 3},
		"string then array": {0x92, 0xa3, 'a', 'b', 'c', 0x93, 1, 2},
		"empty":             {},
		"c1":                {0x91, 0xc1},
	}
	for name, b := range inputs {
		if n, err := Scan(b); err == nil {
			t.Errorf("%s: Scan(%x) = %d, nil", name, b, n)
		}
		checkScan(t, b)
	}
}

// FuzzScan checks Scan against the recursive refScan.
func FuzzScan(f *testing.F) {
	f.Add([]byte{0x92, 0x01, 0x81, 0xa1, 'k', 0xc0})
	f.Add(nested([]byte{0x91}, MaxDepth+1, 0xc0))
	f.Add(nested([]byte{0x81, 0xc0}, MaxDepth, 0x90))
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScan(t, b)
		var v any
		if n, err := Scan(b); err == nil {
			// what Scan passes, the library can walk: its errors are its own
			_ = msgpack.NewDecoder(bytes.NewReader(b[:n])).Decode(&v)
			if reflect.TypeOf(v) == reflect.TypeFor[chan int]() {
				t.Fatal("impossible")
			}
		}
	})
}

// BenchmarkScan is the pre-scan of a small generic message, against the
// library's Skip, which it replaced.
func BenchmarkScan(b *testing.B) {
	var w AppendWriter
	if err := msgpack.NewEncoder(&w).Encode(map[string]any{"seq": 12345, "tags": []any{"a", "b", true}, "inner": map[string]any{"x": 1.5}}); err != nil {
		b.Fatal(err)
	}
	data := w.B
	b.Run("Scan", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if n, err := Scan(data); err != nil || n != len(data) {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("library-Skip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		r := bytes.NewReader(data)
		d := msgpack.NewDecoder(r)
		for b.Loop() {
			r.Reset(data)
			if err := d.Skip(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
