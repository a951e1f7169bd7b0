// Command chatdemo is the one-command demo of reign:
//
//	go run ./examples/chatdemo
//
// It mints a throwaway cluster (a CA and two node certificates) in a
// temporary folder, starts two chat nodes in this process, each with its
// own reign Node talking mutual TLS over 127.0.0.1, types a short
// conversation into them, prints what each node's terminal shows, and
// cleans up. The chat nodes run the same code as cmd/reign_sample (package
// chat); for the interactive version, run
//
//	go run ./cmd/reign_init
//	go run ./cmd/reign_sample 1     (and, in a second terminal)
//	go run ./cmd/reign_sample 2
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/cmd/reign_sample/chat"
	"github.com/reign-go/reign/internal/certs"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "chatdemo: %v\n", err)
		os.Exit(1)
	}
}

// run is the demo; it writes the transcript to out.
func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "reign-chatdemo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		return err
	}
	var mu sync.Mutex // out
	show := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	show("minted a cluster CA and certificates for nodes 1 and 2 in %s", dir)

	// The spec reign_init would write, but on ports free right now.
	spec := &reign.ClusterSpec{
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
	}
	lns := map[reign.NodeID]net.Listener{}
	defer func() {
		for _, ln := range lns {
			ln.Close() // a node closes its own when Serve returns; this is for early errors
		}
	}()
	for id := reign.NodeID(1); id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns[id] = ln
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: id, Address: ln.Addr().String()})
	}
	if err := spec.Validate(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	terms := map[reign.NodeID]*terminal{}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for id := reign.NodeID(1); id <= 2; id++ {
		node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: lns[id]})
		if err != nil {
			return err
		}
		t := newTerminal(id, show)
		terms[id] = t
		show("node %d: chat started on %s", id, lns[id].Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := chat.Run(ctx, node, t.in, t); err != nil {
				errs <- fmt.Errorf("node %d: %w", id, err)
				cancel()
			}
			t.in.Close()
		}()
	}
	defer func() {
		cancel()
		for _, t := range terms {
			t.typeIn.Close()
		}
		wg.Wait()
	}()
	n1, n2 := terms[1], terms[2]

	script := []func() error{
		func() error { return n1.expect(ctx, "node 2 joined") },
		func() error { return n2.expect(ctx, "node 1 joined") },
		func() error { return n1.say("hello node 2, this is node 1") },
		func() error { return n2.expect(ctx, "[node 1] hello node 2, this is node 1") },
		func() error { return n2.say("hi node 1, reign works!") },
		func() error { return n1.expect(ctx, "[node 2] hi node 1, reign works!") },
		func() error { return n1.say("bye for now") },
		func() error { return n2.expect(ctx, "[node 1] bye for now") },
		func() error { return n2.leave() },
		func() error { return n1.expect(ctx, "node 2 left (normal)") },
		func() error { return n1.leave() },
	}
	for _, step := range script {
		if err := step(); err != nil {
			select {
			case err2 := <-errs:
				return err2
			default:
			}
			return err
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	show("both nodes left; removing %s", dir)
	return nil
}

// terminal stands in for one chat node's terminal: what the script types
// goes to the node's input, and what the node prints is shown, prefixed
// with the node's ID, and kept so the script can wait for it.
type terminal struct {
	id     reign.NodeID
	show   func(string, ...any)
	in     *io.PipeReader
	typeIn *io.PipeWriter

	mu      sync.Mutex
	partial []byte
	lines   []string
	more    chan struct{}
}

func newTerminal(id reign.NodeID, show func(string, ...any)) *terminal {
	r, w := io.Pipe()
	return &terminal{id: id, show: show, in: r, typeIn: w, more: make(chan struct{}, 1)}
}

// Write receives what the node prints.
func (t *terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := string(t.partial[:i])
		t.partial = t.partial[i+1:]
		t.lines = append(t.lines, line)
		t.show("node %d | %s", t.id, line)
	}
	t.mu.Unlock()
	select {
	case t.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

// say types a line into the node.
func (t *terminal) say(line string) error {
	t.show("node %d > %s", t.id, line)
	_, err := io.WriteString(t.typeIn, line+"\n")
	return err
}

// leave ends the node's input, as Ctrl-D does.
func (t *terminal) leave() error {
	t.show("node %d > (Ctrl-D)", t.id)
	return t.typeIn.Close()
}

// expect waits until the node has printed want.
func (t *terminal) expect(ctx context.Context, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		t.mu.Lock()
		for _, l := range t.lines {
			if l == want {
				t.mu.Unlock()
				return nil
			}
		}
		seen := strings.Join(t.lines, "\n")
		t.mu.Unlock()
		select {
		case <-t.more:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("node %d did not show %q in time; it showed:\n%s", t.id, want, seen)
			}
			return ctx.Err()
		}
	}
}
