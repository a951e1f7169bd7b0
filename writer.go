package reign

// This file is a connection's sending side: the writer goroutine, which
// batches queued frames into one write, and the senders that queue them.
// conn.go is the reading side.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// goodbyeTimeout bounds the final flush of a connection on shutdown.
const goodbyeTimeout = 500 * time.Millisecond

// kick wakes the writer.
func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes batches of queued frames, and a heartbeat whenever
// nothing has been written (by it or by a sender writing inline) for half
// the heartbeat interval, checked every half interval: the peer never goes
// a full interval without a byte. A write that cannot finish within the
// heartbeat timeout (a peer that stopped reading) ends the connection.
func (c *conn) writeLoop(stopping <-chan struct{}) error {
	cfg := &c.p.c.n.cfg
	hb := time.NewTicker(cfg.HeartbeatInterval / 2)
	defer hb.Stop()
	var heartbeat [wire.HeaderSize]byte
	heartbeatFrame := wire.AppendFrame(heartbeat[:0], wire.TypeHeartbeat, nil)
	idleTimeout := c.p.c.idleTimeout()
	checksIdle := idleTimeout > 0 && c.p.arbiter()
	tick := false
	for {
		select {
		case <-c.done:
			return nil
		case <-stopping:
			c.mu.Lock()
			c.out = wire.AppendFrame(c.out, wire.TypeGoodbye, wire.AppendGoodbye(nil, wire.Goodbye{Reason: wire.GoodbyeShutdown}))
			c.mu.Unlock()
			c.wmu.Lock()
			_ = c.writeBatch(goodbyeTimeout)
			c.wmu.Unlock()
			return nil
		case <-hb.C:
			tick = true
			c.maybePing()
			if time.Duration(monotime()-c.lastWrite.Load()) >= cfg.HeartbeatInterval/2 {
				c.mu.Lock()
				c.shrinkIdle() // quiet: give a burst's buffers back
				if len(c.out) == 0 {
					c.out = append(c.out, heartbeatFrame...)
					c.idle.quietOut.Add(quietHeartbeat)
				}
				c.mu.Unlock()
			}
		case <-c.wake:
		}
		c.wmu.Lock()
		for {
			if err := c.writeBatch(cfg.HeartbeatTimeout); err != nil {
				c.wmu.Unlock()
				return err
			}
			c.mu.Lock()
			more := len(c.out) > 0
			c.mu.Unlock()
			if !more {
				break
			}
		}
		c.wmu.Unlock()
		if c.idle.closeFlushed.Load() {
			// the higher ID's side of an idle close: all written
			c.close(CloseIdle, nil)
			return nil
		}
		if tick && checksIdle {
			c.checkIdle(idleTimeout) // after the writes: the counts are settled
		}
		tick = false
	}
}

// writeBatch writes everything queued in one Write, which must finish
// within timeout (a peer that stopped reading is lost). The caller holds
// c.wmu.
func (c *conn) writeBatch(timeout time.Duration) error {
	c.mu.Lock()
	batch := c.out
	c.out = c.spare[:0]
	c.spare = nil
	c.ctlWriting, c.ctlQueued = c.ctlQueued, 0
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.mu.Unlock()
	var err error
	if len(batch) > 0 {
		c.setWriteDeadline(timeout)
		if _, err = c.nc.Write(batch); err != nil {
			err = fmt.Errorf("write: %w", err)
		}
		c.p.traffic.bytesOut.Add(uint64(len(batch)))
		c.lastWrite.Store(monotime())
	}
	c.mu.Lock()
	// keep the buffer for the next swap: out never grows much past the
	// send buffer limit, so two buffers bound a peer's memory
	c.spare = batch[:0]
	c.ctlWriting = 0
	c.mu.Unlock()
	return err
}

// setWriteDeadline keeps a write deadline of about timeout ahead, moving it
// only when a quarter of it has passed (see deadlineReader). The caller
// holds c.wmu.
func (c *conn) setWriteDeadline(timeout time.Duration) {
	if now := monotime(); c.wset == 0 || time.Duration(now-c.wset) > timeout/4 || timeout != c.wtimeout {
		_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		c.wset, c.wtimeout = now, timeout
	}
}

// errDroppedStale is sendRemote's word to send that the message went to
// an Address from an earlier run of its node and was dropped: Send
// returns nil, as for any remote closed mailbox, and the tracer is told
// of a drop (once).
var errDroppedStale = errors.New("dropped: an Address from an earlier run of its node")

