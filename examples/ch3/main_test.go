package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"go.uber.org/goleak"
)

// mainArgsEnv, when set, makes the test binary the ch3 program with these
// arguments (tab-separated): the test runs server and client as separate
// OS processes.
const mainArgsEnv = "CH3_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // the test closing our stdin is our interrupt
			_, _ = os.Stdin.Read(make([]byte, 1))
			cancel()
		}()
		os.Exit(run(ctx, strings.Split(args, "\t"), os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// testSpec writes certificates and a cluster spec for nodes 1 and 2 on
// free 127.0.0.1 ports, and returns the spec's path.
func testSpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	for id := 1; id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, map[string]any{"id": id, "address": ln.Addr().String()})
		ln.Close()
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

// process is the program running as a child process.
type process struct {
	cmd  *exec.Cmd
	out  syncBuffer
	stop func() // closes its stdin: it stops
	done chan error
}

func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(args, "\t"))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stop = func() { _ = stdin.Close() }
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its error.
func (p *process) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; output:\n%s", timeout, p.out.String())
		return nil
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

// inOrder checks that each of want appears in out, in this order.
func inOrder(t *testing.T, what, out string, want ...string) {
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

// The server on node 1 and the client on node 2, separate processes: the
// client allocates every channel, frees one and gets it back, then crashes
// the server with one alloc too many and keeps calling until ch_sup has
// restarted it.
func TestServerAndClientProcesses(t *testing.T) {
	spec := testSpec(t)
	srv := start(t, "-config", spec, "server", "1")
	cl := start(t, "-config", spec, "client", "2")
	if err := cl.wait(t, 30*time.Second); err != nil {
		t.Fatalf("client: %v\nclient output:\n%s\nserver output:\n%s", err, cl.out.String(), srv.out.String())
	}
	srv.stop()
	if err := srv.wait(t, 10*time.Second); err != nil {
		t.Fatalf("server: %v\n%s", err, srv.out.String())
	}
	t.Logf("client:\n%s\nserver:\n%s", cl.out.String(), srv.out.String())
	inOrder(t, "the client's output", cl.out.String(),
		"client: ch3 is <1.",
		"client: alloc x100 -> 1..100",
		"client: free(42)",
		"client: alloc -> 42, <nil>",
		"client: alloc -> error: reign: mailbox closed: server <1.",
		"client: ch3 crashed under the call",
		"client: alloc -> 1, after ",
	)
	inOrder(t, "the server's output", srv.out.String(),
		"server: node 1 serving ch_sup",
		`supervisor: ch_sup: Failed service 'ch3' (1.000000 failures of 1.000000), restarting: true, error: reign: server "ch3" panicked: runtime error: index out of range [0] with length 0`,
		"server: stopped",
	)
	if testing.Verbose() {
		fmt.Println(cl.out.String())
	}
}
