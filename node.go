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
	reg   registry
	cl    *cluster // nil for a local-only node
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
	n := &Node{
		id:    cfg.NodeID,
		inc:   newIncarnation(),
		cfg:   cfg,
		codec: cfg.Codec,
	}
	n.log = cfg.Logger.With("node", int(cfg.NodeID))
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
// numbers, []byte, bool, Address, MailboxClosed and MultipleClaim are
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

// send routes msg to a.
func (n *Node) send(a Address, msg any) error {
	if a.node != n.id {
		return n.sendRemote(a, msg)
	}
	if a.inc == n.inc {
		if m := n.table.lookup(a.id); m != nil {
			if m.push(msg) == nil {
				return nil
			}
		}
	}
	return &SendError{To: a, Err: ErrMailboxClosed}
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
