package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// routes are hedge's demo endpoints (curl localhost:8081/put -d "k v"),
// plus /leader and the semaphore's. Each request is bounded by 5 s.
func (h *Hedge) routes() *http.ServeMux {
	mux := http.NewServeMux()
	var mu sync.Mutex
	sems := map[string]*Semaphore{} // this member's, by name
	semaphore := func(r *http.Request) (*Semaphore, error) {
		name := r.URL.Query().Get("name")
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		mu.Lock()
		defer mu.Unlock()
		if s := sems[name]; s != nil {
			return s, nil
		}
		s, err := h.NewSemaphore(name, limit)
		if err == nil {
			sems[name] = s
		}
		return s, err
	}
	handle := func(path string, fn func(ctx context.Context, body string, w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				err = fn(ctx, strings.TrimSpace(string(b)), w, r)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
			}
		})
	}
	handle("/put", func(ctx context.Context, body string, w http.ResponseWriter, _ *http.Request) error {
		key, value, ok := strings.Cut(body, " ")
		if !ok || key == "" {
			http.Error(w, `want "KEY VALUE"`, http.StatusBadRequest)
			return nil
		}
		idx, err := h.Put(ctx, key, value)
		if err == nil {
			fmt.Fprintf(w, "put %s: entry %d\n", key, idx)
		}
		return err
	})
	handle("/get", func(_ context.Context, key string, w http.ResponseWriter, _ *http.Request) error {
		v, ok, err := h.Get(key)
		switch {
		case err != nil:
			return err
		case !ok:
			http.Error(w, "no such key: "+key, http.StatusNotFound)
		default:
			fmt.Fprintln(w, v)
		}
		return nil
	})
	handle("/send", func(ctx context.Context, body string, w http.ResponseWriter, _ *http.Request) error {
		out, err := h.Send(ctx, []byte(body))
		if err == nil {
			fmt.Fprintf(w, "%s\n", out)
		}
		return err
	})
	handle("/broadcast", func(ctx context.Context, body string, w http.ResponseWriter, _ *http.Request) error {
		for _, r := range h.Broadcast(ctx, []byte(body)) {
			if r.Err != nil {
				fmt.Fprintf(w, "node %d: error: %v\n", r.Node, r.Err)
			} else {
				fmt.Fprintf(w, "node %d: %s\n", r.Node, r.Reply)
			}
		}
		return nil
	})
	handle("/leader", func(_ context.Context, _ string, w http.ResponseWriter, _ *http.Request) error {
		id, ok := h.Leader()
		if !ok {
			return ErrNoLeader
		}
		fmt.Fprintln(w, id)
		return nil
	})
	// /sem/acquire?name=N&limit=L[&wait=DURATION]: TryAcquire, or Acquire
	// waiting up to DURATION (at most the 5 s bound). 409 if not granted.
	handle("/sem/acquire", func(ctx context.Context, _ string, w http.ResponseWriter, r *http.Request) error {
		s, err := semaphore(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return nil
		}
		ok := false
		if d, _ := time.ParseDuration(r.URL.Query().Get("wait")); d > 0 {
			wctx, cancel := context.WithTimeout(ctx, d)
			err = s.Acquire(wctx)
			cancel()
			ok = err == nil
			if wctx.Err() != nil && ctx.Err() == nil {
				err = nil // waited d: not granted
			}
		} else {
			ok, err = s.TryAcquire(ctx)
		}
		switch {
		case err != nil:
			return err
		case !ok:
			http.Error(w, fmt.Sprintf("busy: all %d slots of %q are held", s.limit, s.name), http.StatusConflict)
		default:
			fmt.Fprintf(w, "acquired %q (this member holds %d)\n", s.name, s.Held())
		}
		return nil
	})
	handle("/sem/release", func(ctx context.Context, _ string, w http.ResponseWriter, r *http.Request) error {
		s, err := semaphore(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return nil
		}
		if err := s.Release(ctx); err != nil {
			return err
		}
		fmt.Fprintf(w, "released %q (this member holds %d)\n", s.name, s.Held())
		return nil
	})
	return mux
}
