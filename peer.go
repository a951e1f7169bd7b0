package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign/internal/wire"
	"github.com/thejerf/suture/v4"
)

// peer is this node's side of its relation with one other node: the
// connection service (a suture service) that dials it or takes the
// connections the listener accepts from it, one at a time, and the
// per-peer state of the subsystems (links).
type peer struct {
	c     *cluster
	id    NodeID
	dials bool // without membership: this node dials the peer (the lower ID dials)
	log   *slog.Logger

	// With membership (see membership.go) either side may dial: member
	// is set while membership lists the node alive (the lower ID then
	// keeps a connection up), demand until when a dial was asked for (a
	// probe or a join needs the connection), want wakes the service.
	// removing is set once the peer is leaving the table.
	member   atomic.Bool
	demand   atomic.Int64 // monotime
	want     chan struct{}
	removing atomic.Bool
	checking atomic.Bool   // membership.remove is looking at it
	exited   chan struct{} // closed when Serve returns for its context's end; made anew for each run (under c.mu)
	exitOnce *sync.Once
	token    suture.ServiceToken // the peer's service in the node's supervisor (under c.mu)

	// live is the current connection, nil if none. It is written under
	// mu, so a hook that checks it under mu sees no change before it
	// unlocks; senders load it without the lock.
	live  atomic.Pointer[conn]
	offer chan struct{} // capacity 1: an accepted connection is pending

	connects atomic.Uint64
	closes   closeCounts

	mu       sync.Mutex
	addr     string        // where to dial the peer: its spec or gossiped address
	gaddr    string        // its memberlist address, ip:port ("" if unknown; membership.go)
	pending  *conn         // accepted (or dialed by a join), waiting for the service
	dialing  bool          // membership: the service or a join is dialing the peer
	starting *conn         // taken by the service (from pending, or dialed), not yet live
	taking   bool          // membership, lower ID: ConnAccept is being written on a connection the peer dialed
	stopped  bool          // Serve has returned: a connection offered now is closed
	upc      chan struct{} // closed when a connection comes up or a dial fails; nil if nobody waits
	dialErr  error         // why the last dial failed
	links    peerLinks     // link.go's state for this peer
	lastDrop time.Time

	traffic peerTraffic // bytes, frames, messages, round-trip time (traffic.go)
}

func newPeer(c *cluster, id NodeID, addr string) *peer {
	return &peer{
		c:        c,
		id:       id,
		addr:     addr,
		dials:    c.n.id < id,
		offer:    make(chan struct{}, 1),
		want:     make(chan struct{}, 1),
		exited:   make(chan struct{}),
		exitOnce: new(sync.Once),
		log:      c.n.log.With("peer", int(id)),
	}
}

// dialAddr returns where to dial the peer ("" if unknown).
func (p *peer) dialAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// gossipAddr returns the peer's memberlist address, "" if unknown.
func (p *peer) gossipAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gaddr
}

// setGossipAddr records the peer's memberlist address.
func (p *peer) setGossipAddr(a string) {
	if a == "" {
		return
	}
	p.mu.Lock()
	p.gaddr = a
	p.mu.Unlock()
}

// setAddr sets where to dial the peer.
func (p *peer) setAddr(a string) {
	p.mu.Lock()
	p.addr = a
	p.mu.Unlock()
}

func (p *peer) String() string { return fmt.Sprintf("reign peer %d", p.id) }

// Backoff between connection attempts; the pause before dialing a peer
// that said Goodbye; the backoff of a process refused as a duplicate of
// another live one (long: the conflict lasts until someone fixes the
// configuration, and each refusal logs at Error).
const (
	minBackoff   = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
	afterGoodbye = 300 * time.Millisecond
	minDupWait   = time.Second
	maxDupWait   = 30 * time.Second
)

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// jitter returns d plus up to half of d, at random.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Uint64N(uint64(d/2+1)))
}

