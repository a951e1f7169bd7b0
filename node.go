package reign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"
)

// NodeID identifies a node in a cluster. IDs are chosen by the cluster spec;
// any value is valid, 0 included (thejerf/reign numbers nodes from 0).
type NodeID uint16

// Config configures a Node. Its zero value is a working local-only node with
// ID 0; every field documents its default, which is what its zero value means.
type Config struct {
	// NodeID is this node's ID. With a Cluster it must name one of the
	// spec's nodes.
	NodeID NodeID

	// Cluster describes the cluster this node belongs to. Nil means a
	// local-only node: no listener, no connections, no certificates.
	Cluster *ClusterSpec

	// Codec serializes messages sent to other nodes. Nil means msgpack
	// (MsgpackCodec). Every node of a cluster must use the same codec; the
	// handshake refuses a peer that names another.
	Codec Codec

	// Logger receives the node's log records. Nil discards them.
	Logger *slog.Logger

	// HeartbeatInterval is how often an idle connection sends a heartbeat.
	// Zero means 1s.
	HeartbeatInterval time.Duration

	// HeartbeatTimeout is how long a peer may stay silent before it is
	// declared lost and every link to its mailboxes fires with
	// NoConnection (it is noticed between 1 and 1.25 timeouts after the
	// last byte from the peer; a reset connection is noticed at once). It
	// also bounds each write to the peer. Zero means 3s. It must exceed
	// HeartbeatInterval.
	HeartbeatTimeout time.Duration

	// HandshakeTimeout bounds dialing, the TLS handshake and the reign
	// handshake of one connection attempt. Zero means 5s.
	HandshakeTimeout time.Duration

	// SendBufferLimit is the number of bytes that may wait in one peer's
	// outgoing buffer; a Send to that peer while it is over the limit
	// waits until it drains or the connection is lost. Zero means 16 MiB.
	SendBufferLimit int

	// MaxFrameSize is the largest frame, and so the largest encoded
	// message, this node sends or accepts. Zero means 16 MiB.
	MaxFrameSize int

	// Listener, if non-nil, is used instead of listening on this node's
	// listen address from the cluster spec; the node closes it when Serve
	// returns. Tests use it to listen on 127.0.0.1:0 without races.
	Listener net.Listener

	// Tracer, if non-nil, is called for every message this node sends,
	// delivers or drops and for every mailbox of this node that closes
	// (see TraceEvent and TraceKind), with the message's type and
	// addresses. It is called synchronously, on the goroutine doing the
	// work (a sender, a connection's reader, the closer), possibly from
	// many goroutines at once, and with no lock of the node's tables held
	// (it may read Peers, Members, Stats): it must be quick and safe for
	// concurrent use, must not block, and must not send to this node's
	// mailboxes (that would trace again, without end) nor close them or
	// subscribe to node or group events (NodeUp, NodeDown and
	// GroupChanged are traced while their delivery order is held, and
	// those calls wait for it).
	// Typical tracers count, sample or log. Nil means no tracing, at the
	// cost of one nil check per event.
	Tracer func(TraceEvent)

	// Per-peer bounds: what one peer may make this node hold (see
	// limits.go and PROTOCOL.md, "Trust model and bounds"). A peer that
	// crosses one has its connection closed with CloseLimitExceeded (its
	// state goes with it, as when any connection ends), counted in
	// Stats.LimitsExceeded by kind. Zero means the default; negative is
	// refused.

	// MaxPeerLinks bounds the watchers one peer's mailboxes hold on this
	// node's mailboxes (each OnCloseNotify from that node on a mailbox of
	// this one), and, separately, the links a peer asked this node to
	// install for this node's own mailboxes (an OnCloseNotify made on the
	// peer whose watcher is here, forwarded in a LinkFor frame) that are
	// still in place. Zero means DefaultMaxPeerLinks (65,536).
	MaxPeerLinks int

	// MaxPeerNames bounds the registry names one peer claims at a time.
	// Zero means DefaultMaxPeerNames (65,536).
	MaxPeerNames int

	// MaxPeerNameBytes bounds the total length of the names one peer
	// claims. Zero means DefaultMaxPeerNameBytes (4 MiB).
	MaxPeerNameBytes int

	// MaxPeerTypes bounds the message type numbers one peer defines on a
	// connection. Zero means DefaultMaxPeerTypes (65,536).
	MaxPeerTypes int

	// MaxPeerTypeBytes bounds the total length of the type names one
	// peer defines on a connection. Zero means DefaultMaxPeerTypeBytes
	// (1 MiB).
	MaxPeerTypeBytes int

	// ControlBufferLimit bounds the control frames (Link, Unlink,
	// Closed, registry claims and releases, CallFailed, and the replies
	// to forwarded calls relayed while the send buffer is over
	// SendBufferLimit) queued for one peer and not yet written: control
	// frames never wait for buffer room (they must not block the reader,
	// nor links and the registry behind data), so
	// a peer that stops reading while it provokes them (Links to closed
	// mailboxes, answered at once) would grow the buffer without end.
	// Past this many bytes the connection is closed. The synchronization
	// of this node's own names when a connection comes up is not counted:
	// it is this node's state, not the peer's doing. A peer's outgoing
	// buffer therefore holds at most SendBufferLimit + MaxFrameSize +
	// ControlBufferLimit bytes. Zero means SendBufferLimit.
	ControlBufferLimit int

	// MaxPeerForwarded bounds the calls from one peer that a server on
	// this node passed on to another node (a Request forwarded with Send)
	// and whose answers this node still awaits: each holds a record here
	// until its answer comes. A peer that would cross it is disconnected
	// with CloseLimitExceeded, and the forwarding Send fails with
	// ErrTooManyForwarded. Zero means DefaultMaxPeerForwarded (65,536).
	MaxPeerForwarded int

	// Process groups (groups.go). A peer that would cross either bound
	// with a GroupJoin is disconnected with CloseLimitExceeded (counted
	// in Stats.Closes, and in Stats.LimitsExceeded as LimitGroups or
	// LimitGroupMembers) and its memberships are dropped, as on any
	// disconnection; it reconnects and resynchronizes if it can.

	// MaxPeerGroups is the most process groups that one peer's mailboxes
	// may be members of, as this node records them (each group name is up
	// to MaxGroupNameLen bytes). Zero means DefaultMaxPeerGroups (65,536).
	MaxPeerGroups int

	// MaxPeerGroupMembers is the most group memberships (a mailbox in a
	// group) that one peer may hold on this node, in all its groups. Zero
	// means DefaultMaxPeerGroupMembers (262,144).
	MaxPeerGroupMembers int
	// Dynamic membership (membership.go).

	// Membership, if non-nil, turns on dynamic membership: nodes join and
	// leave a running cluster, and failures are detected by gossip
	// (hashicorp/memberlist riding the nodes' connections). The spec's
	// other nodes become seeds to join through. Nil means the fixed mesh
	// of the spec, unchanged: every node connects to every other. It
	// requires a Cluster.
	Membership *MembershipConfig
}

