package reign

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign/internal/wire"
	"github.com/thejerf/suture/v4"
)

// A Node is a suture.Service: add it to an application's supervisor tree.
var _ suture.Service = (*Node)(nil)

// cluster is a clustered node's networking runtime: the listener, and one
// peer per other node of the spec, each run as a suture service by
// Node.Serve, plus the subsystems that hear of peers coming and going.
type cluster struct {
	n          *Node
	self       NodeSpec
	tls        *nodeTLS
	peerTab    atomic.Pointer[map[NodeID]*peer] // copy on write, under mu: see peer and addPeer
	hooks      []peerHook                       // told of every peer up and down, in order
	member     *membership                      // nil unless Config.Membership: see membership.go
	expiry     *certExpiry                      // warns before a certificate expires
	stats      counters
	handshakes handshakeSet // the incoming handshakes in progress
	refusals   refusalLog   // rate-limits the log lines of refused connections
	linkLog    everySecond  // rate-limits the log lines of refused OnCloseNotify

	// testHookHandedOver, if set, runs after the listener has handed an
	// accepted connection to its peer: a test makes a handshake flood
	// arrive exactly then.
	testHookHandedOver func()
	// testHookOffer, if set, runs as offerConn begins: a test holds an
	// accepted connection there until the peer's service has stopped.
	testHookOffer func(*peer)
	// dialGrace is how long the higher ID of a pair of members waits for
	// the lower's connection before it dials (lowerDialGrace; a test
	// makes it 0 to have both dial at once).
	dialGrace time.Duration

	mu       sync.Mutex
	serving  bool  // a Serve is running
	stopping bool  // Serve's context is done: no new peers
	fatal    error // why the listener cannot come back; ends Serve
	stop     context.CancelFunc
	sup      *suture.Supervisor // while serving: peers made at run time join it
}

// A peerHook is a subsystem that keeps per-peer state (links, registry;
// node events, groups and membership later): it hears of each peer's
// connection coming up and going down, instead of being special-cased in
// the connection code. Adding one is one line in newCluster.
//
// Both methods run on the peer's service goroutine, one connection at a
// time and in order: peerDown(cn) always precedes the next peerUp.
type peerHook interface {
	// peerUp is called when cn has become p's connection, before its
	// reader runs: the hook may queue frames on cn (a sync of its state).
	peerUp(p *peer, cn *conn)
	// peerDown is called when cn has ended (its reader and writer have
	// stopped and it is no longer p's connection), with why it ended: the
	// hook resolves what depended on it.
	peerDown(p *peer, cn *conn, why CloseReason)
}

// newCluster builds the runtime of a clustered node; the spec is
// validated by loadNodeTLS.
func newCluster(n *Node) (*cluster, error) {
	spec := n.cfg.Cluster
	t, err := loadNodeTLS(spec, n.id)
	if err != nil {
		return nil, err
	}
	self, _ := spec.Node(n.id) // loadNodeTLS checked it is there
	c := &cluster{n: n, self: self, tls: t, expiry: newCertExpiry(t, n.log), dialGrace: lowerDialGrace}
	c.hooks = []peerHook{
		linkHook{},     // linkremote.go: fire links to the peer's mailboxes, forget its watches
		registryHook{}, // registry.go: send our claims; drop the peer's
		callHook{},     // callremote.go: fail the calls forwarded through the peer
		groupHook{},    // groupsync.go: send our memberships; drop the peer's
		// nodeevents.go: NodeUp, NodeDown; last, so links have fired and names are gone
		nodeEventsHook{},
	}
	if n.cfg.Membership != nil {
		m, err := newMembership(c, *n.cfg.Membership)
		if err != nil {
			return nil, err
		}
		c.member = m
	}
	peers := map[NodeID]*peer{}
	for _, ns := range spec.Nodes {
		if ns.ID == n.id {
			continue
		}
		peers[ns.ID] = newPeer(c, ns.ID, ns.Address)
	}
	c.peerTab.Store(&peers)
	return c, nil
}

// The peer table. Without membership it is the spec's other nodes, fixed
// for the life of the node. With membership it grows when a node is first
// heard of (a member gossiped, a connection accepted, a join dialed) and
// shrinks when membership says a node has left or failed: the peer's
// service is stopped first (its hooks have run peerDown), then it leaves
// the table, so a node that comes back gets a new peer whose peerUp
// follows the old one's peerDown.
//
// Readers (senders, links, the registry) load the table without a lock;
// writers copy it under c.mu.

// peer returns the peer for node id, or nil.
func (c *cluster) peer(id NodeID) *peer { return (*c.peerTab.Load())[id] }

