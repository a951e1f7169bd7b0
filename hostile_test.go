package reign

// Hostile peers against a running node. The cluster spec names nodes 1 to
// 4; nodes 2, 3 and 4 run, and node 1 never does, so its certificate is
// the attacker's when an attack needs a valid one (node 1 is the lowest
// ID, so it is the one that dials; nobody dials it). Node 4 is attacked.
// After each attack node 4 must still serve nodes 2 and 3: round trips
// run during every attack and after it.

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"github.com/reign-go/reign/internal/wire"
)

const (
	hostileHandshake = time.Second
	attacked         = NodeID(4)
	absent           = NodeID(1) // in the spec, never running: the attacker's identity
)

type hostileCluster struct {
	tc           *testCluster
	n2, n3, n4   *Node
	echo2, echo4 Address
	addr         string // node 4's address
	pings        []*pinger
}

// newHostileCluster starts nodes 2, 3 and 4 of a spec of 1 to 4, and
// round trips between node 4 and nodes 2 and 3 that run until the test
// ends (see serving).
func newHostileCluster(t *testing.T, mod func(*Config)) *hostileCluster {
	t.Helper()
	spec := testSpec(t)
	lns := listenLoopback(t, 4)
	for id := NodeID(1); id <= 4; id++ {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: lns[id].Addr().String()})
	}
	_ = lns[absent].Close()
	delete(lns, absent)
	tc := &testCluster{t: t, spec: spec, mod: func(cfg *Config) {
		faultConfig(cfg)
		cfg.HandshakeTimeout = hostileHandshake
		if mod != nil {
			mod(cfg)
		}
	}, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc.stopAll)
	for id, ln := range lns {
		tc.start(id, ln)
	}
	tc.connected()
	h := &hostileCluster{tc: tc, n2: tc.node(2), n3: tc.node(3), n4: tc.node(4), addr: lns[attacked].Addr().String()}
	h.echo2, h.echo4 = startEcho(t, h.n2), startEcho(t, h.n4)
	h.pings = []*pinger{startPinger(h.n2, h.echo4), startPinger(h.n3, h.echo4), startPinger(h.n4, h.echo2)}
	t.Cleanup(func() { h.serving(t) })
	return h
}

// serving checks that node 4 serves its good peers: the round trips that
// ran during the test all succeeded, and new ones do.
func (h *hostileCluster) serving(t *testing.T) {
	t.Helper()
	for _, p := range h.pings {
		p.stop(t, "round trips with node 4 during the attack", false)
	}
	h.pings = nil
	for i, c := range []struct {
		from *Node
		to   Address
	}{{h.n2, h.echo4}, {h.n4, h.echo2}, {h.tc.node(3), h.echo4}} {
		if err := callEcho(c.from, c.to, 1000+i); err != nil {
			t.Errorf("after the attack: %v", err)
		}
	}
	if up := h.n4.Stats().PeersUp; up != 2 {
		t.Errorf("node 4 has %d peers up after the attack, want 2", up)
	}
}

// refused waits until node 4 has refused n more connections than before.
func (h *hostileCluster) refused(t *testing.T, before uint64, n uint64) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().Refused >= before+n, "h.n4.Stats().Refused >= before+n") })
}

