package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
)

// The registry names of the child node's mailboxes.
const (
	sinkName = "reign_bench.sink"
	echoName = "reign_bench.echo"
)

// specFile is the cluster spec the bench writes next to the certificates.
const specFile = "reign_bench_cluster.json"

// childListenerFD is the descriptor of the child's listener: the parent
// listens on both ports and hands the child its socket (no port race).
// childRawFD is the child's listener for the raw TLS echo.
const (
	childListenerFD = 3
	childRawFD      = 4
)

// rawRecord is the size of the record of the raw TLS ping-pong: about a
// reign frame carrying a Msg.
const rawRecord = 64

// testHookChildStarted, if set, is told the child's process ID (tests check
// that it is gone afterwards).
var testHookChildStarted func(pid int)

// remote is node 1 in this process, connected over mutual TLS to node 2 in
// a child process.
type remote struct {
	dir       string
	cmd       *exec.Cmd
	stdin     io.WriteCloser // closing it asks the child to exit
	exited    chan struct{}  // closed when the child has been waited for
	waitErr   error
	childErr  *lockedBuffer
	node      *reign.Node
	cancel    context.CancelFunc
	served    chan error
	sink      reign.Address
	echo      reign.Address
	raw       *tls.Conn // to the child's raw TLS echo, for the floor of figure 5
	stopOnce  sync.Once
	stopError error
}

// startRemote mints certificates in a temporary folder, starts the child
// (node 2) and node 1, and waits until node 1 sees the child's registry
// names. On error everything started is stopped and removed.
func startRemote(ctx context.Context, childArgs ...string) (r *remote, err error) {
	r = &remote{exited: make(chan struct{}), childErr: &lockedBuffer{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.stop())
		}
	}()
	if r.dir, err = os.MkdirTemp("", "reign_bench-"); err != nil {
		return r, err
	}
	if _, err = certs.WriteSet(r.dir, 2, certs.SetOptions{}); err != nil {
		return r, fmt.Errorf("minting certificates: %w", err)
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln1.Close()
		return r, err
	}
	lf, err := ln2.(*net.TCPListener).File()
	ln2.Close() // the child's copy, lf, stays open
	if err != nil {
		ln1.Close()
		return r, err
	}
	defer lf.Close()
	ln3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln1.Close()
		return r, err
	}
	rawAddr := ln3.Addr().String()
	rf, err := ln3.(*net.TCPListener).File()
	ln3.Close()
	if err != nil {
		ln1.Close()
		return r, err
	}
	defer rf.Close()

	spec := map[string]any{
		"nodes": []map[string]any{
			{"id": 1, "address": ln1.Addr().String()},
			{"id": 2, "address": ln2.Addr().String()},
		},
		"node_key_path":     "reign_node.%d.key",
		"node_cert_path":    "reign_node.%d.crt",
		"cluster_cert_path": certs.CACertFile,
	}
	specPath := filepath.Join(r.dir, specFile)
	data, _ := json.MarshalIndent(spec, "", "  ")
	if err = os.WriteFile(specPath, data, 0o600); err != nil {
		ln1.Close()
		return r, err
	}
	cs, err := reign.LoadClusterSpec(specPath)
	if err != nil {
		ln1.Close()
		return r, err
	}

	exe, err := os.Executable()
	if err != nil {
		ln1.Close()
		return r, err
	}
	args := append([]string{"-" + childNodeFlag, "2", "-" + childSpecFlag, specPath}, childArgs...)
	r.cmd = exec.Command(exe, args...)
	r.cmd.Env = append(os.Environ(), childEnv+"=1")
	r.cmd.ExtraFiles = []*os.File{lf, rf} // descriptors childListenerFD, childRawFD
	r.cmd.Stderr = r.childErr
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		ln1.Close()
		return r, err
	}
	if err = r.cmd.Start(); err != nil {
		ln1.Close()
		r.cmd = nil
		return r, fmt.Errorf("starting the child node: %w", err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	if testHookChildStarted != nil {
		testHookChildStarted(r.cmd.Process.Pid)
	}

	r.node, err = reign.NewNode(reign.Config{NodeID: 1, Cluster: cs, Listener: ln1, Codec: benchCodec})
	if err != nil {
		ln1.Close()
		return r, err
	}
	if err = registerTypes(r.node); err != nil {
		ln1.Close()
		return r, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.served = make(chan error, 1)
	go func() { r.served <- r.node.Serve(sctx) }()

	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var okS, okE bool
		r.sink, okS = r.node.Lookup(sinkName)
		r.echo, okE = r.node.Lookup(echoName)
		if okS && okE {
			r.raw, err = dialRaw(ctx, r.dir, rawAddr)
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-r.exited:
			return r, fmt.Errorf("the child node exited before connecting (%v): %s", r.waitErr, r.childErr.String())
		case err := <-r.served:
			return r, fmt.Errorf("node 1 stopped: %w", err)
		case <-deadline.C:
			return r, fmt.Errorf("node 2 did not connect within 20s: %s", r.childErr.String())
		case <-tick.C:
		}
	}
}

// stop stops node 1, then the child (closing its standard input asks it
// to exit; it is killed if it has not within 3 seconds), waits for it, and
// removes the temporary folder. It may be called more than once.
func (r *remote) stop() error {
	r.stopOnce.Do(func() {
		var errs []error
		if r.raw != nil {
			r.raw.Close()
		}
		if r.cancel != nil {
			r.cancel()
			if err := <-r.served; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("node 1: %w", err))
			}
		}
		if r.cmd != nil {
			r.stdin.Close()
			t := time.NewTimer(3 * time.Second)
			select {
			case <-r.exited:
			case <-t.C:
				_ = r.cmd.Process.Kill()
				<-r.exited
			}
			t.Stop()
		} else if r.stdin != nil {
			r.stdin.Close()
		}
		if r.dir != "" {
			errs = append(errs, os.RemoveAll(r.dir))
		}
		r.stopError = errors.Join(errs...)
	})
	return r.stopError
}