// Serve keeps a connection to the peer until ctx is done: dialing it (with
// backoff) if this node has the lower ID, else taking the connections the
// listener accepts from it.
func (p *peer) Serve(ctx context.Context) error {
	p.c.mu.Lock()
	exited, once := p.exited, p.exitOnce
	p.c.mu.Unlock()
	defer func() {
		if ctx.Err() != nil {
			once.Do(func() { close(exited) })
		}
	}()
	p.mu.Lock()
	p.stopped = false // restarted
	p.mu.Unlock()
	backoff, dupWait := minBackoff, minDupWait
	for ctx.Err() == nil {
		var cn *conn
		var err error
		switch {
		case p.c.member != nil:
			cn, err = p.next(ctx)
		case p.dials:
			cn, err = p.dial(ctx)
		default:
			cn, err = p.await(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, jitter(backoff))
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		switch p.runConn(ctx, cn) {
		case CloseGoodbye:
			if p.dials || p.c.member != nil {
				// the peer is shutting down: give it time to go rather
				// than dial into its last moments
				sleepCtx(ctx, afterGoodbye)
			}
		case CloseDuplicateNode:
			// another process with this node's ID holds the peer: wait
			// longer each time, so the Error lines stay few
			sleepCtx(ctx, jitter(dupWait))
			dupWait = min(2*dupWait, maxDupWait)
			continue
		}
		dupWait = minDupWait
	}
	// a connection accepted but never run; and none will be, so one
	// offered from now on is closed by offerConn
	p.mu.Lock()
	pend := p.pending
	p.pending = nil
	p.stopped = true
	p.mu.Unlock()
	if pend != nil {
		p.discard(pend, CloseShutdown, nil)
	}
	return ctx.Err()
}

// dial connects to the peer: TCP, TLS (the peer must prove it is p.id),
// then the reign handshake, all within the handshake timeout. A failure is
// logged here, once, and counted by reason.
func (p *peer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.c.n.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	if la := p.c.self.LocalAddress; la != "" {
		tla, err := net.ResolveTCPAddr("tcp", la)
		if err != nil {
			return nil, p.dialFailed(fmt.Errorf("reign: local address %s: %w", la, err))
		}
		d.LocalAddr = tla
	}
	addr := p.dialAddr()
	if addr == "" {
		return nil, fmt.Errorf("reign: node %d: no address known to dial", p.id)
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		// not counted: no connection was made
		p.log.Debug("cannot connect", "addr", addr, "err", err)
		return nil, err
	}
	tc := tls.Client(nc, p.c.tls.clientConfig(p.id))
	if err := handshakeTLS(ctx, tc); err != nil {
		_ = nc.Close()
		return nil, p.dialFailed(err)
	}
	cn, err := handshakeConn(ctx, p, tc, true)
	if errors.Is(err, errConnRefused) {
		_ = nc.Close()
		p.c.countClose(p, CloseDuplicateConn)
		p.log.Debug("connection refused: the peer has one of its own on the way", "addr", addr, "reason", CloseDuplicateConn)
		return nil, err
	}
	if err != nil {
		_ = nc.Close()
		return nil, p.dialFailed(err)
	}
	cn.outbound = true
	return cn, nil
}

// dialFailed counts and logs a failed connection attempt: at Warn when it
// is a matter of certificates or identity (a misconfiguration to fix), at
// Info when the network or the peer's own shutdown got in the way (it
// retries).
func (p *peer) dialFailed(err error) error {
	r := handshakeReason(err)
	p.c.countClose(p, r)
	level := slog.LevelWarn
	if networkError(err) {
		level = slog.LevelInfo
	}
	p.log.Log(context.Background(), level, "connection failed", "addr", p.dialAddr(), "reason", r, "err", err)
	return err
}

// offerConn gives the peer service a newly accepted connection.
//
// The peer dials only when it has lost its connection, so a newer
// connection normally means the older one is stale (the peer restarted,
// or a half-open failure) and replaces it at once. But if it comes from
// another incarnation while the current connection is still alive, two
// live processes claim the peer's node ID: the newer one is refused with
// Goodbye{duplicate}, and it backs off. "Alive" is decided by waiting, up
// to a heartbeat interval and a half, for the current connection to end
// (a restarted process's old connection ends at once) or to prove itself
// by receiving bytes (a live peer sends at least a heartbeat per
// interval).
//
// A connection offered once the service has stopped (the node is stopping,
// or the peer is leaving the table) is closed at once, with
// CloseShutdown: nobody would run it, and the other node would take it for
// up until its heartbeat timeout.
func (p *peer) offerConn(ctx context.Context, cn *conn) {
	if hook := p.c.testHookOffer; hook != nil {
		hook(p)
	}
	if cur := p.live.Load(); cur != nil && cur.peerInc != cn.peerInc && p.stillAlive(ctx, cur) {
		p.refuseDuplicate(cn, cur)
		return
	}
	if p.arbiter() && !cn.outbound && !p.take(cn) {
		return
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.discard(cn, CloseShutdown, nil)
		return
	}
	old, cur := p.pending, p.live.Load()
	p.pending = cn
	p.mu.Unlock()
	if old != nil {
		p.log.Debug("waiting connection replaced by a newer one", "addr", old.remote, "outbound", old.outbound, "newer_outbound", cn.outbound)
		p.discard(old, CloseReplaced, nil)
	}
	if cur != nil {
		cur.close(CloseReplaced, fmt.Errorf("replaced by a newer connection from %s", cn.remote))
	}
	select {
	case p.offer <- struct{}{}:
	default:
	}
}

// stillAlive reports whether cur stays up and receives bytes within a
// heartbeat interval and a half; it returns false as soon as cur ends.
func (p *peer) stillAlive(ctx context.Context, cur *conn) bool {
	reads := cur.dr.reads.Load()
	t := time.NewTimer(p.c.n.cfg.HeartbeatInterval * 3 / 2)
	defer t.Stop()
	select {
	case <-cur.done:
		return false
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	select {
	case <-cur.done:
		return false
	default:
		return cur.dr.reads.Load() != reads
	}
}

// refuseDuplicate refuses cn, a connection from a second live process
// claiming the peer's node ID: it says Goodbye{duplicate}, waits briefly
// for the refused side to hang up (so the Goodbye is read, not reset),
// and closes it.
func (p *peer) refuseDuplicate(cn, cur *conn) {
	p.c.stats.refused.Add(1)
	p.c.countClose(p, CloseDuplicateNode)
	p.log.Error("duplicate node: a second live process claims this peer's node ID; keeping the first, refusing the second",
		"addr", cn.remote, "reason", CloseDuplicateNode, "kept", cur.remote)
	frame := wire.AppendFrame(nil, wire.TypeGoodbye, wire.AppendGoodbye(nil, wire.Goodbye{Reason: wire.GoodbyeDuplicate}))
	_ = cn.nc.SetDeadline(time.Now().Add(goodbyeTimeout))
	if _, err := cn.nc.Write(frame); err == nil {
		var buf [512]byte
		for {
			if _, err := cn.nc.Read(buf[:]); err != nil {
				break
			}
		}
	}
	cn.close(CloseDuplicateNode, ErrDuplicateNode)
}

// await waits for the listener to accept a connection from the peer.
func (p *peer) await(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		cn := p.pending
		p.pending = nil
		p.mu.Unlock()
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.offer:
		}
	}
}

