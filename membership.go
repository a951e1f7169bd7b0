package reign

// This file is dynamic membership: hashicorp/memberlist (SWIM gossip with
// Lifeguard) run over internal/gossip, whose packets and streams ride the
// node pairs' reign connections as TypeGossip and TypeGossipStream frames.
// So there is no second port and no gossip key: a member is any node whose
// certificate the cluster CA signed, its identity checked once by the TLS
// handshake, as for data.
//
// How it drives the peer table (cluster.go, peer.go):
//   - a node membership lists alive becomes a peer (its data address comes
//     from its gossip metadata), and the lower ID of the pair keeps a
//     connection to it;
//   - memberlist may need a connection to any member (a probe, a gossip, a
//     push/pull): the Dialer below asks the peer's service to dial, so
//     either side may dial, and the lower ID chooses which connection
//     the pair runs (see peer.take);
//   - a join knows only an address: the Dialer dials it, and the node is
//     whichever one the certificate names;
//   - a node membership declares failed or left is turned into a peer
//     down (its connection is closed with CloseMemberGone, if it has not
//     ended on its own: links fire NoConnection) and leaves the table.
//
// Names (and groups) converge on a joining node by the sync every peerUp
// does, as with a static spec.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/reign-go/reign/internal/gossip"
	"github.com/reign-go/reign/internal/wire"
)

// MembershipConfig turns on dynamic membership (Config.Membership). A
// node whose certificate the cluster CA signed then joins a running
// cluster knowing one member's address; the members learn of it, and of
// its departure or failure, without a restart. The cluster spec is still
// where the node finds its certificates and its own listen address; the
// spec's other nodes are only seeds to join through (a node absent from
// the spec is accepted as a peer if the CA signed its certificate).
// Every node of a cluster must have membership on, or all off.
//
// Zero values take the documented defaults, tuned for a LAN: a killed
// node is noticed by all within about 2-4 s at 16-64 nodes.
type MembershipConfig struct {
	// Join lists the addresses (host:port, the reign listen addresses) of
	// members to join through, besides the spec's other nodes. A node
	// with no seed at all starts a cluster of its own, which others join.
	// While a node knows no other member it retries every JoinRetry.
	Join []string

	// AdvertiseAddress is the address other nodes reach this one at
	// (host:port; a host name is resolved when Serve starts, since
	// memberlist gossips an IP). Empty means this node's Address in the
	// spec.
	AdvertiseAddress string

	// ProbeInterval is how often memberlist probes a random member.
	// Zero means 500 ms (memberlist's LAN default, 1 s, is too slow to
	// notice a kill within 5 s).
	ProbeInterval time.Duration

	// ProbeTimeout is how long a probe waits for its ack before indirect
	// probes. Zero means 250 ms. It must be below ProbeInterval.
	ProbeTimeout time.Duration

	// SuspicionMult scales how long a suspected member has to refute
	// before it is declared failed: SuspicionMult × log10(N) ×
	// ProbeInterval, up to SuspicionMaxTimeoutMult times that with
	// Lifeguard, shortened as other members confirm the suspicion. Zero
	// means 3.
	SuspicionMult int

	// SuspicionMaxTimeoutMult bounds the suspicion timeout of a member no
	// other member confirms. Zero means 3.
	SuspicionMaxTimeoutMult int

	// GossipInterval is how often a node gossips to a few random members.
	// Zero means 200 ms.
	GossipInterval time.Duration

	// PushPullInterval is how often a node exchanges its full member list
	// with a random member (anti-entropy). Zero means 15 s.
	PushPullInterval time.Duration

	// JoinRetry is how often a node that knows no other member tries its
	// seeds again. Zero means 1 s.
	JoinRetry time.Duration

	// IdleTimeout is how long a connection to another member stays up
	// with no traffic (heartbeats aside) when nothing needs it: no links
	// or calls in flight either way, and no registry names or process
	// groups on either node (a node that holds names or groups keeps a
	// connection to every member, so they converge). Both sides agree
	// before it closes, nothing in flight is lost, and the next use
	// connects again; it is not a node down (NodeDown follows
	// membership). Zero means DefaultIdleTimeout (10 s); negative keeps
	// every connection up.
	IdleTimeout time.Duration

	// LeaveTimeout bounds the graceful leave when Serve's context ends:
	// the node gossips its departure for at most this long before its
	// connections close. Zero means 1 s.
	LeaveTimeout time.Duration
}

