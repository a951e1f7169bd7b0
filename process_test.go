package reign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"github.com/reign-go/reign/internal/proctest"
)

// A test binary started with these variables set is a child node for the
// multi-process tests: it runs one node of the spec, registers an echo
// mailbox as "echo", and exits when its standard input closes. (The
// membership tests start the same child with membership on: see
// membership_process_test.go.)
const (
	childSpecEnv = "REIGN_TEST_CHILD_SPEC"
	childIDEnv   = "REIGN_TEST_CHILD_ID"
)

func init() {
	if path := os.Getenv(childSpecEnv); path != "" {
		os.Exit(runChildNode(path, os.Getenv(childIDEnv), nil))
	}
}

// runChildNode runs the child node. With join non-nil it runs with
// membership, joining through *join, logs to stderr, and names its echo
// mailbox "echo-<id>".
func runChildNode(specPath, idText string, join *string) int {
	var id NodeID
	if _, err := fmt.Sscan(idText, &id); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad id:", err)
		return 2
	}
	spec, err := LoadClusterSpec(specPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	cfg := Config{NodeID: id, Cluster: spec, HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second}
	name := "echo"
	if join != nil {
		cfg.Membership, cfg.Logger = fastMembership(*join), testLogger(id)
		name = fmt.Sprintf("echo-%d", id)
	}
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	if err := n.RegisterType(testMsg{}); err != nil {
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent going away ends the child
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	echo, mb := n.NewMailbox()
	if err := n.Register(name, echo); err != nil {
		return 2
	}
	go func() {
		for {
			v, err := mb.Receive(ctx)
			if err != nil {
				return
			}
			switch m := v.(type) {
			case testMsg:
				_ = m.From.Send(testMsg{Seq: m.Seq, Text: m.Text, From: echo})
			case Request:
				_ = m.Reply(m.Body)
			}
		}
	}()
	if err := n.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// freePorts returns n distinct 127.0.0.1 addresses that were free a moment
// ago (for specs that another process must listen on): proctest's, which
// keeps out of the ephemeral port range.
func freePorts(t *testing.T, n int) []string { return proctest.FreeAddrs(t, n) }

// startChild starts the test binary as node id of the spec at path.
func startChild(t *testing.T, path string, id NodeID) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childSpecEnv+"="+path, fmt.Sprintf("%s=%d", childIDEnv, id))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// TestTwoProcesses runs node 2 as a separate OS process: messages and calls
// cross, killing the process fires links at once (connection reset), and a
// restarted process is a new incarnation whose names are resynchronized.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	addrs := freePorts(t, 2)
	specJSON, _ := json.Marshal(map[string]any{
		"nodes":             []map[string]any{{"id": 1, "address": addrs[0]}, {"id": 2, "address": addrs[1]}},
		"cluster_cert_path": filepath.Join(dir, certs.CACertFile),
		"node_cert_path":    filepath.Join(dir, "reign_node.%d.crt"),
		"node_key_path":     filepath.Join(dir, "reign_node.%d.key"),
	})
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, specJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadClusterSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := NewNode(Config{NodeID: 1, Cluster: spec, HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.RegisterType(testMsg{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = n1.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })

	child := startChild(t, path, 2)
	var echo Address
	checkFor(t, 20*time.Second, func() error {
		var ok bool
		echo, ok = n1.Lookup("echo")
		return unless(ok, "ok")
	})
	me, mb := n1.NewMailbox()
	for i := 0; i < 1000; i++ {
		if err := echo.Send(testMsg{Seq: i, From: me, Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000; i++ {
		if m := recv(t, mb).(testMsg); m.Seq != i || m.From != echo {
			t.Fatalf("got %+v", m)
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if v, err := Call(cctx, echo, "across"); err != nil || v != "across" {
		t.Fatalf("call: %v %v", v, err)
	}

	// kill -9: the connection resets and the link fires at once
	w, wmb := n1.NewMailbox()
	echo.OnCloseNotify(w)
	// the Link frame reaches the child before this call's request (one
	// connection, in order), so once the call is answered it is in place
	if _, err := Call(cctx, echo, "after the link"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	mc := recv(t, wmb).(MailboxClosed)
	if mc.Address != echo || mc.Reason != NoConnection {
		t.Fatalf("got %+v", mc)
	}
	t.Logf("link fired %v after kill -9", time.Since(killed))
	if time.Since(killed) > time.Second {
		t.Errorf("a dead process was noticed only after %v", time.Since(killed))
	}

	// a restarted node is a new incarnation; its name comes back
	startChild(t, path, 2)
	var echo2 Address
	checkFor(t, 20*time.Second, func() error {
		var ok bool
		echo2, ok = n1.Lookup("echo")
		return unless(ok && echo2 != echo, "ok && echo2 != echo")
	})
	if err := echo.Send(testMsg{Seq: -1, From: me}); err != nil {
		t.Fatal(err) // dropped, as sends to remote closed mailboxes are
	}
	if err := echo2.Send(testMsg{Seq: 7, From: me}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, mb).(testMsg); m.Seq != 7 {
		t.Fatalf("got %+v: the old address reached the new run", m)
	}
	if n1.Stats().DroppedStale == 0 {
		t.Error("the send to the old incarnation was not counted")
	}
}