// Default values of the Config fields whose zero value means "default".
const (
	DefaultHeartbeatInterval = time.Second
	DefaultHeartbeatTimeout  = 3 * time.Second
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultSendBufferLimit   = 16 << 20
	DefaultMaxFrameSize      = 16 << 20
)

// Node is one member of a reign cluster (or a local-only node): it owns
// mailboxes, registered message types, the local part of the registry and,
// in a cluster, one connection to each peer. Make one with NewNode; in a
// cluster, run Serve (it is a suture.Service) to talk to peers.
//
// A Node is safe for concurrent use. Two Nodes in one process share no
// state, so a test can run a whole cluster in one process.
type Node struct {
	id    NodeID
	inc   uint32 // incarnation: random, fixed for the life of this value
	cfg   Config
	log   *slog.Logger
	codec Codec
	types typeRegistry
	table mailboxTable
	refs  atomic.Uint64 // Call references
	calls callTable     // call.go: Requests sent to peers, awaiting answers
	reg   registry
	pg    groupTable
	cl    *cluster // nil for a local-only node

	born   time.Time  // when NewNode made it, for Snapshot's uptime
	events nodeEvents // nodeevents.go: node-event watchers, Peers, WaitName

	watches remoteWatches // linkremote.go: the remote mailboxes each local mailbox watches
}