// Defaults of the MembershipConfig fields whose zero value means default.
const (
	DefaultProbeInterval           = 500 * time.Millisecond
	DefaultProbeTimeout            = 250 * time.Millisecond
	DefaultSuspicionMult           = 3
	DefaultSuspicionMaxTimeoutMult = 3
	DefaultGossipInterval          = 200 * time.Millisecond
	DefaultPushPullInterval        = 15 * time.Second
	DefaultJoinRetry               = time.Second
	DefaultLeaveTimeout            = time.Second
)

// membership is a clustered node's memberlist, run as a suture service.
type membership struct {
	c    *cluster
	cfg  MembershipConfig
	name string // this node's memberlist name, gossip.NodeName(id)
	data string // this node's data address, for its metadata

	tr atomic.Pointer[gossip.Transport] // the current Serve's

	testNoLeave atomic.Bool // tests: stop without a leave, as if killed

	mu       sync.Mutex
	ml       *memberlist.Memberlist // nil when not running
	ctx      context.Context        // Serve's: ends the dials memberlist waits on
	members  map[NodeID]gossip.Meta // alive members, this node excluded
	up       map[NodeID]bool        // members reported up to node-event watchers (NodeUp sent, NodeDown not yet)
	events   []memberEvent
	refusals map[string]time.Time // last refusal logged, per member name
	wake     chan struct{}
	wg       sync.WaitGroup // removals in progress
}

type memberEvent struct {
	join bool
	node memberlist.Node
}

var (
	_ memberlist.Delegate      = (*membership)(nil)
	_ memberlist.EventDelegate = (*membership)(nil)
	_ memberlist.AliveDelegate = (*membership)(nil)
	_ memberlist.MergeDelegate = (*membership)(nil)
	_ gossip.Dialer            = (*membership)(nil)
)

// newMembership checks cfg and fills its defaults.
func newMembership(c *cluster, cfg MembershipConfig) (*membership, error) {
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ProbeInterval", &cfg.ProbeInterval, DefaultProbeInterval},
		{"ProbeTimeout", &cfg.ProbeTimeout, DefaultProbeTimeout},
		{"GossipInterval", &cfg.GossipInterval, DefaultGossipInterval},
		{"PushPullInterval", &cfg.PushPullInterval, DefaultPushPullInterval},
		{"JoinRetry", &cfg.JoinRetry, DefaultJoinRetry},
		{"LeaveTimeout", &cfg.LeaveTimeout, DefaultLeaveTimeout},
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	for _, d := range durations {
		if *d.v < 0 {
			return nil, &ConfigError{Field: "Config.Membership." + d.name, Msg: "negative"}
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.SuspicionMult < 0 || cfg.SuspicionMaxTimeoutMult < 0 {
		return nil, &ConfigError{Field: "Config.Membership.SuspicionMult", Msg: "negative"}
	}
	if cfg.SuspicionMult == 0 {
		cfg.SuspicionMult = DefaultSuspicionMult
	}
	if cfg.SuspicionMaxTimeoutMult == 0 {
		cfg.SuspicionMaxTimeoutMult = DefaultSuspicionMaxTimeoutMult
	}
	if cfg.ProbeTimeout >= cfg.ProbeInterval {
		return nil, &ConfigError{Field: "Config.Membership.ProbeTimeout", Msg: fmt.Sprintf("%v must be below ProbeInterval %v", cfg.ProbeTimeout, cfg.ProbeInterval)}
	}
	data := cfg.AdvertiseAddress
	if data == "" {
		data = c.self.Address
	}
	if _, _, err := net.SplitHostPort(data); err != nil {
		return nil, &ConfigError{Field: "Config.Membership.AdvertiseAddress", Msg: fmt.Sprintf("%q is not host:port", data), Err: err}
	}
	for _, j := range cfg.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return nil, &ConfigError{Field: "Config.Membership.Join", Msg: fmt.Sprintf("%q is not host:port", j), Err: err}
		}
	}
	cfg.Join = append([]string(nil), cfg.Join...)
	return &membership{
		c:        c,
		cfg:      cfg,
		name:     gossip.NodeName(uint16(c.n.id)),
		data:     data,
		members:  map[NodeID]gossip.Meta{},
		up:       map[NodeID]bool{},
		refusals: map[string]time.Time{},
		wake:     make(chan struct{}, 1),
	}, nil
}

