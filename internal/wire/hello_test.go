package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

func hello(min, max uint16) Hello {
	return Hello{MinVersion: min, MaxVersion: max, Node: 1, Incarnation: 5, Codec: "msgpack", MaxFrame: 1 << 20}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b Hello
		want uint16 // 0: ErrVersion
	}{
		{hello(1, 1), hello(1, 1), 1},
		{hello(1, 3), hello(2, 5), 3},
		{hello(2, 5), hello(1, 3), 3},
		{hello(1, 9), hello(4, 4), 4},
		{hello(3, 3), hello(3, 7), 3},
		{hello(1, 2), hello(3, 4), 0},
		{hello(5, 6), hello(1, 4), 0},
		{hello(0, 1), hello(1, 1), 0}, // version 0 does not exist
		{hello(2, 1), hello(1, 2), 0}, // empty range
		{hello(1, 1), hello(2, 1), 0},
	} {
		v, err := Negotiate(c.a, c.b)
		if c.want == 0 {
			if !errors.Is(err, ErrVersion) {
				t.Errorf("%d..%d vs %d..%d: %d, %v; want ErrVersion", c.a.MinVersion, c.a.MaxVersion, c.b.MinVersion, c.b.MaxVersion, v, err)
			}
		} else if v != c.want || err != nil {
			t.Errorf("%d..%d vs %d..%d: %d, %v; want %d", c.a.MinVersion, c.a.MaxVersion, c.b.MinVersion, c.b.MaxVersion, v, err, c.want)
		}
	}
	if MinVersion < 1 || MinVersion > MaxVersion {
		t.Fatal("bad version constants")
	}
}

func TestAgree(t *testing.T) {
	t.Parallel()
	local := hello(MinVersion, MaxVersion)
	if v, err := Agree(local, local); err != nil || v != MaxVersion {
		t.Fatalf("Agree(same) = %d, %v", v, err)
	}
	other := local
	other.Codec = "json"
	if _, err := Agree(local, other); !errors.Is(err, ErrCodec) {
		t.Fatalf("codec mismatch: %v", err)
	}
	other = local
	other.MaxFrame = MinMaxFrame - 1
	if _, err := Agree(local, other); !errors.Is(err, ErrMalformed) {
		t.Fatalf("small MaxFrame: %v", err)
	}
	other = hello(MaxVersion+1, MaxVersion+2)
	if _, err := Agree(local, other); !errors.Is(err, ErrVersion) {
		t.Fatalf("no common version: %v", err)
	}
}

func TestHandshakeOverPipe(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	ha := hello(1, 1)
	hb := Hello{MinVersion: 1, MaxVersion: 2, Node: 2, Incarnation: 77, Codec: "msgpack", MaxFrame: 1 << 24}

	// Both sides write first, then read: net.Pipe is unbuffered, so each
	// write runs in its own goroutine, as a real connection's buffer allows.
	errc := make(chan error, 2)
	go func() { errc <- WriteHello(a, ha) }()
	go func() { errc <- WriteHello(b, hb) }()
	gotB, errB := ReadHello(NewReader(a, 0))
	gotA, errA := ReadHello(NewReader(b, 0))
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if errA != nil || errB != nil || gotA != ha || gotB != hb {
		t.Fatalf("read %+v, %v and %+v, %v", gotA, errA, gotB, errB)
	}
	if v, err := Agree(gotA, gotB); err != nil || v != 1 {
		t.Fatalf("Agree = %d, %v", v, err)
	}
}

func TestReadHelloRefuses(t *testing.T) {
	t.Parallel()
	good := AppendHello(nil, hello(1, 1))
	bad := bytes.Clone(good)
	bad[0] = 'X'
	for _, c := range []struct {
		name   string
		stream []byte
		want   error
	}{
		{"bad magic", AppendFrame(nil, TypeHello, bad), ErrBadMagic},
		{"short magic", AppendFrame(nil, TypeHello, []byte("REI")), ErrBadMagic},
		{"empty hello", AppendFrame(nil, TypeHello, nil), ErrBadMagic},
		{"truncated hello", AppendFrame(nil, TypeHello, good[:len(good)-1]), ErrMalformed},
		{"wrong first frame", AppendFrame(nil, TypeMessage, good), ErrMalformed},
		{"heartbeat first", AppendFrame(AppendFrame(nil, TypeHeartbeat, nil), TypeHello, good), ErrMalformed},
		{"unknown first frame", AppendFrame(nil, Type(99), good), ErrMalformed},
		{"not a reign peer", []byte("GET / HTTP/1.1\r\n\r\n"), ErrFrameTooLarge},
		{"nothing", nil, io.EOF},
		{"cut header", []byte{0, 0}, io.ErrUnexpectedEOF},
	} {
		h, err := ReadHello(NewReader(bytes.NewReader(c.stream), 1<<20))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %+v, %v; want %v", c.name, h, err, c.want)
		}
	}
}

func TestWriteHelloOneWrite(t *testing.T) {
	t.Parallel()
	var w countWriter
	h := hello(1, 1)
	if err := WriteHello(&w, h); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 || !bytes.Equal(w.buf.Bytes(), AppendFrame(nil, TypeHello, AppendHello(nil, h))) {
		t.Fatalf("%d writes of %x", w.calls, w.buf.Bytes())
	}
	h.Codec = string(make([]byte, MinMaxFrame))
	if err := WriteHello(&w, h); !errors.Is(err, ErrFrameTooLarge) || w.calls != 1 {
		t.Fatalf("huge codec name: %v after %d writes", err, w.calls)
	}
}

type countWriter struct {
	buf   bytes.Buffer
	calls int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.buf.Write(p)
}
