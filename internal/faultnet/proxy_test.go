package faultnet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a target server whose accepted connections the test holds.
type backend struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []net.Conn
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, conns: make(chan net.Conn, 16)}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.all = append(b.all, c)
			b.mu.Unlock()
			b.conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		b.wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.all {
			_ = c.Close()
		}
	})
	return b
}

// next returns the next connection the backend accepted.
func (b *backend) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-b.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("backend accepted nothing")
		return nil
	}
}

// setup starts a backend and a proxy to it, and dials the proxy.
func setup(t *testing.T) (*Proxy, *backend, net.Conn, net.Conn) {
	t.Helper()
	b := newBackend(t)
	p, err := NewProxy(b.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	client := dial(t, p)
	server := b.next(t)
	waitFor(t, func() bool { return p.Stats().Open == 1 })
	return p, b, client, server
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readN reads exactly n bytes within a few seconds.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// nothingFor checks that c yields no byte and no error for d.
func nothingFor(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("expected silence, got %d bytes, err %v", n, err)
	}
}

// endsSoon checks that reading c ends (EOF or reset) within a few seconds,
// after any bytes still in flight.
func endsSoon(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestForwardsBothWays(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	up := make([]byte, 1<<20)
	down := make([]byte, 1<<20)
	_, _ = rand.Read(up)
	_, _ = rand.Read(down)
	go func() { _, _ = client.Write(up) }()
	go func() { _, _ = server.Write(down) }()
	if got := readN(t, server, len(up)); !bytes.Equal(got, up) {
		t.Fatal("up stream differs")
	}
	if got := readN(t, client, len(down)); !bytes.Equal(got, down) {
		t.Fatal("down stream differs")
	}
	waitFor(t, func() bool { return p.Stats().Forward[Down] == 1<<20 })
	s := p.Stats()
	if s.Accepted != 1 || s.Open != 1 || s.Forward[Up] != 1<<20 || s.Forward[Down] != 1<<20 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	write(t, client, []byte("bye"))
	if err := client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, server, 3); string(got) != "bye" {
		t.Fatalf("got %q", got)
	}
	endsSoon(t, server) // the FIN came through
	write(t, server, []byte("ok"))
	if got := readN(t, client, 2); string(got) != "ok" {
		t.Fatalf("got %q", got)
	}
	_ = server.Close()
	endsSoon(t, client)
	waitFor(t, func() bool { return p.Stats().Open == 0 })
}

func TestCut(t *testing.T) {
	t.Parallel()
	p, b, client, server := setup(t)
	p.Cut()
	endsSoon(t, client)
	endsSoon(t, server)
	// new connections still work
	c2 := dial(t, p)
	s2 := b.next(t)
	write(t, c2, []byte("again"))
	if got := readN(t, s2, 5); string(got) != "again" {
		t.Fatalf("got %q", got)
	}
}

func TestBlackHole(t *testing.T) {
	t.Parallel()
	p, b, client, server := setup(t)
	p.BlackHole(true)
	write(t, client, []byte("up"))
	write(t, server, []byte("down"))
	nothingFor(t, server, 200*time.Millisecond)
	nothingFor(t, client, 50*time.Millisecond)
	// a connection made during the black hole connects, but passes nothing
	c2 := dial(t, p)
	s2 := b.next(t)
	write(t, c2, []byte("x"))
	nothingFor(t, s2, 50*time.Millisecond)
	p.BlackHole(false)
	if got := readN(t, server, 2); string(got) != "up" {
		t.Fatalf("got %q", got)
	}
	if got := readN(t, client, 4); string(got) != "down" {
		t.Fatalf("got %q", got)
	}
	if got := readN(t, s2, 1); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestStallOneDirection(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	p.Stall(Up, true)
	write(t, client, []byte("held"))
	write(t, server, []byte("flows"))
	if got := readN(t, client, 5); string(got) != "flows" {
		t.Fatalf("got %q", got)
	}
	nothingFor(t, server, 200*time.Millisecond)
	p.Stall(Up, false)
	if got := readN(t, server, 4); string(got) != "held" {
		t.Fatalf("got %q", got)
	}

	// a stalled direction pushes back on the writer instead of buffering
	p.Stall(Down, true)
	wrote := make(chan int64, 1)
	go func() {
		_ = server.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, _ := io.Copy(server, io.LimitReader(zeros{}, 256<<20))
		wrote <- n
	}()
	select {
	case n := <-wrote:
		if n >= 256<<20 {
			t.Fatal("256 MiB written into a stalled direction")
		}
		t.Logf("%d bytes accepted by the stalled direction before back-pressure", n)
	case <-time.After(5 * time.Second):
		t.Fatal("writer neither blocked nor finished")
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

func TestDelay(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	const d = 50 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	for i := 0; i < 3; i++ {
		write(t, client, []byte{byte(i)})
		if got := readN(t, server, 1); got[0] != byte(i) {
			t.Fatalf("got %v", got)
		}
		write(t, server, []byte{byte(i)})
		if got := readN(t, client, 1); got[0] != byte(i) {
			t.Fatalf("got %v", got)
		}
	}
	if rtt := time.Since(start) / 3; rtt < 2*d {
		t.Fatalf("round trip %v, want at least %v", rtt, 2*d)
	}
	p.Delay(0)
	start = time.Now()
	write(t, client, []byte{9})
	readN(t, server, 1)
	if el := time.Since(start); el >= d {
		t.Logf("slow without delay: %v", el)
	}
}

func TestCloseAfter(t *testing.T) {
	t.Parallel()
	p, b, client, server := setup(t)
	write(t, client, []byte("0123"))
	readN(t, server, 4)
	p.CloseAfter(Up, 10)
	write(t, client, bytes.Repeat([]byte("a"), 100))
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(server)
	if len(got) != 10 {
		t.Fatalf("got %d bytes after CloseAfter(10), want 10", len(got))
	}
	endsSoon(t, client)
	// only connections open at the time are affected
	c2 := dial(t, p)
	s2 := b.next(t)
	write(t, c2, bytes.Repeat([]byte("b"), 100))
	readN(t, s2, 100)
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	write(t, server, []byte("ab"))
	readN(t, client, 2)
	p.Corrupt(Down, 3)
	write(t, server, []byte("cdefgh"))
	got := readN(t, client, 6)
	want := []byte("cde\x99gh") // 'f' ^ 0xff == 0x99
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	write(t, server, []byte("fff"))
	if got := readN(t, client, 3); string(got) != "fff" {
		t.Fatalf("corrupted twice: %q", got)
	}
	// the other direction is untouched
	write(t, client, []byte("ffff"))
	if got := readN(t, server, 4); string(got) != "ffff" {
		t.Fatalf("up corrupted: %q", got)
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	p, b, _, _ := setup(t)
	p.Refuse(true)
	// the reset may come so early that the dial itself fails
	if c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err == nil {
		endsSoon(t, c)
		_ = c.Close()
	}
	waitFor(t, func() bool { return p.Stats().Refused == 1 })
	p.Refuse(false)
	c2 := dial(t, p)
	s2 := b.next(t)
	write(t, c2, []byte("in"))
	if got := readN(t, s2, 2); string(got) != "in" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, func() bool { return p.Stats().Accepted == 2 })
}

func TestUnreachableTarget(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p, err := NewProxy(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		return // reset so early that the dial itself failed: fine
	}
	defer c.Close()
	endsSoon(t, c)
	waitFor(t, func() bool { return p.Stats().Refused == 1 })
}

func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	p, _, client, server := setup(t)
	p.BlackHole(true)
	write(t, client, []byte("x"))
	p.Delay(time.Hour)
	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	endsSoon(t, client)
	endsSoon(t, server)
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("a closed proxy accepts")
	}
	_ = p.Close() // idempotent
}

func waitFor(t *testing.T, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
