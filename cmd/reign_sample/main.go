// Command reign_sample is a terminal chat node: every line typed into one
// chat node reaches every other running chat node of the cluster, which
// prints it with the sender's node ID.
//
//	reign_sample [-config FILE] [-v] [-log FILE] ID
//
// First mint a cluster with reign_init and build the sample, then start a
// chat node per terminal:
//
//	go run ./cmd/reign_init
//	go build -o reign_sample ./cmd/reign_sample
//	./reign_sample 1     (first terminal)
//	./reign_sample 2     (second terminal)
//
// Nodes that start late, restart, or come back after the network between
// them heals join the conversation; "node N joined" and "node N left
// (reason)" say who comes and goes (from node events, not by polling). End of input (Ctrl-D)
// or Ctrl-C leaves cleanly. The chat itself is package chat.
//
// Only errors are logged, on standard error, so that the node's log does
// not break into the conversation; -log FILE sends warnings too (with -v,
// everything) to a file instead.
//
// Run the built binary rather than "go run ./cmd/reign_sample": go run
// starts the node as a child process, and a signal that cannot be
// forwarded (kill -9 of go run) leaves that child running.
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
	"strings"
	"syscall"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/cmd/reign_sample/chat"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

const usage = `reign_sample is a terminal chat between the nodes of a reign cluster.

usage: reign_sample [-config FILE] [-v] [-log FILE] [-membership | -join ADDR] ID

ID is this node's ID in the cluster spec FILE. Every line you type reaches
every other running chat node, which prints it as "[node ID] line".

To try it, in the reign source folder, mint a cluster's certificates and
spec, and build the sample, once:
  go run ./cmd/reign_init
  go build -o reign_sample ./cmd/reign_sample
then run one chat node per terminal:
  ./reign_sample 1
  ./reign_sample 2
and type into either. Start and stop nodes as you like: "node N joined" and
"node N left" tell you who is there. Ctrl-D (end of input) or Ctrl-C leaves.
For a third node, run "go run ./cmd/reign_init -nodes 3" first.

To grow a running cluster without restarting it, run its nodes with
dynamic membership (-membership, or -join), mint a new node from the same
CA, and start it with any member's address:
  ./reign_sample -membership 1
  ./reign_sample -join 127.0.0.1:29871 2
  go run ./cmd/reign_init -add-node 5
  ./reign_sample -join 127.0.0.1:29871 5
(The running nodes need no restart: the CA signed node 5's certificate.)

Only errors are logged, on standard error; -log FILE sends warnings too
(with -v, everything) to FILE instead. Prefer the built binary to
"go run ./cmd/reign_sample": kill -9 of "go run" stops go run only, and
leaves the node running.

Flags:
`

// run is reign_sample: it returns the exit code: 0 done, 1 failed, 2 bad
// usage.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reign_sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "reign_cluster.json", "the cluster spec `FILE`, as written by reign_init")
	verbose := fs.Bool("v", false, "log everything, the node's connections included (Info level)")
	logFile := fs.String("log", "", "append the node's log to `FILE` (Warn level, or Info with -v) instead of standard error (Error level)")
	membership := fs.Bool("membership", false, "dynamic membership: nodes join and leave a running cluster (every node of the cluster needs it or -join); the spec's other nodes are seeds")
	join := fs.String("join", "", "join a running cluster (with dynamic membership) through the member listening at `ADDR` (host:port; comma-separated for several)")
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
	if err != nil {
		fmt.Fprintf(stderr, "reign_sample: the node ID must be a number 0-65535, not %q\n", fs.Arg(0))
		return 2
	}

	// Standard error shares the terminal with the conversation: only
	// errors go there. A log file takes warnings too.
	var logTo io.Writer = stderr
	level := slog.LevelError
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "reign_sample: %v\n", err)
			return 1
		}
		defer f.Close()
		logTo, level = f, slog.LevelWarn
	}
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: level}))

	spec, err := reign.LoadClusterSpec(*config)
	if err != nil {
		fmt.Fprintf(stderr, "reign_sample: %v\n", err)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "reign_sample: no cluster yet? Run \"go run ./cmd/reign_init\" first, or pass -config.\n")
		}
		return 1
	}
	cfg := reign.Config{NodeID: reign.NodeID(id), Cluster: spec, Logger: logger}
	if *membership || *join != "" {
		cfg.Membership = &reign.MembershipConfig{}
		for _, a := range strings.Split(*join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Membership.Join = append(cfg.Membership.Join, a)
			}
		}
	}
	node, err := reign.NewNode(cfg)
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
