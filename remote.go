package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reign-go/reign/internal/wire"
	"github.com/thejerf/suture/v4"
)

// A Node is a suture.Service: add it to an application's supervisor tree.
var _ suture.Service = (*Node)(nil)

// cluster is a clustered node's networking: the listener, and one peer per
// other node of the spec, each run as a suture service by Node.Serve.
type cluster struct {
	n          *Node
	spec       *ClusterSpec
	self       NodeSpec
	tls        *nodeTLS
	peers      map[NodeID]*peer // fixed by the spec; never changes
	serving    atomic.Bool
	stats      counters
	handshakes handshakeSet // the incoming handshakes in progress
}

// counters are the node's statistics; see Stats.
type counters struct {
	droppedClosed      atomic.Uint64
	droppedUnknownType atomic.Uint64
	droppedUndecodable atomic.Uint64
	droppedStale       atomic.Uint64
	connects           atomic.Uint64
	refused            atomic.Uint64
}

// Stats are counters of a node's traffic, for monitoring and tests.
type Stats struct {
	// DroppedClosed counts messages from peers for mailboxes that are
	// closed (or never existed on this run of the node).
	DroppedClosed uint64
	// DroppedUnknownType counts messages from peers whose type is not
	// registered on this node.
	DroppedUnknownType uint64
	// DroppedUndecodable counts messages from peers the codec rejected.
	DroppedUndecodable uint64
	// DroppedStale counts messages sent to Addresses from an earlier run
	// of their node, dropped by this node.
	DroppedStale uint64
	// Connects counts connections established (first and re-connections).
	Connects uint64
	// Refused counts incoming connections refused: bad certificates,
	// failed handshakes, unknown nodes.
	Refused uint64
	// PeersUp is the number of peers connected now.
	PeersUp int
}

// Stats returns the node's counters. A local-only node's are all zero.
func (n *Node) Stats() Stats {
	if n.cl == nil {
		return Stats{}
	}
	s := &n.cl.stats
	st := Stats{
		DroppedClosed:      s.droppedClosed.Load(),
		DroppedUnknownType: s.droppedUnknownType.Load(),
		DroppedUndecodable: s.droppedUndecodable.Load(),
		DroppedStale:       s.droppedStale.Load(),
		Connects:           s.connects.Load(),
		Refused:            s.refused.Load(),
	}
	for _, p := range n.cl.peers {
		if p.live.Load() != nil {
			st.PeersUp++
		}
	}
	return st
}

// maxHandshakes bounds the incoming handshakes in progress at once, so a
// flood of connections that never finish their handshake cannot exhaust
// the node.
const maxHandshakes = 64

// handshakeSet tracks the incoming handshakes in progress. When it is full,
// a new connection takes the place of the oldest handshake if that one has
// already had a quarter of the handshake timeout (a good peer finishes in
// milliseconds): idle connections can delay a good peer, never lock it out.
type handshakeSet struct {
	mu     sync.Mutex
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
	now := time.Now()
	if len(h.active) >= maxHandshakes {
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
		_ = oldest.Close() // its handshake fails at once and its goroutine ends
		delete(h.active, oldest)
	}
	h.active[nc] = now
	return true
}

// done removes nc (its handshake ended, well or not).
func (h *handshakeSet) done(nc net.Conn) {
	h.mu.Lock()
	delete(h.active, nc)
	h.mu.Unlock()
}

func newCluster(n *Node) (*cluster, error) {
	spec := n.cfg.Cluster
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	self, ok := spec.Node(n.id)
	if !ok {
		return nil, &ConfigError{Field: "Config.NodeID", Msg: fmt.Sprintf("node %d is not in the cluster spec", n.id)}
	}
	t, err := loadNodeTLS(spec, n.id)
	if err != nil {
		return nil, err
	}
	c := &cluster{n: n, spec: spec, self: self, tls: t, peers: map[NodeID]*peer{}}
	for _, ns := range spec.Nodes {
		if ns.ID == n.id {
			continue
		}
		c.peers[ns.ID] = &peer{
			c:     c,
			id:    ns.ID,
			spec:  ns,
			dials: n.id < ns.ID,
			offer: make(chan struct{}, 1),
			log:   n.log.With("peer", int(ns.ID)),
		}
	}
	return c, nil
}

