package reign

// The per-peer bounds of Config (limits.go), tested against node 4 of the
// hostile cluster (hostile_test.go) by the fake node 1, which holds a
// valid certificate and writes raw frames. Each test fills one kind of
// per-peer state exactly to a small bound set in node 4's Config, checks
// the connection survives that, then crosses it by one and checks the
// connection is closed with CloseLimitExceeded, counted by kind, and the
// state is gone with it. Before the bounds, none of these connections
// ended.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"github.com/reign-go/reign/internal/wire"
)

func TestBounds(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"links", testBoundLinks},
		{"names", testBoundNames},
		{"name-bytes", testBoundNameBytes},
		{"types", testBoundTypes},
		{"type-bytes", testBoundTypeBytes},
		{"control", testBoundControl},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// frames writes the frames that mk makes for i in [from, to), in batches.
func frames(t *testing.T, f *fakePeer, from, to int, mk func(b []byte, i int) []byte) {
	t.Helper()
	var b []byte
	for i := from; i < to; i++ {
		b = mk(b, i)
		if len(b) > 32<<10 || i == to-1 {
			if err := f.write(b); err != nil {
				t.Fatalf("write: %v", err)
			}
			b = b[:0]
		}
	}
}

func linkFrame(b []byte, target Address, watcher wire.Ref) []byte {
	return wire.AppendFrame(b, wire.TypeLink, wire.AppendLink(nil, wire.Link{Target: ref(target), Watcher: watcher}))
}

func claimFrame(b []byte, name string, m wire.Ref) []byte {
	return wire.AppendFrame(b, wire.TypeRegClaim, wire.AppendClaim(nil, wire.Claim{Name: name, Mailbox: m}))
}

func typeDefFrame(b []byte, id int, name string) []byte {
	return wire.AppendFrame(b, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: uint32(id), Name: name}))
}

// settled waits until node 4 has handled what the fake peer wrote, as
// check sees it.
func settled(t *testing.T, check func() error) {
	t.Helper()
	checkFor(t, 10*time.Second, check)
}

// crossed waits for node 4 to close the fake peer's connection for
// crossing bound l, and checks the counts.
func crossed(t *testing.T, h *hostileCluster, f *fakePeer, l Limit) {
	t.Helper()
	f.expectEnded(t, 5*time.Second)
	checkFor(t, 5*time.Second, func() error {
		st := h.n4.Stats()
		return unless(st.LimitsExceeded[l] == 1 && st.Peers[absent].Closes[CloseLimitExceeded] == 1 && st.PeersUp == 2,
			"LimitsExceeded %v, node 1's closes %v, %d peers up", st.LimitsExceeded, st.Peers[absent].Closes, st.PeersUp)
	})
	if n := len(h.n4.Stats().LimitsExceeded); n != 1 {
		t.Fatalf("LimitsExceeded %v: other kinds counted", h.n4.Stats().LimitsExceeded)
	}
}

// MaxPeerLinks: the fake peer's mailboxes watch one mailbox of node 4.
func testBoundLinks(t *testing.T) {
	const max = 200
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerLinks = max })
	f := dialFakePeer(t, h)
	target, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	watcher := func(i int) wire.Ref { return wire.Ref{Inc: f.inc, ID: uint64(i + 1)} }
	link := func(b []byte, i int) []byte { return linkFrame(b, target, watcher(i)) }
	p := h.n4.cl.peer(absent)
	frames(t, f, 0, max, link)
	frames(t, f, 0, max, link) // the same watchers again: not counted twice
	settled(t, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return unless(p.links.nwatch == max, "node 4 counts %d watchers of node 1", p.links.nwatch)
	})
	if st := h.n4.Stats(); st.PeersUp != 3 {
		t.Fatalf("at the bound: %d peers up", st.PeersUp)
	}
	frames(t, f, max, max+1, link)
	crossed(t, h, f, LimitLinks)
	mb.mu.Lock()
	left := len(mb.links)
	mb.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d watchers of the lost peer left on the mailbox", left)
	}
}

// MaxPeerNames: the fake peer claims names.
func testBoundNames(t *testing.T) {
	const max = 300
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerNames = max })
	f := dialFakePeer(t, h)
	claim := func(b []byte, i int) []byte {
		return claimFrame(b, fmt.Sprintf("n%d", i), wire.Ref{Inc: f.inc, ID: uint64(i + 1)})
	}
	frames(t, f, 0, max, claim)
	frames(t, f, 0, max, claim) // claimed again: replaced, not counted twice
	settled(t, func() error {
		_, ok := h.n4.Lookup(fmt.Sprintf("n%d", max-1))
		return unless(ok, "node 4 has not seen the last name")
	})
	frames(t, f, max, max+1, claim)
	crossed(t, h, f, LimitNames)
	// (the names go in the peer-down hooks, just after the close is counted)
	checkFor(t, 5*time.Second, func() error {
		_, ok := h.n4.Lookup("n0")
		return unless(!ok, "the lost peer's names outlived it")
	})
}

