package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/thejerf/suture/v4"
)

// maxHandshakes bounds the incoming handshakes in progress at once, so a
// flood of connections that never finish their handshake cannot exhaust
// the node.
const maxHandshakes = 64

// handshakeSet tracks the incoming handshakes in progress. When it is full,
// a new connection takes the place of the oldest handshake if that one has
// already had a quarter of the handshake timeout (a good peer finishes in
// milliseconds): idle connections can delay a good peer, never lock it out.
// A connection leaves the set (finish) before it is handed to its peer, so
// a connection that is up is never evicted.
type handshakeSet struct {
	mu     sync.Mutex
	limit  int // maxHandshakes; tests lower it
	active map[net.Conn]time.Time
}

// admit adds nc, evicting the oldest handshake older than stale if the set
// is full; it reports false if nc must be refused.
func (h *handshakeSet) admit(nc net.Conn, stale time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active == nil {
		h.active = map[net.Conn]time.Time{}
	}
	limit := h.limit
	if limit <= 0 {
		limit = maxHandshakes
	}
	now := time.Now()
	if len(h.active) >= limit {
		var oldest net.Conn
		var since time.Time
		for c, t := range h.active {
			if oldest == nil || t.Before(since) {
				oldest, since = c, t
			}
		}
		if now.Sub(since) < stale {
			return false
		}
		// Its handshake fails at once (finish reports it evicted) and
		// its goroutine ends.
		_ = oldest.Close()
		delete(h.active, oldest)
	}
	h.active[nc] = now
	return true
}

// finish removes nc, whose handshake ended, and reports whether it was
// still there: false means it was evicted (and closed) meanwhile.
func (h *handshakeSet) finish(nc net.Conn) bool {
	h.mu.Lock()
	_, ok := h.active[nc]
	delete(h.active, nc)
	h.mu.Unlock()
	return ok
}

// listenerService accepts connections and runs their handshakes. It is a
// suture service. A transient Accept error (a full file table, a
// connection reset before it was accepted) is retried with backoff, as
// net/http.Server does. Any other error ends the listener: one the node
// opened itself is opened anew (by suture's restart); if that fails, or
// the listener was given in Config.Listener, Serve returns the error.
type listenerService struct {
	c  *cluster
	ln net.Listener // nil: open c.listen() anew
}

func (l *listenerService) String() string { return "reign listener" }

// Backoff between Accept retries after a transient error.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

func (l *listenerService) Serve(ctx context.Context) error {
	c := l.c
	if l.ln == nil {
		ln, err := c.listen()
		if err != nil {
			c.fail(err)
			return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
		}
		l.ln = ln
	}
	ln := l.ln
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = ln.Close()
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if transientAcceptError(err) {
				backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
				c.n.log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
				sleepCtx(ctx, backoff)
				continue
			}
			if c.n.cfg.Listener != nil {
				err = fmt.Errorf("reign: node %d: the configured listener failed: %w", c.n.id, err)
				c.n.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
				c.fail(err)
				return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
			}
			l.ln = nil // listen anew on restart
			return fmt.Errorf("reign: node %d: accept: %w", c.n.id, err)
		}
		backoff = 0
		if !c.handshakes.admit(nc, c.n.cfg.HandshakeTimeout/4) {
			c.stats.refused.Add(1)
			c.countClose(nil, CloseTooManyHandshakes)
			c.refusals.log(c.n.log, CloseTooManyHandshakes, "addr", nc.RemoteAddr().String())
			_ = nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.accept(ctx, nc)
		}()
	}
}

// transientAcceptError reports whether an Accept error is worth retrying
// on the same listener.
func transientAcceptError(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true // EMFILE, ENFILE, ECONNABORTED, ECONNRESET, EINTR, EAGAIN...
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// accept runs the TLS and reign handshakes of an incoming connection,
// bounded by the handshake timeout, and hands the result to its peer.
func (c *cluster) accept(ctx context.Context, nc net.Conn) {
	serving := ctx // offerConn may wait past the handshake's deadline (stillAlive)
	ctx, cancel := context.WithTimeout(ctx, c.n.cfg.HandshakeTimeout)
	defer cancel()
	var p *peer
	refuse := func(err error) {
		c.handshakes.finish(nc)
		r := handshakeReason(err)
		c.stats.refused.Add(1)
		c.countClose(p, r)
		c.refusals.log(c.n.log, r, "addr", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
	}
	tc := tls.Server(nc, c.tls.serverConfig())
	if err := handshakeTLS(ctx, tc); err != nil {
		refuse(err)
		return
	}
	id, err := peerNodeID(tc.ConnectionState())
	if err != nil {
		refuse(err)
		return
	}
	p = c.peer(id)
	if c.member != nil {
		// any node the cluster CA signed may join: its peer is made now
		if p = c.addPeer(id, ""); p == nil {
			refuse(fmt.Errorf("%w: node %d is leaving the peer table, or this node is stopping", ErrHandshake, id))
			return
		}
	}
	switch {
	case p == nil:
		refuse(fmt.Errorf("%w: node %d is not in this node's cluster spec", ErrPeerIdentity, id))
		return
	case p.dials && c.member == nil:
		refuse(fmt.Errorf("%w: node %d dialed, but the lower ID dials (this node dials %d)", ErrHandshake, id, id))
		return
	}
	cn, err := handshakeConn(ctx, p, tc, false)
	if err != nil {
		refuse(err)
		return
	}
	if !c.handshakes.finish(nc) {
		// evicted while finishing: the connection is closed already
		c.countClose(p, CloseTooManyHandshakes)
		return
	}
	p.offerConn(serving, cn)
	if hook := c.testHookHandedOver; hook != nil {
		hook()
	}
}

// refusalInterval is how often, at most, a refused incoming connection is
// logged, per close reason.
const refusalInterval = time.Second

// refusalLog rate-limits the log lines of refused incoming connections:
// anyone who can reach the port can make them, before any
// authentication, so one line each would let them flood the log. Per
// close reason, at most one line per refusalInterval is logged; the
// refusals left out meanwhile are counted, and the next line says how
// many ("suppressed"). Every refusal is still counted in Stats.Refused and
// Stats.Closes.
type refusalLog struct {
	mu   sync.Mutex
	last [numCloseReasons]time.Time
	held [numCloseReasons]uint64 // refusals not logged since the last line
}

// log logs the refusal of a connection for reason r with attrs, unless a
// line for r was logged less than refusalInterval ago.
func (l *refusalLog) log(log *slog.Logger, r CloseReason, attrs ...any) {
	if r >= numCloseReasons {
		r = CloseUnknown
	}
	now := time.Now()
	l.mu.Lock()
	if !l.last[r].IsZero() && now.Sub(l.last[r]) < refusalInterval {
		l.held[r]++
		l.mu.Unlock()
		return
	}
	l.last[r] = now
	held := l.held[r]
	l.held[r] = 0
	l.mu.Unlock()
	attrs = append(attrs, "reason", r)
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	log.Warn("connection refused", attrs...)
}

// everySecond rate-limits one kind of log line to one a second, counting
// the ones left out.
type everySecond struct {
	mu   sync.Mutex
	last time.Time
	held uint64
}

// allow reports whether a line may be logged now, and how many were left
// out since the last one.
func (e *everySecond) allow() (held uint64, ok bool) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < time.Second {
		e.held++
		return 0, false
	}
	e.last, held, e.held = now, e.held, 0
	return held, true
}
