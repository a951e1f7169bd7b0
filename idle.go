package reign

// This file is membership's idle close: a connection between two members
// that nothing needs and that carried no traffic for
// MembershipConfig.IdleTimeout closes, by agreement of both sides, and the
// next use connects again. So a node's connections are those it uses (or
// memberlist probes through), not one per member: its idle cost does not
// grow with the cluster for the nodes it does not talk to.
//
// What keeps a connection: links either way (a link over it would have to
// fire NoConnection), calls in flight either way, and names or process
// groups held by either node (a node that holds names or groups keeps a
// connection to every member, as Erlang's global and pg keep the full
// mesh; see peer.wantsDial). Heartbeats, Pings and the Idle frames
// themselves are not traffic.
//
// The exchange, run by the lower ID of the pair (the arbiter, as for
// ConnAccept):
//  1. the lower ID, quiet for IdleTimeout and needing nothing, sends
//     Idle{Ask} with its counts of traffic bytes received and sent;
//  2. the higher ID answers Idle{Agree} with its own counts if it needs
//     nothing, has nothing queued and the counts match its own (nothing in
//     flight either way), else Idle{Refuse};
//  3. on Agree, the lower ID checks again (nothing sent or received since
//     its Ask, nothing needed, the counts match): if so it drains the
//     connection (it leaves the peer's live slot, so new sends connect
//     again; a frame queued after it is refused and the sender retries on
//     the next connection) and sends Goodbye{idle} as its last frame;
//     else it does nothing, and asks again after another quiet spell;
//  4. the higher ID, reading Goodbye{idle}, drains too, writes what it had
//     queued, and closes; the lower ID reads until then (at most
//     goodbyeTimeout) and closes. Every frame written before the close is
//     read and handled on the other side.
// A frame that crosses the Agree (a link or a call made in that round
// trip, after IdleTimeout of silence) is delivered, but the connection
// then closes under it, as for any lost connection: its link fires
// NoConnection, the call fails.

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// DefaultIdleTimeout is MembershipConfig.IdleTimeout's default.
const DefaultIdleTimeout = 10 * time.Second

// idleState is a connection's part in the idle close.
type idleState struct {
	baseIn, baseOut   uint64        // the peer's traffic counters when the connection started
	quietIn, quietOut atomic.Uint64 // bytes of Heartbeat, Ping, Pong and Idle frames
	draining          atomic.Bool   // no new frames: the connection is closing as idle
	closeFlushed      atomic.Bool   // the higher ID's side: close once the queue is written

	// The lower ID's side (the writer's heartbeat tick, and the reader
	// for the answer).
	lastAct   int64        // traffic seen at the last check (writer only)
	quietFrom atomic.Int64 // monotime since when there was no traffic (and nothing needed)
	askAt     atomic.Int64 // monotime of the Ask unanswered, 0 if none
	askIn     atomic.Uint64
	askOut    atomic.Uint64
}

// The sizes of the frames that are not traffic: Heartbeat, Ping and Pong,
// Idle.
const (
	quietHeartbeat = wire.HeaderSize
	quietPing      = wire.HeaderSize + wire.PingSize
	quietIdle      = wire.HeaderSize + wire.IdleSize
)

// startIdle records the peer's traffic counters as the connection starts
// (before it is live: nothing has been read or written on it).
func (c *conn) startIdle() {
	c.idle.baseIn = c.p.traffic.bytesIn.Load()
	c.idle.baseOut = c.p.traffic.bytesOut.Load()
	c.idle.quietFrom.Store(monotime())
}

// traffic returns the bytes of traffic (quiet frames excluded) read and
// written on the connection so far.
func (c *conn) traffic() (in, out uint64) {
	in = c.p.traffic.bytesIn.Load() - c.idle.baseIn - c.idle.quietIn.Load()
	out = c.p.traffic.bytesOut.Load() - c.idle.baseOut - c.idle.quietOut.Load()
	return in, out
}

// idleTimeout returns the idle timeout, 0 if connections are never closed
// as idle (membership off, or IdleTimeout negative).
func (c *cluster) idleTimeout() time.Duration {
	if c.member == nil || c.member.cfg.IdleTimeout < 0 {
		return 0
	}
	return c.member.cfg.IdleTimeout
}

// holdsState reports whether this node holds registry names or process
// group memberships: it then keeps a connection to every member, so they
// converge.
func (n *Node) holdsState() bool {
	n.reg.mu.RLock()
	named := len(n.reg.owned) > 0
	n.reg.mu.RUnlock()
	if named {
		return true
	}
	n.pg.mu.RLock()
	defer n.pg.mu.RUnlock()
	return len(n.pg.local) > 0
}

