package chat

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
	"github.com/reign-go/reign/internal/faultnet"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transcript is what a chat node writes to its terminal.
type transcript struct {
	mu    sync.Mutex
	text  strings.Builder
	lines []string
	more  chan struct{} // signalled on each write
}

func (tr *transcript) Write(p []byte) (int, error) {
	tr.mu.Lock()
	tr.text.Write(p)
	tr.lines = strings.Split(strings.TrimSuffix(tr.text.String(), "\n"), "\n")
	tr.mu.Unlock()
	select {
	case tr.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (tr *transcript) count(line string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	k := 0
	for _, l := range tr.lines {
		if l == line {
			k++
		}
	}
	return k
}

// chatter is one chat node running Run in this process.
type chatter struct {
	t    *testing.T
	id   reign.NodeID
	in   *io.PipeWriter
	out  *transcript
	done chan error
}

// expect waits until the node has printed line times times.
func (c *chatter) expect(line string, times int) {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for c.out.count(line) < times {
		select {
		case <-c.out.more:
		case <-deadline:
			c.t.Fatalf("node %d printed %q %d times, want %d", c.id, line, c.out.count(line), times)
		}
	}
}

func (c *chatter) say(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// leave ends the node's input and waits for Run to return nil.
func (c *chatter) leave() {
	c.t.Helper()
	c.in.Close()
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("node %d: Run = %v", c.id, err)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d did not leave", c.id)
	}
}

// A partition between two chat nodes heals: each announces the other as
// left, then as joined again, and lines flow again. (Before node events,
// the chat announced a node that came back this way never again.)
func TestChatPartitionHeals(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := &reign.ClusterSpec{
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
	}
	lns := map[reign.NodeID]net.Listener{}
	for id := reign.NodeID(1); id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
	}
	// Node 1 dials node 2 (the lower ID dials) through the proxy.
	proxy, err := faultnet.NewProxy(lns[2].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	spec.Nodes = []reign.NodeSpec{{ID: 1, Address: lns[1].Addr().String()}, {ID: 2, Address: proxy.Addr()}}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chatters := map[reign.NodeID]*chatter{}
	for id := reign.NodeID(1); id <= 2; id++ {
		node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: lns[id],
			HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		c := &chatter{t: t, id: id, in: pw, out: &transcript{more: make(chan struct{}, 1)}, done: make(chan error, 1)}
		go func() { c.done <- Run(ctx, node, pr, c.out) }()
		chatters[id] = c
		defer func() {
			pw.Close()
			if t.Failed() {
				c.out.mu.Lock()
				t.Logf("node %d printed:\n%s", id, c.out.text.String())
				c.out.mu.Unlock()
			}
		}()
	}
	c1, c2 := chatters[1], chatters[2]
	c1.expect("node 2 joined", 1)
	c2.expect("node 1 joined", 1)

	proxy.Refuse(true)
	proxy.Cut()
	c1.expect("node 2 left (noconnection)", 1)
	c2.expect("node 1 left (noconnection)", 1)

	proxy.Refuse(false)
	c1.expect("node 2 joined", 2)
	c2.expect("node 1 joined", 2)
	c1.say("after the heal")
	c2.expect("[node 1] after the heal", 1)
	c2.say("welcome back")
	c1.expect("[node 2] welcome back", 1)

	c2.leave()
	c1.expect("node 2 left (normal)", 1)
	c1.leave()
	for _, c := range chatters {
		for _, line := range []string{fmt.Sprintf("node %d joined", 3-c.id)} {
			if k := c.out.count(line); k != 2 {
				t.Errorf("node %d printed %q %d times, want 2", c.id, line, k)
			}
		}
	}
}