func (m *membership) String() string { return "reign membership" }

// resolve turns host:port into ip:port.
func resolve(ctx context.Context, hostport string) (string, error) {
	all, err := resolveAll(ctx, hostport)
	if err != nil {
		return "", err
	}
	return all[0], nil
}

// resolveAll turns host:port into ip:port for each address of host, in the
// resolver's order (at least one).
func resolveAll(ctx context.Context, hostport string) ([]string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("reign: %s resolves to no address", host)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip.IP.String(), port)
	}
	return out, nil
}

// seedsPerName is how many of the addresses one seed name resolves to are
// joined through (a random few): a headless Service's name resolves to
// every pod, and one live member is enough to join.
const seedsPerName = 3

// Serve runs memberlist until ctx is done: it joins through the seeds,
// keeps the peer table in step with the members, and shuts memberlist
// down (the cluster has called leave first).
func (m *membership) Serve(ctx context.Context) error {
	addr, err := resolve(ctx, m.data)
	if err != nil {
		m.c.n.log.Error("membership: cannot resolve this node's address", "addr", m.data, "err", err)
		return fmt.Errorf("reign: membership: advertise address %s: %w", m.data, err)
	}
	tr, err := gossip.New(gossip.Config{Name: m.name, Addr: addr, Dialer: m, PacketDialTimeout: m.cfg.ProbeTimeout})
	if err != nil {
		return err
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = m.name
	mc.Transport = tr
	mc.Delegate, mc.Events, mc.Alive, mc.Merge = m, m, m, m
	mc.ProbeInterval = m.cfg.ProbeInterval
	mc.ProbeTimeout = m.cfg.ProbeTimeout
	mc.SuspicionMult = m.cfg.SuspicionMult
	mc.SuspicionMaxTimeoutMult = m.cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval = m.cfg.GossipInterval
	mc.PushPullInterval = m.cfg.PushPullInterval
	mc.TCPTimeout = 5 * time.Second
	mc.UDPBufferSize = min(mc.UDPBufferSize, gossip.DefaultMaxPacketSize)
	// compressing push/pull state costs CPU (LZW) for nothing on a LAN
	mc.EnableCompression = false
	mc.Logger = log.New(&memberlistLog{l: m.c.n.log}, "", 0)
	m.tr.Store(tr)
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return fmt.Errorf("reign: membership: %w", err)
	}
	m.mu.Lock()
	m.ml, m.ctx = ml, ctx
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.ml = nil
		m.mu.Unlock()
		_ = ml.Shutdown()
		_ = tr.Shutdown()
		m.wg.Wait()
		// memberlist gives no handle on its last probe, which ends
		// within a probe interval of Shutdown (its timers fire): wait
		// that long so nothing of it outlives Serve.
		sleepCtx(context.Background(), m.cfg.ProbeInterval+m.cfg.ProbeTimeout)
	}()
	m.c.n.log.Info("membership started", "addr", addr)

	retry := time.NewTimer(0)
	defer retry.Stop()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.wake:
			m.apply(ctx)
		case <-retry.C:
			if ml.NumMembers() <= 1 {
				m.join(ctx, ml, addr)
			}
			retry.Reset(m.cfg.JoinRetry)
		case <-sweep.C:
			m.sweep(ctx)
		}
	}
}

