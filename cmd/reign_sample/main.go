// Command reign_sample is a terminal chat node: every line typed into one
// chat node reaches every other running chat node of the cluster, which
// prints it with the sender's node ID.
//
//	reign_sample [-config FILE] [-v] ID
//
// First mint a cluster with reign_init, then start a chat node per
// terminal:
//
//	go run ./cmd/reign_init
//	go run ./cmd/reign_sample 1     (first terminal)
//	go run ./cmd/reign_sample 2     (second terminal)
//
// Nodes that start late or restart join the conversation; "node N joined"
// and "node N left (reason)" say who comes and goes. End of input (Ctrl-D)
// or Ctrl-C leaves cleanly. The chat itself is package chat.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/cmd/reign_sample/chat"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

const usage = `reign_sample is a terminal chat between the nodes of a reign cluster.

usage: reign_sample [-config FILE] [-v] ID

ID is this node's ID in the cluster spec FILE. Every line you type reaches
every other running chat node, which prints it as "[node ID] line".

To try it, in the reign source folder, mint a cluster's certificates and
spec once:
  go run ./cmd/reign_init
then run one chat node per terminal:
  go run ./cmd/reign_sample 1
  go run ./cmd/reign_sample 2
and type into either. Start and stop nodes as you like: "node N joined" and
"node N left" tell you who is there. Ctrl-D (end of input) or Ctrl-C leaves.
For a third node, run "go run ./cmd/reign_init -nodes 3" first.

Flags:
`

// run is reign_sample: it returns the exit code: 0 done, 1 failed, 2 bad
// usage.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reign_sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "reign_cluster.json", "the cluster spec `FILE`, as written by reign_init")
	verbose := fs.Bool("v", false, "log the node's connections (Info level) on standard error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "reign_sample: want one node ID, as in \"reign_sample 1\" (see reign_sample -h)\n")
		return 2
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 16)
	if err != nil || id == 0 {
		fmt.Fprintf(stderr, "reign_sample: the node ID must be a number 1-65535, not %q\n", fs.Arg(0))
		return 2
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	spec, err := reign.LoadClusterSpec(*config)
	if err != nil {
		fmt.Fprintf(stderr, "reign_sample: %v\n", err)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "reign_sample: no cluster yet? Run \"go run ./cmd/reign_init\" first, or pass -config.\n")
		}
		return 1
	}
	node, err := reign.NewNode(reign.Config{NodeID: reign.NodeID(id), Cluster: spec, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "reign_sample: %v\n", err)
		return 1
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(stdout, "node %d: chat started; type a line to send it, Ctrl-D to leave\n", id)
	if err := chat.Run(ctx, node, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "reign_sample: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "node %d: left the chat\n", id)
	return 0
}
