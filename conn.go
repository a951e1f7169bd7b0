package reign

// This file is a connection's life and its reading side: the reader
// goroutine and the dispatch table of incoming frames. writer.go is the
// sending side.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// conn is one live, handshaken connection to a peer. It has exactly two
// goroutines, a reader and a writer, owned by the peer service that runs it.
//
// Outgoing frames are appended by the sending goroutines to out, a byte
// buffer; the writer swaps it for an empty one and writes the whole batch
// in one Write, so throughput holds under load and an idle connection
// flushes at once.
type conn struct {
	p        *peer
	nc       net.Conn
	remote   string // the peer's network address, for logs
	peerInc  uint32 // the peer's incarnation, from its Hello
	version  uint16 // the protocol version negotiated in the handshake
	maxFrame int    // the largest frame we may send: min of both sides' limits
	limit    int    // the send buffer limit, bytes
	outbound bool   // this node dialed it (set before it runs; see peer.take)

	mu          sync.Mutex
	out         []byte        // frames waiting for the writer
	spare       []byte        // the writer's other buffer
	room        chan struct{} // closed when the writer takes out; nil if nobody waits
	types       []uint32      // sender-side type dictionary: typeInfo.index -> number (0: none yet)
	ntypes      uint32        // numbers assigned so far
	closed      bool
	closeReason CloseReason // why it ended; set once, with closed
	closeErr    error       // the detail

	wmu       sync.Mutex // held while writing to nc: by the writer, or by a sender writing inline
	wset      int64      // monotime when the write deadline was last set (guarded by wmu)
	wtimeout  time.Duration
	lastWrite atomic.Int64 // monotime of the last write to nc

	wake chan struct{} // capacity 1: tells the writer out is no longer empty
	done chan struct{} // closed when the connection is finished

	// Reader-side state, touched only by the reader goroutine.
	r      *wire.Reader    // from the handshake: it may hold bytes past the Hello
	dr     *deadlineReader // under r
	rtypes []*typeInfo     // the peer's type numbers, index = number-1; nil = unknown here
	rnames []string
	rbytes int      // total length of rnames (bounded by MaxPeerTypeBytes)
	batch  msgBatch // decoded messages for one mailbox, not yet pushed

	// Control frames queued (ctlQueued) or being written (ctlWriting),
	// bounded by ControlBufferLimit (guarded by mu).
	ctlQueued, ctlWriting int

	// pingAt is the monotime of the Ping outstanding (negated once its
	// Pong came), 0 before the first (traffic.go).
	pingAt atomic.Int64

	idle idleState // membership's idle close (idle.go)
}

func newConn(p *peer, nc net.Conn, h handshaken) *conn {
	n := p.c.n
	maxFrame := n.cfg.MaxFrameSize
	if h.MaxFrame != 0 && int(h.MaxFrame) < maxFrame {
		maxFrame = int(h.MaxFrame)
	}
	dr, r := h.dr, h.r
	if r == nil { // not from exchangeHello (tests)
		dr = &deadlineReader{nc: nc}
		r = wire.NewReader(dr, n.cfg.MaxFrameSize)
	}
	dr.timeout = n.cfg.HeartbeatTimeout
	return &conn{
		p:        p,
		nc:       nc,
		remote:   nc.RemoteAddr().String(),
		peerInc:  h.Incarnation,
		version:  h.version,
		maxFrame: maxFrame,
		limit:    n.cfg.SendBufferLimit,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		r:        r,
		dr:       dr,
	}
}

// close ends the connection once, with the first reason given; err says
// more (it may be nil). It reports whether this call closed it.
func (c *conn) close(r CloseReason, err error) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	c.closeReason, c.closeErr = r, err
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.mu.Unlock()
	close(c.done)
	// Close the TCP connection under TLS directly: tls.Conn.Close first
	// sends a close_notify alert with a 5-second write deadline, which
	// blocks the closer when the peer stopped reading. A clean shutdown
	// has said Goodbye already.
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
	} else {
		_ = c.nc.Close()
	}
	return true
}

// why returns the reason the connection ended and its detail.
func (c *conn) why() (CloseReason, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeReason, c.closeErr
}

