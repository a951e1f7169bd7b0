// Command ch3 runs OTP's channel allocator, ch3, under its supervisor,
// ch_sup, ported to Go with reign's gen package: the server on one node,
// a client on another, each its own OS process.
//
//	reign_init -nodes 2          # certificates and reign_cluster.json
//	ch3 server 1 &               # node 1: ch_sup and ch3
//	ch3 client 2                 # node 2: allocates every channel, and one more
//
// The client allocates channels 1 to 100 and frees one; the next alloc
// gets it back. Then it allocates one channel too many: ch3 crashes (there
// is no free channel to take), its call fails at once with the crash,
// ch_sup restarts ch3 with every channel free, and the client, calling
// again meanwhile, gets channel 1 again. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/reign-go/reign"
	"github.com/thejerf/suture/v4"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: ch3 [-config FILE] server|client ID

  server ID   run node ID with ch_sup supervising ch3, until interrupted
  client ID   run node ID as a client of ch3, then exit

FILE is a cluster spec (default reign_cluster.json, as reign_init writes).
`

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ch3", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	config := fs.String("config", "reign_cluster.json", "the cluster spec")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := strconv.ParseUint(fs.Arg(1), 10, 16)
	if fs.NArg() != 2 || err != nil || (fs.Arg(0) != "server" && fs.Arg(0) != "client") {
		fs.Usage()
		return 2
	}
	spec, err := reign.LoadClusterSpec(*config)
	if err != nil {
		fmt.Fprintln(stderr, "ch3:", err)
		return 1
	}
	node, err := reign.NewNode(reign.Config{NodeID: reign.NodeID(id), Cluster: spec})
	if err == nil {
		err = node.RegisterType(messageTypes...)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ch3:", err)
		return 1
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	if fs.Arg(0) == "server" {
		err = server(ctx, node, say)
	} else {
		err = client(ctx, node, say)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ch3:", err)
		return 1
	}
	return 0
}

// server runs the node and ch_sup until ctx ends.
func server(ctx context.Context, node *reign.Node, say func(string, ...any)) error {
	// the supervisors' events (Erlang's SASL reports) go to stdout
	app := suture.New("app", suture.Spec{EventHook: func(e suture.Event) { say("supervisor: %v", e) }})
	app.Add(node)
	app.Add(chSup(node))
	say("server: node %d serving ch_sup", node.ID())
	err := app.Serve(ctx)
	if errors.Is(err, context.Canceled) {
		say("server: stopped")
		return nil
	}
	return err
}

// client runs the node in the background and uses ch3 through its API.
func client(ctx context.Context, node *reign.Node, say func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- node.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	for { // until the registry reaches this node
		if a, ok := node.Lookup("ch3"); ok {
			say("client: ch3 is %v, on node %d", a, a.NodeID())
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ch3 is not registered: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	var got []int
	for len(got) < 100 {
		ch, err := alloc(ctx, node)
		if err != nil {
			return fmt.Errorf("alloc: %w", err)
		}
		got = append(got, ch)
	}
	say("client: alloc x100 -> %d..%d", got[0], got[99])
	if err := free(node, 42); err != nil {
		return err
	}
	say("client: free(42)")
	ch, err := alloc(ctx, node)
	say("client: alloc -> %v, %v", ch, err)

	_, err = alloc(ctx, node) // the 101st: no channel left
	say("client: alloc -> error: %v", err)
	if !errors.Is(err, reign.ErrMailboxClosed) {
		return fmt.Errorf("the 101st alloc: %v, want the server's crash", err)
	}
	say("client: ch3 crashed under the call; calling until ch_sup has restarted it")
	for failed := 1; ; failed++ {
		ch, err := alloc(ctx, node)
		if err == nil {
			say("client: alloc -> %d, after %d failed calls: ch3 restarted with every channel free", ch, failed)
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // each failure is immediate: pace the retries
	}
}
