// Package reign gives Go programs Erlang-style message passing, within one
// process and across a cluster of processes.
//
// # What
//
// A Mailbox and its Address are the Go equivalent of an Erlang process's
// mailbox and PID. Any goroutine sends to an Address with Address.Send; the
// goroutine that owns the Mailbox takes messages with Mailbox.Receive, or
// with Mailbox.ReceiveMatch, Erlang's selective receive, which takes the
// first message a function accepts and leaves the others queued in order.
// Addresses are small comparable values that can be sent anywhere in the
// cluster, even inside other messages, and stay usable there.
//
// Address.OnCloseNotify is a monitor: the watcher receives a MailboxClosed
// message when the mailbox closes, or when its node is lost (reason
// NoConnection) or shuts down (NodeShutdown); Mailbox.CloseWithError closes
// a mailbox with a cause (an Erlang exit reason), which its watchers get
// in MailboxClosed.Err with reason Abnormal (across nodes, as a
// *RemoteError with its text). Call is gen_server:call: a request and its
// reply (an error reply is Call's error), failing fast, with the cause,
// when the server dies, and at once with a *CallError naming the type
// and the side when the request or the reply cannot travel (a type not
// registered on a node, a body the codec refuses). Node.Register and Node.Lookup are
// a cluster-wide registry of names, the usual way to get a first Address
// on another node (Erlang's global); Node.WaitName waits for a name to be
// claimed, instead of polling Lookup. Node.JoinGroup, Node.Members and
// Node.Broadcast are process groups (Erlang's pg), synchronized between
// nodes like names. Node.MonitorNodes is Erlang's
// net_kernel:monitor_nodes: a watcher receives NodeUp and NodeDown (with
// the CloseReason: goodbye for a clean shutdown) as other nodes come and
// go, and Node.Peers lists those up. Package gen, in this module, builds
// OTP's gen_server behaviour on these.
//
// # Why
//
// Erlang's model, mailboxes that are never shared, messages instead of
// locks, and watching instead of hoping, ports well to Go for programs that
// span several processes, and it is how Erlang programmers think. reign
// re-creates the ideas of github.com/thejerf/reign with what its users asked
// for: addresses that survive a node restart safely (each carries its
// node's incarnation), links that fire when a node is lost, bounded
// buffers, strict mutual TLS, and measured speed.
//
// # How
//
// A local program needs only a Node:
//
//	node, _ := reign.NewNode(reign.Config{})
//	addr, mbox := node.NewMailbox()
//	addr.Send("hello")
//	msg, _ := mbox.Receive(ctx)
//
// A cluster is described by a ClusterSpec, a JSON file (the one
// thejerf/reign uses loads unchanged) listing each node's ID and address and
// where the certificates are. The reign_init command mints a CA, node
// certificates and a spec for a local cluster. Each process makes its Node
// with Config{NodeID, Cluster}, registers the message types it exchanges
// (Node.RegisterType, on every node that sends or receives them), and runs
// Node.Serve, which is a suture.Service and so fits in a supervisor tree:
//
//	spec, _ := reign.LoadClusterSpec("reign_cluster.json")
//	node, _ := reign.NewNode(reign.Config{NodeID: 1, Cluster: spec})
//	node.RegisterType(Greeting{})
//	go node.Serve(ctx)
//	// ... node.Register("greeter", addr) on one node,
//	// node.Lookup("greeter") on the others.
//
// Between two nodes there is one mutual-TLS 1.3 connection, dialed by the
// node with the lower ID, multiplexing every message, link and registry
// update between them, with heartbeats that declare a silent peer lost
// after Config.HeartbeatTimeout. Messages are encoded by a Codec: msgpack by
// default, JSON as an alternative; message types are named on the wire by
// the names they were registered under, never resolved by reflection on
// names read from the network.
//
// The spec's nodes are a fixed full mesh. With Config.Membership, nodes
// join and leave a running cluster instead: a node whose certificate the
// cluster CA signed joins knowing one member's address, and failures are
// detected by gossip (hashicorp/memberlist, riding the same connections:
// no second port). See MembershipConfig.
//
// # Guarantees
//
// Messages from one goroutine to one mailbox arrive in the order sent,
// locally and across nodes. Nothing is delivered twice. Across a lost
// connection messages in flight may be lost, as in Erlang, but never
// silently: every watcher of a mailbox on that node receives MailboxClosed
// with reason NoConnection (and then every node-event watcher a NodeDown).
// A node-event watcher sees each node's NodeUp and NodeDown alternate.
// MailboxClosed, MultipleClaim, NodeUp and NodeDown are made only by the
// node: one arriving from another node as a message is refused as a
// forgery. A Send to a local mailbox never blocks; a Send
// to a remote one waits while that peer's outgoing buffer is over
// Config.SendBufferLimit (or while it writes to a quiet connection itself),
// and never past the loss of the connection.
// Malformed input from a peer never panics a node: the connection is closed
// and logged, or the single message is dropped and counted (Node.Stats).
// A peer speaks only for itself: a reply is accepted only from the node a
// request went to, for a random reference, and a node answers a request
// only to the node that sent it, never to a third one.
//
// # Concurrency
//
// Node, Mailbox and Address are safe for concurrent use. A Mailbox has no
// goroutine of its own: receivers wait on theirs. A node runs O(peers)
// goroutines, a reader and a writer per connection plus its supervisor,
// however many mailboxes it has. Two Nodes in one process share no state.
// Local messages are passed by reference, not copied: do not modify a
// message after sending it.
//
// # Wire compatibility
//
// The protocol is documented frame by frame in PROTOCOL.md. The handshake
// carries a protocol version range, so nodes of different versions of this
// package negotiate; frame type numbers are only ever appended. Every node
// of a cluster must use the same codec (the handshake checks its name). The
// wire protocol is not that of thejerf/reign: clusters cannot mix the two.
package reign
