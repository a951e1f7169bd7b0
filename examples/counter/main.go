// Command counter is the replicated counter of the talk "Clustering in
// Go" (Wilfried Schobeiri, 2016: memberlist and a G-Counter CRDT) on
// reign: each node counts its own increments, exchanges its full state
// with a random other node every interval (push/pull, a request and its
// reply), broadcasts it when its own count grows, and keeps it on disk.
//
//	reign_init -nodes 3
//	counter -http 127.0.0.1:4001 1      # and 2, 3 in other terminals
//	curl '127.0.0.1:4001/inc?amount=5'
//	curl 127.0.0.1:4002/                # 5, on every node
//
// With -membership (or -join ADDR) the nodes run with dynamic membership,
// and a node minted later from the same CA (reign_init -add-node 4) joins
// the running cluster knowing one member's address:
//
//	counter -membership -http 127.0.0.1:4001 1   # and 2, 3
//	reign_init -add-node 4
//	counter -join 127.0.0.1:29871 -http 127.0.0.1:4004 4
//
// See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: counter [flags] [-membership | -join ADDR] ID

Runs node ID of the cluster with its replica of the counter, until
interrupted. Then, on any node:

  curl ADDR/                  the value, then each node's entry
  curl 'ADDR/?format=json'    the same as JSON: {"value":N,"counts":{"ID":N,...}}
  curl 'ADDR/inc?amount=N'    adds N (default 1) to this node's entry; prints the value

With -membership or -join, the node runs with dynamic membership (every
node of the cluster needs one of them): the spec's other nodes are seeds,
and a node the cluster's CA signed joins the running cluster through any
member's address, as in
  reign_init -add-node 4
  counter -join 127.0.0.1:29871 -http 127.0.0.1:4004 4

`

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	config := fs.String("config", "reign_cluster.json", "the cluster spec (reign_init writes it)")
	httpAddr := fs.String("http", "127.0.0.1:4000", "where to serve HTTP (port 0: any free port)")
	dbPath := fs.String("db", "", "the node's state file (default counter_node.ID.db)")
	interval := fs.Duration("interval", time.Second, "between two push/pull exchanges")
	broadcast := fs.Bool("broadcast", true, "broadcast the state to the group when this node's entry grows")
	membership := fs.Bool("membership", false, "dynamic membership: nodes join and leave a running cluster (every node of the cluster needs it or -join); the spec's other nodes are seeds")
	join := fs.String("join", "", "join a running cluster (with dynamic membership) through the member listening at `ADDR` (host:port; comma-separated for several)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 16)
	if fs.NArg() != 1 || err != nil || *interval <= 0 {
		fs.Usage()
		return 2
	}
	if *dbPath == "" {
		*dbPath = fmt.Sprintf("counter_node.%d.db", id)
	}
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, "counter %d> "+format+"\n", append([]any{id}, a...)...)
	}
	cfg := reign.Config{NodeID: reign.NodeID(id)}
	if *membership || *join != "" {
		cfg.Membership = &reign.MembershipConfig{}
		for _, a := range strings.Split(*join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Membership.Join = append(cfg.Membership.Join, a)
			}
		}
	}
	r := &replica{interval: *interval, broadcast: *broadcast, say: say}
	if err := r.run(ctx, cfg, *config, *httpAddr, *dbPath); err != nil {
		fmt.Fprintln(stderr, "counter:", err)
		return 1
	}
	return 0
}

// run runs the node of cfg (its Cluster from the spec file config), the
// replica and the HTTP server until ctx ends (or the replica fails).
func (r *replica) run(ctx context.Context, cfg reign.Config, config, httpAddr, dbPath string) error {
	id := cfg.NodeID
	spec, err := reign.LoadClusterSpec(config)
	if err != nil {
		return err
	}
	cfg.Cluster = spec
	if r.node, err = reign.NewNode(cfg); err != nil {
		return err
	}
	if err := r.node.RegisterType(messageTypes...); err != nil {
		return err
	}
	if r.store, err = openStore(dbPath); err != nil {
		return err
	}
	defer r.store.Close()
	if r.counts, err = r.store.Load(); err != nil {
		return fmt.Errorf("%s: %w", dbPath, err)
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: everything stops, then the store closes
	nodeDone := make(chan error, 1)
	wg.Go(func() { nodeDone <- r.node.Serve(ctx) })

	r.self, r.inbox = r.node.NewMailbox()
	defer r.inbox.Close()
	if err := r.node.JoinGroup(group, r.self); err != nil {
		cancel()
		ln.Close()
		return err
	}
	r.say("node %d up: own entry %d and value %d from %s, http on %s",
		id, r.counts[id], r.counts.Value(), dbPath, ln.Addr())
	actorDone := make(chan error, 1)
	wg.Go(func() { actorDone <- r.serve(ctx) })
	wg.Go(func() { r.sync(ctx) })
	srv := &http.Server{Handler: r.handler(), ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() { _ = srv.Serve(ln) })

	select {
	case <-ctx.Done():
		err = nil
	case err = <-actorDone: // the store failed
	case err = <-nodeDone:
	}
	shut, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shut)
	shutCancel()
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	r.say("stopped")
	return nil
}

// handler serves the talk's two endpoints: GET / and /inc?amount=N. Both
// ask the actor with a reign.Call, as any other node's actor does.
func (r *replica) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		r.answer(w, req, Get{})
	})
	mux.HandleFunc("/inc", func(w http.ResponseWriter, req *http.Request) {
		amount := uint64(1)
		if s := req.URL.Query().Get("amount"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil || n == 0 {
				http.Error(w, "amount: a positive integer (a G-Counter only grows)", http.StatusBadRequest)
				return
			}
			amount = n
		}
		r.answer(w, req, Inc{Amount: amount})
	})
	return mux
}

// answer calls the actor with body and writes the State it replies: the
// value, then one line per node ("node ID: N"), or JSON with ?format=json.
func (r *replica) answer(w http.ResponseWriter, req *http.Request, body any) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	v, err := reign.Call(ctx, r.self, body)
	if errors.Is(err, errOverflow) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	g := v.(State).Counts
	if req.URL.Query().Get("format") == "json" {
		counts := map[string]uint64{}
		for n, c := range g {
			counts[strconv.Itoa(int(n))] = c
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"value": g.Value(), "counts": counts})
		return
	}
	fmt.Fprintln(w, g.Value())
	for _, n := range g.Nodes() {
		fmt.Fprintf(w, "node %d: %d\n", n, g[n])
	}
}