// seeds returns the resolved seed addresses, this node's own excluded.
func (m *membership) seeds(ctx context.Context, self string) []string {
	var out []string
	add := func(a string) {
		all, err := resolveAll(ctx, a)
		if err != nil {
			m.c.n.log.Warn("membership: cannot resolve a seed", "addr", a, "err", err)
			return
		}
		all = slices.DeleteFunc(all, func(r string) bool { return r == self })
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		out = append(out, all[:min(len(all), seedsPerName)]...)
	}
	for _, ns := range m.c.n.cfg.Cluster.Nodes {
		if ns.ID != m.c.n.id {
			add(ns.Address)
		}
	}
	for _, a := range m.cfg.Join {
		add(a)
	}
	return out
}

// join tries the seeds once.
func (m *membership) join(ctx context.Context, ml *memberlist.Memberlist, self string) {
	seeds := m.seeds(ctx, self)
	if len(seeds) == 0 {
		return
	}
	n, err := ml.Join(seeds)
	if err != nil && n == 0 {
		m.c.n.log.Info("membership: join failed; retrying", "seeds", seeds, "err", err)
		return
	}
	m.c.n.log.Info("membership: joined", "through", n, "members", ml.NumMembers())
}

// leave gossips this node's departure, waiting at most LeaveTimeout. The
// cluster calls it when Serve's context ends, before the connections
// close.
func (m *membership) leave() {
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	if ml == nil || m.testNoLeave.Load() {
		return
	}
	if err := ml.Leave(m.cfg.LeaveTimeout); err != nil {
		m.c.n.log.Info("membership: leave not confirmed", "err", err)
	}
}

// numMembers returns the members alive, this node included (0 when
// membership is not running).
func (m *membership) numMembers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil {
		return 0
	}
	return len(m.members) + 1
}