// needs reports whether anything on this node depends on the connection
// to p: links either way, calls in flight either way, names or groups
// held by this node or by p.
func (p *peer) needs() bool {
	n := p.c.n
	p.mu.Lock()
	linked := len(p.links.out) > 0 || p.links.nwatch > 0
	p.mu.Unlock()
	if linked || n.holdsState() {
		return true
	}
	n.reg.mu.RLock()
	named := n.reg.peers[p.id].count > 0
	n.reg.mu.RUnlock()
	if named {
		return true
	}
	n.pg.mu.RLock()
	pg := n.pg.byNode[p.id]
	grouped := pg != nil && pg.members > 0
	n.pg.mu.RUnlock()
	if grouped {
		return true
	}
	t := &n.calls
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, oc := range t.m {
		if oc.peer == p.id || (oc.up.remote && oc.up.node == p.id) {
			return true
		}
	}
	return false
}

// checkIdle runs on the writer's heartbeat tick, on the lower ID's side:
// after IdleTimeout without traffic, and with nothing needing the
// connection, it asks the peer to close it.
func (c *conn) checkIdle(timeout time.Duration) {
	if c.idle.draining.Load() {
		return
	}
	now := monotime()
	in, out := c.traffic()
	if act := int64(in + out); act != c.idle.lastAct {
		c.idle.lastAct = act
		c.idle.quietFrom.Store(now)
		return
	}
	if time.Duration(now-c.idle.quietFrom.Load()) < timeout {
		return
	}
	if at := c.idle.askAt.Load(); at != 0 {
		if time.Duration(now-at) > c.p.c.n.cfg.HeartbeatTimeout {
			c.idle.askAt.Store(0) // never answered: ask again later
			c.idle.quietFrom.Store(now)
		}
		return
	}
	if c.p.needs() {
		c.idle.quietFrom.Store(now) // look again after another spell
		return
	}
	c.idle.askIn.Store(in)
	c.idle.askOut.Store(out)
	c.idle.askAt.Store(max(now, 1))
	c.sendIdle(wire.Idle{Phase: wire.IdleAsk, In: in, Out: out})
}

// sendIdle queues an Idle frame, counted as quiet.
func (c *conn) sendIdle(v wire.Idle) {
	c.idle.quietOut.Add(quietIdle)
	if c.appendControl(wire.TypeIdle, func(b []byte) []byte { return wire.AppendIdle(b, v) }, false) != nil {
		c.idle.quietOut.Add(^uint64(quietIdle - 1)) // not queued
	}
}

// handleIdle handles the peer's Idle frame: an Ask on the higher ID's
// side, the answer on the lower's.
func handleIdle(c *conn, payload []byte) error {
	v, err := wire.ParseIdle(payload)
	if err != nil {
		return err
	}
	c.idle.quietIn.Add(quietIdle)
	p := c.p
	if p.c.member == nil || p.arbiter() != (v.Phase != wire.IdleAsk) {
		return fmt.Errorf("%w: Idle phase %d from the wrong side of the pair, or without membership", wire.ErrMalformed, v.Phase)
	}
	in, out := c.traffic()
	switch v.Phase {
	case wire.IdleAsk:
		// (a node with idle close off, IdleTimeout negative, refuses)
		if p.c.idleTimeout() > 0 && in == v.Out && out == v.In && c.queueEmpty() && !c.idle.draining.Load() && !p.needs() {
			c.sendIdle(wire.Idle{Phase: wire.IdleAgree, In: in, Out: out})
		} else {
			c.sendIdle(wire.Idle{Phase: wire.IdleRefuse})
		}
	case wire.IdleAgree:
		if c.idle.askAt.Swap(0) == 0 {
			// an answer to an ask given up on (checkIdle: unanswered
			// for HeartbeatTimeout, on a slow peer): too late to act on
			return nil
		}
		if in == c.idle.askIn.Load() && out == c.idle.askOut.Load() && v.In == out && v.Out == in &&
			c.queueEmpty() && !p.needs() {
			c.drain()
			_ = c.appendControl(wire.TypeGoodbye, func(b []byte) []byte {
				return wire.AppendGoodbye(b, wire.Goodbye{Reason: wire.GoodbyeIdle})
			}, false)
			// the peer closes once it has read the Goodbye; if it does
			// not, close anyway
			time.AfterFunc(goodbyeTimeout, func() { c.close(CloseIdle, nil) })
		} else {
			c.idle.quietFrom.Store(monotime())
		}
	case wire.IdleRefuse:
		c.idle.askAt.Store(0)
		c.idle.quietFrom.Store(monotime())
	}
	return nil
}

// queueEmpty reports whether nothing is queued for the writer.
func (c *conn) queueEmpty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) == 0
}

// drain takes the connection out of its peer's live slot (sends from now
// connect again) and refuses new frames on it but the Goodbye; what is
// queued is still written.
func (c *conn) drain() {
	p := c.p
	p.mu.Lock()
	c.idle.draining.Store(true)
	if p.live.Load() == c {
		p.live.Store(nil)
	}
	p.mu.Unlock()
	c.mu.Lock()
	c.mu.Unlock() // a frame being queued now is in before the Goodbye
}

// idleGoodbye handles Goodbye{idle} on the higher ID's side: drain, write
// what is queued, then close (the writer does, once the queue is empty).
func (c *conn) idleGoodbye() {
	c.idle.closeFlushed.Store(true)
	c.drain()
	c.kick()
}
