package certs

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// ExpiryWindow is how long before a certificate expires reign starts to
// warn of it: reign_init when it runs, a node when it starts and daily.
// 30 days leaves time for a rotation (docs/deploying.md) before the
// certificate is refused.
const ExpiryWindow = 30 * 24 * time.Hour

// Expiry says that a certificate expires soon, or has expired.
type Expiry struct {
	What     string        // what the certificate is, as Describe says: "node 3", `CA "reign cluster CA"`
	NotAfter time.Time     // when it expires
	Left     time.Duration // from the time of the check to NotAfter; 0 or less: expired
}

// Expired reports whether the certificate had expired at the time of the
// check.
func (e Expiry) Expired() bool { return e.Left <= 0 }

// String says it for a log line or a terminal, in whole days (hours below
// a day): "the certificate of node 3 expires in 12 days (2026-12-10
// 18:00 UTC)", or "... expired 2 days ago (...)".
func (e Expiry) String() string {
	when := e.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	if e.Expired() {
		return fmt.Sprintf("the certificate of %s expired %s ago (%s)", e.What, span(-e.Left), when)
	}
	return fmt.Sprintf("the certificate of %s expires in %s (%s)", e.What, span(e.Left), when)
}

func span(d time.Duration) string {
	d = d.Round(time.Minute) // certificates keep whole seconds
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return "moments"
}

// Describe names what cert is, for people: "node <id>" for a node
// certificate (by the naming rule), `CA "<CommonName>"` for a CA, and
// otherwise its subject.
func Describe(cert *x509.Certificate) string {
	if ids := NodeIDs(cert); len(ids) == 1 {
		return fmt.Sprintf("node %d", ids[0])
	}
	if cert.IsCA {
		return fmt.Sprintf("CA %q", cert.Subject.CommonName)
	}
	return fmt.Sprintf("%q", cert.Subject.String())
}

// Expiring returns an Expiry for each of certs that has expired at now or
// expires within window after it, soonest first. A certificate listed
// twice (the same bytes) is reported once.
func Expiring(now time.Time, window time.Duration, certs ...*x509.Certificate) []Expiry {
	var out []Expiry
	var seen []*x509.Certificate
	for _, c := range certs {
		if c == nil || slices.ContainsFunc(seen, c.Equal) {
			continue
		}
		seen = append(seen, c)
		if left := c.NotAfter.Sub(now); left <= window {
			out = append(out, Expiry{What: Describe(c), NotAfter: c.NotAfter, Left: left})
		}
	}
	slices.SortStableFunc(out, func(a, b Expiry) int { return a.NotAfter.Compare(b.NotAfter) })
	return out
}