// readPEM reads a file of the test certificate set.
func readPEM(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clusterCA is the CA of the test certificate set, key included.
func clusterCA(t testing.TB) *certs.CA {
	t.Helper()
	ca, err := certs.LoadCA(readPEM(t, certs.CACertFile), readPEM(t, certs.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeCert is node id's certificate and key from the test set.
func nodeCert(t testing.TB, id NodeID) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(readPEM(t, certs.NodeCertFile(uint16(id))), readPEM(t, certs.NodeKeyFile(uint16(id))))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keyPair(t testing.TB, certPEM, keyPEM []byte, err error) tls.Certificate {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialTLS connects to addr as a TLS client that trusts the cluster CA and
// expects node 4, presenting cert if not nil. With TLS 1.3 the client's
// handshake completes before the server has checked the client's
// certificate, so a refusal shows on the first read.
func dialTLS(t testing.TB, addr string, cert *tls.Certificate) *tls.Conn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(readPEM(t, certs.CACertFile))
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    roots,
		ServerName: certs.NodeName(uint16(attacked)),
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		// refused during the handshake itself: also fine for the caller,
		// which only checks that the node ends the connection
		t.Logf("TLS handshake: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// expectEnded reads c until it ends, and fails t if the node keeps it
// open for longer than within. Bytes the node sends first (its Hello,
// say) are read and ignored.
func expectEnded(t testing.TB, c net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the node kept the connection open for %v", within)
	}
	return time.Since(start)
}

// attackerHello is the Hello of a fake node id.
func attackerHello(id NodeID, inc uint32) wire.Hello {
	return wire.Hello{
		MinVersion:  wire.MinVersion,
		MaxVersion:  wire.MaxVersion,
		Node:        uint16(id),
		Incarnation: inc,
		MaxFrame:    DefaultMaxFrameSize,
		Codec:       MsgpackCodec{}.Name(),
	}
}

// fakePeer is a hand-driven peer: a real TLS connection with node 1's
// certificate and a correct reign handshake, after which the test writes
// whatever frames it likes. It reads (and discards) what the node sends,
// and sends heartbeats until told to stop.
type fakePeer struct {
	conn    *tls.Conn
	inc     uint32
	hello   wire.Hello // the node's
	wmu     sync.Mutex
	ended   chan struct{} // closed when the node ends the connection
	readErr error
	stopHB  chan struct{}
	hbOnce  sync.Once
	wg      sync.WaitGroup
}

func dialFakePeer(t *testing.T, h *hostileCluster) *fakePeer {
	t.Helper()
	cert := nodeCert(t, absent)
	tc := dialTLS(t, h.addr, &cert)
	if tc == nil {
		t.Fatal("TLS refused for a good certificate")
	}
	f := &fakePeer{conn: tc, inc: 0x5eed, ended: make(chan struct{}), stopHB: make(chan struct{})}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteHello(tc, attackerHello(absent, f.inc)); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(tc, DefaultMaxFrameSize)
	hello, err := wire.ReadHello(r)
	if err != nil {
		t.Fatalf("node's hello: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	f.hello = hello
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		defer close(f.ended)
		for {
			if _, _, err := r.Next(); err != nil {
				f.readErr = err
				return
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		hb := wire.AppendFrame(nil, wire.TypeHeartbeat, nil)
		for {
			select {
			case <-f.stopHB:
				return
			case <-f.ended:
				return
			case <-time.After(faultHeartbeat):
			}
			if f.write(hb) != nil {
				return
			}
		}
	}()
	t.Cleanup(f.close)
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 3, "h.n4.Stats().PeersUp == 3") })
	return f
}

func (f *fakePeer) write(b []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := f.conn.Write(b)
	return err
}

func (f *fakePeer) close() {
	f.hbOnce.Do(func() { close(f.stopHB) })
	_ = f.conn.Close()
	f.wg.Wait()
}

// expectEnded waits for the node to end the connection.
func (f *fakePeer) expectEnded(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-f.ended:
		t.Logf("the node ended the connection: %v", f.readErr)
	case <-time.After(within):
		t.Fatalf("the node kept the connection open for %v", within)
	}
}

// TestHostile runs each attack on its own cluster, in parallel; the
// goroutine check covers them all.
func TestHostile(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"garbage", testHostileGarbage},
		{"no-client-cert", testHostileNoClientCert},
		{"foreign-ca", testHostileForeignCA},
		{"wrong-identity", testHostileWrongIdentity},
		{"own-identity", testHostileOwnIdentity},
		{"expired-cert", testHostileExpiredCert},
		{"slowloris", testHostileSlowloris},
		{"slowloris-good-node-meanwhile", testHostileSlowlorisMeanwhile},
		{"oversized-frame", testHostileOversizedFrame},
		{"unknown-frame-type", testHostileUnknownFrameType},
		{"typedef-flood", testHostileTypeDefFlood},
		{"unregistered-type", testHostileUnregisteredType},
		{"registry-flood", testHostileRegistryFlood},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// Plain TCP with garbage bytes to the listen port: refused, counted.
func testHostileGarbage(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Refused
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := make([]byte, 8192)
	_, _ = rand.Read(junk)
	copy(junk, "GET / HTTP/1.1\r\nHost: reign\r\n\r\n")
	_, _ = c.Write(junk)
	expectEnded(t, c, 3*time.Second)
	h.refused(t, before, 1)
}

// A TLS client without a client certificate: refused, counted.
func testHostileNoClientCert(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Refused
	if tc := dialTLS(t, h.addr, nil); tc != nil {
		expectEnded(t, tc, 3*time.Second)
	}
	h.refused(t, before, 1)
}

// A certificate for node 1 from another CA: refused, counted.
func testHostileForeignCA(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Refused
	other, err := certs.NewCA("someone else", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := other.IssueNode(uint16(absent), time.Now().Add(-time.Hour), 24*time.Hour)
	cert := keyPair(t, certPEM, keyPEM, err)
	if tc := dialTLS(t, h.addr, &cert); tc != nil {
		_ = wire.WriteHello(tc, attackerHello(absent, 7))
		expectEnded(t, tc, 3*time.Second)
	}
	h.refused(t, before, 1)
}

// A valid certificate of node 2 (a running node), used by someone who
// claims to be node 1 in the Hello: refused after the Hello, counted, and
// the real connection of node 2 is untouched.
func testHostileWrongIdentity(t *testing.T) {
	h := newHostileCluster(t, nil)
	st := h.n4.Stats()
	cert := nodeCert(t, 2)
	tc := dialTLS(t, h.addr, &cert)
	if tc == nil {
		t.Fatal("TLS refused for a good certificate")
	}
	if err := wire.WriteHello(tc, attackerHello(absent, 7)); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, tc, 3*time.Second)
	h.refused(t, st.Refused, 1)
	if after := h.n4.Stats(); after.Connects != st.Connects {
		t.Fatalf("the impostor disturbed node 2's connection: %+v, then %+v", st, after)
	}
}

// Node 4's own certificate used against node 4: refused, counted.
func testHostileOwnIdentity(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Refused
	cert := nodeCert(t, attacked)
	if tc := dialTLS(t, h.addr, &cert); tc != nil {
		_ = wire.WriteHello(tc, attackerHello(attacked, 7))
		expectEnded(t, tc, 3*time.Second)
	}
	h.refused(t, before, 1)
}

// A certificate of the cluster CA for node 1 that expired yesterday:
// refused, counted.
func testHostileExpiredCert(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Refused
	certPEM, keyPEM, err := clusterCA(t).IssueNodeWith(uint16(absent), certs.NodeOptions{
		NotBefore: time.Now().Add(-48 * time.Hour),
		ValidFor:  24 * time.Hour,
	})
	cert := keyPair(t, certPEM, keyPEM, err)
	if tc := dialTLS(t, h.addr, &cert); tc != nil {
		_ = wire.WriteHello(tc, attackerHello(absent, 7))
		expectEnded(t, tc, 3*time.Second)
	}
	h.refused(t, before, 1)
}

// 100 TCP connections that never send a byte: each is closed by the
// handshake timeout (or at once, past the 64 handshakes in progress), all
// are counted, and a good node that restarts meanwhile connects.
func testHostileSlowloris(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats()
	const conns = 100
	start := time.Now()
	ended := make(chan time.Duration, conns)
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			// the listener's backlog may reset us: that is the node
			// refusing too
			ended <- time.Since(start)
			continue
		}
		t.Cleanup(func() { _ = c.Close() })
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(hostileHandshake + 5*time.Second))
			_, _ = io.Copy(io.Discard, c)
			ended <- time.Since(start)
		}()
	}
	// a good node comes back while the attack is on: node 3 restarts and
	// dials node 4
	h.pings[1].stop(t, "node 3 before its restart", false)
	h.tc.kill(3)
	restart := time.Now()
	n3 := h.tc.start(3, nil)
	checkFor(t, hostileHandshake+5*time.Second, func() error {
		s := h.n4.Stats()
		return unless(s.PeersUp == 2 && s.Connects > before.Connects && n3.Stats().PeersUp == 2, "s.PeersUp == 2 && s.Connects > before.Connects && n3.Stats().PeersUp == 2")
	})
	t.Logf("the restarted node 3 connected %v after its restart", time.Since(restart))
	var last time.Duration
	for i := 0; i < conns; i++ {
		select {
		case d := <-ended:
			last = max(last, d)
		case <-time.After(hostileHandshake + 5*time.Second):
			t.Fatalf("%d of %d idle connections still open", conns-i, conns)
		}
	}
	t.Logf("all %d idle connections closed within %v", conns, last)
	if last > hostileHandshake+faultMargin {
		t.Fatalf("idle connections lived %v, handshake timeout %v", last, hostileHandshake)
	}
	h.refused(t, before.Refused, conns)
	h.pings[1] = startPinger(n3, h.echo4)
}