// MaxPeerNameBytes: fewer, longer names; a release gives room back.
func testBoundNameBytes(t *testing.T) {
	const max = 10 << 10
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerNameBytes = max })
	f := dialFakePeer(t, h)
	name := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("x", 1020) } // 1 KiB
	mref := wire.Ref{Inc: f.inc, ID: 1}
	claim := func(b []byte, i int) []byte { return claimFrame(b, name(i), mref) }
	frames(t, f, 0, 10, claim)
	// release one and claim another in its place: still within the bound
	frames(t, f, 0, 1, func(b []byte, i int) []byte {
		return wire.AppendFrame(b, wire.TypeRegRelease, wire.AppendClaim(nil, wire.Claim{Name: name(0), Mailbox: mref}))
	})
	frames(t, f, 10, 11, claim)
	settled(t, func() error {
		_, ok := h.n4.Lookup(name(10))
		return unless(ok, "node 4 has not seen the last name")
	})
	frames(t, f, 11, 12, claim)
	crossed(t, h, f, LimitNames)
}

// MaxPeerTypes: the fake peer defines type numbers.
func testBoundTypes(t *testing.T) {
	const max = 500
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerTypes = max })
	f := dialFakePeer(t, h)
	def := func(b []byte, i int) []byte { return typeDefFrame(b, i+1, "t") }
	frames(t, f, 0, max, def)
	// a message of the last type number is accepted (dropped: unknown
	// type), so the whole dictionary was taken
	dst, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	before := h.n4.Stats().DroppedUnknownType
	hostileMessage(t, f, dst, max, nil)
	settled(t, func() error {
		return unless(h.n4.Stats().DroppedUnknownType == before+1, "the message of type %d not handled yet", max)
	})
	frames(t, f, max, max+1, def)
	crossed(t, h, f, LimitTypes)
}

// MaxPeerTypeBytes: a few long type names (before the bound, 24 names of
// 4 MiB held 96 MiB).
func testBoundTypeBytes(t *testing.T) {
	const max = 64 << 10
	h := newHostileCluster(t, func(cfg *Config) { cfg.MaxPeerTypeBytes = max })
	f := dialFakePeer(t, h)
	long := strings.Repeat("T", 16<<10)
	def := func(b []byte, i int) []byte { return typeDefFrame(b, i+1, long) }
	frames(t, f, 0, 4, def) // exactly 64 KiB
	dst, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	before := h.n4.Stats().DroppedUnknownType
	hostileMessage(t, f, dst, 4, nil)
	settled(t, func() error {
		return unless(h.n4.Stats().DroppedUnknownType == before+1, "the message of type 4 not handled yet")
	})
	frames(t, f, 4, 5, def)
	crossed(t, h, f, LimitTypes)
}

// ControlBufferLimit: a peer that stops reading and sends Links to
// mailboxes that never existed, each answered at once by a Closed frame.
// Before the bound the answers queued without end (58 MiB of Links left
// 114-134 MiB live under a 1 MiB send buffer limit) until the write
// timeout; now the connection is closed when they pass the bound.
func testBoundControl(t *testing.T) {
	const max = 64 << 10
	h := newHostileCluster(t, func(cfg *Config) {
		cfg.ControlBufferLimit = max
		cfg.HeartbeatTimeout = 5 * time.Second // the write timeout must not end it first
	})
	f := dialSilentPeer(t, h)
	// mailboxes of node 4's run that were never opened
	gone := Address{node: attacked, inc: f.hello.Incarnation}
	link := func(b []byte, i int) []byte {
		gone.id = uint64(1<<40 + i)
		return linkFrame(b, gone, wire.Ref{Inc: f.inc, ID: 1})
	}
	// 4 MiB of Links, answered by about as many bytes of Closed frames:
	// far more than the socket buffers of a peer that reads nothing
	const total = 4 << 20 / 29
	var b []byte
	for i := 0; i < total; i++ {
		b = link(b, i)
		if len(b) > 32<<10 || i == total-1 {
			if f.write(b) != nil {
				break // node 4 hung up, as it should
			}
			b = b[:0]
		}
	}
	crossed(t, h, f, LimitControl)
}

