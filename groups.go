package reign

// Process groups, after Erlang's pg: named sets of mailboxes anywhere in
// the cluster, joined and left by their own node, synchronized between
// nodes like registry names, and a Broadcast that sends one message to
// every member with one encoding and batched writes.

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/reign-go/reign/internal/wire"
)

// GroupChanged is sent to a mailbox that monitors a process group
// (Node.MonitorGroup) when mailboxes join or leave it, as its node sees
// them: Joined and Left list the mailboxes that became members and those
// that stopped being members, ordered by node ID, then mailbox. A join or
// a leave (a mailbox closing among them) gives one message naming one
// mailbox, whichever node it is on (so does each membership a peer's
// sync brings when it connects); a peer lost gives one message per group
// it had members in, listing them all in Left. At least one list is
// non-empty.
//
// A GroupChanged is made only by the node itself: it is not sent to
// other nodes, and one arriving from another node is refused as a forgery
// (see ErrReservedType). The lists may be shared between the watchers of
// a group: do not modify them.
type GroupChanged struct {
	Group  string
	Joined []Address
	Left   []Address
}

// MaxGroupNameLen is the longest process group name, in bytes.
const MaxGroupNameLen = 1024

// Default values of the Config fields of process groups.
const (
	DefaultMaxPeerGroups       = 1 << 16
	DefaultMaxPeerGroupMembers = 1 << 18
)

// groupDefaults fills in and checks the Config fields of process groups.
func (cfg *Config) groupDefaults() error {
	switch {
	case cfg.MaxPeerGroups < 0:
		return &ConfigError{Field: "Config.MaxPeerGroups", Msg: "negative"}
	case cfg.MaxPeerGroupMembers < 0:
		return &ConfigError{Field: "Config.MaxPeerGroupMembers", Msg: "negative"}
	}
	if cfg.MaxPeerGroups == 0 {
		cfg.MaxPeerGroups = DefaultMaxPeerGroups
	}
	if cfg.MaxPeerGroupMembers == 0 {
		cfg.MaxPeerGroupMembers = DefaultMaxPeerGroupMembers
	}
	return nil
}

func checkGroupName(group string) error {
	if group == "" || len(group) > MaxGroupNameLen {
		return fmt.Errorf("%w: %d bytes (1 to %d allowed)", ErrBadGroupName, len(group), MaxGroupNameLen)
	}
	return nil
}

// groupTable is one node's view of the process groups: the memberships of
// its own mailboxes (with how many times each joined) and those its peers
// have announced, indexed by node so that a lost peer's are dropped
// without walking every group. Its zero value is ready: maps are made on
// first use.
type groupTable struct {
	mu       sync.RWMutex
	groups   map[string]*group              // name -> its members and watchers; absent when it has neither
	local    map[uint64]map[string]int      // local mailbox ID -> group -> how many times it joined
	watching map[uint64]map[string]struct{} // local watcher mailbox ID -> the groups it monitors
	byNode   map[NodeID]*peerGroups         // peer -> its memberships
	conns    map[NodeID]*conn               // the peers connected now, as groupHook hears of them

	// GroupChanged events are queued under mu as the changes are made,
	// and sent by flush after mu is released (under deliver, which keeps
	// them in order): so a watcher's Send (and the Tracer it calls) never
	// runs under the group table's lock.
	outbox  []groupNote
	deliver sync.Mutex
}

// groupNote is a GroupChanged waiting in the outbox for its watcher.
type groupNote struct {
	to Address
	ev GroupChanged
}

// group is one process group on this node.
type group struct {
	members  map[Address]struct{} // every member, local and remote, bound to this node
	watchers map[Address]struct{} // local mailboxes monitoring the group
	plan     *groupPlan           // for Broadcast and Members; nil when stale
}

// peerGroups is one peer's memberships, as it announced them.
type peerGroups struct {
	groups  map[string]map[Address]struct{} // group -> the peer's mailboxes in it
	members int                             // memberships in all
}