// runConn makes cn the peer's connection, tells the peer hooks, runs it
// until it ends, and then has the hooks resolve everything that depended
// on it. It returns why the connection ended.
func (p *peer) runConn(ctx context.Context, cn *conn) CloseReason {
	p.mu.Lock()
	// A connection offered while no connection was live (between taking
	// cn and here) was parked in pending: it is the newer, and both sides
	// run it.
	var stale *conn
	if pend := p.pending; pend != nil {
		// offered after cn was taken, so newer: the peer dialed again
		// because it lost cn (with membership, the lower ID chose it)
		p.pending, stale, cn = nil, cn, pend
	}
	cn.startIdle()
	p.live.Store(cn)
	p.starting = nil
	if p.upc != nil {
		close(p.upc)
		p.upc = nil
	}
	p.mu.Unlock()
	if stale != nil {
		p.log.Debug("connection replaced before it ran: a newer one was offered", "addr", stale.remote, "outbound", stale.outbound, "newer_outbound", cn.outbound)
		p.discard(stale, CloseReplaced, nil)
	}
	p.connects.Add(1)
	p.c.stats.connects.Add(1)
	p.log.Info("peer connected", "addr", cn.remote, "version", cn.version)
	for _, h := range p.c.hooks {
		h.peerUp(p, cn)
	}

	why, err := cn.run(ctx)
	p.c.gossipConnLost(cn)

	p.mu.Lock()
	if p.live.Load() == cn {
		p.live.Store(nil)
	}
	p.mu.Unlock()
	p.c.countClose(p, why)
	p.logDown(cn, why, err)
	for _, h := range p.c.hooks {
		h.peerDown(p, cn, why)
	}
	return why
}