// queue records a memberlist event for the service goroutine: memberlist
// calls its delegates with its own locks held, so they must not block.
func (m *membership) queue(join bool, n *memberlist.Node) {
	m.mu.Lock()
	m.events = append(m.events, memberEvent{join: join, node: *n})
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// apply brings the peer table in step with the queued events.
func (m *membership) apply(ctx context.Context) {
	m.mu.Lock()
	evs := m.events
	m.events = nil
	m.mu.Unlock()
	for _, ev := range evs {
		id, ok := gossip.ParseNodeName(ev.node.Name)
		if !ok || NodeID(id) == m.c.n.id {
			continue
		}
		if ev.join {
			meta, err := gossip.CheckNode(&ev.node)
			if err != nil {
				continue // refused by NotifyAlive already
			}
			m.mu.Lock()
			_, known := m.members[NodeID(id)]
			m.members[NodeID(id)] = meta
			m.mu.Unlock()
			if !known {
				m.c.n.log.Info("membership: node joined", "peer", int(id), "addr", meta.DataAddr)
			}
			m.admit(NodeID(id), meta.DataAddr, ev.node.Address())
			m.report(NodeID(id), true, 0)
			continue
		}
		m.mu.Lock()
		_, known := m.members[NodeID(id)]
		delete(m.members, NodeID(id))
		m.mu.Unlock()
		if known {
			m.c.n.log.Info("membership: node left or failed", "peer", int(id))
		}
		why := CloseMemberGone
		if ev.node.State == memberlist.StateLeft {
			why = CloseGoodbye
		}
		if p := m.c.peer(NodeID(id)); p != nil {
			p.member.Store(false)
			m.remove(ctx, p, why)
		} else {
			m.report(NodeID(id), false, why)
		}
	}
}

// admit makes node id a peer that membership lists alive.
func (m *membership) admit(id NodeID, data, gaddr string) {
	p := m.c.addPeer(id, data)
	if p == nil {
		return // being removed: remove admits it again when done
	}
	p.setGossipAddr(gaddr)
	p.member.Store(true)
	p.wake()
}

// remove turns a member's failure or departure into a peer down, in the
// background, unless its connection proves the node alive: a connection
// that receives bytes within a heartbeat interval and a half is kept (a
// node declared failed by mistake, under load, refutes and is a member
// again; closing its connection would fire its links for nothing, and the
// reconnection would load the machine more). A leaving node's connection
// ends with its Goodbye. A connection that stays silent is closed with
// CloseMemberGone, and the peer leaves the table; a peer kept is removed
// by the sweep once its connection has ended, unless it is a member again.
// If the node is a member again by the time it is removed, it is admitted
// anew.
func (m *membership) remove(ctx context.Context, p *peer, why CloseReason) {
	if p.removing.Load() || p.checking.Swap(true) {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer p.checking.Store(false)
		if cn := p.live.Load(); cn != nil {
			if p.stillAlive(ctx, cn) || p.member.Load() {
				p.log.Info("membership says the node failed or left, but its connection is alive: keeping it until it ends")
				return
			}
			cn.close(CloseMemberGone, errors.New("membership declared the node failed or gone"))
		}
		if p.member.Load() {
			return // a member again
		}
		p.removing.Store(true)
		m.c.removePeer(p)
		p.expireWaiting(true)
		m.c.n.log.Debug("membership: peer removed", "peer", int(p.id))
		m.report(p.id, false, why) // after its links fired and its names went
		m.mu.Lock()
		meta, back := m.members[p.id]
		m.mu.Unlock()
		if back && ctx.Err() == nil {
			m.admit(p.id, meta.DataAddr, p.gossipAddr())
			m.report(p.id, true, 0)
		}
	}()
}

// sweep removes peers that are neither members nor connected nor asked
// for: the table holds the members, not every node ever heard of.
func (m *membership) sweep(ctx context.Context) {
	for _, p := range m.c.peerList() {
		p.expireWaiting(false)
		if !p.member.Load() && p.live.Load() == nil && monotime() > p.demand.Load() {
			m.remove(ctx, p, CloseMemberGone)
		}
	}
}

// report tells node-event watchers (Node.MonitorNodes) of a member's
// arrival (up) or departure: with membership, NodeUp and NodeDown follow
// membership, not connections, which come and go with use (idle.go).
// Each member is reported up once, and down once after that.
func (m *membership) report(id NodeID, up bool, why CloseReason) {
	m.mu.Lock()
	was := m.up[id]
	_, alive := m.members[id] // an arrival may have left since
	arrived, left := up && alive && !was, !up && was
	if arrived {
		m.up[id] = true
	} else if left {
		delete(m.up, id)
	}
	m.mu.Unlock()
	if arrived {
		m.c.n.events.nodeUp(id)
	} else if left {
		m.c.n.events.nodeDown(id, why)
	}
}

// NodeMeta implements memberlist.Delegate: this node's ID, incarnation
// and data address.
func (m *membership) NodeMeta(limit int) []byte {
	b, err := gossip.AppendMeta(nil, gossip.Meta{ID: uint16(m.c.n.id), Incarnation: m.c.n.inc, DataAddr: m.data})
	if err != nil || len(b) > limit {
		m.c.n.log.Error("membership: node metadata too large", "err", err)
		return nil
	}
	return b
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState implement
// memberlist.Delegate: reign sends no user messages through gossip
// (names and groups sync on each connection).
func (m *membership) NotifyMsg([]byte)                     {}
func (m *membership) GetBroadcasts(int, int) [][]byte      { return nil }
func (m *membership) LocalState(bool) []byte               { return nil }
func (m *membership) MergeRemoteState([]byte, bool)        {}
func (m *membership) NotifyJoin(n *memberlist.Node)        { m.queue(true, n) }
func (m *membership) NotifyUpdate(n *memberlist.Node)      { m.queue(true, n) }
func (m *membership) NotifyLeave(n *memberlist.Node)       { m.queue(false, n) }
func (m *membership) NotifyAlive(n *memberlist.Node) error { return m.check(n) }

// NotifyMerge implements memberlist.MergeDelegate: a push/pull is refused
// if it lists a member whose name and metadata disagree.
func (m *membership) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := m.check(n); err != nil {
			return err
		}
	}
	return nil
}

