// Command kitty runs Learn You Some Erlang's kitty_server, in its
// gen_server version, ported to Go with reign's gen package: the shop on
// one node (under a supervisor, so that it comes back when it crashes), a
// customer on another, each its own OS process.
//
//	reign_init -nodes 2          # certificates and reign_cluster.json
//	kitty server 1 &             # node 1: the shop, registered as "kitty"
//	kitty client 2               # node 2: the customer
//
// The customer replays the book's shell session: orders a cat, returns
// it, orders twice (the returned cat comes back first), returns one more.
// Then it casts a dog: no handle_cast clause takes it, the shop crashes
// (the customer's monitor says why) and its supervisor restarts it with an
// empty stock while the customer keeps ordering. Last, close_shop stops
// the shop normally: it sets its cats free, and is not restarted. See
// README.md.
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
	"github.com/reign-go/reign/gen"
	"github.com/thejerf/suture/v4"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: kitty [-config FILE] server|client ID

  server ID   run node ID with the kitty shop, until interrupted
  client ID   run node ID as a customer of the shop, then exit

FILE is a cluster spec (default reign_cluster.json, as reign_init writes).
`

// shop is the server's registered name.
const shop = "kitty"

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kitty", flag.ContinueOnError)
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
		fmt.Fprintln(stderr, "kitty:", err)
		return 1
	}
	node, err := reign.NewNode(reign.Config{NodeID: reign.NodeID(id), Cluster: spec})
	if err == nil {
		err = node.RegisterType(messageTypes...)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kitty:", err)
		return 1
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	if fs.Arg(0) == "server" {
		err = server(ctx, node, say)
	} else {
		err = client(ctx, node, say)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kitty:", err)
		return 1
	}
	return 0
}

// server runs the node and the shop, under one supervisor, until ctx ends.
func server(ctx context.Context, node *reign.Node, say func(string, ...any)) error {
	sup := suture.New("app", suture.Spec{
		EventHook:      func(e suture.Event) { say("supervisor: %v", e) },
		FailureBackoff: 100 * time.Millisecond,
	})
	sup.Add(node)
	sup.Add(gen.New(node, shop, &kitty{say: func(f string, a ...any) { say("shop: "+f, a...) }}))
	say("server: node %d serving the shop", node.ID())
	err := sup.Serve(ctx)
	if errors.Is(err, context.Canceled) {
		say("server: stopped")
		return nil
	}
	return err
}

// client runs the node in the background and replays the book's session.
func client(ctx context.Context, node *reign.Node, say func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- node.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	var srv reign.Address
	for ok := false; !ok; srv, ok = node.Lookup(shop) { // until the registry reaches this node
		select {
		case <-ctx.Done():
			return fmt.Errorf("the shop is not registered: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	say("client: the shop is %v, on node %d", srv, srv.NodeID())
	order := func(name, color, desc string) (Cat, error) {
		cat, err := orderCat(ctx, node, shop, name, color, desc)
		if err == nil {
			say("client: order_cat(%q) -> %+v", name, cat)
		}
		return cat, err
	}
	cat, err := order("Cat Stevens", "white", "not actually a cat")
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { say("client: return_cat(%q)", cat.Name); return returnCat(node, shop, cat) },
		func() error { _, err := order("Kitten Mittens", "black", "look at them little paws!"); return err },
		func() error { _, err := order("Kitten Mittens", "black", "look at them little paws!"); return err },
		func() error { say("client: return_cat(%q)", cat.Name); return returnCat(node, shop, cat) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}

	// The crash: a cast no clause takes. Watch the shop to see it go.
	watcher, mb := node.NewMailbox()
	defer mb.Close()
	srv.OnCloseNotify(watcher)
	say("client: cast the shop \"a dog\", which no handle_cast clause takes")
	if err := gen.Cast(node, shop, "a dog"); err != nil {
		return err
	}
	down, err := mb.Receive(ctx)
	if err != nil {
		return err
	}
	mc := down.(reign.MailboxClosed)
	say("client: the shop went down: %v: %v", mc.Reason, mc.Err)
	for failed := 0; ; failed++ {
		cat, err = order("Garfield", "orange", "lasagna")
		if err == nil {
			say("client: the shop is back after %d failed orders, its stock lost: a new cat, %q", failed, cat.Name)
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // each failure is immediate: pace the retries
	}
	say("client: return_cat(%q)", cat.Name)
	if err := returnCat(node, shop, cat); err != nil {
		return err
	}
	reply, err := closeShop(ctx, node, shop)
	say("client: close_shop() -> %v, %v", reply, err)
	return err
}