// inlineGap is how long a connection must have been quiet for a sender to
// write its frame to the socket itself instead of waking the writer: a
// lone request or reply then skips a goroutine hand-off (a large part of a
// round trip's latency), while a stream of sends still goes through the
// writer and is batched.
const inlineGap = 20 * time.Microsecond

// flushNew is called by a sender whose frame went into an empty buffer.
// If the connection has been quiet, and nobody is writing, the sender
// writes the frame now; otherwise it wakes the writer.
func (c *conn) flushNew() {
	if time.Duration(monotime()-c.lastWrite.Load()) < inlineGap || !c.wmu.TryLock() {
		c.kick()
		return
	}
	err := c.writeBatch(c.p.c.n.cfg.HeartbeatTimeout)
	c.mu.Lock()
	more := len(c.out) > 0
	c.mu.Unlock()
	c.wmu.Unlock()
	if err != nil {
		c.close(CloseWriteError, err)
		return
	}
	if more {
		c.kick()
	}
}

// epoch anchors monotime.
var epoch = time.Now()

// monotime returns nanoseconds on the monotonic clock.
func monotime() int64 { return int64(time.Since(epoch)) }

// appendFrame queues one control frame (link, registry, Closed) whose
// payload build appends. Control frames never wait for buffer room, so
// links and the registry cannot deadlock behind data, and the reader that
// answers a peer's frame never blocks; instead the bytes of control frames
// queued or being written are bounded by Config.ControlBufferLimit: a
// frame that would cross it closes the connection (CloseLimitExceeded,
// counted under LimitControl) and is not queued: the peer is not reading
// what it provokes.
func (c *conn) appendFrame(t wire.Type, build func([]byte) []byte) error {
	return c.appendControl(t, build, true)
}

// appendSyncFrame is appendFrame for the synchronization of this node's
// own state when a connection comes up (peerUp): not counted against
// ControlBufferLimit, since it is bounded by this node's application, not
// provoked by the peer.
func (c *conn) appendSyncFrame(t wire.Type, build func([]byte) []byte) error {
	return c.appendControl(t, build, false)
}