// logDown logs the end of a connection, under the reason it ended for.
func (p *peer) logDown(cn *conn, why CloseReason, err error) {
	attrs := []any{"addr", cn.remote, "reason", why}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	switch why {
	case CloseShutdown:
		p.log.Info("connection closed: this node is shutting down", attrs...)
	case CloseGoodbye:
		p.log.Info("peer shut down", attrs...)
	case CloseReplaced:
		p.log.Info("connection replaced", attrs...)
	case CloseDuplicateNode:
		p.log.Error("duplicate node: the peer refused this connection, another live process claims this node's ID; backing off", attrs...)
	case CloseDuplicateConn:
		p.log.Info("duplicate connection closed: the lower ID had one of its own on the way", attrs...)
	case CloseMemberGone:
		p.log.Warn("peer left the cluster or failed, as membership says", attrs...)
	default:
		p.log.Warn("peer lost", attrs...)
	}
}

// logDrop logs a dropped message, at most once a second per peer.
func (p *peer) logDrop(err error) {
	p.mu.Lock()
	now := time.Now()
	ok := now.Sub(p.lastDrop) >= time.Second
	if ok {
		p.lastDrop = now
	}
	p.mu.Unlock()
	if ok {
		p.log.Warn("message dropped", "err", err)
	}
}

// With membership, either side of a pair may dial (a probe, a send or a
// join can need the connection on either side), so two connections could
// come up at once; if each side ran a different one, or one side ran a
// connection for a moment before the other dropped it, its links would
// fire and its node events say down and up for nothing. So the lower ID
// of the pair chooses, before either side uses a connection:
//   - a connection the lower ID dialed is the pair's: the higher takes it
//     at once (replacing any connection it had: the lower dials only when
//     it has none);
//   - a connection the higher ID dialed waits, after the Hello, for the
//     lower's verdict: ConnAccept, or Goodbye{duplicate connection} when
//     the lower is dialing itself or runs a connection it dialed (the
//     higher then waits for that one);
//   - each side dials at most one connection to the peer at a time (the
//     service or a join, see startDial), and not while it is taking one.
// So no connection either side has used is ever dropped as a duplicate.
// Without membership only the lower ID dials and none of this applies.

// arbiter reports whether this node chooses between the pair's
// connections: with membership, the lower ID does.
func (p *peer) arbiter() bool { return p.c.member != nil && p.c.n.id < p.id }

// take decides, as the pair's arbiter, whether to run cn, a connection
// the peer dialed: it refuses it while this node dials or runs a
// connection of its own to the same process, else it writes ConnAccept,
// the first frame after the Hello, before cn can be run.
func (p *peer) take(cn *conn) bool {
	p.mu.Lock()
	mine := func(o *conn) bool {
		if o == nil || !o.outbound || o.peerInc != cn.peerInc {
			return false
		}
		select {
		case <-o.done:
			return false // ended: not on its way
		default:
			return true
		}
	}
	refuse := p.dialing || p.taking || mine(p.pending) || mine(p.starting) || mine(p.live.Load())
	if !refuse {
		p.taking = true
	}
	p.mu.Unlock()
	if refuse {
		p.dropDuplicateConn(cn)
		return false
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
	_, err := cn.nc.Write(wire.AppendFrame(nil, wire.TypeConnAccept, nil))
	_ = cn.nc.SetWriteDeadline(time.Time{})
	p.mu.Lock()
	p.taking = false
	p.mu.Unlock()
	if err != nil {
		p.discard(cn, CloseWriteError, err)
		p.wake()
		return false
	}
	return true
}

// startDial reports whether this node may dial the peer now, and if so
// marks it dialing until endDial: with membership, when it has no
// connection and none is on its way.
func (p *peer) startDial() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dialing || p.taking || p.pending != nil || p.starting != nil || p.live.Load() != nil {
		return false
	}
	p.dialing = true
	return true
}

// endDial ends what startDial began.
func (p *peer) endDial() {
	p.mu.Lock()
	p.dialing = false
	p.mu.Unlock()
}

