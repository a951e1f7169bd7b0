package reign

// This file warns before the node's certificates expire: its own
// certificate and every CA certificate it trusts. A node whose certificate
// has expired is refused by its peers (and refuses to start); one whose CA
// certificate has expired is refused too, and refuses everyone signed by
// it. The warning comes 30 days ahead (certs.ExpiryWindow), when the node
// starts and once a day after, so that a rotation (docs/deploying.md)
// happens in time.

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// certExpiryEvery is how often a running node checks its certificates.
const certExpiryEvery = 24 * time.Hour

// certExpiry is the suture service that checks a node's certificates for
// expiry when it starts and daily: each certificate that expires within
// certs.ExpiryWindow is logged at Warn (at Error once expired) and counted.
// It is safe for concurrent use; stats may be read at any time.
type certExpiry struct {
	certs []*x509.Certificate // the node's own certificate first, then its CAs
	log   *slog.Logger
	now   func() time.Time
	every time.Duration
	tick  <-chan time.Time // nil: a ticker of every; tests send on their own

	warnings atomic.Uint64 // certificates found expiring or expired, over all checks
	notAfter atomic.Int64  // the earliest NotAfter of them all, Unix nanoseconds
}

// newCertExpiry returns the expiry check of t's certificates, logging to
// log.
func newCertExpiry(t *nodeTLS, log *slog.Logger) *certExpiry {
	w := &certExpiry{log: log, now: t.now, every: certExpiryEvery}
	if t.cert.Leaf != nil {
		w.certs = append(w.certs, t.cert.Leaf)
	}
	w.certs = append(w.certs, t.cas...)
	earliest := time.Time{}
	for _, c := range w.certs {
		if earliest.IsZero() || c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
	}
	if !earliest.IsZero() {
		w.notAfter.Store(earliest.UnixNano())
	}
	return w
}

// check looks at every certificate now, logs each that expires within the
// window and counts it; it returns them, soonest first.
func (w *certExpiry) check() []certs.Expiry {
	found := certs.Expiring(w.now(), certs.ExpiryWindow, w.certs...)
	for _, e := range found {
		w.warnings.Add(1)
		attrs := []any{"cert", e.What, "not_after", e.NotAfter.UTC(), "left", e.Left.Round(time.Minute).String()}
		if e.Expired() {
			w.log.Error("certificate expired: peers refuse it; rotate it (docs/deploying.md)", attrs...)
		} else {
			w.log.Warn("certificate expires soon: rotate it (docs/deploying.md)", attrs...)
		}
	}
	return found
}

// stats returns the number of expiry warnings so far and the earliest
// expiry of the node's certificates (zero if it has none), for Stats.
func (w *certExpiry) stats() (warnings uint64, notAfter time.Time) {
	if ns := w.notAfter.Load(); ns != 0 {
		notAfter = time.Unix(0, ns).UTC()
	}
	return w.warnings.Load(), notAfter
}

// Serve checks at once, then every w.every until ctx is done. It is a
// suture.Service of the node's supervisor.
func (w *certExpiry) Serve(ctx context.Context) error {
	tick := w.tick
	if tick == nil {
		t := time.NewTicker(w.every)
		defer t.Stop()
		tick = t.C
	}
	w.check()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			w.check()
		}
	}
}

// String names the service in the supervisor's logs.
func (w *certExpiry) String() string { return "certificate expiry check" }