// throughput is figure 4: this process sends small messages to the child's
// sink; the sink counts them from the first to the last and reports.
func (r *remote) throughput(ctx context.Context, count int, d time.Duration, payload []byte) (float64, error) {
	n, err := runCount(count, d, func() (float64, error) {
		return r.throughputN(ctx, calibrateRemote, payload)
	})
	if err != nil {
		return 0, err
	}
	return r.throughputN(ctx, n, payload)
}

func (r *remote) throughputN(ctx context.Context, n int, payload []byte) (float64, error) {
	me, mb := r.node.NewMailbox()
	defer mb.Close()
	if err := r.sink.Send(Begin{N: int64(n), ReplyTo: me}); err != nil {
		return 0, err
	}
	for i := range n {
		if err := r.sink.Send(Msg{Seq: int64(i), Payload: payload}); err != nil {
			return 0, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		v, err := mb.Receive(wctx)
		if err != nil {
			return 0, fmt.Errorf("waiting for the sink's report: %w", err)
		}
		if rep, ok := v.(Report); ok {
			if rep.N != int64(n) {
				return 0, fmt.Errorf("the sink counted %d messages, want %d", rep.N, n)
			}
			return rate(n, time.Duration(rep.Nanos))
		}
	}
}

// pingPong is figure 5: rounds round trips of a Msg to the child's echo
// mailbox.
func (r *remote) pingPong(ctx context.Context, rounds int, payload []byte) (p50, p99 float64, err error) {
	from, mb := r.node.NewMailbox()
	defer mb.Close()
	return pingPong(ctx, rounds, r.echo, mb, msgPing(from, payload))
}

// rawPingPong measures rounds round trips of a rawRecord-byte record over
// the raw TLS connection to the child's echo, after a warm-up: TLS 1.3 with
// the nodes' certificates, one goroutine at each end, no library. It is
// the floor figure 5 is compared with.
func (r *remote) rawPingPong(rounds int) (p50, p99 float64, err error) {
	if err := r.raw.SetDeadline(time.Now().Add(pingPongTimeout)); err != nil {
		return 0, 0, err
	}
	var out, in [rawRecord]byte
	roundTrip := func(seq int64) error {
		binary.LittleEndian.PutUint64(out[:], uint64(seq))
		if _, err := r.raw.Write(out[:]); err != nil {
			return err
		}
		if _, err := io.ReadFull(r.raw, in[:]); err != nil {
			return err
		}
		if in != out {
			return fmt.Errorf("raw TLS echo: round trip %d came back changed", seq)
		}
		return nil
	}
	return timeRoundTrips(rounds, roundTrip)
}

// rawTLSConfig is the TLS configuration of node id for the raw ping-pong,
// from the certificates in dir: TLS 1.3 only, each side verifying the
// other's certificate against the cluster CA, as the nodes do.
func rawTLSConfig(dir string, id uint16) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.NodeCertFile(id)), filepath.Join(dir, certs.NodeKeyFile(id)))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, certs.CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in " + certs.CACertFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// dialRaw connects to the child's raw TLS echo as node 1 and completes
// the handshake.
func dialRaw(ctx context.Context, dir, addr string) (*tls.Conn, error) {
	cfg, err := rawTLSConfig(dir, 1)
	if err != nil {
		return nil, err
	}
	cfg.ServerName = certs.NodeName(2)
	d := tls.Dialer{Config: cfg}
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raw TLS: %w", err)
	}
	return c.(*tls.Conn), nil
}

