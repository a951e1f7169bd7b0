// Command beehive runs Beehive's hello-world application (kandoo/beehive)
// on reign: Hello{Name} messages counted per name by "bees", each name
// owned by exactly one bee in the whole cluster, counts kept in a bbolt
// file per node, and an HTTP handler on every node:
//
//	reign_init -nodes 3
//	beehive -config reign_cluster.json -http 127.0.0.1:7677 1
//	curl -X POST 127.0.0.1:7677/apps/hello-world/yourname   # hello yourname (1)
//
// See README.md for how a key's owner is chosen and kept.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: beehive [-config FILE] [-http ADDR] [-db FILE] ID

Runs node ID of the cluster with Beehive's hello-world application, until
interrupted. Then:

  curl -X POST ADDR/apps/hello-world/NAME   counts a hello from NAME: "hello NAME (N)"
  curl ADDR/apps/hello-world/NAME           which bee owns NAME

FILE is a cluster spec (default reign_cluster.json, as reign_init writes).
`

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("beehive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	config := fs.String("config", "reign_cluster.json", "the cluster spec")
	httpAddr := fs.String("http", "127.0.0.1:7677", "where to serve HTTP (port 0: any free port)")
	dbPath := fs.String("db", "", "the node's dictionary file (default beehive_node.ID.db)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 16)
	if fs.NArg() != 1 || err != nil {
		fs.Usage()
		return 2
	}
	if *dbPath == "" {
		*dbPath = fmt.Sprintf("beehive_node.%d.db", id)
	}
	if err := serve(ctx, reign.NodeID(id), *config, *httpAddr, *dbPath, stdout); err != nil {
		fmt.Fprintln(stderr, "beehive:", err)
		return 1
	}
	return 0
}

// serve runs the node, its hive and the HTTP server until ctx ends.
func serve(ctx context.Context, id reign.NodeID, config, httpAddr, dbPath string, stdout io.Writer) error {
	spec, err := reign.LoadClusterSpec(config)
	if err != nil {
		return err
	}
	node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec})
	if err != nil {
		return err
	}
	if err := node.RegisterType(messageTypes...); err != nil {
		return err
	}
	var peers []reign.NodeID
	for _, n := range spec.Nodes {
		if n.ID != id {
			peers = append(peers, n.ID)
		}
	}
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, "hive %d> "+format+"\n", append([]any{id}, a...)...)
	}

	d, err := openDict(dbPath, appName, dictName)
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h, loaded, err := startHive(ctx, node, d, peers, say)
	if h != nil {
		defer h.wg.Wait() // after cancel: the bees stop, then the file closes
	}
	if err != nil {
		cancel() // before the deferred wait for the bees
		ln.Close()
		return err
	}

	srv := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	say("node %d up, %d bees loaded from %s, http on %s", id, loaded, dbPath, ln.Addr())

	err = node.Serve(ctx)
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shutCtx)
	shutCancel()
	<-httpDone
	cancel()
	if errors.Is(err, context.Canceled) {
		say("stopped")
		return nil
	}
	return err
}

// handler serves the application's HTTP handlers under
// /apps/hello-world/, as Beehive's app.HandleHTTP does.
func (h *hive) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apps/"+appName+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if len(beeName(name)) > reign.MaxNameLen {
			http.Error(w, "name too long", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		c, err := h.Sync(ctx, Hello{Name: name})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Beehive-Hive", strconv.Itoa(int(c.Hive)))
		fmt.Fprintf(w, "hello %s (%d)\n", name, c.N)
	})
	mux.HandleFunc("GET /apps/"+appName+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		claims := h.node.LookupAll(beeName(name))
		if len(claims) == 0 {
			http.Error(w, "no bee owns "+name, http.StatusNotFound)
			return
		}
		for _, a := range claims {
			fmt.Fprintf(w, "%s: bee %v on hive %d\n", name, a, a.NodeID())
		}
	})
	return mux
}
