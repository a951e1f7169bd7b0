// Package proctest runs a program's run function as separate OS processes
// in its tests: the test binary re-executes itself with the program's
// arguments in an environment variable. The examples' multi-process tests
// share it, so each test file holds only what its program does.
package proctest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"go.uber.org/goleak"
)

// argsEnv, when set, makes the test binary the program, with these
// arguments (tab-separated).
const argsEnv = "REIGN_PROCTEST_ARGS"

// Main is a test binary's TestMain: as a child process it runs run with
// the arguments it was started with (closing its standard input cancels
// run's context) and exits with run's code; otherwise it runs the tests
// under goleak.
func Main(m *testing.M, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	if args, ok := os.LookupEnv(argsEnv); ok {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // the test closing our stdin is our interrupt
			_, _ = os.Stdin.Read(make([]byte, 1))
			cancel()
		}()
		os.Exit(run(ctx, strings.Split(args, "\t"), os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// MainStdin is Main for a program that reads its standard input: as a
// child process it runs run with what the test writes with
// Process.Input as stdin; Process.Stop ends that input and cancels run's
// context together.
func MainStdin(m *testing.M, run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int) {
	if args, ok := os.LookupEnv(argsEnv); ok {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, os.Stdin)
			pw.CloseWithError(err) // nil: EOF
			cancel()
		}()
		os.Exit(run(ctx, strings.Split(args, "\t"), pr, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// WriteSpec writes a CA, certificates and a cluster spec for nodes 1..n on
// free 127.0.0.1 ports into a temporary folder, and returns the spec's
// path.
func WriteSpec(t testing.TB, n int) string {
	t.Helper()
	dir := WriteCerts(t, n)
	var nodes []map[string]any
	for i, addr := range FreeAddrs(t, n) {
		nodes = append(nodes, map[string]any{"id": i + 1, "address": addr})
	}
	spec, _ := json.Marshal(map[string]any{
		"nodes":             nodes,
		"cluster_cert_path": filepath.Join(dir, certs.CACertFile),
		"node_cert_path":    filepath.Join(dir, "reign_node.%d.crt"),
		"node_key_path":     filepath.Join(dir, "reign_node.%d.key"),
	})
	path := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteCerts writes a CA and certificates for nodes 1..n into a temporary
// folder, with the file names reign_init uses (reign_ca.crt,
// reign_node.<id>.crt and .key), and returns the folder.
func WriteCerts(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, n, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// FreeAddrs returns n distinct 127.0.0.1 host:port addresses that were
// free a moment ago. The ports are picked below the kernel's ephemeral
// range where it leaves room (Linux: /proc/sys/net/ipv4/ip_local_port_range),
// so that no outgoing connection of this or another test can take one
// between FreeAddrs and the child's bind (a port from :0 is an ephemeral
// one, and was seen taken so, failing the child's listen).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	lo, hi := 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if eph, err := strconv.Atoi(f[0]); err == nil && eph < hi {
				hi = eph
			}
		}
	}
	var addrs []string
	var lns []net.Listener // held together, so the ports differ
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(addrs) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi-lo >= 1000 && tries < 100*n {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo)))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				t.Fatal(err)
			}
			continue // taken: try another
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// A Process is the program running as a child process.
type Process struct {
	cmd   *exec.Cmd
	out   syncBuffer
	stdin io.WriteCloser
	done  chan error
}

// Start starts the program with args as a child process. The test's
// cleanup stops it (and kills it if it has not exited 10 s later).
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	p := &Process{done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), argsEnv+"="+strings.Join(args, "\t"))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.Stop()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Stop closes the process's standard input: the program's context ends.
func (p *Process) Stop() { _ = p.stdin.Close() }

// Input writes line and a newline to the process's standard input (see
// MainStdin); the test fails if it cannot.
func (p *Process) Input(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("input %q: %v", line, err)
	}
}

// Kill kills the process at once (SIGKILL), as kill -9 does.
func (p *Process) Kill() { _ = p.cmd.Process.Kill() }

// Output is what the process has written so far to stdout and stderr.
func (p *Process) Output() string { return p.out.String() }

// Wait waits up to timeout for the process to exit and returns its error;
// the test fails, showing the output, if it does not exit in time.
func (p *Process) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; output:\n%s", timeout, p.Output())
		return nil
	}
}

// WaitFor polls the process's output for up to timeout until it contains
// want; the test fails, showing the output, if it does not.
func (p *Process) WaitFor(t testing.TB, timeout time.Duration, want string) {
	t.Helper()
	p.WaitForSince(t, timeout, 0, want)
}

// Mark is how much the process has written so far: WaitForSince(mark)
// then looks only at what it writes after this point.
func (p *Process) Mark() int { return len(p.Output()) }

// WaitForSince is WaitFor looking only at the output after mark (from
// Mark), for a line the process has already written once.
func (p *Process) WaitForSince(t testing.TB, timeout time.Duration, mark int, want string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(p.Output()[mark:], want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within %v:\n%s", want, timeout, p.Output())
		}
	}
}

// InOrder fails the test unless each of want appears in out, in this
// order; what names out in the failure.
func InOrder(t testing.TB, what, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%s lacks %q after the earlier lines:\n%s", what, w, out)
		}
		rest = rest[i+len(w):]
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitForMatch polls the process's output after mark (from Mark) for up
// to timeout until re matches it, and returns the first match and its
// submatches; the test fails, showing the output, if re never matches.
func (p *Process) WaitForMatch(t testing.TB, timeout time.Duration, mark int, re *regexp.Regexp) []string {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.Output()[mark:]); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no match of %q in the output within %v:\n%s", re, timeout, p.Output())
		}
	}
}

// AddNode mints node id's certificate and key from the CA already in dir
// (from WriteCerts), as reign_init -add-node does: a running cluster of
// that CA accepts the node without a restart.
func AddNode(t testing.TB, dir string, id uint16) {
	t.Helper()
	if _, err := certs.WriteNodes(dir, []uint16{id}, certs.SetOptions{RequireCA: true}); err != nil {
		t.Fatal(err)
	}
}

// WriteSpecIn writes into dir (from WriteCerts) the cluster spec file
// name, naming the nodes of addrs (node ID to address) with dir's
// certificates, and returns its path: with dynamic membership, each node
// may have a spec of its own naming only some of the cluster.
func WriteSpecIn(t testing.TB, dir, name string, addrs map[int]string) string {
	t.Helper()
	var nodes []map[string]any
	for id, addr := range addrs {
		nodes = append(nodes, map[string]any{"id": id, "address": addr})
	}
	spec, _ := json.Marshal(map[string]any{
		"nodes":             nodes,
		"cluster_cert_path": filepath.Join(dir, certs.CACertFile),
		"node_cert_path":    filepath.Join(dir, "reign_node.%d.crt"),
		"node_key_path":     filepath.Join(dir, "reign_node.%d.key"),
	})
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