// rawEcho serves the raw TLS ping-pong on ln, one connection at a time:
// one goroutine reads each rawRecord-byte record and writes it back.
func rawEcho(ln net.Listener, cfg *tls.Config) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, cfg)
		var rec [rawRecord]byte
		for {
			if _, err := io.ReadFull(tc, rec[:]); err != nil {
				break
			}
			if _, err := tc.Write(rec[:]); err != nil {
				break
			}
		}
		tc.Close()
	}
}

// runChild runs node id of the spec at specPath, on the listener inherited
// as descriptor childListenerFD, with the sink and echo mailboxes, until
// its standard input closes or it is interrupted. If cpuProfile is set, it
// writes a CPU profile of its whole run there.
func runChild(id int, specPath, cpuProfile string, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "reign_bench child node %d: %v\n", id, err)
		return 1
	}
	if id < 1 || id > 65535 || specPath == "" {
		return fail(errors.New("needs a node ID and -spec"))
	}
	cs, err := reign.LoadClusterSpec(specPath)
	if err != nil {
		return fail(err)
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fail(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ln, err := inheritedListener(childListenerFD)
	if err != nil {
		return fail(err)
	}
	rawLn, err := inheritedListener(childRawFD)
	if err != nil {
		ln.Close()
		return fail(err)
	}
	defer rawLn.Close()
	rawCfg, err := rawTLSConfig(filepath.Dir(specPath), uint16(id))
	if err != nil {
		ln.Close()
		return fail(err)
	}
	go rawEcho(rawLn, rawCfg) // ends when rawLn closes
	node, err := reign.NewNode(reign.Config{NodeID: reign.NodeID(id), Cluster: cs, Listener: ln, Codec: benchCodec})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	if err := registerTypes(node); err != nil {
		ln.Close()
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// the parent closes our standard input (or dies): time to go
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	sinkAddr, sink := node.NewMailbox()
	echoAddr, echoMb := node.NewMailbox()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); runSink(ctx, sink) }()
	go func() { defer wg.Done(); echo(ctx, echoMb) }()
	defer func() {
		sink.Close()
		echoMb.Close()
		wg.Wait()
	}()
	if err := node.Register(sinkName, sinkAddr); err != nil {
		return fail(err)
	}
	if err := node.Register(echoName, echoAddr); err != nil {
		return fail(err)
	}
	if err := node.Serve(ctx); err != nil && ctx.Err() == nil {
		return fail(err)
	}
	return 0
}

// inheritedListener returns the listener handed over as descriptor fd.
func inheritedListener(fd uintptr) (net.Listener, error) {
	f := os.NewFile(fd, "listener")
	if f == nil {
		return nil, fmt.Errorf("no listener was handed over as descriptor %d", fd)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("the listener handed over as descriptor %d: %w", fd, err)
	}
	return ln, nil
}

// runSink serves throughput runs: after a Begin, it counts N Msgs and
// reports how long from the first to the last.
func runSink(ctx context.Context, mb *reign.Mailbox) {
	for {
		v, err := mb.Receive(ctx)
		if err != nil {
			return
		}
		b, ok := v.(Begin)
		if !ok {
			continue
		}
		var first time.Time
		for i := int64(0); i < b.N; {
			v, err := mb.Receive(ctx)
			if err != nil {
				return
			}
			if _, ok := v.(Msg); !ok {
				continue
			}
			if i == 0 {
				first = time.Now()
			}
			i++
		}
		_ = b.ReplyTo.Send(Report{N: b.N, Nanos: time.Since(first).Nanoseconds()})
	}
}

// lockedBuffer collects the child's standard error.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil // enough to say what went wrong
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
