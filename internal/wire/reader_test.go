package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

type frame struct {
	t Type
	p []byte
}

// testFrames returns frames of varied sizes, including empty payloads, an
// unknown type, and payloads larger than a small reader buffer.
func testFrames() []frame {
	big := bytes.Repeat([]byte("0123456789abcdef"), 100)
	return []frame{
		{TypeHello, AppendHello(nil, Hello{MinVersion: 1, MaxVersion: 1, Node: 2, Codec: "msgpack", MaxFrame: 1 << 20})},
		{TypeHeartbeat, nil},
		{TypeMessage, AppendMessage(nil, Message{To: Ref{1, 2}, TypeID: 3, Body: []byte("hello")})},
		{Type(200), []byte("unknown types pass through")},
		{TypeMessage, AppendMessage(nil, Message{To: Ref{1, 2}, TypeID: 3, Body: big})},
		{TypeRegSyncDone, nil},
		{TypeReply, big[:33]},
	}
}

func encodeFrames(fs []frame) []byte {
	var b []byte
	for _, f := range fs {
		b = AppendFrame(b, f.t, f.p)
	}
	return b
}

// readAll reads frames until an error, copying payloads.
func readAll(r *Reader) ([]frame, error) {
	var out []frame
	for {
		t, p, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, frame{t, bytes.Clone(p)})
	}
}

func sameFrames(t testing.TB, got, want []frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].t != want[i].t || !bytes.Equal(got[i].p, want[i].p) {
			t.Fatalf("frame %d: got %v %q, want %v %q", i, got[i].t, got[i].p, want[i].t, want[i].p)
		}
	}
}

// deliveries wraps a stream in the ways a network may split it.
var deliveries = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"onebyte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"dataerr", iotest.DataErrReader},
	{"chunks7", func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 7} }},
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

func TestReaderBackToBack(t *testing.T) {
	t.Parallel()
	want := testFrames()
	stream := encodeFrames(want)
	for _, d := range deliveries {
		for _, size := range []int{16, 64, ReaderBufferSize} {
			r := newReaderSize(d.wrap(bytes.NewReader(stream)), 1<<20, size)
			got, err := readAll(r)
			if err != io.EOF {
				t.Fatalf("%s/%d: final error %v, want io.EOF", d.name, size, err)
			}
			sameFrames(t, got, want)
			// Sticky.
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("%s/%d: Next after EOF = %v", d.name, size, err)
			}
		}
	}
}

func TestReaderPayloadValidUntilNext(t *testing.T) {
	t.Parallel()
	stream := encodeFrames([]frame{{TypeMessage, []byte("first")}, {TypeMessage, []byte("second")}})
	r := NewReader(bytes.NewReader(stream), 0)
	_, p, err := r.Next()
	if err != nil || string(p) != "first" || cap(p) != len(p) {
		t.Fatalf("Next = %q (cap %d), %v", p, cap(p), err)
	}
	// Appending to a payload must not overwrite the next frame.
	_ = append(p, "XXXXXXXXXXXXX"...)
	if _, p, err = r.Next(); err != nil || string(p) != "second" {
		t.Fatalf("second Next = %q, %v", p, err)
	}
}

// TestReaderEverySplit cuts a stream at every byte boundary into two reads.
func TestReaderEverySplit(t *testing.T) {
	t.Parallel()
	want := testFrames()
	stream := encodeFrames(want)
	for cut := 0; cut <= len(stream); cut++ {
		src := io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:]))
		got, err := readAll(newReaderSize(src, 1<<20, 64))
		if err != io.EOF {
			t.Fatalf("cut %d: %v", cut, err)
		}
		sameFrames(t, got, want)
	}
}

func TestReaderEOFInsideFrame(t *testing.T) {
	t.Parallel()
	want := testFrames()
	stream := encodeFrames(want)
	// Frame boundaries, where EOF is clean.
	bounds := map[int]int{0: 0}
	n := 0
	for i, f := range want {
		n += HeaderSize + len(f.p)
		bounds[n] = i + 1
	}
	for cut := 0; cut < len(stream); cut++ {
		for _, size := range []int{16, ReaderBufferSize} {
			got, err := readAll(newReaderSize(iotest.HalfReader(bytes.NewReader(stream[:cut])), 1<<20, size))
			if k, ok := bounds[cut]; ok {
				if err != io.EOF {
					t.Fatalf("cut %d (boundary): %v", cut, err)
				}
				sameFrames(t, got, want[:k])
			} else if err != io.ErrUnexpectedEOF {
				t.Fatalf("cut %d/%d: %v, want io.ErrUnexpectedEOF", cut, size, err)
			}
		}
	}
}

