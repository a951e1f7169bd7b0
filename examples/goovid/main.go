// Command goovid is GoOvid (github.com/TonyZhangND/GoOvid) on reign:
// agents, small state machines, wired by a JSON configuration that puts
// each on a box (an OS process, "IP:port") and gives it a routing table
// of virtual destinations, each routed to one or several physical agents
// and ports. Here a box is a reign node, an agent a mailbox registered
// under its ID, and a route a send to the registered agents' Addresses.
//
//	go run ./cmd/reign_init -nodes 2 -dir /tmp/goovid-certs
//	goovid -certs /tmp/goovid-certs examples/goovid/configs/kvs.json 127.0.0.1:5001   # the kvs
//	goovid -certs /tmp/goovid-certs examples/goovid/configs/kvs.json 127.0.0.1:5000   # tty and client
//
// then type "put KEY VALUE" and "get KEY" into the second. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: goovid [-certs DIR] CONFIG BOX

Runs box BOX (an IP:port of the configuration) of the GoOvid grid that
the JSON file CONFIG describes, with every agent the configuration puts
on it, until interrupted, or until its standard input ends if an agent of
the box reads it (tty, chat).

The configuration's boxes, sorted by address, are reign nodes 1, 2, ...;
DIR holds their certificates, as reign_init writes them:
  go run ./cmd/reign_init -nodes NUMBER_OF_BOXES -dir DIR

Flags:
`

// run is the program: it returns the exit code (0 done, 1 failed, 2 bad
// usage).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("goovid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	certs := fs.String("certs", ".", "the `DIR` of reign_ca.crt and reign_node.<id>.crt/.key")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "goovid:", err); return 1 }
	cfg, err := LoadConfig(fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	box, err := ParseBox(fs.Arg(1))
	if err != nil {
		return fail(err)
	}
	b, err := NewBox(cfg, box, *certs, &printer{w: stdout})
	if err != nil {
		return fail(err)
	}
	if err := b.Serve(ctx, stdin); err != nil {
		return fail(err)
	}
	return 0
}