// serve runs the node's supervisor tree until ctx is done.
func (c *cluster) serve(ctx context.Context) error {
	if !c.serving.CompareAndSwap(false, true) {
		return errors.New("reign: Serve is already running for this node")
	}
	defer c.serving.Store(false)
	ln := c.n.cfg.Listener
	if ln == nil {
		addr := c.self.ListenAddress
		if addr == "" {
			addr = c.self.Address
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("reign: node %d cannot listen on %s: %w", c.n.id, addr, err)
		}
	}
	sup := suture.New(fmt.Sprintf("reign-node-%d", c.n.id), suture.Spec{
		EventHook:      c.supervisorEvent,
		FailureBackoff: time.Second,
		Timeout:        5 * time.Second,
	})
	sup.Add(&listenerService{c: c, ln: ln})
	for _, p := range c.peers {
		sup.Add(p)
	}
	c.n.log.Info("node serving", "addr", ln.Addr().String())
	err := sup.Serve(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// supervisorEvent routes suture's events to the node's logger.
func (c *cluster) supervisorEvent(e suture.Event) {
	c.n.log.Warn("supervisor: "+e.String(), "event", e.Type())
}

// listenerService accepts connections and runs their handshakes. It is a
// suture service: if accepting fails it returns and is restarted, listening
// anew.
type listenerService struct {
	c  *cluster
	ln net.Listener
}

func (l *listenerService) String() string { return "reign listener" }

func (l *listenerService) Serve(ctx context.Context) error {
	c := l.c
	if l.ln == nil {
		if c.n.cfg.Listener != nil {
			return fmt.Errorf("reign: the configured listener failed: %w", suture.ErrDoNotRestart)
		}
		addr := c.self.ListenAddress
		if addr == "" {
			addr = c.self.Address
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("reign: listen on %s: %w", addr, err)
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
	for {
		nc, err := ln.Accept()
		if err != nil {
			l.ln = nil
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reign: accept: %w", err)
		}
		if !c.handshakes.admit(nc, c.n.cfg.HandshakeTimeout/4) {
			c.stats.refused.Add(1)
			c.n.log.Warn("connection refused: too many handshakes in progress", "addr", nc.RemoteAddr().String())
			_ = nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.handshakes.done(nc)
			c.accept(ctx, nc)
		}()
	}
}

// accept runs the TLS and reign handshakes of an incoming connection,
// bounded by the handshake timeout, and hands the result to its peer.
func (c *cluster) accept(ctx context.Context, nc net.Conn) {
	ctx, cancel := context.WithTimeout(ctx, c.n.cfg.HandshakeTimeout)
	defer cancel()
	refuse := func(err error) {
		c.stats.refused.Add(1)
		c.n.log.Warn("connection refused", "addr", nc.RemoteAddr().String(), "reason", err.Error())
		_ = nc.Close()
	}
	tc := tls.Server(nc, c.tls.serverConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		refuse(fmt.Errorf("%w: TLS handshake: %w", ErrHandshake, err))
		return
	}
	id, err := peerNodeID(tc.ConnectionState())
	if err != nil {
		refuse(err)
		return
	}
	p := c.peers[id]
	switch {
	case p == nil:
		refuse(fmt.Errorf("%w: node %d is not in this node's cluster spec", ErrPeerIdentity, id))
		return
	case p.dials:
		refuse(fmt.Errorf("%w: node %d dialed, but the lower ID dials (this node dials %d)", ErrHandshake, id, id))
		return
	}
	hello, err := exchangeHello(ctx, c.n, tc, id)
	if err != nil {
		refuse(err)
		return
	}
	p.offerConn(newConn(p, tc, hello))
}

// peer is this node's side of its relation with one other node: the
// connection service (a suture service) and what must be resolved when the
// connection is lost.
type peer struct {
	c     *cluster
	id    NodeID
	spec  NodeSpec
	dials bool // this node dials the peer (the lower ID dials)
	log   *slog.Logger

	live  atomic.Pointer[conn] // the current connection, nil if none
	offer chan struct{}        // capacity 1: an accepted connection is pending

	mu       sync.Mutex
	cur      *conn
	pending  *conn                            // accepted, waiting for the service
	outLinks map[Address]map[Address]struct{} // peer mailbox -> local watchers
	watched  map[uint64]struct{}              // local mailboxes the peer's mailboxes watch
	lastDrop time.Time
}

func (p *peer) String() string { return fmt.Sprintf("reign peer %d", p.id) }

// Backoff between connection attempts, and the pause before dialing a
// peer that said Goodbye.
const (
	minBackoff   = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
	afterGoodbye = 300 * time.Millisecond
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

// Serve keeps a connection to the peer until ctx is done: dialing it (with
// backoff) if this node has the lower ID, else taking the connections the
// listener accepts from it.
func (p *peer) Serve(ctx context.Context) error {
	backoff := minBackoff
	for ctx.Err() == nil {
		var cn *conn
		var err error
		if p.dials {
			cn, err = p.dial(ctx)
		} else {
			cn, err = p.await(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.log.Debug("cannot connect", "reason", err.Error())
			sleepCtx(ctx, backoff+time.Duration(rand.Uint64N(uint64(backoff/2+1))))
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		p.runConn(ctx, cn)
		if cn.goodbye.Load() && p.dials {
			// the peer is shutting down: give it time to go rather than
			// dial into its last moments
			sleepCtx(ctx, afterGoodbye)
		}
	}
	// a connection accepted but never run
	p.mu.Lock()
	pend := p.pending
	p.pending = nil
	p.mu.Unlock()
	if pend != nil {
		pend.close(errConnClosed)
	}
	return ctx.Err()
}

// dial connects to the peer: TCP, TLS (the peer must prove it is p.id),
// then the reign handshake, all within the handshake timeout.
func (p *peer) dial(ctx context.Context) (*conn, error) {
	n := p.c.n
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	if p.c.self.LocalAddress != "" {
		la, err := net.ResolveTCPAddr("tcp", p.c.self.LocalAddress)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = la
	}
	nc, err := d.DialContext(ctx, "tcp", p.spec.Address)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, p.c.tls.clientConfig(p.id))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		err = fmt.Errorf("%w: TLS handshake with node %d at %s: %w", ErrHandshake, p.id, p.spec.Address, err)
		p.logDialFailure(err)
		return nil, err
	}
	hello, err := exchangeHello(ctx, n, tc, p.id)
	if err != nil {
		_ = nc.Close()
		p.logDialFailure(err)
		return nil, err
	}
	return newConn(p, tc, hello), nil
}

// logDialFailure logs a failed connection attempt: at Warn when it is a
// matter of certificates or identity (a misconfiguration to fix), at Info
// when the network or the peer's own shutdown got in the way (it retries).
func (p *peer) logDialFailure(err error) {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		p.log.Info("connection failed", "addr", p.spec.Address, "reason", err.Error())
		return
	}
	p.log.Warn("connection failed", "addr", p.spec.Address, "reason", err.Error())
}

// offerConn gives the peer service a newly accepted connection. A newer
// connection from a node replaces the current one: the peer dials only
// when it has lost its connection (it may have restarted), so the older
// one is stale.
func (p *peer) offerConn(cn *conn) {
	p.mu.Lock()
	old, cur := p.pending, p.cur
	p.pending = cn
	p.mu.Unlock()
	if old != nil {
		old.close(errConnClosed)
	}
	if cur != nil {
		cur.close(errors.New("replaced by a newer connection from the same node"))
	}
	select {
	case p.offer <- struct{}{}:
	default:
	}
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

// runConn makes cn the peer's connection, sends it this node's registry
// claims, runs it until it ends, and then resolves everything that
// depended on it.
func (p *peer) runConn(ctx context.Context, cn *conn) {
	n := p.c.n
	p.mu.Lock()
	p.cur = cn
	p.live.Store(cn)
	p.mu.Unlock()
	p.c.stats.connects.Add(1)
	p.log.Info("peer connected", "addr", cn.nc.RemoteAddr().String())

	// Registry: send our claims, then RegSyncDone. (The peer's claims from
	// an earlier connection were dropped when it ended, in connDown.)
	n.reg.localClaims(func(name string, a Address) {
		_ = cn.appendFrame(wire.TypeRegClaim, func(b []byte) []byte {
			return wire.AppendClaim(b, wire.Claim{Name: name, Mailbox: ref(a)})
		})
	})
	_ = cn.appendFrame(wire.TypeRegSyncDone, func(b []byte) []byte { return b })

	err := cn.run(ctx)
	p.connDown(cn, err, ctx.Err() != nil)
}

// connDown resolves what depended on cn: every local watcher of the
// peer's mailboxes is told (NoConnection, or NodeShutdown if the peer said
// goodbye), the peer's watches on local mailboxes are dropped, and so are
// its registry claims.
func (p *peer) connDown(cn *conn, err error, leaving bool) {
	n := p.c.n
	reason := NoConnection
	if cn.goodbye.Load() {
		reason = NodeShutdown
	}
	p.mu.Lock()
	if p.cur == cn {
		p.cur = nil
		p.live.Store(nil)
	}
	links, watched := p.outLinks, p.watched
	p.outLinks, p.watched = nil, nil
	p.mu.Unlock()

	switch {
	case leaving:
		p.log.Info("connection closed: this node is shutting down")
	case reason == NodeShutdown:
		p.log.Info("peer shut down")
	default:
		p.log.Warn("peer lost", "reason", err.Error())
	}
	for target, notifies := range links {
		for notify := range notifies {
			n.notifyClosed(notify, MailboxClosed{Address: target, Reason: reason})
		}
	}
	for id := range watched {
		if m := n.table.lookup(id); m != nil {
			m.mu.Lock()
			for w := range m.links {
				if w.node == p.id {
					delete(m.links, w)
				}
			}
			m.mu.Unlock()
		}
	}
	n.reg.dropNode(p.id)
}

// synced is called when the peer has sent all its registry claims.
func (p *peer) synced() { p.log.Debug("registry synchronized") }

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
		p.log.Warn("message dropped", "reason", err.Error())
	}
}

func ref(a Address) wire.Ref { return wire.Ref{Inc: a.inc, ID: a.id} }

// sendRemote sends msg to a mailbox of another node.
func (n *Node) sendRemote(a Address, msg any) error {
	if n.cl == nil {
		return &SendError{To: a, Err: ErrNodeUnreachable}
	}
	p := n.cl.peers[a.node]
	if p == nil {
		return &SendError{To: a, Err: fmt.Errorf("%w: node %d is not in the cluster spec", ErrNodeUnreachable, a.node)}
	}
	cn := p.live.Load()
	if cn == nil {
		return &SendError{To: a, Err: ErrNodeUnreachable}
	}
	if a.inc != cn.peerInc {
		// an Address from another run of that node: as good as closed, and
		// as with any remote closed mailbox the message is dropped
		n.cl.stats.droppedStale.Add(1)
		return nil
	}
	h := frameHead{t: wire.TypeMessage, to: ref(a)}
	var body any = msg
	switch m := msg.(type) {
	case Request:
		if m.replyTo.IsZero() {
			return &SendError{To: a, Err: fmt.Errorf("%w: a Request without a reply address", ErrZeroAddress)}
		}
		h.t, h.ref, body = wire.TypeRequest, m.ref, m.Body
		h.replyTo = wire.Addr{Node: uint16(m.replyTo.node), Inc: m.replyTo.inc, ID: m.replyTo.id}
	case callReply:
		h.t, h.ref, body = wire.TypeReply, m.ref, m.value
	}
	if err := cn.sendValue(h, body); err != nil {
		return &SendError{To: a, Err: err}
	}
	return nil
}

// linkRemote asks a's node to tell notify when a closes.
func (n *Node) linkRemote(a, notify Address) {
	if n.cl == nil || n.cl.peers[a.node] == nil {
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoConnection})
		return
	}
	if notify.node != n.id || notify.inc != n.inc {
		return // only mailboxes of this node can watch through it
	}
	p := n.cl.peers[a.node]
	p.mu.Lock()
	cn := p.cur
	if cn == nil || a.inc != cn.peerInc {
		p.mu.Unlock()
		reason := NoConnection
		if cn != nil {
			reason = NoProc
		}
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: reason})
		return
	}
	set := p.outLinks[a]
	if _, dup := set[notify]; dup {
		p.mu.Unlock()
		return
	}
	if set == nil {
		if p.outLinks == nil {
			p.outLinks = map[Address]map[Address]struct{}{}
		}
		set = make(map[Address]struct{}, 1)
		p.outLinks[a] = set
	}
	set[notify] = struct{}{}
	// If the connection is closing, appendFrame fails, and connDown (which
	// has not run: p.cur is still cn) fires the link just recorded.
	_ = cn.appendFrame(wire.TypeLink, func(b []byte) []byte {
		return wire.AppendLink(b, wire.Link{Target: ref(a), Watcher: ref(notify)})
	})
	p.mu.Unlock()
}

