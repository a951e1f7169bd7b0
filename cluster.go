package reign

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
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
	peers      map[NodeID]*peer // fixed by the spec; never changes
	hooks      []peerHook       // told of every peer up and down, in order
	expiry     *certExpiry      // warns before a certificate expires
	stats      counters
	handshakes handshakeSet // the incoming handshakes in progress
	refusals   refusalLog   // rate-limits the log lines of refused connections
	linkLog    everySecond  // rate-limits the log lines of refused OnCloseNotify

	// testHookHandedOver, if set, runs after the listener has handed an
	// accepted connection to its peer: a test makes a handshake flood
	// arrive exactly then.
	testHookHandedOver func()

	mu      sync.Mutex
	serving bool  // a Serve is running
	fatal   error // why the listener cannot come back; ends Serve
	stop    context.CancelFunc
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
	c := &cluster{n: n, self: self, tls: t, peers: map[NodeID]*peer{}, expiry: newCertExpiry(t, n.log)}
	c.hooks = []peerHook{
		linkHook{},     // linkremote.go: fire links to the peer's mailboxes, forget its watches
		registryHook{}, // registry.go: send our claims; drop the peer's
		callHook{},     // callremote.go: fail the calls forwarded through the peer
		groupHook{},    // groupsync.go: send our memberships; drop the peer's
		// nodeevents.go: NodeUp, NodeDown; last, so links have fired and names are gone
		nodeEventsHook{},
	}
	for _, ns := range spec.Nodes {
		if ns.ID == n.id {
			continue
		}
		c.peers[ns.ID] = newPeer(c, ns)
	}
	return c, nil
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
	for _, p := range c.peers {
		sup.Add(p)
	}
	c.n.log.Info("node serving", "addr", ln.Addr().String())
	err := sup.Serve(ctx)
	c.mu.Lock()
	fatal := c.fatal
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
	for _, p := range c.peers {
		if cn := p.live.Load(); cn != nil {
			_ = cn.appendFrame(t, func(b []byte) []byte {
				return wire.AppendClaim(b, wire.Claim{Name: name, Mailbox: ref(a)})
			})
		}
	}
}
