package reign

import (
	"sync/atomic"

	"github.com/reign-go/reign/internal/wire"
)

// peerTraffic counts what went over a peer's connections, across
// reconnections (Stats.Peers, Snapshot, reignhttp's metrics). Each counter
// has one writer at a time (the reader, or a sender under the
// connection's lock, or the writer), so an atomic add costs no contention.
// The reader's counters and the senders' are kept on separate cache lines,
// so counting does not bounce one line between the reading and the
// sending cores.
type peerTraffic struct {
	bytesIn, framesIn, msgsIn atomic.Uint64 // frame bytes (headers included); frames; Message, Request and Reply frames
	_                         [64]byte
	bytesOut, framesOut       atomic.Uint64
	msgsOut                   atomic.Uint64
	rtt                       atomic.Int64 // the last round-trip time measured by Ping, ns; 0: none yet
}

// Round-trip time. The writer sends a Ping every heartbeat interval,
// carrying the time it was sent (this process's monotonic clock); the peer
// echoes it in a Pong, and the round trip is the time since. A Pong is
// accepted only for the Ping outstanding, so a peer cannot make up a
// round-trip time; an unanswered Ping is replaced by the next.

// maybePing queues a Ping if none was sent in the last heartbeat
// interval. Called by the writer on its heartbeat tick.
func (c *conn) maybePing() {
	now := monotime()
	last := c.pingAt.Load()
	if last < 0 { // answered: its send time, negated
		last = -last
	}
	if last != 0 && now-last < int64(c.p.c.n.cfg.HeartbeatInterval) {
		return
	}
	c.pingAt.Store(now)
	if c.appendFrame(wire.TypePing, func(b []byte) []byte { return wire.AppendPing(b, uint64(now)) }) == nil {
		c.idle.quietOut.Add(quietPing)
	}
}

// handlePing answers a Ping with a Pong echoing it, as a control frame
// (bounded by ControlBufferLimit like every answer the peer provokes).
func handlePing(c *conn, payload []byte) error {
	v, err := wire.ParsePing(payload)
	if err != nil {
		return err
	}
	c.idle.quietIn.Add(quietPing)
	if c.appendFrame(wire.TypePong, func(b []byte) []byte { return wire.AppendPing(b, v) }) == nil {
		c.idle.quietOut.Add(quietPing)
	}
	return nil
}

// handlePong records the round-trip time of the outstanding Ping. A Pong
// for anything else (a late one, or made up) is ignored.
func handlePong(c *conn, payload []byte) error {
	v, err := wire.ParsePing(payload)
	if err != nil {
		return err
	}
	c.idle.quietIn.Add(quietPing)
	if sent := c.pingAt.Load(); sent != 0 && uint64(sent) == v && c.pingAt.CompareAndSwap(sent, -sent) {
		c.p.traffic.rtt.Store(max(monotime()-sent, 1))
	}
	return nil
}
