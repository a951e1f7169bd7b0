package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// end is a Transport over a carrier, without memberlist: the tests play
// memberlist's part.
type end struct {
	name string
	c    *carrier
	tr   *Transport
}

func newEnd(tb testing.TB, id int, cfg Config) *end {
	tb.Helper()
	e := &end{name: NodeName(uint16(id))}
	e.c = newCarrier(tb, e.name)
	cfg.Name, cfg.Addr, cfg.Dialer = e.name, e.c.addr(), e.c
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e.tr, e.c.tr = tr, tr
	e.c.start()
	tb.Cleanup(func() {
		_ = e.tr.Shutdown()
		e.c.close()
	})
	return e
}

func (e *end) address() memberlist.Address {
	return memberlist.Address{Addr: e.c.addr(), Name: e.name}
}

// conn returns e's connection to o.
func (e *end) conn(tb testing.TB, o *end) Conn {
	tb.Helper()
	c, err := e.c.DialNode(context.Background(), o.address())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// dial opens a stream from e to o.
func (e *end) dial(tb testing.TB, o *end) net.Conn {
	tb.Helper()
	s, err := e.tr.DialAddressTimeout(o.address(), time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// accept takes the next stream opened to e.
func (e *end) accept(tb testing.TB) net.Conn {
	tb.Helper()
	select {
	case s := <-e.tr.StreamCh():
		return s
	case <-time.After(5 * time.Second):
		tb.Fatal("no stream accepted")
		return nil
	}
}

// closedWith waits until e's frame handler closed a connection, and
// returns why.
func (e *end) closedWith(tb testing.TB) error {
	tb.Helper()
	var err error
	eventually(tb, 5*time.Second, func() error {
		if errs := e.c.closeErrs(); len(errs) > 0 {
			err = errs[0]
			return nil
		}
		return errors.New("no connection closed by a protocol error")
	})
	return err
}

func streamFrame(f StreamFrame) []byte { return AppendStreamFrame(nil, f) }

func TestPacketsBothWays(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	if _, err := a.tr.WriteToAddress([]byte("ping"), b.address()); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.tr.PacketCh():
		if string(p.Buf) != "ping" || p.From.String() != a.c.addr() {
			t.Fatalf("got %q from %v, want ping from %s", p.Buf, p.From, a.c.addr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet")
	}
	// The answer rides the same connection: b finds it by a's name.
	if _, err := b.tr.WriteToAddress([]byte("ack"), a.address()); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-a.tr.PacketCh():
		if string(p.Buf) != "ack" {
			t.Fatalf("got %q", p.Buf)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet")
	}
	if n := a.c.connCount() + b.c.connCount(); n != 2 {
		t.Fatalf("%d connection ends, want 2 (one connection)", n)
	}
}

// TestWrongNode: a member named X reached at an address where Y answers
// is refused, by the Dialer and again by the Transport.
func TestWrongNode(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	_, err := a.tr.WriteToAddress([]byte("x"), memberlist.Address{Addr: b.c.addr(), Name: NodeName(3)})
	if !errors.Is(err, ErrWrongNode) {
		t.Fatalf("WriteToAddress to the wrong node: %v, want ErrWrongNode", err)
	}
	c := a.conn(t, b) // now a has a connection to node 2
	tr, err := New(Config{Name: NodeName(1), Addr: "127.0.0.1:1", Dialer: fixedDialer{c}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.DialAddressTimeout(memberlist.Address{Addr: b.c.addr(), Name: NodeName(3)}, time.Second); !errors.Is(err, ErrWrongNode) {
		t.Fatalf("DialAddressTimeout to the wrong node: %v, want ErrWrongNode", err)
	}
}

// fixedDialer returns one connection whatever is asked.
type fixedDialer struct{ c Conn }

func (d fixedDialer) DialNode(context.Context, memberlist.Address) (Conn, error) { return d.c, nil }

func TestOversizePacket(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{MaxPacketSize: 1 << 20}), newEnd(t, 2, Config{MaxPacketSize: 1000})
	big := bytes.Repeat([]byte{1}, 1001)
	if _, err := b.tr.WriteToAddress(big, a.address()); !errors.Is(err, ErrPacketTooLarge) || errors.Is(err, ErrProtocol) {
		t.Fatalf("oversize WriteTo: %v, want ErrPacketTooLarge (and not a protocol error)", err)
	}
	// a allows it, so it sends; b refuses it and closes the connection.
	if _, err := a.tr.WriteToAddress(big, b.address()); err != nil {
		t.Fatal(err)
	}
	err := b.closedWith(t)
	if !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("b closed with %v, want a protocol error wrapping ErrPacketTooLarge", err)
	}
	if len(b.tr.PacketCh()) != 0 {
		t.Fatal("the oversize packet was delivered")
	}
}

// TestTooManyStreams: an Open past the acceptor's limit is refused, the
// connection and the streams within the limit carry on; DialTimeout past
// the opener's own limit fails.
func TestTooManyStreams(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{MaxStreamsPerPeer: 3}), newEnd(t, 2, Config{MaxStreamsPerPeer: 2})
	s1, s2, s3 := a.dial(t, b), a.dial(t, b), a.dial(t, b)
	if _, err := a.tr.DialAddressTimeout(b.address(), time.Second); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("fourth stream: %v, want ErrTooManyStreams", err)
	}
	_ = s3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s3.Read(make([]byte, 1)); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("read on the refused stream: %v, want ErrTooManyStreams", err)
	}
	if got := b.tr.Stats().StreamsRefused; got != 1 {
		t.Fatalf("b refused %d streams, want 1", got)
	}
	r1, r2 := b.accept(t), b.accept(t)
	for i, p := range [][2]net.Conn{{s1, r1}, {s2, r2}} {
		echo(t, p[0], p[1], fmt.Sprintf("stream %d", i+1))
	}
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing one stream on each side makes room for a new one.
	_ = s1.Close()
	_ = r1.Close()
	eventually(t, 5*time.Second, func() error {
		if n := b.tr.Stats().Streams; n != 1 {
			return fmt.Errorf("b has %d streams, want 1", n)
		}
		return nil
	})
	s4 := a.dial(t, b)
	echo(t, s4, b.accept(t), "stream 4")
	if errs := b.c.closeErrs(); len(errs) != 0 {
		t.Fatalf("connection closed: %v", errs)
	}
}

// echo sends msg from s to r and back.
func echo(tb testing.TB, s, r net.Conn, msg string) {
	tb.Helper()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	_ = r.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte(msg)); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != msg {
		tb.Fatalf("%s: read %q, %v", msg, buf, err)
	}
	if _, err := r.Write(buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != msg {
		tb.Fatalf("%s back: read %q, %v", msg, buf, err)
	}
}

// TestSlowReader: a receiver that does not read buffers one window, no
// more; the writer waits (until its deadline) and resumes when the reader
// reads.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	s := a.dial(t, b)
	r := b.accept(t)
	data := make([]byte, 4*StreamWindow)
	for i := range data {
		data[i] = byte(i * 7)
	}
	_ = s.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := s.Write(data)
	var ne net.Error
	if n != StreamWindow || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write to a reader that does not read: %d, %v; want %d and a timeout", n, err, StreamWindow)
	}
	rs := r.(*stream)
	rs.mu.Lock()
	buffered := rs.rbuf.Len()
	rs.mu.Unlock()
	if buffered != StreamWindow {
		t.Fatalf("receiver buffers %d bytes, want the window, %d", buffered, StreamWindow)
	}
	// The reader reads; the writer finishes.
	done := make(chan error, 1)
	go func() {
		_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := s.Write(data[n:])
		done <- err
	}()
	got := make([]byte, len(data))
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