// next returns the next connection to run, with membership: an accepted
// one if any, else one it dials if the peer is wanted, else it waits for
// one of those.
func (p *peer) next(ctx context.Context) (*conn, error) {
	for {
		if cn := p.takePending(); cn != nil {
			return cn, nil
		}
		if p.wantsDial() {
			if !p.dials && p.member.Load() {
				// the lower ID keeps members connected and may be
				// dialing now: give its connection a moment to arrive
				// rather than be refused
				if cn := p.awaitOffer(ctx, p.c.dialGrace); cn != nil {
					return cn, nil
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			}
			if !p.startDial() {
				// a join is dialing, or the arbiter is taking one
				if cn := p.awaitOffer(ctx, p.c.n.cfg.HandshakeTimeout); cn != nil {
					return cn, nil
				}
				continue
			}
			cn, err := p.dial(ctx)
			p.mu.Lock()
			p.dialing = false
			if err == nil {
				p.starting = cn // until runConn makes it live
			}
			p.mu.Unlock()
			if err == nil {
				return cn, nil
			}
			if errors.Is(err, errConnRefused) {
				// the lower ID has a connection of its own on the way
				if cn := p.awaitOffer(ctx, p.c.n.cfg.HandshakeTimeout); cn != nil {
					return cn, nil
				}
				continue
			}
			// those waiting in connect learn at once
			p.mu.Lock()
			p.dialErr = err
			if p.upc != nil {
				close(p.upc)
				p.upc = nil
			}
			p.mu.Unlock()
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.offer:
		case <-p.want:
		}
	}
}

// discard closes cn, a connection that never ran or is ending, counted
// under why; the Transport forgets it.
func (p *peer) discard(cn *conn, why CloseReason, err error) {
	cn.close(why, err)
	p.c.countClose(p, why)
	p.c.gossipConnLost(cn)
}

// awaitOffer waits up to d for a connection to be offered, and takes it.
func (p *peer) awaitOffer(ctx context.Context, d time.Duration) *conn {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-p.offer:
	case <-t.C:
	}
	return p.takePending()
}

// lowerDialGrace is how long the higher ID of a pair of members waits for
// the lower's connection before dialing itself.
const lowerDialGrace = 50 * time.Millisecond

// takePending takes the connection waiting for the service, if any.
func (p *peer) takePending() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cn := p.pending
	p.pending = nil
	if cn != nil {
		p.starting = cn // until runConn makes it live
	}
	return cn
}

// wantsDial reports whether the service should dial the peer now: it is a
// member and this node has the lower ID (the lower keeps the pair
// connected), or a dial was asked for and has not expired.
func (p *peer) wantsDial() bool {
	if p.removing.Load() || p.dialAddr() == "" {
		return false
	}
	return (p.member.Load() && p.c.n.holdsState()) || monotime() < p.demand.Load()
}

// wake tells the service to look again at whether to dial.
func (p *peer) wake() {
	select {
	case p.want <- struct{}{}:
	default:
	}
}

// connect returns the peer's connection, asking the service to dial if
// there is none, and waiting for it until ctx is done.
func (p *peer) connect(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		if cn := p.live.Load(); cn != nil {
			p.mu.Unlock()
			return cn, nil
		}
		if p.upc == nil {
			p.upc = make(chan struct{})
		}
		upc := p.upc
		p.mu.Unlock()
		if dl, ok := ctx.Deadline(); ok {
			until := monotime() + int64(time.Until(dl))
			if until > p.demand.Load() {
				p.demand.Store(until)
			}
		}
		p.wake()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: node %d: %w", ErrNodeUnreachable, p.id, ctx.Err())
		case <-upc:
		}
		p.mu.Lock()
		cn, err := p.live.Load(), p.dialErr
		p.mu.Unlock()
		if cn == nil && err != nil {
			return nil, err
		}
	}
}

// dropDuplicateConn refuses cn, a connection the peer dialed while this
// node has its own, with Goodbye{duplicate connection}: the peer, waiting
// for the verdict, closes it quietly and waits for this node's.
func (p *peer) dropDuplicateConn(cn *conn) {
	p.c.countClose(p, CloseDuplicateConn)
	p.log.Debug("duplicate connection dropped", "addr", cn.remote, "reason", CloseDuplicateConn)
	frame := wire.AppendFrame(nil, wire.TypeGoodbye, wire.AppendGoodbye(nil, wire.Goodbye{Reason: wire.GoodbyeDuplicateConn}))
	_ = cn.nc.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
	_, _ = cn.nc.Write(frame)
	cn.close(CloseDuplicateConn, nil)
	p.c.gossipConnLost(cn)
}