// run runs the connection's reader and writer until either fails or ctx
// ends, then closes the connection and returns why it ended. When ctx ends
// the writer flushes what is queued and a Goodbye, so the peer reports
// NodeShutdown rather than a lost connection.
func (c *conn) run(ctx context.Context) (CloseReason, error) {
	var wg sync.WaitGroup
	wrote := make(chan struct{})
	stopping := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := c.readLoop()
		select {
		case <-stopping: // the peer hung up on our Goodbye: still our shutdown
			c.close(CloseShutdown, nil)
		default:
			if c.idle.draining.Load() {
				c.close(CloseIdle, nil) // the peer hung up on our idle Goodbye
			}
			c.close(reasonOf(err), err)
		}
	}()
	go func() {
		defer wg.Done()
		defer close(wrote)
		if err := c.writeLoop(stopping); err != nil {
			c.close(CloseWriteError, err)
		}
	}()
	select {
	case <-ctx.Done():
		close(stopping)
		t := time.NewTimer(goodbyeTimeout)
		select {
		case <-wrote:
			// Then let the peer hang up first (the reader ends): closing
			// with its bytes unread would reset the connection, which
			// can destroy our Goodbye before the peer reads it.
			select {
			case <-c.done:
			case <-t.C:
			}
		case <-t.C:
		}
		t.Stop()
		c.close(CloseShutdown, nil)
	case <-c.done:
	}
	wg.Wait()
	return c.why()
}

// deadlineReader keeps a read deadline of the heartbeat timeout on the
// socket, so a silent peer is declared lost. Moving a deadline is not free
// (it re-arms a runtime timer and can wake the network poller), so it is
// moved only when a quarter of the timeout has passed since it was last
// set: a peer is declared lost after between 1 and 1.25 timeouts of
// silence. With timeout zero (during the handshake) it leaves the
// deadline alone. reads counts the reads that returned bytes: a sign of
// life the duplicate-node check watches.
type deadlineReader struct {
	nc      net.Conn
	timeout time.Duration
	set     int64 // monotime when the deadline was last set
	reads   atomic.Uint64
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		if now := monotime(); d.set == 0 || time.Duration(now-d.set) > d.timeout/4 {
			_ = d.nc.SetReadDeadline(time.Now().Add(d.timeout + d.timeout/4))
			d.set = now
		}
	}
	k, err := d.nc.Read(p)
	if k > 0 {
		d.reads.Add(1)
	}
	return k, err
}

// readLoop reads frames until the connection fails, and hands each to the
// handler of its type. The returned error carries the close reason (see
// reasonOf).
//
// Message frames for one mailbox that arrive together are pushed together
// (see msgBatch): the batch is pushed before the reader handles a frame of
// any other type or for another mailbox, before it reads from the socket
// (so no message waits for bytes that have not arrived), and before it
// returns.
func (c *conn) readLoop() error {
	for {
		if len(c.batch.vs) > 0 && !c.r.Ready() {
			c.flushBatch()
		}
		t, payload, err := c.r.Next()
		if err != nil {
			c.flushBatch()
			return c.readError(err)
		}
		c.p.traffic.framesIn.Add(1)
		c.p.traffic.bytesIn.Add(uint64(wire.HeaderSize + len(payload)))
		if t != wire.TypeMessage {
			c.flushBatch()
		}
		if int(t) >= len(frameHandlers) || frameHandlers[t] == nil {
			if t == wire.TypeHello {
				return fmt.Errorf("%w: Hello after the handshake", wire.ErrMalformed)
			}
			return fmt.Errorf("%w: %d", wire.ErrUnknownFrame, t)
		}
		if err := frameHandlers[t](c, payload); err != nil {
			c.flushBatch()
			return err
		}
	}
}

// readError classifies an error of the frame reader.
func (c *conn) readError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return closeWith(ClosePeerClosed, err)
	case errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrFrameTooLarge):
		return closeWith(CloseProtocolError, err)
	case errors.As(err, &ne) && ne.Timeout():
		return closeWith(CloseHeartbeatTimeout, fmt.Errorf("peer silent for %v: %w", c.p.c.n.cfg.HeartbeatTimeout, err))
	}
	return closeWith(CloseReadError, err)
}

// frameHandler handles one frame of its type from c's peer. payload
// aliases the reader's buffer and is valid only until it returns. It
// checks that the peer may send this frame; an error ends the connection,
// with the reason it carries (closeWith), or as a protocol error.
type frameHandler func(c *conn, payload []byte) error