func TestReaderZeroLength(t *testing.T) {
	t.Parallel()
	stream := append(AppendFrame(nil, TypeHeartbeat, nil), 0, 0, 0, 0, 4)
	r := NewReader(bytes.NewReader(stream), 0)
	if typ, _, err := r.Next(); err != nil || typ != TypeHeartbeat {
		t.Fatalf("first frame: %v %v", typ, err)
	}
	_, _, err := r.Next()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("L == 0: %v", err)
	}
	if _, _, err2 := r.Next(); err2 != err {
		t.Fatalf("error not sticky: %v then %v", err, err2)
	}
}

// headerOnly returns a frame header and then fails the test if read again:
// an oversized length must be refused without reading on.
type headerOnly struct {
	t    testing.TB
	hdr  []byte
	done bool
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if h.done {
		h.t.Error("read past an oversized frame header")
		return 0, errors.New("read past header")
	}
	h.done = true
	return copy(p, h.hdr), nil
}

func TestReaderOversizedRefusedBeforeAllocating(t *testing.T) {
	// Not parallel: it measures the bytes allocated by the process.
	hdr := binary.BigEndian.AppendUint32(nil, 1<<30) // claims 1 GiB
	hdr = append(hdr, byte(TypeMessage))
	// The process's other goroutines (the runtime's, a previous test's
	// last ones) may allocate meanwhile: the least of a few tries counts.
	// An allocation for the claimed length would show in every try.
	for _, lim := range []int{1 << 20, HeaderSize + 100, 0} {
		least := uint64(1 << 62)
		for range 5 {
			r := NewReader(&headerOnly{t: t, hdr: hdr}, lim)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := r.Next()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("max %d: %v, want ErrFrameTooLarge", lim, err)
			}
			least = min(least, after.TotalAlloc-before.TotalAlloc)
		}
		if least > 4<<10 {
			t.Fatalf("max %d: refusing allocated %d bytes", lim, least)
		}
	}
	// One over the limit is refused; at the limit it is read.
	for _, l := range []int{100, 101} {
		stream := AppendFrame(nil, TypeMessage, make([]byte, l-1))
		_, p, err := NewReader(bytes.NewReader(stream), 100).Next()
		if l == 100 && (err != nil || len(p) != 99) {
			t.Fatalf("L == max: %d bytes, %v", len(p), err)
		}
		if l == 101 && !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("L == max+1: %v", err)
		}
	}
}

func TestReaderLargeClaimAllocatesOnlyWhatArrives(t *testing.T) {
	// Not parallel: it measures the bytes allocated by the process.
	if int64(^uint(0)>>1) < 1<<31 {
		t.Skip("needs 64-bit int")
	}
	// A peer announces 1 GiB, within the limit, then sends 100 KiB and
	// stops: memory must follow the bytes received, not the claim.
	stream := binary.BigEndian.AppendUint32(nil, 1<<30)
	stream = append(stream, make([]byte, 100<<10)...)
	r := NewReader(bytes.NewReader(stream), int(^uint(0)>>1)) // clamped to the 32-bit limit
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := r.Next()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("%v, want io.ErrUnexpectedEOF", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes for 100 KiB received", d)
	}
}

func TestReaderLargerThanBuffer(t *testing.T) {
	t.Parallel()
	var want []frame
	for _, n := range []int{ReaderBufferSize - HeaderSize, ReaderBufferSize - 4, ReaderBufferSize, 3 * ReaderBufferSize, 10, 200 << 10} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		want = append(want, frame{TypeMessage, p})
	}
	stream := encodeFrames(want)
	for _, d := range deliveries {
		got, err := readAll(NewReader(d.wrap(bytes.NewReader(stream)), 1<<20))
		if err != io.EOF {
			t.Fatalf("%s: %v", d.name, err)
		}
		sameFrames(t, got, want)
	}
}

func TestReaderUnderlyingError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	stream := AppendFrame(nil, TypeMessage, []byte("abcdef"))
	for cut := 0; cut < len(stream); cut++ {
		src := io.MultiReader(bytes.NewReader(stream[:cut]), iotest.ErrReader(boom))
		if _, _, err := NewReader(src, 0).Next(); err != boom {
			t.Fatalf("cut %d: %v, want the reader's error", cut, err)
		}
	}
}