// While 100 idle connections hold every handshake slot of node 4, a good
// node that restarts must connect before the idle ones time out.
func testHostileSlowlorisMeanwhile(t *testing.T) {
	h := newHostileCluster(t, func(cfg *Config) { cfg.HandshakeTimeout = 3 * time.Second })
	before := h.n4.Stats()
	var open sync.WaitGroup
	dialed := 0
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			continue
		}
		dialed++
		t.Cleanup(func() { _ = c.Close() })
		open.Add(1)
		go func() {
			defer open.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(io.Discard, c)
		}()
	}
	// the listener has taken them all: every slot held, the rest refused
	checkFor(t, 5*time.Second, func() error {
		h.n4.cl.handshakes.mu.Lock()
		held := len(h.n4.cl.handshakes.active)
		h.n4.cl.handshakes.mu.Unlock()
		refused := h.n4.Stats().Refused - before.Refused
		return unless(held == maxHandshakes && int(refused) >= dialed-maxHandshakes,
			"%d handshake slots held, %d connections refused, of %d dialed", held, refused, dialed)
	})
	h.pings[1].stop(t, "node 3 before its restart", false)
	h.tc.kill(3)
	restart := time.Now()
	n3 := h.tc.start(3, nil)
	ok := false
	for time.Since(restart) < 2*time.Second && !ok {
		s := h.n4.Stats()
		ok = s.PeersUp == 2 && s.Connects > before.Connects
		time.Sleep(5 * time.Millisecond)
	}
	if !ok {
		waited := time.Since(restart)
		open.Wait() // the idle ones time out; then node 3 gets in
		checkFor(t, 10*time.Second, func() error {
			return unless(h.n4.Stats().PeersUp == 2 && n3.Stats().PeersUp == 2, "h.n4.Stats().PeersUp == 2 && n3.Stats().PeersUp == 2")
		})
		h.pings[1] = startPinger(n3, h.echo4)
		t.Logf("node 3 connected %v after its restart, once the idle connections were closed", time.Since(restart))
		t.Fatalf("a good node could not connect while idle connections held all %d handshake slots "+
			"(it got through only when they timed out); waited %v of the 3s handshake timeout", maxHandshakes, waited)
	}
	t.Logf("node 3 connected %v after its restart, while the idle connections were still open", time.Since(restart))
	checkFor(t, 5*time.Second, func() error { return unless(n3.Stats().PeersUp == 2, "n3.Stats().PeersUp == 2") })
	h.pings[1] = startPinger(n3, h.echo4)
	open.Wait()
}

