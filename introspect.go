package reign

import (
	"cmp"
	"slices"
	"time"
)

// This file is a node's introspection: Snapshot lists what a node holds
// (mailboxes and their queues, names, peers, links, counters) and Peek
// looks into one queue. Both are read-only and cheap enough to call in
// production: they take each mailbox's lock only long enough to read two
// numbers, never the whole table's, and allocate only their output.

// Snapshot is a picture of a node at one moment, for people and monitoring
// (the reignhttp package serves it as JSON and as Prometheus metrics). It
// is not atomic: mailboxes, names and counters are read one after the
// other while the node runs, so they may disagree by what happened in
// between. It encodes to JSON readably (Addresses as <node.slot.gen.inc>).
type Snapshot struct {
	Node        NodeID        `json:"node"`
	Incarnation uint32        `json:"incarnation"` // this run of the node (see Address)
	Started     time.Time     `json:"started"`     // when NewNode made it
	Uptime      time.Duration `json:"uptime_ns"`   // since Started

	// MailboxCount is the number of open mailboxes; Queued the messages
	// waiting in them all; MaxQueue the longest queue. They count every
	// mailbox, even when Mailboxes lists only some.
	MailboxCount int `json:"mailbox_count"`
	Queued       int `json:"queued"`
	MaxQueue     int `json:"max_queue"`

	// Mailboxes lists the open mailboxes: all of them, in the order of the
	// node's mailbox table, or, with SnapshotOptions.MaxMailboxes, the
	// ones with the longest queues, longest first.
	Mailboxes []MailboxInfo `json:"mailboxes"`

	// Names lists every registered name this node knows of, cluster-wide,
	// sorted by name.
	Names []NameInfo `json:"names"`

	// Groups lists every process group this node knows of, cluster-wide,
	// sorted by name.
	Groups []GroupInfo `json:"groups"`

	// Peers lists the other nodes of the cluster, by node ID; empty for a
	// local-only node.
	Peers []PeerInfo `json:"peers"`

	// Stats are the node's counters (Node.Stats).
	Stats Stats `json:"stats"`
}

// GroupInfo describes one process group in a Snapshot.
type GroupInfo struct {
	Name     string `json:"name"`
	Members  int    `json:"members"`  // members on every node, each mailbox once
	Local    int    `json:"local"`    // members on this node
	Watchers int    `json:"watchers"` // local mailboxes monitoring it (MonitorGroup)
}