// maxRefusalNames bounds the refused member names remembered (for
// rate-limiting their log lines): a member can gossip any number of
// made-up names.
const maxRefusalNames = 1024

// check refuses a member whose name is not a node name or whose metadata
// names another node; this node itself is never checked (memberlist
// reports it too).
func (m *membership) check(n *memberlist.Node) error {
	if n.Name == m.name {
		return nil
	}
	_, err := gossip.CheckNode(n)
	if err != nil {
		m.mu.Lock()
		now := time.Now()
		logIt := now.Sub(m.refusals[n.Name]) > 10*time.Second
		if logIt {
			if len(m.refusals) >= maxRefusalNames {
				clear(m.refusals) // a member gossiping made-up names: bounded, not remembered
			}
			m.refusals[n.Name] = now
		}
		m.mu.Unlock()
		if logIt {
			m.c.n.log.Warn("membership: member refused", "member", n.Name, "err", err)
		}
	}
	return err
}

// DialNode implements gossip.Dialer: the connection to member a, made if
// needed. With a name it is the named node's peer connection (its
// certificate names it); with only an address (a join) the node is
// whichever one answers there.
//
// Its errors are *net.OpError{Op: "dial"}: memberlist counts a probe
// whose send failed that way as a failed probe of the member (as a UDP
// send to a dead host), where other errors would only be logged.
func (m *membership) DialNode(ctx context.Context, a memberlist.Address) (gossip.Conn, error) {
	m.mu.Lock()
	serving := m.ctx
	m.mu.Unlock()
	if serving != nil {
		// memberlist's calls (a Join, a push/pull) wait on their own
		// timeouts only: shutting down must not wait for them
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(serving, cancel)
		defer stop()
	}
	gc, err := m.dialNode(ctx, a)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: gossipAddr(a.Addr), Err: err}
	}
	return gc, nil
}

func (m *membership) dialNode(ctx context.Context, a memberlist.Address) (gossip.Conn, error) {
	c := m.c
	if a.Name == "" {
		for _, p := range c.peerList() {
			if p.gossipAddr() == a.Addr {
				if cn := p.live.Load(); cn != nil {
					return (*gossipConn)(cn), nil
				}
				if p.dialAddr() != "" {
					// known already: its service dials (or takes
					// the peer's connection), one connection a pair
					cn, err := p.connect(ctx)
					if err != nil {
						return nil, err
					}
					return (*gossipConn)(cn), nil
				}
			}
		}
		cn, err := c.dialJoin(ctx, a.Addr)
		if err != nil {
			return nil, err
		}
		return (*gossipConn)(cn), nil
	}
	id, ok := gossip.ParseNodeName(a.Name)
	if !ok || NodeID(id) == c.n.id {
		return nil, fmt.Errorf("%w: member %q", ErrNodeUnreachable, a.Name)
	}
	p := c.peer(NodeID(id))
	if p == nil {
		// memberlist gossips to dead members for a while (so a node
		// declared dead by mistake learns it and refutes): they get no
		// peer, and the send fails as one to a dead host would
		if !m.knows(NodeID(id)) {
			return nil, fmt.Errorf("%w: node %d is not a member", ErrNodeUnreachable, id)
		}
		if p = c.addPeer(NodeID(id), a.Addr); p == nil {
			return nil, fmt.Errorf("%w: node %d", ErrNodeUnreachable, id)
		}
	}
	p.setGossipAddr(a.Addr)
	cn, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	return (*gossipConn)(cn), nil
}

// knows reports whether node id is a member, or its join is queued.
func (m *membership) knows(id NodeID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.members[id]; ok {
		return true
	}
	name := gossip.NodeName(uint16(id))
	for _, ev := range m.events {
		if ev.join && ev.node.Name == name {
			return true
		}
	}
	return false
}

