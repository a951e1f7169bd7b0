package reign

import (
	"log/slog"
	"net"
	"time"
)

// NodeID identifies a node in a cluster. IDs are chosen by the cluster spec;
// 0 is the ID of a local-only node and is never a member of a cluster.
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
	// NoConnection. Zero means 3s. It must exceed HeartbeatInterval.
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
}
