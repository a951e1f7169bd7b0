package reign

import (
	"sync/atomic"
	"time"
)

// counters are the node's statistics; see Stats.
type counters struct {
	droppedClosed      atomic.Uint64
	droppedUnknownType atomic.Uint64
	droppedUndecodable atomic.Uint64
	droppedStale       atomic.Uint64
	connects           atomic.Uint64
	refused            atomic.Uint64
	closes             closeCounts   // every peer's, and those of unknown peers
	limits             limitCounts   // connections closed for crossing a per-peer bound
	linksForwarded     atomic.Uint64 // OnCloseNotify forwarded to the watcher's node
	linksRefused       atomic.Uint64 // ... that could not be

	// calls
	droppedUnmatchedReply atomic.Uint64
	droppedUnlinkedClosed atomic.Uint64

	// groups
	broadcastSkipped atomic.Uint64
}

// closeCounts counts connection ends by reason.
type closeCounts [numCloseReasons]atomic.Uint64

// snapshot returns the non-zero counts, or nil if there are none.
func (cc *closeCounts) snapshot() map[CloseReason]uint64 {
	var m map[CloseReason]uint64
	for r := range cc {
		if v := cc[r].Load(); v != 0 {
			if m == nil {
				m = map[CloseReason]uint64{}
			}
			m[CloseReason(r)] = v
		}
	}
	return m
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
	// failed handshakes, unknown nodes, duplicate node IDs.
	Refused uint64
	// PeersUp is the number of peers connected now.
	PeersUp int
	// Closes counts, by reason, the connections that ended and the
	// connection attempts (incoming or outgoing) that were refused or
	// failed their handshake, over all peers. Reasons never seen are
	// absent.
	Closes map[CloseReason]uint64
	// Peers has an entry for each node of the cluster spec other than
	// this one (with membership: for each node in the peer table, the
	// members and the nodes connected).
	Peers map[NodeID]PeerStats
	// DroppedReserved counts messages from peers refused because their
	// type is reserved to the node (MailboxClosed, MultipleClaim): a peer
	// tried to forge a notification. Counted on local-only nodes too.
	DroppedReserved uint64
	// CertExpiryWarnings counts the warnings logged because this node's
	// certificate or a trusted CA certificate expires within 30 days (or
	// has expired); checked when Serve starts and daily.
	CertExpiryWarnings uint64
	// CertNotAfter is when the first of this node's certificate and its
	// trusted CA certificates expires; zero before Serve's first check.
	CertNotAfter time.Time
	// LimitsExceeded counts, by kind, the connections closed because
	// the peer crossed a per-peer bound of Config (each also counts in
	// Closes under CloseLimitExceeded). Kinds never crossed are absent.
	LimitsExceeded map[Limit]uint64
	// LinksForwarded counts the OnCloseNotify calls whose watcher is on
	// a third node, forwarded to the watcher's node (which links
	// itself); LinksRefused counts those that could not be, because the
	// watcher's node was unreachable: its watcher cannot be told, and a
	// line is logged (at most one a second).
	LinksForwarded uint64
	LinksRefused   uint64

	// DroppedUnmatchedReply counts Reply and CallFailed frames dropped
	// because they answer no Request this node sent to that peer and
	// still awaits: forged (a wrong or guessed reference, or one sent to
	// another node), or late (the Call had stopped waiting).
	DroppedUnmatchedReply uint64

	// DroppedUnlinkedClosed counts Closed frames dropped because no mailbox
	// of this node watches that mailbox of the peer (any more): a link
	// removed while its Closed was on the way, or one never made.
	DroppedUnlinkedClosed uint64

	// BroadcastSkipped counts the members a Broadcast skipped because
	// the message was larger than their node's frame limit (the smaller
	// of this node's MaxFrameSize and the one that node announced).
	BroadcastSkipped uint64

	// Membership (membership.go).

	// Members is the number of nodes membership lists alive, this one
	// included; 0 without membership or before it has started.
	Members int
}

// PeerStats are the counters of one peer; see Stats.
type PeerStats struct {
	// Up is true while a connection to the peer is established.
	Up bool
	// Connects counts connections to the peer established.
	Connects uint64
	// Closes counts this peer's connections ended, and attempts refused
	// or failed, by reason. Reasons never seen are absent.
	Closes map[CloseReason]uint64
	// Traffic with the peer, over all its connections so far.
	Traffic
}

// Traffic counts what went over a peer's connections: frame bytes
// (headers included) and frames each way, the messages among them
// (Message, Request and Reply frames delivered in, queued out), and the
// last round-trip time a Ping measured (zero before the first; a Ping
// goes every HeartbeatInterval).
type Traffic struct {
	BytesIn     uint64        `json:"bytes_in"`
	BytesOut    uint64        `json:"bytes_out"`
	FramesIn    uint64        `json:"frames_in"`
	FramesOut   uint64        `json:"frames_out"`
	MessagesIn  uint64        `json:"messages_in"`
	MessagesOut uint64        `json:"messages_out"`
	RTT         time.Duration `json:"rtt_ns"`
}

// snapshot reads the counters.
func (t *peerTraffic) snapshot() Traffic {
	return Traffic{
		BytesIn: t.bytesIn.Load(), BytesOut: t.bytesOut.Load(),
		FramesIn: t.framesIn.Load(), FramesOut: t.framesOut.Load(),
		MessagesIn: t.msgsIn.Load(), MessagesOut: t.msgsOut.Load(),
		RTT: time.Duration(t.rtt.Load()),
	}
}

// Stats returns the node's counters. A local-only node's are all zero.
func (n *Node) Stats() Stats {
	if n.cl == nil {
		return Stats{DroppedReserved: n.droppedReserved()}
	}
	s := &n.cl.stats
	st := Stats{
		DroppedClosed:      s.droppedClosed.Load(),
		DroppedUnknownType: s.droppedUnknownType.Load(),
		DroppedUndecodable: s.droppedUndecodable.Load(),
		DroppedStale:       s.droppedStale.Load(),
		Connects:           s.connects.Load(),
		Refused:            s.refused.Load(),
		Closes:             s.closes.snapshot(),
		Peers:              make(map[NodeID]PeerStats),
		DroppedReserved:    n.droppedReserved(),
		LimitsExceeded:     s.limits.snapshot(),
		LinksForwarded:     s.linksForwarded.Load(),
		LinksRefused:       s.linksRefused.Load(),
	}
	st.DroppedUnmatchedReply = s.droppedUnmatchedReply.Load()
	st.DroppedUnlinkedClosed = s.droppedUnlinkedClosed.Load()
	st.BroadcastSkipped = s.broadcastSkipped.Load()
	st.CertExpiryWarnings, st.CertNotAfter = n.cl.expiry.stats()
	if m := n.cl.member; m != nil {
		st.Members = m.numMembers()
	}
	for _, p := range n.cl.peerList() {
		id := p.id
		up := p.live.Load() != nil
		if up {
			st.PeersUp++
		}
		st.Peers[id] = PeerStats{Up: up, Connects: p.connects.Load(), Closes: p.closes.snapshot(), Traffic: p.traffic.snapshot()}
	}
	return st
}

// countClose counts one connection end (or refusal) for reason r, for p
// if known.
func (c *cluster) countClose(p *peer, r CloseReason) {
	if r >= numCloseReasons {
		r = CloseUnknown
	}
	c.stats.closes[r].Add(1)
	if p != nil {
		p.closes[r].Add(1)
	}
}
