package reign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// logRecorder is a slog.Handler that keeps the records at or above a
// level, with their attributes, for tests that check what a node logs.
type logRecorder struct {
	level slog.Level
	mu    *sync.Mutex
	recs  *[]loggedRecord
	attrs []slog.Attr
}

type loggedRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder(level slog.Level) *logRecorder {
	return &logRecorder{level: level, mu: new(sync.Mutex), recs: new([]loggedRecord)}
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Resolve().String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &h2
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// records returns the records kept so far.
func (h *logRecorder) records() []loggedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]loggedRecord(nil), *h.recs...)
}

// flakyListener returns a transient error (EMFILE, as when the file table
// is full) from its first Accept, then accepts normally.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failed.CompareAndSwap(false, true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// newBareCluster makes a testCluster with a spec for nodes 1..size on
// the returned listeners, starting none of them.
func newBareCluster(t *testing.T, size int, mod func(*Config)) (*testCluster, map[NodeID]net.Listener) {
	t.Helper()
	spec := testSpec(t)
	lns := listenLoopback(t, size)
	for id := NodeID(1); int(id) <= size; id++ {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: lns[id].Addr().String()})
	}
	tc := &testCluster{t: t, spec: spec, mod: mod, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc.stopAll)
	return tc, lns
}

// Bug: with Config.Listener set, one transient Accept error ended the
// listener service for good (ErrDoNotRestart): the node went on serving
// with no listener and never got its peers. It is retried now.
func TestListenerRetriesTransientAcceptError(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, nil)
	flaky := &flakyListener{Listener: lns[2]}
	tc.start(2, flaky) // node 2 accepts node 1's connection
	checkFor(t, testTimeout, func() error { return unless(flaky.failed.Load(), "the listener has not failed yet") })
	tc.start(1, lns[1])
	tc.connected()
}

// brokenListener fails every Accept with an error that is not transient.
type brokenListener struct{ net.Listener }

var errBrokenListener = errors.New("test: listener broken for good")

func (l brokenListener) Accept() (net.Conn, error) { return nil, errBrokenListener }

// A listener that cannot come back ends Serve with its error: the node
// never goes on serving without a listener.
func TestServeReturnsWhenListenerFails(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, nil)
	n, err := NewNode(tc.config(2, brokenListener{lns[2]}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(testCtx(t)) }()
	select {
	case err := <-done:
		if !errors.Is(err, errBrokenListener) {
			t.Fatalf("Serve returned %v, want the listener's error", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve went on without its listener")
	}
	_ = lns[1].Close()
}

// Bug: TLS refusals were classified only by a helper production never
// called. Through real nodes: nodes 1 and 4 hold certificates of another
// CA. Node 2 dials node 4 and refuses its certificate (a server from
// another CA); node 1 dials node 2 and refuses node 2's certificate,
// which node 2 hears as a TLS alert. Both count on node 2 as bad
// certificates and are logged with that reason; nodes 2 and 3 are
// unaffected.
func TestForeignCARefusedOnRealPath(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 4, nil)
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, 4, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := *tc.spec
	foreign.ClusterCertPath = filepath.Join(dir, certs.CACertFile)
	foreign.NodeCertPath = filepath.Join(dir, "reign_node.%d.crt")
	foreign.NodeKeyPath = filepath.Join(dir, "reign_node.%d.key")
	logs := newLogRecorder(slog.LevelWarn)
	good := tc.mod
	tc.mod = func(c *Config) {
		if good != nil {
			good(c)
		}
		switch c.NodeID {
		case 1, 4:
			c.Cluster = &foreign
		case 2:
			c.Logger = slog.New(logs)
		}
	}
	for id, ln := range lns {
		tc.start(id, ln)
	}
	n2, n3 := tc.node(2), tc.node(3)
	checkFor(t, testTimeout, func() error {
		s := n2.Stats()
		switch {
		case s.Peers[3].Up == false || !n3.Stats().Peers[2].Up:
			return errors.New("nodes 2 and 3 are not connected")
		case s.Peers[4].Closes[CloseBadCertificate] == 0:
			return errors.New("node 2 has not refused node 4's certificate (a server from another CA)")
		case s.Closes[CloseBadCertificate] < 2:
			return errors.New("node 2 has not refused node 1's certificate (a client from another CA)")
		}
		return nil
	})
	var refused bool
	for _, r := range logs.records() {
		refused = refused || (r.msg == "connection refused" && r.attrs["reason"] == CloseBadCertificate.String())
	}
	if !refused {
		t.Fatalf("node 2 logged no refusal with reason %q: %+v", CloseBadCertificate, logs.records())
	}
	if s := n2.Stats(); s.Peers[3].Connects != 1 {
		t.Fatalf("node 2's connection to node 3 was disturbed: %+v", s.Peers[3])
	}
}

// Bug: two live processes with the same node ID made a connection storm
// (each new connection replaced the other's, thousands of times). Now
// node 2 keeps the first, refuses the second with Goodbye{duplicate}, and
// both log at Error naming the duplicate; the refused one backs off, so
// node 2's connection stays put and the refusals stay few.
func TestDuplicateNodeKeptOneNoStorm(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, nil)
	logs2, logsDup := newLogRecorder(slog.LevelError), newLogRecorder(slog.LevelError)
	tc.mod = func(c *Config) {
		if c.NodeID == 2 {
			c.Logger = slog.New(logs2)
		}
	}
	n2 := tc.start(2, lns[2])
	n1 := tc.start(1, lns[1])
	tc.connected()
	kept := n2.cl.peer(1).live.Load()
	before := n2.Stats()

	// the copy: node 1 again, in another process, listening elsewhere
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.config(1, ln)
	cfg.Logger = slog.New(logsDup)
	dup, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = dup.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	checkFor(t, testTimeout, func() error {
		switch {
		case n2.Stats().Peers[1].Closes[CloseDuplicateNode] == 0:
			return errors.New("node 2 has not refused the duplicate")
		case dup.Stats().Peers[2].Closes[CloseDuplicateNode] == 0:
			return errors.New("the duplicate has not heard it was refused")
		}
		return nil
	})
	// Let the duplicate retry for a while: with backoff it tries at
	// most a few times; without, it would storm.
	watch := time.Now().Add(1500 * time.Millisecond)
	var flapped bool
	checkFor(t, testTimeout, func() error {
		flapped = flapped || n2.cl.peer(1).live.Load() != kept
		return unless(flapped || time.Now().After(watch), "watching node 2's connection for flapping")
	})
	after := n2.Stats()
	if after.Connects != before.Connects || n2.cl.peer(1).live.Load() != kept {
		t.Fatalf("node 2's connection to node 1 flapped: connects %d -> %d", before.Connects, after.Connects)
	}
	if k := after.Peers[1].Closes[CloseDuplicateNode]; k > 3 {
		t.Fatalf("%d refusals in 1.5s: the duplicate does not back off", k)
	}
	if !n1.Stats().Peers[2].Up {
		t.Fatal("the first node 1 lost its connection")
	}
	var named bool
	for _, r := range logs2.records() {
		named = named || (r.level == slog.LevelError && r.attrs["reason"] == CloseDuplicateNode.String() &&
			r.attrs["addr"] != kept.remote && r.attrs["kept"] == kept.remote)
	}
	if !named {
		t.Fatalf("node 2 logged no Error naming the duplicate's address: %+v", logs2.records())
	}
	var told bool
	for _, r := range logsDup.records() {
		told = told || (r.level == slog.LevelError && r.attrs["reason"] == CloseDuplicateNode.String())
	}
	if !told {
		t.Fatalf("the duplicate logged no Error: %+v", logsDup.records())
	}

	// When the first process goes, the other takes its place.
	tc.kill(1)
	checkFor(t, testTimeout, func() error {
		return unless(n2.Stats().Peers[1].Up && dup.Stats().Peers[2].Up, "the remaining node 1 is not connected to node 2")
	})
}