// dialJoin connects to whichever node listens at addr (a seed: only its
// address is known): the certificate must chain to the cluster CA and name
// one node other than this one, which becomes (or is) a peer.
func (c *cluster) dialJoin(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var id NodeID
	tc := tls.Client(nc, c.tls.joinConfig(&id))
	if err := handshakeTLS(ctx, tc); err != nil {
		_ = nc.Close()
		r := handshakeReason(err)
		c.countClose(nil, r)
		c.n.log.Warn("membership: join connection failed", "addr", addr, "reason", r, "err", err)
		return nil, err
	}
	// The peer's Hello is read before this node sends its own: a node
	// that refuses this one (TLS 1.3 reports it after the client's
	// handshake) never enters the table; and until this node's Hello
	// the peer cannot run the connection, so a second one (see
	// peer.take) is closed before anyone used it.
	var p *peer
	busy := errors.New("busy")
	h, err := exchangeHelloGated(ctx, c.n, tc, id, func() error {
		if p = c.addPeer(id, ""); p == nil {
			return fmt.Errorf("%w: node %d at %s is leaving the peer table", ErrNodeUnreachable, id, addr)
		}
		if !p.startDial() {
			return busy
		}
		return nil
	})
	if err == nil && !p.arbiter() {
		err = awaitAccept(ctx, tc, h)
	}
	switch {
	case errors.Is(err, busy):
		// a connection to that node is up or on its way: use it
		// rather than make a second
		_ = nc.Close()
		return p.connect(ctx)
	case errors.Is(err, errConnRefused):
		p.endDial()
		_ = nc.Close()
		c.countClose(p, CloseDuplicateConn)
		return p.connect(ctx)
	case err != nil:
		if p != nil {
			p.endDial()
		}
		_ = nc.Close()
		r := handshakeReason(err)
		c.countClose(nil, r)
		c.n.log.Warn("membership: join connection failed", "addr", addr, "peer", int(id), "reason", r, "err", err)
		return nil, err
	}
	p.setGossipAddr(addr)
	cn := newConn(p, tc, h)
	cn.outbound = true
	// offerConn may wait (stillAlive) past memberlist's dial deadline:
	// bound it by the node's serving instead
	offerCtx := ctx
	if m := c.member; m != nil {
		m.mu.Lock()
		if m.ctx != nil {
			offerCtx = m.ctx
		}
		m.mu.Unlock()
	}
	p.offerConn(offerCtx, cn)
	p.endDial()
	return p.connect(ctx)
}