func (c *conn) appendControl(t wire.Type, build func([]byte) []byte, bounded bool) error {
	c.mu.Lock()
	if c.closed || c.idle.draining.Load() && t != wire.TypeGoodbye {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	wasEmpty := len(c.out) == 0
	before := len(c.out)
	out, start := wire.BeginFrame(c.out, t)
	out = build(out)
	if bounded {
		limit := c.p.c.n.cfg.ControlBufferLimit
		if size := len(out) - before; c.ctlQueued+c.ctlWriting+size > limit {
			c.out = out[:before]
			c.mu.Unlock()
			if c.close(CloseLimitExceeded, &LimitError{Limit: LimitControl, Field: "ControlBufferLimit", Max: limit}) {
				c.p.c.stats.limits[LimitControl].Add(1)
			}
			return ErrNodeUnreachable
		}
		c.ctlQueued += len(out) - before
	}
	if err := c.commitFrame(out, start); err != nil {
		return err
	}
	if wasEmpty {
		c.kick()
	}
	return nil
}

// commitFrame ends the frame begun at start in out and makes out the
// queue; a frame over the size limit is taken back out. The caller holds
// c.mu; commitFrame releases it.
func (c *conn) commitFrame(out []byte, start int) error {
	out, err := wire.EndFrame(out, start, c.maxFrame)
	if err != nil {
		out = out[:start]
	} else {
		c.p.traffic.framesOut.Add(1)
	}
	c.out = out
	c.mu.Unlock()
	return err
}

// frameHead is what goes before the body of a Message, Request or Reply.
type frameHead struct {
	t       wire.Type // TypeMessage, TypeRequest or TypeReply
	to      wire.Ref
	replyTo wire.Addr // Request only
	ref     uint64    // Request and Reply: the call reference
}

// lockRoom takes c.mu once the send buffer is within its limit, waiting
// while it is over (until the writer drains it or the connection ends).
// It returns with c.mu held, or ErrNodeUnreachable (and c.mu not held) if
// the connection is closed.
func (c *conn) lockRoom() error {
	c.mu.Lock()
	for len(c.out) > c.limit && !c.closed {
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		<-room
		c.mu.Lock()
	}
	if c.closed || c.idle.draining.Load() {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	return nil
}

// encodeBody encodes v (nil: no body) into sb's buffer, for a frame on
// c: it fails if the body would not fit the peer's frame limit.
func (c *conn) encodeBody(sb *scratch, v any) ([]byte, *typeInfo, error) {
	if v == nil {
		return sb.b[:0], nil, nil
	}
	body, info, err := c.p.c.n.encodeMessage(sb.b[:0], v)
	sb.b = body[:0]
	if err != nil {
		return nil, nil, err
	}
	if len(body)+64 > c.maxFrame {
		return nil, nil, fmt.Errorf("%w: %s encodes to %d bytes, over the %d-byte frame limit", ErrFrameTooLarge, info.name, len(body), c.maxFrame)
	}
	return body, info, nil
}

// sendValue queues a Message, Request or Reply frame carrying v. The value
// is encoded before the lock is taken; its type number is assigned (with a
// TypeDef frame first, the first time) under the lock, so the definition
// always precedes its first use on the wire. It waits while the buffer is
// over its limit, until the writer drains it or the connection ends.
func (c *conn) sendValue(h frameHead, v any) error {
	n := c.p.c.n
	if info := n.plainInfo(v); info != nil {
		if done, err := c.sendPlain(h, info, v); done {
			return err
		}
	}
	sb := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sb)
	body, info, err := c.encodeBody(sb, v)
	if err != nil {
		return err
	}

	if err := c.lockRoom(); err != nil {
		return err
	}
	wasEmpty := len(c.out) == 0
	var id uint32
	if info != nil {
		id = c.typeNumber(info)
	}
	out, start := wire.BeginFrame(c.out, h.t)
	out = h.append(out, id, body)
	if err := c.commitFrame(out, start); err != nil {
		return err
	}
	c.sent(wasEmpty)
	return nil
}

// append appends the payload of h's frame, of type number id, to out.
func (h *frameHead) append(out []byte, id uint32, body []byte) []byte {
	switch h.t {
	case wire.TypeMessage:
		out = wire.AppendMessage(out, wire.Message{To: h.to, TypeID: id, Body: body})
	case wire.TypeRequest:
		out = wire.AppendRequest(out, wire.Request{To: h.to, ReplyTo: h.replyTo, CallRef: h.ref, TypeID: id, Body: body})
	case wire.TypeReply:
		out = wire.AppendReply(out, wire.Reply{To: h.to, CallRef: h.ref, TypeID: id, Body: body})
	}
	return out
}

// sent counts a queued message frame and, if it went into an empty
// buffer, flushes it (flushNew).
func (c *conn) sent(wasEmpty bool) {
	c.p.traffic.msgsOut.Add(1)
	if wasEmpty {
		c.flushNew()
	}
}

// sendPlain is sendValue for a value of a plain struct type under
// MsgpackCodec (info from plainInfo): it encodes v straight into the
// connection's buffer, under the lock, instead of into a scratch buffer
// copied in afterwards. The fast path's encoder cannot fail but for a
// string or []byte over 4 GiB, nor call user code, so the lock is held for
// no longer than the copy took. done is false if it left v to sendValue's
// general path (nothing queued but, perhaps, the type's definition).
func (c *conn) sendPlain(h frameHead, info *typeInfo, v any) (done bool, err error) {
	if err := c.lockRoom(); err != nil {
		return true, err
	}
	wasEmpty := len(c.out) == 0
	id := c.typeNumber(info)
	out, start := wire.BeginFrame(c.out, h.t)
	out = h.append(out, id, nil)
	body := len(out)
	out, ok := c.p.c.n.fastEncode(out, info, v)
	if !ok {
		c.out = out[:start]
		c.mu.Unlock()
		return false, nil
	}
	if size := len(out) - body; size+64 > c.maxFrame {
		kept := out[:start]
		if cap(out) > 2*c.limit+c.maxFrame {
			// do not keep the capacity the oversized value grew
			kept = append(make([]byte, 0, len(kept)), kept...)
		}
		c.out = kept
		c.mu.Unlock()
		return true, fmt.Errorf("%w: %s encodes to %d bytes, over the %d-byte frame limit", ErrFrameTooLarge, info.name, size, c.maxFrame)
	}
	if err := c.commitFrame(out, start); err != nil {
		return true, err
	}
	c.sent(wasEmpty)
	return true, nil
}

type scratch struct{ b []byte }

// scratchPool holds encoding buffers; it holds no node's state.
var scratchPool = sync.Pool{New: func() any { return &scratch{b: make([]byte, 0, 256)} }}

func ref(a Address) wire.Ref { return wire.Ref{Inc: a.inc, ID: a.id} }

// sendRemote sends msg to a mailbox of another node.
func (n *Node) sendRemote(a Address, msg any) error {
	if n.cl == nil {
		return &SendError{To: a, Err: ErrNodeUnreachable}
	}
	p := n.cl.peer(a.node)
	if p == nil && n.cl.member == nil {
		return &SendError{To: a, Err: fmt.Errorf("%w: node %d is not in the cluster spec", ErrNodeUnreachable, a.node)}
	}
	cn := n.cl.connectOnUse(p, a.node) // membership.go
	if cn == nil {
		return &SendError{To: a, Err: ErrNodeUnreachable}
	}
	if m, ok := msg.(Request); ok { // forwarded: see call.go (a stale a fails the call)
		_, err := n.sendRequest(a, m, false)
		return err
	}
	if a.inc != cn.peerInc {
		// an Address from another run of that node: as good as closed, and
		// as with any remote closed mailbox the message is dropped
		n.cl.stats.droppedStale.Add(1)
		return errDroppedStale // send: nil to the sender, a drop to the tracer
	}
	h := frameHead{t: wire.TypeMessage, to: ref(a)}
	err := cn.sendValue(h, msg)
	if err != nil && cn.idle.draining.Load() {
		// closing as idle (idle.go): the next connection takes it
		if cn = n.cl.connectOnUse(p, a.node); cn == nil {
			return &SendError{To: a, Err: ErrNodeUnreachable}
		}
		err = cn.sendValue(h, msg)
	}
	if err != nil {
		return &SendError{To: a, Err: err}
	}
	return nil
}

// queueMessages queues a Message frame carrying body, an encoding of type
// info, for each mailbox of tos (the peer's), and wakes the writer: unlike
// sendValue it never writes inline, so a Broadcast that visits many
// connections in turn leaves each writer a batch to send in one write,
// instead of paying a write (a TLS record and a syscall) per message on
// every connection whose last write is older than inlineGap. It waits
// while the buffer is over its limit, as sendValue does, and returns how
// many frames it queued.
func (c *conn) queueMessages(tos []wire.Ref, info *typeInfo, body []byte) (int, error) {
	if len(body)+64 > c.maxFrame {
		return 0, fmt.Errorf("%w: %s encodes to %d bytes, over the peer's %d-byte frame limit", ErrFrameTooLarge, info.name, len(body), c.maxFrame)
	}
	if err := c.lockRoom(); err != nil {
		return 0, err
	}
	wasEmpty := len(c.out) == 0
	id := c.typeNumber(info)
	out := c.out
	for _, to := range tos {
		var start int
		out, start = wire.BeginFrame(out, wire.TypeMessage)
		out = wire.AppendMessage(out, wire.Message{To: to, TypeID: id, Body: body})
		out, _ = wire.EndFrame(out, start, c.maxFrame) // fits: checked above
	}
	c.out = out
	c.mu.Unlock()
	c.p.traffic.framesOut.Add(uint64(len(tos)))
	c.p.traffic.msgsOut.Add(uint64(len(tos)))
	if wasEmpty {
		c.kick()
	}
	return len(tos), nil
}

// typeNumber returns info's type number on this connection, assigning the
// next one, and queueing its TypeDef frame, the first time. The caller
// holds c.mu.
func (c *conn) typeNumber(info *typeInfo) uint32 {
	if info.index >= len(c.types) {
		c.types = append(c.types, make([]uint32, info.index+1-len(c.types))...)
	}
	id := c.types[info.index]
	if id == 0 {
		c.ntypes++
		id = c.ntypes
		c.types[info.index] = id
		out, start := wire.BeginFrame(c.out, wire.TypeTypeDef)
		out = wire.AppendTypeDef(out, wire.TypeDef{ID: id, Name: info.name})
		c.out, _ = wire.EndFrame(out, start, c.maxFrame)
	}
	return id
}

// idleBufferCap is the most a quiet connection keeps of its send buffers
// (out and spare): a burst grows them, and the first quiet heartbeat tick
// gives the memory back.
const idleBufferCap = 4 << 10

// shrinkIdle drops send buffers grown past idleBufferCap, if empty. The
// caller holds c.mu.
func (c *conn) shrinkIdle() {
	if len(c.out) == 0 && cap(c.out) > idleBufferCap {
		c.out = nil
	}
	if cap(c.spare) > idleBufferCap {
		c.spare = nil
	}
}