// Bug: when the handshake limit was reached, a new connection could evict
// one whose handshake had completed and which was already handed to its
// peer: an established connection died. Node 2 here has room for one
// handshake, and right after each hand-over a new connection arrives that
// evicts the oldest handshake, however young: the connection that is up
// must not be it.
func TestHandshakeEvictionSparesConnectionsUp(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, nil)
	n2 := tc.make(2, lns[2])
	n2.cl.handshakes.limit = 1
	n2.cl.testHookHandedOver = func() {
		a, b := net.Pipe()
		defer b.Close()
		if n2.cl.handshakes.admit(a, 0) {
			n2.cl.handshakes.finish(a)
		}
		_ = a.Close()
	}
	tc.serve(2, n2, nil)
	tc.start(1, lns[1])
	tc.connected()
	n1 := tc.node(1)
	watch := time.Now().Add(300 * time.Millisecond) // 3 heartbeat intervals
	checkFor(t, testTimeout, func() error {
		if s := n2.Stats().Peers[1]; s.Connects != 1 || len(s.Closes) != 0 {
			return fmt.Errorf("node 2's connection to node 1 did not stay up: %+v", s)
		}
		return unless(time.Now().After(watch), "watching the connection")
	})
	if s := n2.Stats().Peers[1]; s.Connects != 1 || len(s.Closes) != 0 || !n1.Stats().Peers[2].Up {
		t.Fatalf("node 2's connection to node 1 did not stay up: %+v", s)
	}
}

// Every close reason has a name (a reason appended without one would log
// as "unknown"), and the names are distinct.
func TestCloseReasonNames(t *testing.T) {
	seen := map[string]CloseReason{}
	for r := CloseReason(0); r < numCloseReasons; r++ {
		name := r.String()
		if name == "" || (r != CloseUnknown && name == CloseUnknown.String()) {
			t.Fatalf("close reason %d has no name", r)
		}
		if other, dup := seen[name]; dup {
			t.Fatalf("close reasons %d and %d are both %q", other, r, name)
		}
		seen[name] = r
		if v := r.LogValue(); v.String() != name {
			t.Fatalf("LogValue of %q is %q", name, v)
		}
	}
	if s := numCloseReasons.String(); s != "closereason("+itoa(int(numCloseReasons))+")" {
		t.Fatalf("an unknown reason is %q", s)
	}
}