func TestReaderSteadyStateAllocs(t *testing.T) {
	// Small frames come from the buffer; large ones reuse the scratch slice.
	for _, n := range []int{20, 100 << 10} {
		stream := AppendFrame(nil, TypeMessage, AppendMessage(nil, Message{To: Ref{1, 2}, TypeID: 7, Body: make([]byte, n)}))
		src := &loopReader{b: stream}
		r := NewReader(src, 1<<20)
		r.Next() // warm up the scratch slice
		allocs := testing.AllocsPerRun(1000, func() {
			_, p, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseMessage(p); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("payload %d: %v allocs per frame", n, allocs)
		}
	}
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

// The buffer grows for a large frame, and shrinks back to ReaderMinBuffer
// (releasing the scratch slice) once a few reads in a row bring little:
// an idle connection holds a small buffer.
func TestReaderBufferAdapts(t *testing.T) {
	t.Parallel()
	big := AppendFrame(nil, TypeMessage, make([]byte, 40<<10))
	huge := AppendFrame(nil, TypeMessage, make([]byte, 100<<10))
	var chunks [][]byte
	chunks = append(chunks, big, huge)
	for range readerQuietFills + 1 {
		chunks = append(chunks, AppendFrame(nil, TypePing, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	}
	r := NewReader(&recordReader{chunks: chunks}, 1<<20)
	if len(r.buf) != ReaderMinBuffer {
		t.Fatalf("starts with %d bytes, want %d", len(r.buf), ReaderMinBuffer)
	}
	for i := range chunks {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			if len(r.buf) < len(big) {
				t.Fatalf("a %d-byte frame in a %d-byte buffer", len(big), len(r.buf))
			}
		case 1:
			if r.scratch == nil {
				t.Fatalf("a frame over ReaderBufferSize not in the scratch slice")
			}
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if len(r.buf) != ReaderMinBuffer || r.scratch != nil {
		t.Fatalf("quiet: buffer %d bytes (want %d), scratch %d bytes", len(r.buf), ReaderMinBuffer, cap(r.scratch))
	}
}

// recordReader returns one chunk per Read (as a TLS connection returns a
// record at a time), or as much of it as fits.
type recordReader struct{ chunks [][]byte }

func (c *recordReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// countingReader counts the Reads of the reader it wraps.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestReaderReady: when Ready says the next frame is buffered, Next
// returns it without reading; when the whole stream is buffered, Ready
// says so for every frame that fits the buffer, and not at the end.
func TestReaderReady(t *testing.T) {
	t.Parallel()
	want := testFrames()
	stream := encodeFrames(want)
	for _, d := range deliveries {
		for _, size := range []int{16, 64, ReaderBufferSize} {
			src := &countingReader{r: d.wrap(bytes.NewReader(stream))}
			r := newReaderSize(src, 1<<20, size)
			whole := d.name == "whole" && size == ReaderBufferSize
			if whole { // a buffer that takes the whole stream in one read
				r = newReaderSizes(src, 1<<20, size, size)
			}
			readies := 0
			for i := 0; ; i++ {
				ready, before := r.Ready(), src.reads
				_, _, err := r.Next()
				if ready && src.reads != before {
					t.Fatalf("%s/%d: frame %d: Ready, yet Next read", d.name, size, i)
				}
				if ready {
					readies++
				}
				if err == io.EOF {
					if ready {
						t.Fatalf("%s/%d: Ready at the end of the stream", d.name, size)
					}
					break
				}
				if err != nil {
					t.Fatalf("%s/%d: %v", d.name, size, err)
				}
			}
			if whole && readies != len(want)-1 {
				t.Fatalf("whole stream buffered: Ready %d times, want %d (all but the first)", readies, len(want)-1)
			}
		}
	}
	// A header Next refuses is ready (Next refuses it without reading);
	// after the error nothing is.
	for _, hdr := range [][]byte{{0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff}} {
		r := NewReader(bytes.NewReader(append(AppendFrame(nil, TypeHeartbeat, nil), hdr...)), 1<<20)
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if !r.Ready() {
			t.Fatalf("header %x: not ready", hdr)
		}
		if _, _, err := r.Next(); err == nil {
			t.Fatalf("header %x: no error", hdr)
		}
		if r.Ready() {
			t.Fatalf("header %x: ready after the error", hdr)
		}
	}
}