// TestWindowExceeded: a peer that sends past the window it was granted
// breaks the protocol.
func TestWindowExceeded(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	c := a.conn(t, b)
	chunk := make([]byte, StreamWindow/2)
	for _, f := range []StreamFrame{
		{Op: OpOpen, ID: 1},
		{Op: OpData, ID: 1, Data: chunk},
		{Op: OpData, ID: 1, Data: chunk},
		{Op: OpData, ID: 1, Data: []byte{1}},
	} {
		if err := c.SendStream(streamFrame(f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.closedWith(t); !errors.Is(err, ErrWindowExceeded) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("closed with %v, want ErrWindowExceeded", err)
	}
}

// TestStreamSequence: frames for streams never opened, and opens out of
// order, break the protocol.
func TestStreamSequence(t *testing.T) {
	t.Parallel()
	for name, frames := range map[string][]StreamFrame{
		"open-skips":     {{Op: OpOpen, ID: 2}},
		"open-twice":     {{Op: OpOpen, ID: 1}, {Op: OpOpen, ID: 1}},
		"data-unopened":  {{Op: OpData, ID: 1, Data: []byte{1}}},
		"data-mine":      {{Op: OpData, Acceptor: true, ID: 1, Data: []byte{1}}},
		"window-unknown": {{Op: OpOpen, ID: 1}, {Op: OpWindow, ID: 2, Increment: 1}},
		"data-after-close": {{Op: OpOpen, ID: 1}, {Op: OpClose, ID: 1},
			{Op: OpData, ID: 1, Data: []byte{1}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
			c := a.conn(t, b)
			for _, f := range frames {
				if err := c.SendStream(streamFrame(f)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.closedWith(t); !errors.Is(err, ErrStreamSequence) {
				t.Fatalf("closed with %v, want ErrStreamSequence", err)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	s := a.dial(t, b)
	r := b.accept(t)
	// A deadline in the past fails at once.
	_ = r.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	// A pending read is ended by a deadline set while it waits.
	_ = r.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1))
		done <- err
	}()
	_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("pending read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending read not ended by its deadline")
	}
	// A deadline that is extended does not fire; data then arrives.
	_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		time.Sleep(100 * time.Millisecond) // past the first deadline
		_, _ = s.Write([]byte{42})
	}()
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil || buf[0] != 42 {
		t.Fatalf("read after an extended deadline: %v %v", buf, err)
	}
}

// TestIdleTimeout: a stream nobody uses, here one memberlist never picks
// up, is closed on both sides.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{StreamIdleTimeout: 100 * time.Millisecond})
	s := a.dial(t, b)
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("read on a stream the peer found idle: %v, want ErrStreamReset", err)
	}
	eventually(t, 5*time.Second, func() error {
		if n, m := a.tr.Stats().Streams, b.tr.Stats().Streams; n+m != 1 {
			return fmt.Errorf("streams open: %d and %d, want only a's (not yet closed)", n, m)
		}
		return nil
	})
	_ = s.Close()
	if n := a.tr.Stats().Streams; n != 0 {
		t.Fatalf("a has %d streams after close", n)
	}
	r := b.accept(t) // still in StreamCh, but dead
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrStreamIdle) {
		t.Fatalf("read on the idled stream: %v, want ErrStreamIdle", err)
	}
}

