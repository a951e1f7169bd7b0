package reign

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// recordingHandler keeps the log records it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// lines returns each record as "LEVEL message cert=...".
func (h *recordingHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		line := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "cert" {
				line += " cert=" + a.Value.String()
			}
			return true
		})
		out = append(out, line)
	}
	return out
}

// expiringTLS mints a CA valid for caDays and a node certificate valid for
// nodeDays, both from start, and loads them as node 1 would, with the
// clock at *now.
func expiringTLS(t *testing.T, start time.Time, caDays, nodeDays int, now *atomic.Int64) *nodeTLS {
	t.Helper()
	ca, err := certs.NewCA("", start, time.Duration(caDays)*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueNode(1, start, time.Duration(nodeDays)*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	nt, err := newNodeTLS(1, pemSource{data: crt}, pemSource{data: key}, pemSource{data: ca.CertPEM()}, clock)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// With a pinned clock: certificates that expire within 30 days are logged
// at Warn when the check starts and at each daily tick, at Error once
// expired, and counted; a certificate far from expiry is not.
func TestCertExpiryWarns(t *testing.T) {
	t.Parallel()
	start := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(start.Add(time.Hour).UnixNano())
	nt := expiringTLS(t, start, 365, 20, &now)

	h := &recordingHandler{}
	w := newCertExpiry(nt, slog.New(h))
	tick := make(chan time.Time)
	w.tick = tick
	if n, notAfter := w.stats(); n != 0 || !notAfter.Equal(start.Add(20*24*time.Hour)) {
		t.Errorf("before any check: %d warnings, earliest expiry %v", n, notAfter)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx) }()

	// At start: node 1's certificate (20 days) but not the CA's (365).
	checkFor(t, testTimeout, func() error { n, _ := w.stats(); return unless(n == 1, "%d expiry warnings, want 1", n) })
	if got := h.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "WARN certificate expires soon") || !strings.HasSuffix(got[0], "cert=node 1") {
		t.Errorf("at start: %q", got)
	}

	// A day passes: still within the window, warned again.
	now.Store(start.Add(25 * time.Hour).UnixNano())
	tick <- time.Time{}
	checkFor(t, testTimeout, func() error { n, _ := w.stats(); return unless(n == 2, "%d expiry warnings, want 2", n) })

	// 21 days on, it has expired: an Error.
	now.Store(start.Add(21 * 24 * time.Hour).UnixNano())
	tick <- time.Time{}
	checkFor(t, testTimeout, func() error { n, _ := w.stats(); return unless(n == 3, "%d expiry warnings, want 3", n) })
	got := h.lines()
	if len(got) != 3 || !strings.HasPrefix(got[2], "ERROR certificate expired") {
		t.Errorf("after expiry: %q", got)
	}

	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Serve returned %v", err)
	}

	// Both the node's and the CA's certificates are checked.
	now.Store(start.Add(340 * 24 * time.Hour).UnixNano())
	if found := w.check(); len(found) != 2 || found[0].What != "node 1" || !strings.HasPrefix(found[1].What, "CA ") || found[1].Expired() {
		t.Errorf("340 days on: %+v", found)
	}

	// Far from expiry: nothing.
	var later atomic.Int64
	later.Store(start.Add(time.Hour).UnixNano())
	quiet := newCertExpiry(expiringTLS(t, start, 365, 60, &later), slog.New(&recordingHandler{}))
	if found := quiet.check(); len(found) != 0 {
		t.Errorf("60-day certificate: %+v", found)
	}
}
