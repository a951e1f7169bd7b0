package reign

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// countingHandler is a slog.Handler that counts the records with message
// msg and sums their "suppressed" attributes, in all and by their
// "reason" attribute.
type countingHandler struct {
	msg string
	c   *handlerCounts
}

type handlerCounts struct {
	mu         sync.Mutex
	lines      int
	suppressed uint64
	byReason   map[string][2]uint64 // lines, suppressed
}

func newCountingHandler(msg string) countingHandler {
	return countingHandler{msg: msg, c: &handlerCounts{byReason: map[string][2]uint64{}}}
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	var reason string
	var suppressed uint64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "suppressed":
			suppressed = a.Value.Uint64()
		case "reason":
			reason = a.Value.Resolve().String()
		}
		return true
	})
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines++
	c.suppressed += suppressed
	v := c.byReason[reason]
	c.byReason[reason] = [2]uint64{v[0] + 1, v[1] + suppressed}
	return nil
}

func (h countingHandler) counts() (int, uint64) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.c.lines, h.c.suppressed
}

// reason returns the lines and the suppressed count logged for reason r.
func (h countingHandler) reason(r CloseReason) (uint64, uint64) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	v := h.c.byReason[r.String()]
	return v[0], v[1]
}

// Connections that close before the TLS handshake (no certificate at
// all), by the hundred: each is refused and counted, but the log gets a
// line per second at most, and the next line says how many were left out.
// Before the rate limit, each one logged a Warn line (28,461 lines in
// 2 s).
func TestRefusalLogRateLimited(t *testing.T) {
	t.Parallel()
	h := newCountingHandler("connection refused")
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
	// at most a line a second for each of the two reasons a connection
	// that closes at once is refused for (the handshake fails, or, under
	// load, too many handshakes are in progress)
	lines, _ := h.counts()
	if limit := 2 * (2 + int(time.Since(start)/refusalInterval)); lines > limit {
		t.Fatalf("%d refused connections logged %d lines in %v, want at most %d", flood, lines, time.Since(start), limit)
	}
	// the next line, a second later, reports those left out; the last
	// refusals may still be held when it is seen (hence +3 below)
	var sent uint64 = flood
	checkFor(t, 5*time.Second, func() error {
		bad()
		sent++
		_, s := h.reason(CloseHandshakeFailed)
		return unless(s > 0, "no line has reported the suppressed refusals yet")
	})
	checkFor(t, 5*time.Second, func() error {
		st := n.Stats()
		lines, suppressed := h.reason(CloseHandshakeFailed)
		refused := st.Refused - before.Refused
		failed := st.Closes[CloseHandshakeFailed] - before.Closes[CloseHandshakeFailed]
		busy := st.Closes[CloseTooManyHandshakes] - before.Closes[CloseTooManyHandshakes]
		return unless(refused == sent && failed+busy == sent && lines+suppressed <= failed && lines+suppressed+3 >= failed,
			"sent %d, refused %d, counted as handshake failures %d and too many handshakes %d; %d lines + %d suppressed for handshake failures",
			sent, refused, failed, busy, lines, suppressed)
	})
	lines, suppressed := h.counts()
	t.Logf("%d refusals: %d lines, %d suppressed", sent, lines, suppressed)
}
