package wire

import (
	"testing"
)

var benchBody = make([]byte, 64) // a small encoded message

// BenchmarkAppendMessage builds a Message frame in place, as a connection's
// writer does: header, payload fields, body, length.
func BenchmarkAppendMessage(b *testing.B) {
	buf := make([]byte, 0, 4096)
	m := Message{To: Ref{Inc: 7, ID: 123456}, TypeID: 3}
	b.ReportAllocs()
	b.SetBytes(int64(HeaderSize + RefSize + 1 + len(benchBody)))
	for b.Loop() {
		out, start := BeginFrame(buf[:0], TypeMessage)
		out = AppendMessage(out, m)
		out = append(out, benchBody...)
		var err error
		if buf, err = EndFrame(out, start, DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderNext reads and parses Message frames from an endless
// stream, as a connection's reader does.
func BenchmarkReaderNext(b *testing.B) {
	var stream []byte
	for range 100 {
		stream = AppendFrame(stream, TypeMessage, AppendMessage(nil, Message{To: Ref{Inc: 7, ID: 123456}, TypeID: 3, Body: benchBody}))
	}
	r := NewReader(&loopReader{b: stream}, DefaultMaxFrame)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 100))
	for b.Loop() {
		t, p, err := r.Next()
		if err != nil || t != TypeMessage {
			b.Fatal(t, err)
		}
		if _, err := ParseMessage(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderNextLarge reads frames bigger than the buffer, through the
// reused scratch slice.
func BenchmarkReaderNextLarge(b *testing.B) {
	stream := AppendFrame(nil, TypeMessage, AppendMessage(nil, Message{To: Ref{Inc: 7, ID: 1}, TypeID: 3, Body: make([]byte, 256<<10)}))
	r := NewReader(&loopReader{b: stream}, DefaultMaxFrame)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendSteadyStateAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun.
	buf := make([]byte, 0, 4096)
	scratch := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		out, start := BeginFrame(buf[:0], TypeRequest)
		out = AppendRequest(out, Request{To: Ref{1, 2}, ReplyTo: Addr{7, 3, 4}, CallRef: 5, TypeID: 6})
		out = append(out, benchBody...)
		out, err := EndFrame(out, start, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = AppendFrame(out, TypeHeartbeat, nil)
		scratch = AppendClosed(scratch[:0], Closed{Reason: ReasonNoProc})
		buf = AppendFrame(out, TypeClosed, scratch)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per batch of frames", allocs)
	}
}