// unlinkRemote cancels linkRemote.
func (n *Node) unlinkRemote(a, notify Address) {
	if n.cl == nil || n.cl.peers[a.node] == nil {
		return
	}
	p := n.cl.peers[a.node]
	p.mu.Lock()
	defer p.mu.Unlock()
	set, ok := p.outLinks[a]
	if !ok {
		return
	}
	if _, ok := set[notify]; !ok {
		return
	}
	delete(set, notify)
	if len(set) == 0 {
		delete(p.outLinks, a)
	}
	if cn := p.cur; cn != nil {
		_ = cn.appendFrame(wire.TypeUnlink, func(b []byte) []byte {
			return wire.AppendLink(b, wire.Link{Target: ref(a), Watcher: ref(notify)})
		})
	}
}

// remoteLinked handles the peer's Link: its mailbox watcher wants to know
// when our mailbox target closes.
func (p *peer) remoteLinked(cn *conn, target, watcher wire.Ref) {
	n := p.c.n
	notify := Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID}
	a := Address{n: n, node: n.id, inc: target.Inc, id: target.ID}
	if target.Inc == n.inc && n.table.lookup(target.ID) != nil {
		// remember the watch, so losing the peer removes it (before adding
		// it: a Close in between finds it and clears it again)
		p.mu.Lock()
		if p.watched == nil {
			p.watched = map[uint64]struct{}{}
		}
		p.watched[target.ID] = struct{}{}
		p.mu.Unlock()
	}
	n.linkLocal(a, notify)
}

