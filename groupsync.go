package reign

import (
	"fmt"
	"maps"
	"slices"

	"github.com/reign-go/reign/internal/wire"
)

// groupHook is process groups' peerHook.
type groupHook struct{}

// peerUp sends the peer a GroupJoin for every membership of this node's
// mailboxes, then GroupSync, and adds the connection to those that hear of
// later joins and leaves. (The peer's memberships from an earlier
// connection were dropped when it ended.)
func (groupHook) peerUp(p *peer, cn *conn) {
	g := &p.c.n.pg
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		g.conns = map[NodeID]*conn{}
	}
	g.conns[p.id] = cn
	self := p.c.n
	for id, joined := range g.local {
		r := wire.Ref{Inc: self.inc, ID: id}
		for group := range joined {
			_ = cn.appendSyncFrame(wire.TypeGroupJoin, func(b []byte) []byte {
				return wire.AppendGroup(b, wire.Group{Name: group, Member: r})
			})
		}
	}
	_ = cn.appendSyncFrame(wire.TypeGroupSync, func(b []byte) []byte { return b })
}

// peerDown drops every membership of the peer's mailboxes, telling the
// groups' watchers.
func (groupHook) peerDown(p *peer, cn *conn, _ CloseReason) {
	g := &p.c.n.pg
	defer g.flush() // after the unlock below
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns[p.id] == cn {
		delete(g.conns, p.id)
	}
	pg := g.byNode[p.id]
	delete(g.byNode, p.id)
	if pg == nil {
		return
	}
	for _, group := range slices.Sorted(maps.Keys(pg.groups)) {
		grp := g.groups[group]
		left := make([]Address, 0, len(pg.groups[group]))
		for a := range pg.groups[group] {
			delete(grp.members, a)
			left = append(left, a)
		}
		slices.SortFunc(left, compareMembers)
		grp.plan = nil
		g.tell(grp, group, nil, left)
		g.tidy(group, grp)
	}
}

// handleGroupJoin records that one of the peer's own mailboxes joined a
// group. A peer that would cross Config.MaxPeerGroups or
// MaxPeerGroupMembers is disconnected (CloseLimitExceeded).
func handleGroupJoin(c *conn, payload []byte) error {
	m, err := wire.ParseGroup(payload)
	if err != nil {
		return err
	}
	if checkGroupName(m.Name) != nil {
		return fmt.Errorf("%w: bad group name", wire.ErrMalformed)
	}
	if err := c.checkPeerRef(m.Member); err != nil {
		return err
	}
	n := c.p.c.n
	a := c.peerAddress(m.Member)
	g := &n.pg
	defer g.flush() // after the unlock below
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byNode == nil {
		g.byNode = map[NodeID]*peerGroups{}
	}
	pg := g.byNode[a.node]
	if pg == nil {
		pg = &peerGroups{groups: map[string]map[Address]struct{}{}}
		g.byNode[a.node] = pg
	}
	set := pg.groups[m.Name]
	if _, ok := set[a]; ok {
		return nil // joined already: joins are announced once, but a sync may repeat one
	}
	switch {
	case set == nil && len(pg.groups) >= n.cfg.MaxPeerGroups:
		return c.groupLimit(LimitGroups, "MaxPeerGroups", n.cfg.MaxPeerGroups)
	case pg.members >= n.cfg.MaxPeerGroupMembers:
		return c.groupLimit(LimitGroupMembers, "MaxPeerGroupMembers", n.cfg.MaxPeerGroupMembers)
	}
	if set == nil {
		set = map[Address]struct{}{}
		pg.groups[m.Name] = set
	}
	set[a] = struct{}{}
	pg.members++
	grp := g.get(m.Name)
	grp.members[a] = struct{}{}
	grp.plan = nil
	g.tell(grp, m.Name, []Address{a}, nil)
	return nil
}

// groupLimit is conn.exceeded for the group bounds: it counts the
// crossing of l and returns the error that closes c, which wraps both
// ErrGroupLimit and the *LimitError.
func (c *conn) groupLimit(l Limit, field string, max int) error {
	c.p.c.stats.limits[l].Add(1)
	return closeWith(CloseLimitExceeded, fmt.Errorf("%w: %w", ErrGroupLimit, &LimitError{Limit: l, Field: field, Max: max}))
}

// handleGroupLeave records that one of the peer's own mailboxes left a
// group (or closed). Leaving a group it is not in is not an error: the
// leave may cross a resync.
func handleGroupLeave(c *conn, payload []byte) error {
	m, err := wire.ParseGroup(payload)
	if err != nil {
		return err
	}
	if err := c.checkPeerRef(m.Member); err != nil {
		return err
	}
	a := c.peerAddress(m.Member)
	g := &c.p.c.n.pg
	defer g.flush() // after the unlock below
	g.mu.Lock()
	defer g.mu.Unlock()
	pg := g.byNode[a.node]
	if pg == nil {
		return nil
	}
	set := pg.groups[m.Name]
	if _, ok := set[a]; !ok {
		return nil
	}
	delete(set, a)
	pg.members--
	if len(set) == 0 {
		delete(pg.groups, m.Name)
	}
	grp := g.groups[m.Name]
	delete(grp.members, a)
	grp.plan = nil
	g.tell(grp, m.Name, nil, []Address{a})
	g.tidy(m.Name, grp)
	return nil
}

// handleGroupSync: the peer has sent every membership it held when the
// connection came up.
func handleGroupSync(c *conn, payload []byte) error {
	if err := wire.ParseEmpty(payload); err != nil {
		return err
	}
	c.p.log.Debug("groups synchronized")
	return nil
}