// A frame that announces 1 GiB after a good handshake: the node closes the
// connection at once, without allocating the frame.
func testHostileOversizedFrame(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocBefore := ms.TotalAlloc
	hdr := []byte{0x40, 0, 0, 0, byte(wire.TypeMessage)} // L = 1<<30
	if err := f.write(hdr); err != nil {
		t.Fatal(err)
	}
	f.expectEnded(t, 3*time.Second)
	runtime.ReadMemStats(&ms)
	// other tests run alongside and allocate too, but not a GiB
	if grew := ms.TotalAlloc - allocBefore; grew > 512<<20 {
		t.Fatalf("%d MiB allocated while refusing the frame", grew>>20)
	}
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 2, "h.n4.Stats().PeersUp == 2") })
}

// A frame of a type no version defines, after a good handshake: the node
// closes the connection.
func testHostileUnknownFrameType(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	if err := f.write(wire.AppendFrame(nil, wire.Type(200), []byte("who knows"))); err != nil {
		t.Fatal(err)
	}
	f.expectEnded(t, 3*time.Second)
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 2, "h.n4.Stats().PeersUp == 2") })
}

// A peer that defines type numbers without end: past Config.MaxPeerTypes (default) the
// connection is closed, so the dictionary cannot grow without bound.
func testHostileTypeDefFlood(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	var batch []byte
	for id := uint32(1); id <= DefaultMaxPeerTypes+1; id++ {
		batch = wire.AppendFrame(batch, wire.TypeTypeDef, wire.AppendTypeDef(nil, wire.TypeDef{ID: id, Name: "t"}))
		if len(batch) > 64<<10 || id == DefaultMaxPeerTypes+1 {
			if err := f.write(batch); err != nil {
				break // the node hung up, as it should, perhaps mid-batch
			}
			batch = batch[:0]
		}
	}
	f.expectEnded(t, 5*time.Second)
	checkFor(t, 5*time.Second, func() error { return unless(h.n4.Stats().PeersUp == 2, "h.n4.Stats().PeersUp == 2") })
}

// onlyOnSender is registered on node 2 but not on node 4.
type onlyOnSender struct{ X int }