// TestConnLost: a lost connection fails its streams on both sides.
func TestConnLost(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	s := a.dial(t, b)
	r := b.accept(t)
	echo(t, s, r, "hello")
	_ = r.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1))
		done <- err
	}()
	a.conn(t, b).(*carrierConn).close(nil)
	if err := <-done; !errors.Is(err, ErrConnLost) {
		t.Fatalf("pending read on a lost connection: %v", err)
	}
	if _, err := s.Write([]byte{1}); !errors.Is(err, ErrConnLost) {
		t.Fatalf("write on a lost connection: %v", err)
	}
	eventually(t, 5*time.Second, func() error {
		if n, m := a.tr.Stats().Streams, b.tr.Stats().Streams; n+m != 0 {
			return fmt.Errorf("streams open: %d and %d", n, m)
		}
		return nil
	})
}

// TestShutdown: Shutdown fails local streams, resets the peer's, and
// refuses what follows.
func TestShutdown(t *testing.T) {
	t.Parallel()
	a, b := newEnd(t, 1, Config{}), newEnd(t, 2, Config{})
	s := a.dial(t, b)
	r := b.accept(t)
	echo(t, s, r, "hello")
	if err := a.tr.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("local read after shutdown: %v", err)
	}
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("peer's read after shutdown: %v", err)
	}
	if _, err := a.tr.DialAddressTimeout(b.address(), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after shutdown: %v", err)
	}
	// b's Opens to a are refused.
	s2 := b.dial(t, a)
	_ = s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s2.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("read on a stream opened to a shut-down transport: %v", err)
	}
}