// peerList returns the peers now, in no order.
func (c *cluster) peerList() []*peer {
	m := *c.peerTab.Load()
	out := make([]*peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// addPeer returns the peer for node id, making it (and starting its
// service) if there is none; addr, if not empty, is where to dial it. It
// returns nil while Serve is not running or is stopping, or while the
// node's previous peer is being removed (the caller refuses the
// connection; the other side retries).
func (c *cluster) addPeer(id NodeID, addr string) *peer {
	if id == c.n.id {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.peerTab.Load()
	if p := old[id]; p != nil {
		if p.removing.Load() {
			return nil
		}
		if addr != "" {
			p.setAddr(addr)
		}
		return p
	}
	if c.sup == nil || c.stopping {
		return nil
	}
	p := newPeer(c, id, addr)
	m := make(map[NodeID]*peer, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[id] = p
	c.peerTab.Store(&m)
	p.token = c.sup.Add(p)
	return p
}

// removePeer stops p's service (its connection's hooks run peerDown) and
// takes it out of the table.
func (c *cluster) removePeer(p *peer) {
	c.mu.Lock()
	p.removing.Store(true)
	sup, tok, exited := c.sup, p.token, p.exited
	c.mu.Unlock()
	// Remove, then wait for the service here: suture's RemoveAndWait
	// leaves a goroutine blocked forever if the supervisor stops while
	// it waits.
	if sup != nil && sup.Remove(tok) == nil {
		t := time.NewTimer(10 * time.Second)
		select {
		case <-exited:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.peerTab.Load()
	if old[p.id] != p {
		return
	}
	m := make(map[NodeID]*peer, len(old))
	for k, v := range old {
		if k != p.id {
			m[k] = v
		}
	}
	c.peerTab.Store(&m)
}

// serve runs the node's supervisor tree until ctx is done, or until the
// listener fails for good (then it returns why).
func (c *cluster) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	if c.serving {
		c.mu.Unlock()
		return ErrAlreadyServing
	}
	c.serving, c.fatal, c.stop = true, nil, cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.serving, c.stop = false, nil
		c.mu.Unlock()
	}()
	ln := c.n.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = c.listen(); err != nil {
			return err
		}
	}
	sup := suture.New(fmt.Sprintf("reign-node-%d", c.n.id), suture.Spec{
		EventHook:      c.supervisorEvent,
		FailureBackoff: time.Second,
		Timeout:        5 * time.Second,
	})
	sup.Add(&listenerService{c: c, ln: ln})
	sup.Add(c.expiry)
	c.mu.Lock()
	c.sup, c.stopping = sup, false
	for _, p := range *c.peerTab.Load() {
		// a peer kept from an earlier Serve: its exit is this run's
		p.exited, p.exitOnce = make(chan struct{}), new(sync.Once)
		p.token = sup.Add(p)
	}
	c.mu.Unlock()
	if c.member != nil {
		sup.Add(c.member)
	}
	c.n.log.Info("node serving", "addr", ln.Addr().String())
	// The supervisor runs until ctx is done and, with membership, until
	// this node has left the cluster: its leave rides the connections,
	// which must still be up.
	supCtx, supCancel := context.WithCancel(context.Background())
	defer supCancel()
	left := make(chan struct{})
	go func() {
		defer close(left)
		select {
		case <-ctx.Done():
		case <-supCtx.Done():
			return
		}
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		if c.member != nil {
			c.member.leave()
		}
		supCancel()
	}()
	err := sup.Serve(supCtx)
	supCancel()
	<-left
	c.mu.Lock()
	fatal := c.fatal
	c.sup = nil
	c.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// listen opens this node's listen address from the spec.
func (c *cluster) listen() (net.Listener, error) {
	addr := c.self.ListenAddress
	if addr == "" {
		addr = c.self.Address
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("reign: node %d cannot listen on %s: %w", c.n.id, addr, err)
	}
	return ln, nil
}

// fail ends Serve with err: the listener cannot come back.
func (c *cluster) fail(err error) {
	c.mu.Lock()
	if c.fatal == nil {
		c.fatal = err
	}
	stop := c.stop
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// supervisorEvent routes suture's events to the node's logger, with the
// event's fields as attributes (in a fixed order).
func (c *cluster) supervisorEvent(e suture.Event) {
	m := e.Map()
	keys := slices.Sorted(maps.Keys(m))
	attrs := make([]any, 0, len(m)+1)
	attrs = append(attrs, slog.String("event", supervisorEventNames[e.Type()]))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, m[k]))
	}
	c.n.log.Warn("supervisor event", attrs...)
}

var supervisorEventNames = map[suture.EventType]string{
	suture.EventTypeStopTimeout:      "stop timeout",
	suture.EventTypeServicePanic:     "service panic",
	suture.EventTypeServiceTerminate: "service terminate",
	suture.EventTypeBackoff:          "backoff",
	suture.EventTypeResume:           "resume",
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
	for _, p := range *c.peerTab.Load() {
		if cn := p.live.Load(); cn != nil {
			_ = cn.appendFrame(t, func(b []byte) []byte {
				return wire.AppendClaim(b, wire.Claim{Name: name, Mailbox: ref(a)})
			})
		}
	}
	c.wakeMembers() // a node with names keeps every member connected (peer.wantsDial)
}

// wakeMembers wakes the service of each member with no connection, to
// dial it if this node now holds names or groups (peer.wantsDial).
func (c *cluster) wakeMembers() {
	if c.member == nil {
		return
	}
	for _, p := range *c.peerTab.Load() {
		if p.live.Load() == nil && p.member.Load() {
			p.wake()
		}
	}
}
