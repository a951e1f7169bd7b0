// Package gossip carries hashicorp/memberlist over reign's node-pair
// connections.
//
// memberlist (SWIM gossip with Lifeguard) normally talks over its own UDP and
// TCP ports. Here every packet and every stream it makes rides the pair's one
// mutual-TLS reign connection instead, as two frame types whose payloads this
// package encodes (PROTOCOL.md ("Membership")): a Packet frame carries one
// memberlist packet; a Stream frame opens, feeds, acknowledges or closes one
// multiplexed memberlist stream. So there is no second port, no
// unauthenticated input and no gossip key: the peer's identity was checked
// once, by the TLS handshake, as for data.
//
// The root package owns the connections. It implements [Conn] over each one
// and [Dialer] to find or open the connection to a member, and calls
// [Transport.HandlePacket], [Transport.HandleStream] and [Transport.ConnLost]
// from its frame handlers. [Transport] is a memberlist.NodeAwareTransport to
// put in memberlist.Config.Transport.
//
// Addressing: a member's memberlist name is "reign-node-<id>" ([NodeName]),
// the name its certificate carries, and its memberlist address is its reign
// listen address ("ip:port"). memberlist passes both to the transport when
// it knows them, so the Dialer checks that the connection it uses belongs
// to the named node; a join knows only an address, and the connection's
// certificate tells which node answered.
//
// Trust: a peer is authenticated, not trusted. A packet's sender is the
// connection's node, never a field of the packet; a packet, a stream's
// buffered data and the number of streams a peer may have open are bounded
// (see [Config]); a frame that breaks the protocol returns an error wrapping
// [ErrProtocol], on which the connection is closed.
//
// Concurrency: a Transport is safe for concurrent use. It starts no
// goroutine of its own: each stream's deadlines and idle timeout are
// timers, and data moves on the callers' goroutines.
package gossip
