// Package reignhttp serves a reign node's introspection over HTTP: its
// Snapshot as JSON, a peek into one mailbox's queue, and Prometheus
// metrics. It is opt-in: reign never starts a server by itself, and a node
// never phones home. Mount the handler on a server of your own, on an
// address only your operators and your Prometheus can reach (it lists
// mailboxes, names and message types):
//
//	h, err := reignhttp.NewHandler(node, reignhttp.Options{})
//	if err != nil { ... }
//	go http.ListenAndServe("127.0.0.1:9100", h)
//
// It is its own Go module, so that the reign module itself does not depend
// on the Prometheus client and its dependencies: a program that does not
// import reignhttp builds without them, and its module graph is not
// raised to their versions.
package reignhttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/reign-go/reign"
)

// Options adjusts NewHandler. The zero value is ready to use.
type Options struct {
	// Registry is where the node's collector is registered, and what
	// /metrics serves: pass an application's own registry to serve its
	// metrics and the node's together. Nil means a new registry holding
	// only this node's metrics. (The global prometheus.DefaultRegisterer
	// is never used: two nodes in one process each get their own.)
	Registry *prometheus.Registry

	// MaxMailboxes is how many mailboxes /snapshot lists when the request
	// does not say (?mailboxes=N): those with the longest queues. Zero
	// means 100; a negative value lists every mailbox.
	MaxMailboxes int

	// MaxPeek bounds /peek's max parameter. Zero means 100.
	MaxPeek int
}

// NewHandler returns an http.Handler serving node n:
//
//	GET /           a short index of these paths
//	GET /snapshot   n.SnapshotWith as JSON; ?mailboxes=N lists the N longest
//	                queues (0: all, -1: none; default Options.MaxMailboxes)
//	GET /peek       ?mailbox=<node.slot.gen.inc>&max=N: the types of the N
//	                oldest messages queued in that mailbox of n, as JSON
//	GET /metrics    Prometheus metrics (see NewCollector)
//
// Its error, if any, is the registry refusing the collector (a registry
// that already holds this node's metrics). The handler is safe for
// concurrent use; each request reads the node at that moment.
func NewHandler(n *reign.Node, opts Options) (http.Handler, error) {
	if opts.MaxMailboxes == 0 {
		opts.MaxMailboxes = 100
	}
	if opts.MaxPeek == 0 {
		opts.MaxPeek = 100
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(NewCollector(n)); err != nil {
		return nil, fmt.Errorf("reign: registering the metrics of node %d: %w", n.ID(), err)
	}
	h := &handler{n: n, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /snapshot", h.snapshot)
	mux.HandleFunc("GET /peek", h.peek)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux, nil
}

type handler struct {
	n    *reign.Node
	opts Options
}

func (h *handler) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "reign node %d\n\n"+
		"/snapshot                      the node as JSON (?mailboxes=N: the N longest queues, 0 all)\n"+
		"/peek?mailbox=<addr>&max=N     the types of the N oldest messages queued in a mailbox\n"+
		"/metrics                       Prometheus metrics\n", h.n.ID())
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) {
	limit := h.opts.MaxMailboxes
	if limit < 0 {
		limit = 0 // SnapshotOptions: 0 lists all
	}
	if v := r.URL.Query().Get("mailboxes"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "reign: mailboxes must be a number", http.StatusBadRequest)
			return
		}
		limit = k
	}
	writeJSON(w, h.n.SnapshotWith(reign.SnapshotOptions{MaxMailboxes: limit}))
}

// Peek is /peek's answer.
type Peek struct {
	Mailbox reign.Address `json:"mailbox"`
	Types   []string      `json:"types"` // oldest first
}

func (h *handler) peek(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var a reign.Address
	if err := a.UnmarshalText([]byte(q.Get("mailbox"))); err != nil || a.IsZero() {
		http.Error(w, "reign: mailbox must be an address such as <1.17.1.3735928559>", http.StatusBadRequest)
		return
	}
	max := 10
	if v := q.Get("max"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			http.Error(w, "reign: max must be a number, 0 or more", http.StatusBadRequest)
			return
		}
		max = k
	}
	max = min(max, h.opts.MaxPeek)
	a = h.n.BindAddress(a)
	types, ok := h.n.Peek(a, max)
	if !ok {
		http.Error(w, "reign: "+a.String()+" is not an open mailbox of this node", http.StatusNotFound)
		return
	}
	writeJSON(w, Peek{Mailbox: a, Types: types})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "reign: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
