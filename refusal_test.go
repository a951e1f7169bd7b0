package reign

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// countingHandler is a slog.Handler that counts the "connection refused"
// records and sums their "suppressed" attributes.
type countingHandler struct {
	mu         *sync.Mutex
	lines      *int
	suppressed *uint64
}

func newCountingHandler() countingHandler {
	return countingHandler{mu: new(sync.Mutex), lines: new(int), suppressed: new(uint64)}
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h countingHandler) WithGroup(string) slog.Handler           { return h }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "connection refused" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			*h.suppressed += a.Value.Uint64()
		}
		return true
	})
	return nil
}

func (h countingHandler) counts() (int, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.lines, *h.suppressed
}

// Connections that close before the TLS handshake (no certificate at
// all), by the hundred: each is refused and counted, but the log gets a
// line per second at most, and the next line says how many were left out.
// Before the rate limit, each one logged a Warn line (28,461 lines in
// 2 s).
func TestRefusalLogRateLimited(t *testing.T) {
	t.Parallel()
	h := newCountingHandler()
	tc := newTestCluster(t, 1, func(cfg *Config) { cfg.Logger = slog.New(h) })
	n := tc.node(1)
	addr := tc.spec.Nodes[0].Address
	before := n.Stats()
	bad := func() {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	const flood = 300
	start := time.Now()
	for i := 0; i < flood; i++ {
		bad()
	}
	checkFor(t, 10*time.Second, func() error {
		got := n.Stats().Refused - before.Refused
		return unless(got == flood, "%d of %d refused", got, flood)
	})
	lines, _ := h.counts()
	if limit := 2 + int(time.Since(start)/refusalInterval); lines > limit {
		t.Fatalf("%d refused connections logged %d lines in %v, want at most %d", flood, lines, time.Since(start), limit)
	}
	// the next line, a second later, reports those left out; the last
	// refusals may still be held when it is seen (hence +3 below)
	var sent uint64 = flood
	checkFor(t, 5*time.Second, func() error {
		bad()
		sent++
		_, s := h.counts()
		return unless(s > 0, "no line has reported the suppressed refusals yet")
	})
	checkFor(t, 5*time.Second, func() error {
		st := n.Stats()
		lines, suppressed := h.counts()
		refused := st.Refused - before.Refused
		failed := st.Closes[CloseHandshakeFailed] - before.Closes[CloseHandshakeFailed]
		return unless(refused == sent && failed == sent && uint64(lines)+suppressed <= sent && uint64(lines)+suppressed+3 >= sent,
			"sent %d, refused %d, counted as handshake failures %d, %d lines + %d suppressed", sent, refused, failed, lines, suppressed)
	})
	lines, suppressed := h.counts()
	t.Logf("%d refusals: %d lines, %d suppressed", sent, lines, suppressed)
}