// groupPlan is a group's members arranged for sending: built when first
// needed after a change, then shared, read-only, by every Broadcast and
// Members until the next change.
type groupPlan struct {
	all    []Address   // every member, sorted: what Members returns (a copy of)
	local  []uint64    // the local members' mailbox IDs
	remote []remoteSet // the remote members, by node
}

// remoteSet is a group's members on one peer, with the connection that
// was the peer's when the plan was built (a peer's memberships are dropped
// when its connection ends, and that makes the plan stale).
type remoteSet struct {
	cn   *conn
	refs []wire.Ref
}

// compareMembers orders Addresses by node, incarnation, then mailbox ID:
// the order of Members and of GroupChanged's lists.
func compareMembers(a, b Address) int {
	if c := cmp.Compare(a.node, b.node); c != 0 {
		return c
	}
	if c := cmp.Compare(a.inc, b.inc); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// get returns the group name, made if need be. The caller holds g.mu.
func (g *groupTable) get(name string) *group {
	if g.groups == nil {
		g.groups = map[string]*group{}
	}
	grp := g.groups[name]
	if grp == nil {
		grp = &group{members: map[Address]struct{}{}}
		g.groups[name] = grp
	}
	return grp
}

// tidy forgets the group name if it has neither members nor watchers. The
// caller holds g.mu.
func (g *groupTable) tidy(name string, grp *group) {
	if len(grp.members) == 0 && len(grp.watchers) == 0 {
		delete(g.groups, name)
	}
}

// tell sends a GroupChanged to the group's watchers. The caller holds
// g.mu (for writing), so watchers see the changes in the order they were
// made, and never a change twice or out of step with MonitorGroup's
// snapshot.
// Called with g.mu held; the caller calls flush after releasing it.
func (g *groupTable) tell(grp *group, name string, joined, left []Address) {
	if len(grp.watchers) == 0 {
		return
	}
	ev := GroupChanged{Group: name, Joined: joined, Left: left}
	for w := range grp.watchers {
		g.outbox = append(g.outbox, groupNote{to: w, ev: ev})
	}
}

// flush sends the queued GroupChanged events, in the order the changes
// were made. Called without g.mu held.
func (g *groupTable) flush() {
	g.deliver.Lock()
	defer g.deliver.Unlock()
	g.mu.Lock()
	out := g.outbox
	g.outbox = nil
	g.mu.Unlock()
	for _, nt := range out {
		_ = nt.to.Send(nt.ev) // local: never blocks; a closed watcher is being released
	}
}

// JoinGroup makes the local mailbox at a a member of the process group
// group, on every node of the cluster: the other nodes learn of it at
// once if connected, or when they connect. As in Erlang's pg, a mailbox
// may join a group several times, and is a member until it has left as
// many times (LeaveGroup), or until it closes; only the first join and
// the last leave change the membership other nodes see. Groups need no
// creating: one exists while it has members.
//
// a must be an open mailbox of this node (only a node joins its own
// mailboxes): otherwise the error wraps ErrZeroAddress, ErrNotLocal or
// ErrMailboxClosed (also when a closes while JoinGroup runs: the
// membership ends with the mailbox, and the group's watchers see it join
// and leave). A group name is 1 to MaxGroupNameLen bytes
// (ErrBadGroupName).
func (n *Node) JoinGroup(group string, a Address) error {
	if err := checkGroupName(group); err != nil {
		return err
	}
	a, err := n.openMailbox(a)
	if err != nil {
		return err
	}
	g := &n.pg
	g.mu.Lock()
	if g.local == nil {
		g.local = map[uint64]map[string]int{}
	}
	joined := g.local[a.id]
	if joined == nil {
		joined = map[string]int{}
		g.local[a.id] = joined
	}
	joined[group]++
	if joined[group] == 1 {
		grp := g.get(group)
		grp.members[a] = struct{}{}
		grp.plan = nil
		g.tell(grp, group, []Address{a}, nil)
		g.announce(wire.TypeGroupJoin, group, a)
	}
	g.mu.Unlock()
	g.flush()
	if n.cl != nil {
		n.cl.wakeMembers() // a node in a group keeps every member connected (peer.wantsDial)
	}
	if n.table.lookup(a.id) == nil {
		// the mailbox closed while it joined: its release may have run
		// before the membership existed, and the membership goes with it
		g.release(a)
		return &SendError{To: a, Err: ErrMailboxClosed}
	}
	return nil
}

// LeaveGroup undoes one JoinGroup of the local mailbox at a: after as
// many leaves as joins it is no longer a member of group. It returns an
// error wrapping ErrNotJoined if a is not a member, ErrNotLocal if a is
// not a mailbox of this node.
func (n *Node) LeaveGroup(group string, a Address) error {
	a, err := n.ownAddress(a)
	if err != nil {
		return err
	}
	g := &n.pg
	defer g.flush() // after the unlock below
	g.mu.Lock()
	defer g.mu.Unlock()
	joined := g.local[a.id]
	if joined[group] == 0 {
		return fmt.Errorf("%w: %v is not a member of group %q", ErrNotJoined, a, group)
	}
	joined[group]--
	if joined[group] == 0 {
		g.leaveLocal(group, a, joined)
	}
	return nil
}

// leaveLocal ends the local mailbox a's membership of group and tells the
// watchers and the peers. The caller holds g.mu for writing.
func (g *groupTable) leaveLocal(group string, a Address, joined map[string]int) {
	delete(joined, group)
	if len(joined) == 0 {
		delete(g.local, a.id)
	}
	grp := g.groups[group]
	delete(grp.members, a)
	grp.plan = nil
	g.tell(grp, group, nil, []Address{a})
	g.tidy(group, grp)
	g.announce(wire.TypeGroupLeave, group, a)
}

// announce tells every connected peer that the local mailbox a joined
// (left) group. The caller holds g.mu for writing: a peer coming up gets
// either this frame or the membership in its sync (groupHook.peerUp
// holds g.mu too), and frames reach each peer in the order of the changes.
func (g *groupTable) announce(t wire.Type, group string, a Address) {
	for _, cn := range g.conns {
		_ = cn.appendFrame(t, func(b []byte) []byte {
			return wire.AppendGroup(b, wire.Group{Name: group, Member: ref(a)})
		})
	}
}

// release ends every membership and every monitor of the local mailbox a,
// which has closed: it leaves its groups however many times it joined.
func (g *groupTable) release(a Address) {
	g.mu.RLock()
	_, member := g.local[a.id]
	_, watcher := g.watching[a.id]
	g.mu.RUnlock()
	if !member && !watcher {
		return // most mailboxes (every Call's among them) are in no group
	}
	defer g.flush() // after the unlock below
	g.mu.Lock()
	defer g.mu.Unlock()
	if joined := g.local[a.id]; joined != nil {
		for _, group := range slices.Sorted(maps.Keys(joined)) {
			g.leaveLocal(group, a, joined)
		}
	}
	for group := range g.watching[a.id] {
		if grp := g.groups[group]; grp != nil {
			delete(grp.watchers, a)
			g.tidy(group, grp)
		}
	}
	delete(g.watching, a.id)
}

// Members returns every member of group on every node this node is
// connected to (and its own), each once however many times it joined,
// ordered by node ID, then mailbox. It is a local read, and eventually
// consistent as in Erlang's pg: a join on another node shows here once
// its frame has arrived. An unknown group has no members.
func (n *Node) Members(group string) []Address {
	p := n.pg.plan(group, n.id)
	if p == nil {
		return nil
	}
	return slices.Clone(p.all)
}

// LocalMembers returns the members of group that are mailboxes of this
// node, each once, ordered by mailbox.
func (n *Node) LocalMembers(group string) []Address {
	p := n.pg.plan(group, n.id)
	if p == nil || len(p.local) == 0 {
		return nil
	}
	out := make([]Address, 0, len(p.local))
	for _, a := range p.all {
		if a.node == n.id {
			out = append(out, a)
		}
	}
	return out
}

// Groups returns the names of the groups that have members, as this node
// sees them, sorted (Erlang's which_groups).
func (n *Node) Groups() []string {
	g := &n.pg
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]string, 0, len(g.groups))
	for name, grp := range g.groups {
		if len(grp.members) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// plan returns the group's current plan, building it if a change made it
// stale, or nil if the group has no members. self is this node's ID.
func (g *groupTable) plan(name string, self NodeID) *groupPlan {
	g.mu.RLock()
	grp := g.groups[name]
	var p *groupPlan
	if grp != nil {
		p = grp.plan
	}
	g.mu.RUnlock()
	if p != nil || grp == nil {
		return p
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if grp = g.groups[name]; grp == nil || len(grp.members) == 0 {
		return nil
	}
	if grp.plan == nil {
		grp.plan = g.build(grp, self)
	}
	return grp.plan
}

// build arranges grp's members for sending. The caller holds g.mu for
// writing.
func (g *groupTable) build(grp *group, self NodeID) *groupPlan {
	p := &groupPlan{all: slices.SortedFunc(maps.Keys(grp.members), compareMembers)}
	for i := 0; i < len(p.all); {
		node := p.all[i].node
		j := i
		for j < len(p.all) && p.all[j].node == node {
			j++
		}
		if node == self {
			for _, a := range p.all[i:j] {
				p.local = append(p.local, a.id)
			}
		} else if cn := g.conns[node]; cn != nil {
			rs := remoteSet{cn: cn, refs: make([]wire.Ref, 0, j-i)}
			for _, a := range p.all[i:j] {
				rs.refs = append(rs.refs, ref(a))
			}
			p.remote = append(p.remote, rs)
		}
		i = j
	}
	return p
}

// MonitorGroup subscribes the local mailbox watcher to the changes of
// group's membership, and returns its members now (as Members would):
// from then on, each change arrives as a GroupChanged, so the snapshot
// and the messages together always give the current members (Erlang's
// pg:monitor/1). Monitoring a group twice is monitoring it once. The
// subscription ends with DemonitorGroup, or when watcher closes.
//
// watcher must be an open mailbox of this node (GroupChanged is made by
// the node and does not cross to another): otherwise the error wraps
// ErrZeroAddress, ErrNotLocal or ErrMailboxClosed.
func (n *Node) MonitorGroup(group string, watcher Address) ([]Address, error) {
	if err := checkGroupName(group); err != nil {
		return nil, err
	}
	watcher, err := n.openMailbox(watcher)
	if err != nil {
		return nil, err
	}
	g := &n.pg
	g.mu.Lock()
	grp := g.get(group)
	if grp.watchers == nil {
		grp.watchers = map[Address]struct{}{}
	}
	grp.watchers[watcher] = struct{}{}
	if g.watching == nil {
		g.watching = map[uint64]map[string]struct{}{}
	}
	if g.watching[watcher.id] == nil {
		g.watching[watcher.id] = map[string]struct{}{}
	}
	g.watching[watcher.id][group] = struct{}{}
	var members []Address
	if len(grp.members) > 0 {
		if grp.plan == nil {
			grp.plan = g.build(grp, n.id)
		}
		members = slices.Clone(grp.plan.all)
	}
	g.mu.Unlock()
	if n.table.lookup(watcher.id) == nil {
		g.release(watcher) // closed meanwhile
	}
	return members, nil
}

// DemonitorGroup ends watcher's subscription to group's changes. A
// GroupChanged already queued in watcher's mailbox stays there.
func (n *Node) DemonitorGroup(group string, watcher Address) {
	if watcher.node != n.id || watcher.inc != n.inc || watcher.IsZero() {
		return
	}
	watcher.n = n
	g := &n.pg
	g.mu.Lock()
	defer g.mu.Unlock()
	if grp := g.groups[group]; grp != nil {
		delete(grp.watchers, watcher)
		g.tidy(group, grp)
	}
	if w := g.watching[watcher.id]; w != nil {
		delete(w, group)
		if len(w) == 0 {
			delete(g.watching, watcher.id)
		}
	}
}

// Broadcast sends msg to every member of group (as Members lists them),
// each once, and returns to how many: the members on this node it was
// delivered to, and the members on other nodes it was queued for. The
// message is encoded once, whatever the number of members; frames for
// other nodes are queued on each connection and its writer is woken, never
// written by the caller, so a stream of Broadcasts to members on many
// nodes goes out in batches, one write for many messages per connection.
//
// As with Send, delivery to a remote member is not confirmed (it may have
// closed meanwhile), messages from one sender to one member arrive in
// order, and a Broadcast waits while a peer's outgoing buffer is over its
// limit. A member whose mailbox has just closed, or whose node's
// connection has just been lost, is skipped and not counted.
//
// The error is non-nil when msg cannot go to another node at all (its type
// is not registered, is reserved, or does not encode): then it was sent to
// nobody, if there are remote members. It is also non-nil, wrapping
// ErrFrameTooLarge and naming the nodes, when msg is larger than the frame
// limit of some members' nodes (the smaller of this node's MaxFrameSize and
// the one the peer announced): those members are skipped, and counted in
// Stats.BroadcastSkipped, and msg still goes to every other member (the
// returned count says to how many). A peer that announces a small frame
// limit thus only misses the messages it cannot take; it cannot make a
// Broadcast fail for the others.
func (n *Node) Broadcast(group string, msg any) (int, error) {
	p := n.pg.plan(group, n.id)
	if p == nil {
		return 0, nil
	}
	var body []byte
	var info *typeInfo
	if len(p.remote) > 0 {
		sb := scratchPool.Get().(*scratch)
		defer scratchPool.Put(sb)
		var err error
		body, info, err = n.encodeMessage(sb.b[:0], msg)
		sb.b = body[:0]
		if err != nil {
			return 0, err
		}
	}
	sent := 0
	for _, id := range p.local {
		m := n.table.lookup(id)
		err := ErrMailboxClosed
		if m != nil {
			err = m.push(msg)
		}
		if err == nil {
			sent++
		}
		if n.cfg.Tracer != nil {
			n.traceSend(Address{n: n, node: n.id, inc: n.inc, id: id}, msg, err)
		}
	}
	var errs []error
	var tooLarge []NodeID
	for _, rs := range p.remote {
		if len(body)+64 > rs.cn.maxFrame {
			// checked here, and queueMessages never sees it: a skipped
			// node is counted and named, and the others are still sent to
			tooLarge = append(tooLarge, rs.cn.p.id)
			n.cl.stats.broadcastSkipped.Add(uint64(len(rs.refs)))
			if n.cfg.Tracer != nil {
				err := fmt.Errorf("%w: over node %d's %d-byte frame limit", ErrFrameTooLarge, rs.cn.p.id, rs.cn.maxFrame)
				for _, r := range rs.refs {
					n.traceSend(Address{n: n, node: rs.cn.p.id, inc: r.Inc, id: r.ID}, msg, err)
				}
			}
			continue
		}
		k, err := rs.cn.queueMessages(rs.refs, info, body)
		sent += k
		if err != nil && !errors.Is(err, ErrNodeUnreachable) {
			errs = append(errs, err)
		}
		if n.cfg.Tracer != nil {
			for _, r := range rs.refs {
				n.traceSend(Address{n: n, node: rs.cn.p.id, inc: r.Inc, id: r.ID}, msg, err)
			}
		}
	}
	if len(tooLarge) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s encodes to %d bytes, over the frame limit of node(s) %v: their members were skipped",
			ErrFrameTooLarge, info.name, len(body), tooLarge))
	}
	return sent, errors.Join(errs...)
}