// groupInfos lists the process groups, sorted by name, under the group
// table's read lock.
func (n *Node) groupInfos() []GroupInfo {
	g := &n.pg
	g.mu.RLock()
	out := make([]GroupInfo, 0, len(g.groups))
	for name, grp := range g.groups {
		if len(grp.members) == 0 && len(grp.watchers) == 0 {
			continue
		}
		gi := GroupInfo{Name: name, Members: len(grp.members), Watchers: len(grp.watchers)}
		for a := range grp.members {
			if a.node == n.id {
				gi.Local++
			}
		}
		out = append(out, gi)
	}
	g.mu.RUnlock()
	slices.SortFunc(out, func(a, b GroupInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// MailboxInfo describes one open mailbox in a Snapshot.
type MailboxInfo struct {
	Address Address `json:"address"`
	// Queued is the number of messages waiting in it.
	Queued int `json:"queued"`
	// Watchers is the number of mailboxes, here or on other nodes, to be
	// told when it closes (OnCloseNotify).
	Watchers int `json:"watchers"`
	// Names are the registry names it holds, if any.
	Names []string `json:"names,omitempty"`
}

// NameInfo describes one registered name in a Snapshot.
type NameInfo struct {
	Name string `json:"name"`
	// Claims are the mailboxes that hold the name, at most one per node,
	// by node ID; more than one is a conflict (see MultipleClaim).
	Claims []Address `json:"claims"`
	// Local reports that one of the claims is a mailbox of this node;
	// Queued is then that mailbox's queue length.
	Local  bool `json:"local"`
	Queued int  `json:"queued"`
}

// PeerInfo describes another node of the cluster in a Snapshot.
type PeerInfo struct {
	Node    NodeID `json:"node"`
	Address string `json:"address"` // its address in the cluster spec
	Up      bool   `json:"up"`      // a connection to it is established now
	// Connects counts the connections to it established so far.
	Connects uint64 `json:"connects"`
	// Closes counts its connections ended (and attempts refused) by
	// reason; reasons never seen are absent.
	Closes map[CloseReason]uint64 `json:"closes,omitempty"`
	// Traffic: bytes, frames and messages each way, round-trip time.
	Traffic
}

// SnapshotOptions adjusts SnapshotWith.
type SnapshotOptions struct {
	// MaxMailboxes bounds Snapshot.Mailboxes to the mailboxes with the
	// longest queues, longest first: a node with a million mailboxes then
	// costs a walk of its table but allocates only the few listed. Zero
	// lists every mailbox; a negative value lists none (the totals are
	// still computed).
	MaxMailboxes int
}

// Snapshot returns a picture of the node: its mailboxes (every one) with
// their queue lengths, watchers and names, the registry, the peers and the
// counters. See SnapshotWith to list only the longest queues. It is safe
// to call at any time from any goroutine; it blocks nothing for longer
// than one mailbox's lock is held to read two numbers, or the registry's
// read lock while it copies the names.
func (n *Node) Snapshot() Snapshot { return n.SnapshotWith(SnapshotOptions{}) }

// SnapshotWith is Snapshot with options.
func (n *Node) SnapshotWith(opts SnapshotOptions) Snapshot {
	now := time.Now()
	s := Snapshot{
		Node:        n.id,
		Incarnation: n.inc,
		Started:     n.born,
		Uptime:      now.Sub(n.born),
	}
	s.Mailboxes = n.mailboxInfos(&s, opts.MaxMailboxes)
	n.nameInfos(&s)
	s.Groups = n.groupInfos()
	s.Peers = n.peerSnapshots()
	slices.SortFunc(s.Peers, func(a, b PeerInfo) int { return cmp.Compare(a.Node, b.Node) })
	s.Stats = n.Stats()
	return s
}

// mailboxInfos walks the mailbox table, filling s's totals, and returns the
// mailboxes to list: all (limit 0), the limit longest queues, or none
// (limit < 0).
func (n *Node) mailboxInfos(s *Snapshot, limit int) []MailboxInfo {
	var out []MailboxInfo
	switch {
	case limit == 0:
		out = make([]MailboxInfo, 0, n.table.count()+8)
	case limit > 0:
		out = make([]MailboxInfo, 0, min(limit, n.table.count()+8))
	}
	n.table.each(func(m *Mailbox) {
		queued, watchers, ok := m.stat()
		if !ok {
			return // closed since the walk loaded its slot
		}
		s.MailboxCount++
		s.Queued += queued
		s.MaxQueue = max(s.MaxQueue, queued)
		switch {
		case limit < 0:
		case limit == 0 || len(out) < limit:
			out = append(out, MailboxInfo{Address: m.Address(), Queued: queued, Watchers: watchers})
			if limit > 0 && len(out) == limit {
				heapify(out)
			}
		case queued > out[0].Queued:
			out[0] = MailboxInfo{Address: m.Address(), Queued: queued, Watchers: watchers}
			siftDown(out, 0)
		}
	})
	if limit > 0 {
		slices.SortStableFunc(out, func(a, b MailboxInfo) int { return cmp.Compare(b.Queued, a.Queued) })
	}
	if len(out) > 0 {
		n.reg.withOwned(func(owned map[uint64][]string) {
			if len(owned) == 0 {
				return
			}
			for i := range out {
				if names := owned[out[i].Address.id]; len(names) > 0 {
					out[i].Names = slices.Clone(names)
				}
			}
		})
	}
	return out
}

// heapify and siftDown keep the listed mailboxes a min-heap by queue
// length while the walk looks for the longest queues.
func heapify(h []MailboxInfo) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

func siftDown(h []MailboxInfo, i int) {
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].Queued < h[least].Queued {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].Queued < h[least].Queued {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// nameInfos copies the registry into s.Names (under the registry's read
// lock), then reads the queue length of each local claimant (without it).
func (n *Node) nameInfos(s *Snapshot) {
	s.Names = make([]NameInfo, 0, n.reg.size()+8)
	n.reg.each(func(name string, claims []Address) {
		ni := NameInfo{Name: name, Claims: make([]Address, len(claims))}
		for i, a := range claims {
			ni.Claims[i] = a.withNode(n)
			ni.Local = ni.Local || a.node == n.id
		}
		s.Names = append(s.Names, ni)
	})
	slices.SortFunc(s.Names, func(a, b NameInfo) int { return cmp.Compare(a.Name, b.Name) })
	for i := range s.Names {
		ni := &s.Names[i]
		if !ni.Local {
			continue
		}
		for _, a := range ni.Claims {
			if a.node == n.id && a.inc == n.inc {
				if m := n.table.lookup(a.id); m != nil {
					ni.Queued, _, _ = m.stat()
				}
			}
		}
	}
}

// peerSnapshots lists the cluster's peers, in any order. It is the one
// place that reads the connection layer's peer type.
func (n *Node) peerSnapshots() []PeerInfo {
	if n.cl == nil {
		return []PeerInfo{}
	}
	peers := n.cl.peerList()
	out := make([]PeerInfo, 0, len(peers))
	for _, p := range peers {
		id := p.id
		out = append(out, PeerInfo{Node: id, Address: p.addr, Up: p.live.Load() != nil,
			Connects: p.connects.Load(), Closes: p.closes.snapshot(), Traffic: p.traffic.snapshot()})
	}
	return out
}

// Peek returns the type names (as TypeName gives them) of up to max of
// the oldest messages queued in the local mailbox a, oldest first, without
// taking them: what a stuck receiver is failing to match, for example.
// ok is false if a is not an open mailbox of this node.
func (n *Node) Peek(a Address, max int) (types []string, ok bool) {
	if a.node != n.id || a.inc != n.inc || a.IsZero() {
		return nil, false
	}
	m := n.table.lookup(a.id)
	if m == nil {
		return nil, false
	}
	types = []string{}
	ok = m.peek(max, func(v any) { types = append(types, TypeName(v)) })
	if !ok {
		return nil, false
	}
	return types, true
}
