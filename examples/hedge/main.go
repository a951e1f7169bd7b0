// Command hedge is flowerinthenight/hedge on reign: the members of a
// cluster elect a leader, forward Send and Put to it, Broadcast to every
// member and collect the replies, share counting semaphores the leader
// serves, and keep an append-only key/value log in a bbolt file on each
// member's disk, replicated by the leader. Each member serves hedge's demo
// endpoints over HTTP.
//
//	go run ./cmd/reign_init -nodes 3
//	go build -o /tmp/hedge ./examples/hedge
//	/tmp/hedge -config reign_cluster.json 1   # and 2, 3 in other terminals
//	curl localhost:8081/put -d "samplekey samplevalue"
//
// See README.md.
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
	"path/filepath"
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

const usage = `usage: hedge [-config FILE] [-http ADDR] [-data DIR] ID

Runs member ID of a hedge group until interrupted: reign node ID of the
cluster spec FILE (default reign_cluster.json, as reign_init writes it),
serving /put, /get, /send, /broadcast, /leader, /sem/acquire and
/sem/release over HTTP on ADDR (default 127.0.0.1:8080+ID), with its copy
of the key/value log in DIR/hedge.ID.db.

Flags:
`

// run is the program: it returns the exit code (0 done, 1 failed, 2 bad
// usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hedge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	config := fs.String("config", "reign_cluster.json", "the cluster spec `FILE`")
	httpAddr := fs.String("http", "", "the HTTP `ADDR` (default 127.0.0.1:8080+ID)")
	data := fs.String("data", ".", "the `DIR` of the bbolt file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 16)
	if fs.NArg() != 1 || err != nil {
		fs.Usage()
		return 2
	}
	if *httpAddr == "" {
		*httpAddr = "127.0.0.1:" + strconv.Itoa(8080+int(id))
	}
	if err := runMember(ctx, reign.NodeID(id), *config, *httpAddr, *data, stdout); err != nil {
		fmt.Fprintln(stderr, "hedge:", err)
		return 1
	}
	return 0
}

// runMember runs the member until ctx ends.
func runMember(ctx context.Context, id reign.NodeID, config, httpAddr, data string, stdout io.Writer) error {
	var outMu sync.Mutex
	logf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, "hedge %d: "+format+"\n", append([]any{id}, args...)...)
	}
	spec, err := reign.LoadClusterSpec(config)
	if err != nil {
		return err
	}
	node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec})
	if err == nil {
		err = node.RegisterType(messageTypes...)
	}
	if err != nil {
		return err
	}
	store, err := OpenStore(filepath.Join(data, fmt.Sprintf("hedge.%d.db", id)))
	if err != nil {
		return err
	}
	defer store.Close()
	last, err := store.Last()
	if err != nil {
		return err
	}
	onSend := func(from reign.NodeID, msg []byte) ([]byte, error) {
		logf("[send] from node %d: %s", from, msg)
		return fmt.Appendf(nil, "leader %d got %q from node %d", id, msg, from), nil
	}
	onBcast := func(from reign.NodeID, msg []byte) ([]byte, error) {
		logf("[broadcast] from node %d: %s", from, msg)
		return fmt.Appendf(nil, "node %d got %q", id, msg), nil
	}
	h := New(node, spec, store, onSend, onBcast, logf)
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h.routes(), ReadHeaderTimeout: 5 * time.Second}
	logf("member of %d nodes, log at %d, http on %s", len(spec.Nodes), last, ln.Addr())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- node.Serve(ctx); cancel() })
	wg.Go(func() { errs <- h.Run(ctx); cancel() })
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
		cancel()
	})
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(sctx)
	scancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	logf("stopped")
	return nil
}