// frameHandlers is the dispatch table, indexed by frame type after a range
// check: one line per frame type, whose handler lives in the file of the
// subsystem it serves. A frame type with no handler (Hello after the
// handshake, a type this version does not know) is a protocol error.
var frameHandlers = [wire.MaxType + 1]frameHandler{
	wire.TypeHeartbeat:    handleHeartbeat,    // conn.go
	wire.TypeTypeDef:      handleTypeDef,      // conn.go
	wire.TypeMessage:      handleMessage,      // conn.go
	wire.TypeGoodbye:      handleGoodbye,      // conn.go
	wire.TypeLink:         handleLink,         // linkremote.go
	wire.TypeUnlink:       handleUnlink,       // linkremote.go
	wire.TypeClosed:       handleClosed,       // linkremote.go
	wire.TypeRequest:      handleRequest,      // callremote.go
	wire.TypeReply:        handleReply,        // callremote.go
	wire.TypeRegClaim:     handleRegClaim,     // registry.go
	wire.TypeRegRelease:   handleRegRelease,   // registry.go
	wire.TypeRegSyncDone:  handleRegSyncDone,  // registry.go
	wire.TypeLinkFor:      handleLinkFor,      // linkremote.go
	wire.TypePing:         handlePing,         // traffic.go
	wire.TypePong:         handlePong,         // traffic.go
	wire.TypeIdle:         handleIdle,         // idle.go
	wire.TypeCallFailed:   handleCallFailed,   // callremote.go
	wire.TypeGroupJoin:    handleGroupJoin,    // groupsync.go
	wire.TypeGroupLeave:   handleGroupLeave,   // groupsync.go
	wire.TypeGroupSync:    handleGroupSync,    // groupsync.go
	wire.TypeGossip:       handleGossip,       // membership.go
	wire.TypeGossipStream: handleGossipStream, // membership.go
}

// handleHeartbeat: any frame is liveness; this one carries nothing else.
func handleHeartbeat(c *conn, payload []byte) error {
	c.idle.quietIn.Add(quietHeartbeat)
	return wire.ParseEmpty(payload)
}

// handleTypeDef records the peer's next message type number. The
// dictionary is bounded in entries (MaxPeerTypes) and in the total length
// of the names (MaxPeerTypeBytes).
func handleTypeDef(c *conn, payload []byte) error {
	td, err := wire.ParseTypeDef(payload)
	if err != nil {
		return err
	}
	if td.ID != uint32(len(c.rtypes)+1) {
		return fmt.Errorf("%w: type number %d defined out of order", wire.ErrMalformed, td.ID)
	}
	cfg := &c.p.c.n.cfg
	if len(c.rtypes) >= cfg.MaxPeerTypes {
		return c.exceeded(LimitTypes, "MaxPeerTypes", cfg.MaxPeerTypes)
	}
	if c.rbytes+len(td.Name) > cfg.MaxPeerTypeBytes {
		return c.exceeded(LimitTypes, "MaxPeerTypeBytes", cfg.MaxPeerTypeBytes)
	}
	c.rbytes += len(td.Name)
	c.rtypes = append(c.rtypes, c.p.c.n.types.forName(td.Name))
	c.rnames = append(c.rnames, td.Name)
	return nil
}

// handleMessage delivers a user message to a local mailbox.
func handleMessage(c *conn, payload []byte) error {
	m, err := wire.ParseMessage(payload)
	if err != nil {
		return err
	}
	return c.deliver(m.To, m.TypeID, m.Body)
}

// handleGoodbye ends the connection: the peer is shutting down, or it
// refuses this connection because another process claims this node's ID.
func handleGoodbye(c *conn, payload []byte) error {
	g, err := wire.ParseGoodbye(payload)
	if err != nil {
		return err
	}
	if g.Reason == wire.GoodbyeDuplicate {
		return closeWith(CloseDuplicateNode, fmt.Errorf("%w: node %d refused this connection: another live process claims node %d", ErrDuplicateNode, c.p.id, c.p.c.n.id))
	}
	if g.Reason == wire.GoodbyeDuplicateConn { // membership.go
		return closeWith(CloseDuplicateConn, io.EOF)
	}
	if g.Reason == wire.GoodbyeIdle { // idle.go
		if c.p.c.member == nil || c.p.arbiter() {
			return fmt.Errorf("%w: an idle Goodbye from the higher ID of the pair, or without membership", wire.ErrMalformed)
		}
		c.idleGoodbye()
		return nil
	}
	return closeWith(CloseGoodbye, io.EOF)
}

// maxBatch is the most messages the reader holds before pushing them to
// their mailbox: enough to take the mailbox's lock once for many messages
// under load, few enough that a receiver gets the first of them soon.
const maxBatch = 64

// A msgBatch is the messages of consecutive Message frames for one local
// mailbox, decoded and not yet pushed: the reader pushes them under one
// acquisition of the mailbox's lock (Mailbox.pushMany), which it would
// otherwise take once per message, in contention with the receiver.
// Touched only by the reader goroutine.
type msgBatch struct {
	mb *Mailbox
	to wire.Ref // mb's Ref, as the frames named it
	vs []any    // the messages, in frame order; empty when no batch is held
}