// connectOnUse returns p's connection (p may be nil). With membership, a
// send to a member with no connection yet makes one, as Erlang connects on
// first use, waiting at most the handshake timeout: the lower ID of a pair
// keeps the connection up, but a node that has just joined may send before
// that connection is made. Without membership, or to a node that is not a
// member, it returns the connection as it is (nil if none).
func (c *cluster) connectOnUse(p *peer, id NodeID) *conn {
	if p != nil {
		if cn := p.live.Load(); cn != nil || c.member == nil {
			return cn
		}
	}
	m := c.member
	if m == nil {
		return nil
	}
	m.mu.Lock()
	meta, ok := m.members[id]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	if p == nil {
		if p = c.addPeer(id, meta.DataAddr); p == nil {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.n.cfg.HandshakeTimeout)
	defer cancel()
	cn, _ := p.connect(ctx)
	return cn
}

// gossipTransport returns the running membership's Transport, or nil.
func (c *cluster) gossipTransport() *gossip.Transport {
	if c.member == nil {
		return nil
	}
	return c.member.tr.Load()
}

// gossipConnLost tells the Transport a connection has ended.
func (c *cluster) gossipConnLost(cn *conn) {
	if tr := c.gossipTransport(); tr != nil {
		tr.ConnLost((*gossipConn)(cn))
	}
}

// handleGossip hands a memberlist packet to the Transport. Gossip to a
// node whose membership is off is a protocol error; a packet before
// membership has started is dropped, as a UDP datagram would be.
func handleGossip(c *conn, payload []byte) error {
	if c.p.c.member == nil {
		return closeWith(CloseGossipError, fmt.Errorf("%w: gossip, but membership is off on this node", wire.ErrMalformed))
	}
	tr := c.p.c.gossipTransport()
	if tr == nil {
		return nil
	}
	if err := tr.HandlePacket((*gossipConn)(c), payload, time.Now()); err != nil {
		return closeWith(CloseGossipError, err)
	}
	return nil
}

// handleGossipStream hands a memberlist stream frame to the Transport.
func handleGossipStream(c *conn, payload []byte) error {
	tr := c.p.c.gossipTransport()
	if tr == nil {
		return closeWith(CloseGossipError, fmt.Errorf("%w: gossip stream, but membership is not running on this node", wire.ErrMalformed))
	}
	if err := tr.HandleStream((*gossipConn)(c), payload); err != nil {
		return closeWith(CloseGossipError, err)
	}
	return nil
}

// gossipConn is a connection as the gossip Transport sees it
// (gossip.Conn). A conversion of the *conn, so the same connection is
// always the same gossip.Conn.
type gossipConn conn

func (g *gossipConn) Node() string { return gossip.NodeName(uint16(g.p.id)) }

// RemoteAddr is the peer's memberlist address if known, else the
// connection's remote address.
func (g *gossipConn) RemoteAddr() net.Addr {
	if a := g.p.gossipAddr(); a != "" {
		return gossipAddr(a)
	}
	return g.nc.RemoteAddr()
}

func (g *gossipConn) Done() <-chan struct{} { return g.done }

// SendPacket queues one Gossip frame; it drops the packet (as UDP would)
// when the connection's send buffer is over its limit.
func (g *gossipConn) SendPacket(b []byte) error {
	return (*conn)(g).appendGossip(wire.TypeGossip, b, true)
}

// SendStream queues one GossipStream frame.
func (g *gossipConn) SendStream(payload []byte) error {
	return (*conn)(g).appendGossip(wire.TypeGossipStream, payload, false)
}

// appendGossip queues a gossip frame. Like control frames it never waits
// for room: the Transport bounds what streams queue (their window), and
// packets are dropped when the buffer is over its limit.
func (c *conn) appendGossip(t wire.Type, payload []byte, droppable bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	if droppable && len(c.out) > c.limit {
		c.mu.Unlock()
		return nil
	}
	wasEmpty := len(c.out) == 0
	out, start := wire.BeginFrame(c.out, t)
	if err := c.commitFrame(append(out, payload...), start); err != nil {
		return err
	}
	if wasEmpty {
		c.kick()
	}
	return nil
}

// gossipAddr is a memberlist address as a net.Addr.
type gossipAddr string

func (a gossipAddr) Network() string { return "reign" }
func (a gossipAddr) String() string  { return string(a) }

// memberlistLog routes memberlist's log lines ("[LEVEL] memberlist: ...")
// into the node's logger: errors at Warn, warnings at Info, the rest (and
// the failed sends to a dead member, which memberlist reports as errors)
// at Debug.
type memberlistLog struct{ l *slog.Logger }

func (w *memberlistLog) Write(b []byte) (int, error) {
	line := string(bytes.TrimSpace(b))
	level := slog.LevelDebug
	switch {
	case bytes.Contains(b, []byte("Failed to send")):
		// a send to a failed or departed member: memberlist reports
		// each at ERR until it is declared dead, and gossips to the
		// dead for a while after
	case bytes.HasPrefix(b, []byte("[ERR]")):
		level = slog.LevelWarn
	case bytes.HasPrefix(b, []byte("[WARN]")):
		level = slog.LevelInfo
	}
	w.l.Log(context.Background(), level, "memberlist", "msg", line)
	return len(b), nil
}