// A message of a type the receiver never registered, between two real
// nodes: dropped and counted, the connection stays up, and the messages
// after it arrive in order.
func testHostileUnregisteredType(t *testing.T) {
	h := newHostileCluster(t, nil)
	if err := h.n2.RegisterType(onlyOnSender{}); err != nil {
		t.Fatal(err)
	}
	before := h.n4.Stats()
	dst, mb := h.n4.NewMailbox()
	rdst := h.n2.BindAddress(dst)
	for i := 0; i < 3; i++ {
		if err := rdst.Send(onlyOnSender{X: i}); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 10; j++ {
			if err := rdst.Send(testMsg{Seq: 10*i + j}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := 0; k < 30; k++ {
		if m, ok := recv(t, mb).(testMsg); !ok || m.Seq != k {
			t.Fatalf("message %d: got %#v", k, m)
		}
	}
	after := h.n4.Stats()
	if after.DroppedUnknownType != before.DroppedUnknownType+3 {
		t.Fatalf("DroppedUnknownType %d, then %d: want 3 more", before.DroppedUnknownType, after.DroppedUnknownType)
	}
	if after.Connects != before.Connects || after.PeersUp != 2 {
		t.Fatalf("the connection did not stay up: %+v, then %+v", before, after)
	}
	if v, ok := mb.ReceiveAsync(); ok {
		t.Fatalf("delivered: %#v", v)
	}
}

// 10,000 registry claims from a fake peer: node 4 stays responsive
// throughout, Lookup sees them, and they vanish with the peer.
func testHostileRegistryFlood(t *testing.T) {
	h := newHostileCluster(t, nil)
	f := dialFakePeer(t, h)
	const claims = 10_000
	var buf []byte
	start := time.Now()
	for i := 0; i < claims; i++ {
		b, s := wire.BeginFrame(buf, wire.TypeRegClaim)
		b = wire.AppendClaim(b, wire.Claim{Name: fmt.Sprintf("flood-%d", i), Mailbox: wire.Ref{Inc: f.inc, ID: uint64(i + 1)}})
		var err error
		if buf, err = wire.EndFrame(b, s, DefaultMaxFrameSize); err != nil {
			t.Fatal(err)
		}
		if len(buf) > 32<<10 || i == claims-1 {
			if err := f.write(buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	if err := f.write(wire.AppendFrame(nil, wire.TypeRegSyncDone, nil)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		a, ok := h.n4.Lookup(fmt.Sprintf("flood-%d", claims-1))
		return unless(ok && a.NodeID() == absent, "ok && a.NodeID() == absent")
	})
	t.Logf("%d claims sent and registered in %v", claims, time.Since(start))
	// the registry still works for good nodes
	good, gmb := h.n2.NewMailbox()
	defer gmb.Close()
	if err := h.n2.Register("good", good); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		a, ok := h.n4.Lookup("good")
		return unless(ok && a.NodeID() == 2, "ok && a.NodeID() == 2")
	})
	if got := h.n4.LookupAll("flood-0"); len(got) != 1 || got[0].NodeID() != absent {
		t.Fatalf("LookupAll(flood-0) = %v", got)
	}
	// the claims die with the connection
	f.close()
	checkFor(t, 5*time.Second, func() error {
		_, ok := h.n4.Lookup("flood-0")
		return unless(!ok && h.n4.Stats().PeersUp == 2, "!ok && h.n4.Stats().PeersUp == 2")
	})
	if _, ok := h.n4.Lookup("good"); !ok {
		t.Fatal("node 2's claim vanished with the fake peer's")
	}
}

// TestVersionOnePeerRefused: a node of protocol version 1 (frame types
// 1-13 only) is refused at the handshake, counted and logged as a failed
// handshake, instead of being taken and then cut off by the first frame
// of version 2 it cannot read.
func TestVersionOnePeerRefused(t *testing.T) {
	h := newHostileCluster(t, nil)
	before := h.n4.Stats().Closes[CloseHandshakeFailed]
	cert := nodeCert(t, absent)
	tc := dialTLS(t, h.addr, &cert)
	if tc == nil {
		t.Fatal("TLS refused for a good certificate")
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	old := attackerHello(absent, 0x5eed)
	old.MinVersion, old.MaxVersion = 1, 1
	if err := wire.WriteHello(tc, old); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(tc, DefaultMaxFrameSize)
	hello, err := wire.ReadHello(r)
	if err != nil {
		t.Fatalf("node's hello: %v", err)
	}
	if hello.MinVersion != 2 {
		t.Fatalf("node speaks versions %d..%d, want from 2", hello.MinVersion, hello.MaxVersion)
	}
	if _, _, err := r.Next(); err == nil {
		t.Fatal("the node kept a version-1 connection")
	}
	checkFor(t, 5*time.Second, func() error {
		got := h.n4.Stats().Closes[CloseHandshakeFailed]
		return unless(got == before+1, "handshake failures %d, want %d", got, before+1)
	})
	if h.n4.Stats().Peers[absent].Up {
		t.Fatal("the version-1 peer is up")
	}
}
