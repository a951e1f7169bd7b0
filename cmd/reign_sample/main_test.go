package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// The tests run the real binary: one process per chat node, talking over
// mutual TLS on 127.0.0.1, typed into through a pipe.

var binary = sync.OnceValues(func() (string, error) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "reign_sample-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "reign_sample")
	out, err := exec.Command(gotool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := binary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func build(t *testing.T) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Skipf("cannot build reign_sample: %v", err)
	}
	return bin
}

// mintCluster writes a cluster of size nodes into a temp folder, with
// ports that are free now on 127.0.0.1, and returns its spec file.
func mintCluster(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, size, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	type node struct {
		ID      int    `json:"id"`
		Address string `json:"address"`
	}
	spec := struct {
		Nodes           []node `json:"nodes"`
		NodeKeyPath     string `json:"node_key_path"`
		NodeCertPath    string `json:"node_cert_path"`
		ClusterCertPath string `json:"cluster_cert_path"`
	}{NodeKeyPath: "reign_node.%d.key", NodeCertPath: "reign_node.%d.crt", ClusterCertPath: certs.CACertFile}
	var lns []net.Listener
	for id := 1; id <= size; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		spec.Nodes = append(spec.Nodes, node{ID: id, Address: ln.Addr().String()})
	}
	for _, ln := range lns {
		ln.Close()
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, certs.SpecFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// chatNode is a running reign_sample process.
type chatNode struct {
	t      *testing.T
	id     int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed

	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled on each new line
}

func start(t *testing.T, spec string, id int, flags ...string) *chatNode {
	t.Helper()
	c := &chatNode{t: t, id: id, exited: make(chan struct{}), more: make(chan struct{}, 1)}
	c.cmd = exec.Command(build(t), append(append([]string{"-config", spec}, flags...), fmt.Sprint(id))...)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("node %d output:\n%s\nstderr:\n%s", id, strings.Join(c.output(), "\n"), c.stderr.String())
		}
	})
	return c
}

func (c *chatNode) output() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// expect waits until the node has printed a line equal to want.
func (c *chatNode) expect(want string) {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, l := range c.output() {
			if l == want {
				return
			}
		}
		select {
		case <-c.more:
		case <-deadline:
			c.t.Fatalf("node %d did not print %q; it printed:\n%s", c.id, want, strings.Join(c.output(), "\n"))
		}
	}
}

func (c *chatNode) say(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("typing into node %d: %v", c.id, err)
	}
}

// exitCode closes the node's input and returns its exit code.
func (c *chatNode) exitCode() int {
	c.t.Helper()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d did not exit after its input closed", c.id)
	}
	return c.cmd.ProcessState.ExitCode()
}

func TestChat(t *testing.T) {
	t.Parallel()
	spec := mintCluster(t, 3)
	n1, n2 := start(t, spec, 1), start(t, spec, 2)
	n1.expect("node 2 joined")
	n2.expect("node 1 joined")

	n1.say("hello from one")
	n2.expect("[node 1] hello from one")
	n2.say("hi from two")
	n1.expect("[node 2] hi from two")

	// A late joiner gets the lines typed after it joined.
	n3 := start(t, spec, 3)
	n3.expect("node 1 joined")
	n3.expect("node 2 joined")
	n1.expect("node 3 joined")
	n2.expect("node 3 joined")
	n1.say("welcome three")
	n2.expect("[node 1] welcome three")
	n3.expect("[node 1] welcome three")
	n3.say("thanks")
	n1.expect("[node 3] thanks")
	n2.expect("[node 3] thanks")

	// A killed node is announced as left, by the others.
	if err := n2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n1.expect("node 2 left (noconnection)")
	n3.expect("node 2 left (noconnection)")

	// ... and comes back with a new incarnation.
	n2 = start(t, spec, 2)
	n1.expect("node 2 joined")
	n2.expect("node 1 joined")
	n2.expect("node 3 joined")
	n2.say("back again")
	n1.expect("[node 2] back again")
	n3.expect("[node 2] back again")

	// End of input leaves cleanly, and the others see it.
	if code := n3.exitCode(); code != 0 {
		t.Fatalf("node 3 exit code %d, want 0; stderr:\n%s", code, n3.stderr.String())
	}
	n3.expect("node 3: left the chat")
	n1.expect("node 3 left (normal)")
	n2.expect("node 3 left (normal)")
	for _, n := range []*chatNode{n1, n2} {
		if code := n.exitCode(); code != 0 {
			t.Fatalf("node %d exit code %d, want 0", n.id, code)
		}
	}
	// Node 2's loss made node 1 log warnings (a lost connection, failed
	// redials), none of which may reach the terminal.
	if strings.Contains(n1.stderr.String(), "level=WARN") {
		t.Errorf("warnings on standard error, in the middle of the conversation:\n%s", n1.stderr.String())
	}
}

func TestChatAlone(t *testing.T) {
	t.Parallel()
	spec := mintCluster(t, 2)
	logFile := filepath.Join(t.TempDir(), "node1.log")
	n1 := start(t, spec, 1, "-v", "-log", logFile)
	n1.expect("node 1: chat started; type a line to send it, Ctrl-D to leave")
	n1.say("anyone?")
	n1.expect("(no other chat node is here yet: nobody got that)")
	if code := n1.exitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	// -log -v: everything in the file, nothing on standard error.
	if log, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(log), "level=INFO msg=\"node serving\"") {
		t.Errorf("log file (%v):\n%s", err, log)
	}
	if s := n1.stderr.String(); s != "" {
		t.Errorf("standard error with -log:\n%s", s)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"-h"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("-h: exit code %d, want 0", code)
	}
	for _, want := range []string{"go run ./cmd/reign_init", "go build -o reign_sample ./cmd/reign_sample", "./reign_sample 1", "./reign_sample 2", "-config", "-log", "kill -9"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, errOut.String())
		}
	}
	for _, args := range [][]string{{}, {"x"}, {"65536"}, {"1", "2"}, {"-nope", "1"}} {
		errOut.Reset()
		if code := run(args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%q: exit code %d, want 2", args, code)
		}
	}
	errOut.Reset()
	if code := run([]string{"-config", filepath.Join(t.TempDir(), "none.json"), "1"}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Errorf("missing spec: exit code %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "reign_init") {
		t.Errorf("missing spec: the error does not point to reign_init:\n%s", errOut.String())
	}
}