// NewNode checks cfg, fills in its defaults and, for a clustered node,
// loads its certificates. It does no network I/O and starts no goroutines:
// Serve does that. Errors name the Config field that is wrong and wrap
// ErrBadConfig.
func NewNode(cfg Config) (*Node, error) {
	if cfg.Codec == nil {
		cfg.Codec = MsgpackCodec{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.SendBufferLimit == 0 {
		cfg.SendBufferLimit = DefaultSendBufferLimit
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if err := fillBoundDefaults(&cfg); err != nil {
		return nil, err
	}
	switch {
	case cfg.HeartbeatInterval < 0:
		return nil, &ConfigError{Field: "Config.HeartbeatInterval", Msg: "negative"}
	case cfg.HeartbeatTimeout <= cfg.HeartbeatInterval:
		return nil, &ConfigError{Field: "Config.HeartbeatTimeout", Msg: fmt.Sprintf("%v must exceed HeartbeatInterval %v", cfg.HeartbeatTimeout, cfg.HeartbeatInterval)}
	case cfg.HandshakeTimeout < 0:
		return nil, &ConfigError{Field: "Config.HandshakeTimeout", Msg: "negative"}
	case cfg.SendBufferLimit < 0:
		return nil, &ConfigError{Field: "Config.SendBufferLimit", Msg: "negative"}
	case cfg.MaxFrameSize < 1024 || cfg.MaxFrameSize > 1<<30:
		return nil, &ConfigError{Field: "Config.MaxFrameSize", Msg: fmt.Sprintf("%d is outside 1 KiB to 1 GiB", cfg.MaxFrameSize)}
	}
	if err := cfg.groupDefaults(); err != nil {
		return nil, err
	}
	n := &Node{
		id:    cfg.NodeID,
		inc:   newIncarnation(),
		cfg:   cfg,
		codec: cfg.Codec,
		born:  time.Now(),
	}
	n.log = cfg.Logger.With("node", int(cfg.NodeID))
	n.calls.maxPeer = cfg.MaxPeerForwarded
	n.reg.init(n)
	for _, v := range builtinTypes {
		if err := n.types.register("", v); err != nil {
			return nil, err
		}
	}
	if cfg.Cluster != nil {
		cl, err := newCluster(n)
		if err != nil {
			return nil, err
		}
		n.cl = cl
		warnKeyPermissions(n.log, cfg.Cluster, n.id)
	} else if cfg.Listener != nil {
		return nil, &ConfigError{Field: "Config.Listener", Msg: "set without a Cluster"}
	} else if cfg.Membership != nil {
		return nil, &ConfigError{Field: "Config.Membership", Msg: "set without a Cluster"}
	}
	return n, nil
}

// newIncarnation returns a random non-zero incarnation number.
func newIncarnation() uint32 {
	for {
		if v := rand.Uint32(); v != 0 {
			return v
		}
	}
}

// ID returns the node's ID.
func (n *Node) ID() NodeID { return n.id }

// String returns "node <id>".
func (n *Node) String() string { return "node " + itoa(int(n.id)) }

// NewMailbox makes a new, empty mailbox on this node and returns it with its
// Address. It starts no goroutine. Close it when done, or it lives as long
// as the Node.
func (n *Node) NewMailbox() (Address, *Mailbox) {
	m := &Mailbox{n: n}
	n.table.add(m)
	return m.Address(), m
}

// RegisterType registers the type of each v (for example
// RegisterType(Ping{}, Pong{})) as a message type that can cross between
// this node and others, under its default name: its package path and type name. Every node that sends or
// receives the type must register it, each for itself: there is no global
// registration. Registering the same type again does nothing. Strings,
// numbers, []byte, bool, Address, MailboxClosed, MultipleClaim and GroupChanged are
// registered already. Messages sent only between mailboxes of one node need
// no registration. Every value is tried; the error joins the failures, each
// naming its type.
func (n *Node) RegisterType(vs ...any) error {
	var errs []error
	for _, v := range vs {
		if err := n.types.register("", v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RegisterTypeName is RegisterType with an explicit wire name, for a type
// that is named differently in the programs of different nodes.
func (n *Node) RegisterTypeName(name string, v any) error { return n.types.register(name, v) }

// BindAddress returns a bound to this node, so it can be used to send. It
// is for Addresses made by UnmarshalBinary or UnmarshalText; Addresses from
// NewMailbox, Lookup or inside received messages are bound already.
func (n *Node) BindAddress(a Address) Address {
	if !a.IsZero() {
		a.n = n
	}
	return a
}

// send routes msg to a. Each path ends with one nil check of the tracer
// (rather than a traced wrapper around send, which costs a call).
func (n *Node) send(a Address, msg any) error {
	if a.node != n.id {
		err := n.sendRemote(a, msg)
		if err == errDroppedStale {
			// as with any remote closed mailbox, the sender is not told
			err = nil
			if n.cfg.Tracer != nil {
				n.traceSend(a, msg, ErrMailboxClosed)
			}
			return nil
		}
		if n.cfg.Tracer != nil {
			n.traceSend(a, msg, err)
		}
		return err
	}
	if a.inc == n.inc {
		if m := n.table.lookup(a.id); m != nil {
			if m.push(msg) == nil {
				if n.cfg.Tracer != nil {
					n.traceSend(a, msg, nil)
				}
				return nil
			}
		}
	}
	err := &SendError{To: a, Err: ErrMailboxClosed}
	if n.cfg.Tracer != nil {
		n.traceSend(a, msg, err)
	}
	return err
}

// Serve runs the node until ctx is done: for a clustered node, the
// listener and one connection service per peer under a suture supervisor;
// for a local-only node it only waits. It implements suture.Service, so a
// Node can be added to an application's supervisor tree. It returns
// ctx.Err() on shutdown, or an error if the node cannot run at all (its
// listen address is unusable, for example). Serve may run once at a time.
func (n *Node) Serve(ctx context.Context) error {
	if n.cl == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return n.cl.serve(ctx)
}
