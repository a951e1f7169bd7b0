package reign

import (
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
)

// A test binary started with memberChildEnv set is a child node with
// membership for the multi-process membership test: it runs node
// memberChildIDEnv of the spec at memberChildEnv, joins through
// memberChildJoinEnv, registers an echo mailbox as "echo-<id>", and leaves
// the cluster when its standard input closes.
const (
	memberChildEnv     = "REIGN_TEST_MEMBER_SPEC"
	memberChildIDEnv   = "REIGN_TEST_MEMBER_ID"
	memberChildJoinEnv = "REIGN_TEST_MEMBER_JOIN"
)

func init() {
	if path := os.Getenv(memberChildEnv); path != "" {
		join := os.Getenv(memberChildJoinEnv)
		os.Exit(runChildNode(path, os.Getenv(memberChildIDEnv), &join))
	}
}

// memberChild is a child node process.
type memberChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// startMemberChild starts node id as a separate process, its spec listing
// only itself, joining through join.
func startMemberChild(t *testing.T, id NodeID, join string) *memberChild {
	t.Helper()
	dir, err := certDir()
	if err != nil {
		t.Fatal(err)
	}
	specJSON, _ := json.Marshal(map[string]any{
		"nodes":             []map[string]any{{"id": id, "address": freePorts(t, 1)[0]}},
		"cluster_cert_path": filepath.Join(dir, certs.CACertFile),
		"node_cert_path":    filepath.Join(dir, "reign_node.%d.crt"),
		"node_key_path":     filepath.Join(dir, "reign_node.%d.key"),
	})
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, specJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberChildEnv+"="+path, fmt.Sprintf("%s=%d", memberChildIDEnv, id), memberChildJoinEnv+"="+join)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &memberChild{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// TestMembershipProcesses runs nodes 2 and 3 as separate OS processes
// that know only node 1's address: they join, a message crosses, node 3
// leaves gracefully (its process ends when its stdin closes) and node 2
// is killed with SIGKILL: its links fire NoConnection at once, and
// membership drops both from node 1's peer table.
func TestMembershipProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	n1 := startMember(t, 1, nil)
	c2 := startMemberChild(t, 2, n1.addr)
	c3 := startMemberChild(t, 3, n1.addr)
	var echo2 Address
	checkFor(t, 20*time.Second, func() error {
		if err := members(3, n1); err != nil {
			return err
		}
		var ok bool
		echo2, ok = n1.Lookup("echo-2")
		if !ok {
			return errors.New("node 1 has not learned echo-2")
		}
		_, ok = n1.Lookup("echo-3")
		return unless(ok, "node 1 has not learned echo-3")
	})
	me, mb := n1.NewMailbox()
	for i := range 100 {
		if err := echo2.Send(testMsg{Seq: i, From: me}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if m := recv(t, mb).(testMsg); m.Seq != i || m.From != echo2 {
			t.Fatalf("got %+v", m)
		}
	}

	// graceful leave
	left := time.Now()
	_ = c3.stdin.Close()
	checkFor(t, 10*time.Second, func() error {
		if err := members(2, n1); err != nil {
			return err
		}
		return unless(!hasPeer(n1, 3), "node 1 still has peer 3")
	})
	<-c3.done
	if code := c3.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("node 3 exited with %d", code)
	}
	t.Logf("leave seen in %v", time.Since(left))

	// kill -9: the link fires at once, membership drops the node
	w, wmb := n1.NewMailbox()
	echo2.OnCloseNotify(w)
	// the Link precedes this message on the one connection
	if err := echo2.Send(testMsg{Seq: -1, From: me}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, mb).(testMsg); m.Seq != -1 {
		t.Fatalf("got %+v", m)
	}
	killed := time.Now()
	if err := c2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	mc := recv(t, wmb).(MailboxClosed)
	if mc.Address != echo2 || mc.Reason != NoConnection {
		t.Fatalf("got %+v", mc)
	}
	t.Logf("link fired %v after kill -9", time.Since(killed))
	checkFor(t, 10*time.Second, func() error {
		if err := members(1, n1); err != nil {
			return err
		}
		return unless(!hasPeer(n1, 2), "node 1 still has peer 2")
	})
	t.Logf("failure declared in %v", time.Since(killed))
}