// remoteUnlinked handles the peer's Unlink.
func (p *peer) remoteUnlinked(target, watcher wire.Ref) {
	n := p.c.n
	if target.Inc != n.inc {
		return
	}
	if m := n.table.lookup(target.ID); m != nil {
		notify := Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID}
		m.mu.Lock()
		delete(m.links, notify)
		m.mu.Unlock()
	}
}

// closedReceived handles the peer's Closed: its mailbox target closed, and
// our mailbox watcher wanted to know.
func (p *peer) closedReceived(target, watcher wire.Ref, reason Reason) {
	n := p.c.n
	a := Address{n: n, node: p.id, inc: target.Inc, id: target.ID}
	notify := Address{n: n, node: n.id, inc: watcher.Inc, id: watcher.ID}
	p.mu.Lock()
	if set, ok := p.outLinks[a]; ok {
		delete(set, notify)
		if len(set) == 0 {
			delete(p.outLinks, a)
		}
	}
	p.mu.Unlock()
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: reason})
}

// sendClosedRemote tells a watcher on another node that mc.Address, a
// mailbox of this node, closed.
func (n *Node) sendClosedRemote(notify Address, mc MailboxClosed) {
	if n.cl == nil || mc.Address.node != n.id {
		return
	}
	p := n.cl.peers[notify.node]
	if p == nil {
		return
	}
	cn := p.live.Load()
	if cn == nil || cn.peerInc != notify.inc {
		return
	}
	_ = cn.appendFrame(wire.TypeClosed, func(b []byte) []byte {
		return wire.AppendClosed(b, wire.Closed{Target: ref(mc.Address), Watcher: ref(notify), Reason: uint8(mc.Reason)})
	})
}

// unlinkWatcher forgets, for each peer, that a closed local mailbox was
// watched from there.
func (n *Node) unlinkWatcher(a Address) {
	if n.cl == nil {
		return
	}
	for _, p := range n.cl.peers {
		p.mu.Lock()
		delete(p.watched, a.id)
		p.mu.Unlock()
	}
}

// broadcastClaim tells every connected peer of a local claim. Called with
// the registry lock held, so claims reach each peer in the order made.
func (c *cluster) broadcastClaim(name string, a Address) {
	c.broadcast(wire.TypeRegClaim, name, a)
}

// broadcastRelease tells every connected peer a local claim has ended.
func (c *cluster) broadcastRelease(name string, a Address) {
	c.broadcast(wire.TypeRegRelease, name, a)
}

func (c *cluster) broadcast(t wire.Type, name string, a Address) {
	for _, p := range c.peers {
		if cn := p.live.Load(); cn != nil {
			_ = cn.appendFrame(t, func(b []byte) []byte {
				return wire.AppendClaim(b, wire.Claim{Name: name, Mailbox: ref(a)})
			})
		}
	}
}