// dialSilentPeer is dialFakePeer for a peer that never reads after the
// handshake, with a small receive buffer, so node 4's writes soon block.
// It sends heartbeats, so only the bound can end the connection.
func dialSilentPeer(t *testing.T, h *hostileCluster) *fakePeer {
	t.Helper()
	cert := nodeCert(t, absent)
	d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tlsClient(t, nc, &cert)
	f := &fakePeer{conn: tc, inc: 0x5eed, ended: make(chan struct{}), stopHB: make(chan struct{})}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteHello(tc, attackerHello(absent, f.inc)); err != nil {
		t.Fatal(err)
	}
	hello, err := wire.ReadHello(wire.NewReader(tc, DefaultMaxFrameSize))
	if err != nil {
		t.Fatalf("node's hello: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	f.hello = hello
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(f.ended)
		hb := wire.AppendFrame(nil, wire.TypeHeartbeat, nil)
		for {
			select {
			case <-f.stopHB:
				return
			case <-time.After(faultHeartbeat):
			}
			// a write fails once node 4 has hung up: that is how a peer
			// that reads nothing learns it
			if err := f.write(hb); err != nil {
				f.readErr = err
				return
			}
		}
	}()
	t.Cleanup(f.close)
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 3, "h.n4.Stats().PeersUp == 3") })
	return f
}

// tlsClient runs a TLS client handshake on nc as node cert, trusting the
// cluster CA and expecting node 4.
func tlsClient(t *testing.T, nc net.Conn, cert *tls.Certificate) *tls.Conn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(readPEM(t, certs.CACertFile))
	tc := tls.Client(nc, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      roots,
		ServerName:   certs.NodeName(uint16(attacked)),
		Certificates: []tls.Certificate{*cert},
	})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		_ = nc.Close()
		t.Fatalf("TLS handshake: %v", err)
	}
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// TestBoundsMemory measures the most memory one hostile peer can make a
// node hold at the default Config: it fills every kind of per-peer state
// exactly to its default bound (65,536 watchers; 65,536 names of 64
// bytes, 4 MiB; 65,536 type names of 16 bytes, 1 MiB) and reports the
// heap it took. It is a measurement, not a check run in CI: set
// REIGN_MEASURE_BOUNDS=1 to run it. (The queued control frames,
// ControlBufferLimit, are part of the outgoing buffer and are bounded by
// TestBounds/control.)
func TestBoundsMemory(t *testing.T) {
	if os.Getenv("REIGN_MEASURE_BOUNDS") == "" {
		t.Skip("a measurement: set REIGN_MEASURE_BOUNDS=1")
	}
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	target, mb := h.n4.NewMailbox()
	t.Cleanup(mb.Close)
	dst, dmb := h.n4.NewMailbox()
	t.Cleanup(dmb.Close)
	p := h.n4.cl.peer(absent)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	total := heap()
	step := func(what string, fill func()) {
		before := heap()
		fill()
		after := heap()
		t.Logf("%-8s %7.1f MiB", what, mib(after-before))
	}
	step("links", func() {
		frames(t, f, 0, DefaultMaxPeerLinks, func(b []byte, i int) []byte {
			return linkFrame(b, target, wire.Ref{Inc: f.inc, ID: uint64(i + 1)})
		})
		settled(t, func() error {
			p.mu.Lock()
			defer p.mu.Unlock()
			return unless(p.links.nwatch == DefaultMaxPeerLinks, "%d watchers", p.links.nwatch)
		})
	})
	step("names", func() {
		const size = DefaultMaxPeerNameBytes / DefaultMaxPeerNames
		frames(t, f, 0, DefaultMaxPeerNames, func(b []byte, i int) []byte {
			return claimFrame(b, fmt.Sprintf("%0*d", size, i), wire.Ref{Inc: f.inc, ID: uint64(i + 1)})
		})
		settled(t, func() error {
			_, ok := h.n4.Lookup(fmt.Sprintf("%0*d", size, DefaultMaxPeerNames-1))
			return unless(ok, "the last name not there yet")
		})
	})
	step("types", func() {
		const size = DefaultMaxPeerTypeBytes / DefaultMaxPeerTypes
		frames(t, f, 0, DefaultMaxPeerTypes, func(b []byte, i int) []byte {
			return typeDefFrame(b, i+1, fmt.Sprintf("%0*d", size, i))
		})
		before := h.n4.Stats().DroppedUnknownType
		hostileMessage(t, f, dst, DefaultMaxPeerTypes, nil)
		settled(t, func() error {
			return unless(h.n4.Stats().DroppedUnknownType == before+1, "the last type not there yet")
		})
	})
	t.Logf("total    %7.1f MiB held for one peer at the default bounds", mib(heap()-total))
	if st := h.n4.Stats(); st.PeersUp != 3 || len(st.LimitsExceeded) != 0 {
		t.Fatalf("a bound was crossed: %+v", st)
	}
	hostileHangUp(t, h, f)
}