// deliver decodes a message body for the local mailbox to and adds it to
// the reader's batch, which flushBatch pushes. A closed mailbox, an
// unknown type or an undecodable body drops the message and counts it;
// only a malformed frame is an error. Every outcome is traced (and
// counted) in frame order: a batch held for another mailbox, or before a
// drop, is pushed first.
func (c *conn) deliver(to wire.Ref, typeID uint32, body []byte) error {
	b := &c.batch
	var mb *Mailbox
	if len(b.vs) > 0 && to == b.to {
		mb = b.mb // a closed one refuses the push: see flushBatch
	} else {
		c.flushBatch()
		mb = c.localMailbox(to)
	}
	if mb == nil {
		c.p.c.stats.droppedClosed.Add(1)
		if c.p.c.n.cfg.Tracer != nil {
			c.traceDrop(to, typeID, ErrMailboxClosed)
		}
		return nil
	}
	v, ok, err := c.decodeValue(typeID, body)
	if err != nil || !ok {
		c.flushBatch()
		if c.p.c.n.cfg.Tracer != nil {
			c.traceDrop(to, typeID, ErrDecode)
		}
		return err
	}
	if b.vs == nil {
		b.vs = make([]any, 0, maxBatch)
	}
	b.mb, b.to = mb, to
	b.vs = append(b.vs, v)
	if len(b.vs) == maxBatch {
		c.flushBatch()
	}
	return nil
}

// flushBatch pushes the reader's batch to its mailbox, all of it or, if
// the mailbox has closed, none (each message dropped, as a push to a
// closed mailbox is), then counts and traces each message.
func (c *conn) flushBatch() {
	b := &c.batch
	if len(b.vs) == 0 {
		return
	}
	err := b.mb.pushMany(b.vs)
	k := uint64(len(b.vs))
	if err != nil {
		c.p.c.stats.droppedClosed.Add(k)
	} else {
		c.p.traffic.msgsIn.Add(k)
	}
	if n := c.p.c.n; n.cfg.Tracer != nil {
		kind := TraceDeliver
		if err != nil {
			kind = TraceDrop
		}
		to := c.localAddress(b.to)
		for _, v := range b.vs {
			n.traceMsg(kind, c.p.id, to, v, err)
		}
	}
	clear(b.vs) // the reader must not keep messages alive
	b.vs = b.vs[:0]
	b.mb = nil
}

// localAddress is the Address of this node's mailbox r.
func (c *conn) localAddress(r wire.Ref) Address {
	n := c.p.c.n
	return Address{n: n, node: n.id, inc: r.Inc, id: r.ID}
}

// traceDrop tells the tracer of a message from the peer for r that was
// dropped before it was decoded (or because it could not be).
func (c *conn) traceDrop(r wire.Ref, typeID uint32, err error) {
	name := "" // the type as TypeName names it, or as the peer does if unknown here
	if typeID > 0 && int(typeID) <= len(c.rnames) {
		if info := c.rtypes[typeID-1]; info != nil {
			name = info.t.String()
		} else {
			name = c.rnames[typeID-1]
		}
	}
	c.p.c.n.traceDropped(c.p.id, c.localAddress(r), name, err)
}

// checkPeerRef checks that a Ref naming one of the peer's own mailboxes
// carries the incarnation of its Hello: anything else is a protocol error.
func (c *conn) checkPeerRef(r wire.Ref) error {
	if r.Inc != c.peerInc || r.ID == 0 {
		return fmt.Errorf("%w: the peer named its own mailbox with incarnation %d, its Hello said %d", wire.ErrMalformed, r.Inc, c.peerInc)
	}
	return nil
}

// peerAddress is the Address of the peer's mailbox r, bound to this node.
func (c *conn) peerAddress(r wire.Ref) Address {
	return Address{n: c.p.c.n, node: c.p.id, inc: r.Inc, id: r.ID}
}

// localMailbox returns the open local mailbox r names, or nil.
func (c *conn) localMailbox(r wire.Ref) *Mailbox {
	n := c.p.c.n
	if r.Inc != n.inc {
		return nil
	}
	return n.table.lookup(r.ID)
}

// decodeValue decodes a message body of the peer's type number id. A type
// this node does not know, or bytes the codec rejects, drop the message:
// ok is false and the drop is counted and logged; err is set only when the
// frame itself is malformed (a type number never defined).
func (c *conn) decodeValue(id uint32, body []byte) (v any, ok bool, err error) {
	if id == 0 {
		return nil, len(body) == 0, nil
	}
	if int(id) > len(c.rtypes) {
		return nil, false, fmt.Errorf("%w: type number %d not defined", wire.ErrMalformed, id)
	}
	info := c.rtypes[id-1]
	stats := &c.p.c.stats
	if info == nil {
		stats.droppedUnknownType.Add(1)
		c.p.logDrop(&TypeError{Type: c.rnames[id-1]})
		return nil, false, nil
	}
	v, err = c.p.c.n.decodeMessage(info, body)
	if err == nil {
		return v, true, nil
	}
	if errors.Is(err, ErrReservedType) { // counted by the type registry
		c.p.logDrop(err)
		return nil, false, nil
	}
	stats.droppedUndecodable.Add(1)
	c.p.logDrop(err)
	return nil, false, nil
}
