package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
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
	peerInc  uint32 // the peer's incarnation, from its Hello
	maxFrame int    // the largest frame we may send: min of both sides' limits
	limit    int    // the send buffer limit, bytes

	mu       sync.Mutex
	out      []byte        // frames waiting for the writer
	spare    []byte        // the writer's other buffer
	room     chan struct{} // closed when the writer takes out; nil if nobody waits
	types    []uint32      // sender-side type dictionary: typeInfo.index -> number (0: none yet)
	ntypes   uint32        // numbers assigned so far
	closed   bool
	closeErr error

	wmu       sync.Mutex // held while writing to nc: by the writer, or by a sender writing inline
	wset      int64      // monotime when the write deadline was last set (guarded by wmu)
	wtimeout  time.Duration
	lastWrite atomic.Int64 // monotime of the last write to nc

	wake chan struct{} // capacity 1: tells the writer out is no longer empty
	done chan struct{} // closed when the connection is finished

	// Reader-side state, touched only by the reader goroutine.
	rtypes  []*typeInfo // the peer's type numbers, index = number-1; nil = unknown here
	rnames  []string
	goodbye atomic.Bool // the peer said Goodbye: its links fire with NodeShutdown
}

func newConn(p *peer, nc net.Conn, h wire.Hello) *conn {
	n := p.c.n
	maxFrame := n.cfg.MaxFrameSize
	if h.MaxFrame != 0 && int(h.MaxFrame) < maxFrame {
		maxFrame = int(h.MaxFrame)
	}
	return &conn{
		p:        p,
		nc:       nc,
		peerInc:  h.Incarnation,
		maxFrame: maxFrame,
		limit:    n.cfg.SendBufferLimit,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// close ends the connection once, with the first error given.
func (c *conn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.closeErr = err
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
}

// errConnClosed is the cause given when this side closes a connection.
var errConnClosed = errors.New("connection closed")

// run runs the connection's reader and writer until either fails or ctx
// ends, then closes the connection and returns why it ended. When ctx ends
// the writer flushes what is queued and a Goodbye, so the peer reports
// NodeShutdown rather than a lost connection.
func (c *conn) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wrote := make(chan struct{})
	stopping := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.close(c.readLoop())
	}()
	go func() {
		defer wg.Done()
		defer close(wrote)
		c.close(c.writeLoop(stopping))
	}()
	select {
	case <-ctx.Done():
		close(stopping)
		t := time.NewTimer(goodbyeTimeout)
		select {
		case <-wrote:
		case <-t.C:
		}
		t.Stop()
		c.close(errConnClosed)
	case <-c.done:
	}
	wg.Wait()
	return c.closeErr
}

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
	for {
		select {
		case <-c.done:
			return errConnClosed
		case <-stopping:
			c.mu.Lock()
			c.out = wire.AppendFrame(c.out, wire.TypeGoodbye, wire.AppendGoodbye(nil, wire.Goodbye{Reason: wire.GoodbyeShutdown}))
			c.mu.Unlock()
			c.wmu.Lock()
			_ = c.writeBatch(goodbyeTimeout)
			c.wmu.Unlock()
			return errConnClosed
		case <-hb.C:
			if time.Duration(monotime()-c.lastWrite.Load()) >= cfg.HeartbeatInterval/2 {
				c.mu.Lock()
				if len(c.out) == 0 {
					c.out = append(c.out, heartbeatFrame...)
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
		c.lastWrite.Store(monotime())
	}
	c.mu.Lock()
	// keep the buffer for the next swap: out never grows much past the
	// send buffer limit, so two buffers bound a peer's memory
	c.spare = batch[:0]
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
		c.close(err)
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

// appendFrame queues one control frame (link, registry, goodbye) whose
// payload build appends. Control frames never wait for buffer room, so
// links and the registry cannot deadlock behind data; they are small.
func (c *conn) appendFrame(t wire.Type, build func([]byte) []byte) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	wasEmpty := len(c.out) == 0
	out, start := wire.BeginFrame(c.out, t)
	if err := c.commitFrame(build(out), start); err != nil {
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

// sendValue queues a Message, Request or Reply frame carrying v. The value
// is encoded before the lock is taken; its type number is assigned (with a
// TypeDef frame first, the first time) under the lock, so the definition
// always precedes its first use on the wire. It waits while the buffer is
// over its limit, until the writer drains it or the connection ends.
func (c *conn) sendValue(h frameHead, v any) error {
	n := c.p.c.n
	sb := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sb)
	var info *typeInfo
	body := sb.b[:0]
	if v != nil {
		var err error
		body, info, err = n.encodeMessage(body, v)
		sb.b = body[:0]
		if err != nil {
			return err
		}
		if len(body)+64 > c.maxFrame {
			return fmt.Errorf("%w: %s encodes to %d bytes, over the %d-byte frame limit", ErrFrameTooLarge, info.name, len(body), c.maxFrame)
		}
	}

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
	if c.closed {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	wasEmpty := len(c.out) == 0
	var id uint32
	if info != nil {
		if info.index >= len(c.types) {
			c.types = append(c.types, make([]uint32, info.index+1-len(c.types))...)
		}
		if id = c.types[info.index]; id == 0 {
			c.ntypes++
			id = c.ntypes
			c.types[info.index] = id
			out, start := wire.BeginFrame(c.out, wire.TypeTypeDef)
			out = wire.AppendTypeDef(out, wire.TypeDef{ID: id, Name: info.name})
			c.out, _ = wire.EndFrame(out, start, c.maxFrame)
		}
	}
	out, start := wire.BeginFrame(c.out, h.t)
	switch h.t {
	case wire.TypeMessage:
		out = wire.AppendMessage(out, wire.Message{To: h.to, TypeID: id, Body: body})
	case wire.TypeRequest:
		out = wire.AppendRequest(out, wire.Request{To: h.to, ReplyTo: h.replyTo, CallRef: h.ref, TypeID: id, Body: body})
	case wire.TypeReply:
		out = wire.AppendReply(out, wire.Reply{To: h.to, CallRef: h.ref, TypeID: id, Body: body})
	}
	if err := c.commitFrame(out, start); err != nil {
		return err
	}
	if wasEmpty {
		c.flushNew()
	}
	return nil
}

type scratch struct{ b []byte }

// scratchPool holds encoding buffers; it holds no node's state.
var scratchPool = sync.Pool{New: func() any { return &scratch{b: make([]byte, 0, 256)} }}

// deadlineReader keeps a read deadline of the heartbeat timeout on the
// socket, so a silent peer is declared lost. Moving a deadline is not free
// (it re-arms a runtime timer and can wake the network poller), so it is
// moved only when a quarter of the timeout has passed since it was last
// set: a peer is declared lost after between 1 and 1.25 timeouts of
// silence.
type deadlineReader struct {
	c       *conn
	timeout time.Duration
	set     int64 // monotime when the deadline was last set
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if now := monotime(); d.set == 0 || time.Duration(now-d.set) > d.timeout/4 {
		_ = d.c.nc.SetReadDeadline(time.Now().Add(d.timeout + d.timeout/4))
		d.set = now
	}
	return d.c.nc.Read(p)
}

// readLoop reads frames until the connection fails. A malformed frame or an
// unknown frame type ends the connection; a message that cannot be
// delivered (unknown type, undecodable, closed mailbox) is dropped and
// counted, and the connection goes on.
func (c *conn) readLoop() error {
	n := c.p.c.n
	r := wire.NewReader(&deadlineReader{c: c, timeout: n.cfg.HeartbeatTimeout}, n.cfg.MaxFrameSize)
	for {
		t, payload, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("peer closed the connection: %w", err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("peer silent for %v (heartbeat timeout): %w", n.cfg.HeartbeatTimeout, err)
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := c.dispatch(t, payload); err != nil {
			return err
		}
	}
}

// dispatch handles one frame from the peer.
func (c *conn) dispatch(t wire.Type, payload []byte) error {
	n := c.p.c.n
	switch t {
	case wire.TypeHeartbeat:
		return nil
	case wire.TypeTypeDef:
		td, err := wire.ParseTypeDef(payload)
		if err != nil {
			return err
		}
		if td.ID != uint32(len(c.rtypes)+1) {
			return fmt.Errorf("%w: type number %d defined out of order", wire.ErrMalformed, td.ID)
		}
		if len(c.rtypes) >= maxTypeDefs {
			return fmt.Errorf("%w: more than %d type definitions on one connection", wire.ErrMalformed, maxTypeDefs)
		}
		info := n.types.forName(td.Name)
		c.rtypes = append(c.rtypes, info)
		c.rnames = append(c.rnames, td.Name)
		return nil
	case wire.TypeMessage:
		m, err := wire.ParseMessage(payload)
		if err != nil {
			return err
		}
		return c.deliver(m.To, m.TypeID, m.Body, nil)
	case wire.TypeRequest:
		m, err := wire.ParseRequest(payload)
		if err != nil {
			return err
		}
		// (if the server is gone, the caller's link to it says so)
		replyTo := Address{n: n, node: NodeID(m.ReplyTo.Node), inc: m.ReplyTo.Inc, id: m.ReplyTo.ID}
		return c.deliver(m.To, m.TypeID, m.Body, func(v any) any {
			return Request{Body: v, replyTo: replyTo, ref: m.CallRef}
		})
	case wire.TypeReply:
		m, err := wire.ParseReply(payload)
		if err != nil {
			return err
		}
		// (a reply for a closed mailbox is a late one: the caller gave up)
		return c.deliver(m.To, m.TypeID, m.Body, func(v any) any {
			return callReply{ref: m.CallRef, value: v}
		})
	case wire.TypeLink:
		l, err := wire.ParseLink(payload)
		if err != nil {
			return err
		}
		if err := c.checkPeerRef(l.Watcher); err != nil {
			return err
		}
		c.p.remoteLinked(c, l.Target, l.Watcher)
		return nil
	case wire.TypeUnlink:
		l, err := wire.ParseLink(payload)
		if err != nil {
			return err
		}
		c.p.remoteUnlinked(l.Target, l.Watcher)
		return nil
	case wire.TypeClosed:
		cl, err := wire.ParseClosed(payload)
		if err != nil {
			return err
		}
		if err := c.checkPeerRef(cl.Target); err != nil {
			return err
		}
		c.p.closedReceived(cl.Target, cl.Watcher, Reason(cl.Reason))
		return nil
	case wire.TypeRegClaim:
		rc, err := wire.ParseClaim(payload)
		if err != nil {
			return err
		}
		if checkName(rc.Name) != nil || rc.Mailbox.ID == 0 {
			return fmt.Errorf("%w: bad registry claim", wire.ErrMalformed)
		}
		if err := c.checkPeerRef(rc.Mailbox); err != nil {
			return err
		}
		n.reg.remoteClaim(rc.Name, c.peerAddress(rc.Mailbox))
		return nil
	case wire.TypeRegRelease:
		rc, err := wire.ParseClaim(payload)
		if err != nil {
			return err
		}
		n.reg.remoteRelease(rc.Name, c.peerAddress(rc.Mailbox))
		return nil
	case wire.TypeRegSyncDone:
		c.p.synced()
		return nil
	case wire.TypeGoodbye:
		c.goodbye.Store(true)
		return fmt.Errorf("peer shut down: %w", io.EOF)
	case wire.TypeHello:
		return fmt.Errorf("%w: Hello after the handshake", wire.ErrMalformed)
	}
	return fmt.Errorf("%w: %d", wire.ErrUnknownFrame, t)
}

// deliver decodes a message body for the local mailbox to and pushes it,
// wrapped by wrap if non-nil. A closed mailbox, an unknown type or an
// undecodable body drops the message and counts it; only a malformed frame
// is an error.
func (c *conn) deliver(to wire.Ref, typeID uint32, body []byte, wrap func(any) any) error {
	mb := c.localMailbox(to)
	if mb == nil {
		c.p.c.stats.droppedClosed.Add(1)
		return nil
	}
	v, ok, err := c.decodeValue(typeID, body)
	if err != nil || !ok {
		return err
	}
	if wrap != nil {
		v = wrap(v)
	}
	if mb.push(v) != nil {
		c.p.c.stats.droppedClosed.Add(1)
	}
	return nil
}

// maxTypeDefs bounds a connection's type dictionary, so a peer cannot grow
// it without limit: no program registers this many message types.
const maxTypeDefs = 1 << 16

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
	if err != nil {
		stats.droppedUndecodable.Add(1)
		c.p.logDrop(err)
		return nil, false, nil
	}
	return v, true, nil
}

// exchangeHello runs the reign handshake on a TLS connection whose TLS
// handshake is done: each side sends Hello, reads the other's, and checks
// that it names the node the certificate names, a shared protocol version
// and the same codec.
func exchangeHello(ctx context.Context, n *Node, tc net.Conn, certID NodeID) (wire.Hello, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
		defer tc.SetDeadline(time.Time{})
	}
	local := wire.Hello{
		MinVersion:  wire.MinVersion,
		MaxVersion:  wire.MaxVersion,
		Node:        uint16(n.id),
		Incarnation: n.inc,
		Codec:       n.codec.Name(),
		MaxFrame:    uint32(n.cfg.MaxFrameSize),
	}
	errc := make(chan error, 1)
	go func() { errc <- wire.WriteHello(tc, local) }()
	remote, rerr := readHello(tc)
	werr := <-errc
	if rerr != nil {
		return remote, fmt.Errorf("%w: reading hello: %w", ErrHandshake, rerr)
	}
	if werr != nil {
		return remote, fmt.Errorf("%w: writing hello: %w", ErrHandshake, werr)
	}
	if NodeID(remote.Node) != certID {
		return remote, fmt.Errorf("%w: peer says it is node %d, its certificate names node %d", ErrPeerIdentity, remote.Node, certID)
	}
	if remote.Codec != local.Codec {
		return remote, fmt.Errorf("%w: peer uses codec %q, this node %q", ErrHandshake, remote.Codec, local.Codec)
	}
	if _, err := wire.Agree(local, remote); err != nil {
		return remote, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if remote.Incarnation == 0 {
		return remote, fmt.Errorf("%w: incarnation 0", ErrHandshake)
	}
	return remote, nil
}

// maxHelloLen bounds the Hello frame.
const maxHelloLen = 4096

// readHello reads exactly one frame, which must be Hello, without reading
// ahead: the bytes after it belong to the connection's reader.
func readHello(r io.Reader) (wire.Hello, error) {
	var hdr [wire.HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return wire.Hello{}, err
	}
	l := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if l < 1 || l > maxHelloLen {
		return wire.Hello{}, fmt.Errorf("%w: hello frame of %d bytes", wire.ErrMalformed, l)
	}
	if wire.Type(hdr[4]) != wire.TypeHello {
		return wire.Hello{}, fmt.Errorf("%w: first frame is %v, not Hello", wire.ErrMalformed, wire.Type(hdr[4]))
	}
	payload := make([]byte, l-1)
	if _, err := io.ReadFull(r, payload); err != nil {
		return wire.Hello{}, err
	}
	return wire.ParseHello(payload)
}
