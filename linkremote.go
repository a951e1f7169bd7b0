package reign

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// The remote half of links: this node's watches on peers' mailboxes, and
// peers' watches on this node's mailboxes, with the frames that carry
// them (Link, Unlink, Closed) and what a lost connection resolves.

// peerLinks is the link state of one peer, guarded by the peer's mu.
type peerLinks struct {
	out     map[Address]map[Address]struct{} // peer mailbox -> local watchers
	watched map[uint64]int                   // local mailbox -> how many of the peer's mailboxes watch it
	nwatch  int                              // the sum of watched: bounded by MaxPeerLinks

	// via holds the links the peer asked this node to install for this
	// node's own mailboxes (LinkFor), bounded by MaxPeerLinks. Unlike the
	// rest it is touched only by the peer's reader goroutine (one
	// connection at a time), and kept across connections: the links it
	// counts outlive the connection that asked for them.
	via map[viaLink]struct{}

	// waiting holds links to the peer's mailboxes asked for while there
	// was no connection, on a reader that could not wait for one (a
	// LinkFor from a third node), each with the monotime it gives up at:
	// installed by peerUp, fired NoConnection by expireWaiting. Bounded
	// by MaxPeerLinks; kept across connections.
	waiting map[viaLink]int64
}

// viaLink is a link a peer asked for: watcher, of this node, watches target.
type viaLink struct{ target, watcher Address }

// remoteWatches indexes the remote links by watcher: the remote mailboxes
// each local mailbox watches (OnCloseNotify). When a watcher closes, its
// links are removed on both nodes, as Erlang removes a dead process's
// monitors; without this they stayed until the target closed or the
// connection ended, held the peer's link bound (MaxPeerLinks) and kept the
// connection from closing as idle.
type remoteWatches struct {
	n  atomic.Int64 // watchers indexed: a closing mailbox costs one load when 0
	mu sync.Mutex
	// local watcher mailbox ID -> the remote targets it watches: a slice,
	// since a watcher mostly watches one or a few (a Call's reply mailbox
	// watches its server), so indexing one costs one small allocation
	m map[uint64][]Address
}

func (w *remoteWatches) add(watcher uint64, target Address) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[uint64][]Address{}
	}
	ts, ok := w.m[watcher]
	if !ok {
		w.n.Add(1)
	}
	w.m[watcher] = append(ts, target)
}

func (w *remoteWatches) remove(watcher uint64, target Address) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts, ok := w.m[watcher]
	if !ok {
		return
	}
	if i := slices.Index(ts, target); i >= 0 {
		ts[i] = ts[len(ts)-1]
		ts = ts[:len(ts)-1]
	}
	if len(ts) == 0 {
		delete(w.m, watcher)
		w.n.Add(-1)
	} else {
		w.m[watcher] = ts
	}
}

// take removes and returns what watcher watches.
func (w *remoteWatches) take(watcher uint64) []Address {
	if w.n.Load() == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ts, ok := w.m[watcher]
	if ok {
		delete(w.m, watcher)
		w.n.Add(-1)
	}
	return ts
}

// dropWatches removes the remote links of a, a local mailbox that closed.
func (n *Node) dropWatches(a Address) {
	for _, target := range n.watches.take(a.id) {
		n.unlinkRemote(target, a)
	}
}

// linkHook is links' peerHook.
type linkHook struct{}

// peerUp: links are not restored on a new connection; those waiting for
// one are made now.
func (linkHook) peerUp(p *peer, _ *conn) {
	p.mu.Lock()
	waiting := p.links.waiting
	p.links.waiting = nil
	p.mu.Unlock()
	for l := range waiting {
		p.c.n.linkRemote(l.target, l.watcher, false)
	}
}

// expireWaiting fires NoConnection to the links waiting for a connection
// to p that have waited too long (all of them if all).
func (p *peer) expireWaiting(all bool) {
	now := monotime()
	var fire []viaLink
	p.mu.Lock()
	for l, until := range p.links.waiting {
		if all || now > until {
			fire = append(fire, l)
			delete(p.links.waiting, l)
		}
	}
	p.mu.Unlock()
	for _, l := range fire {
		p.c.n.notifyClosed(l.watcher, MailboxClosed{Address: l.target, Reason: NoConnection})
	}
}

// peerDown tells every local watcher of the peer's mailboxes
// (NoConnection, or NodeShutdown if the peer said Goodbye) and drops the
// peer's watches on local mailboxes.
func (linkHook) peerDown(p *peer, _ *conn, why CloseReason) {
	n := p.c.n
	reason := NoConnection
	if why == CloseGoodbye {
		reason = NodeShutdown
	}
	p.mu.Lock()
	l := p.links
	p.links = peerLinks{via: l.via, waiting: l.waiting}
	p.mu.Unlock()
	for target, notifies := range l.out {
		for notify := range notifies {
			n.watches.remove(notify.id, target)
			n.notifyClosed(notify, MailboxClosed{Address: target, Reason: reason})
		}
	}
	for id := range l.watched {
		if m := n.table.lookup(id); m != nil {
			m.mu.Lock()
			for w := range m.links {
				if w.node == p.id {
					delete(m.links, w)
				}
			}
			m.mu.Unlock()
		}
	}
}

// linkRemote asks a's node to tell notify when a closes.
// With membership, a member with no connection yet is connected to first
// (as a send is: connectOnUse), and the link fires NoConnection only if
// that fails. Without dial (a link a peer asked for, handled on that
// peer's reader goroutine, which must not wait for another node's
// handshake) the connection is asked for and the link waits for it
// (peerLinks.waiting), firing NoConnection if it does not come within
// twice the handshake timeout.
func (n *Node) linkRemote(a, notify Address, dial bool) {
	if n.cl == nil || (n.cl.peer(a.node) == nil && n.cl.member == nil) {
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoConnection})
		return
	}
	if notify.node != n.id || notify.inc != n.inc {
		return // only mailboxes of this node can watch through it
	}
	p := n.cl.peer(a.node)
	if p == nil || p.live.Load() == nil {
		if dial {
			n.cl.connectOnUse(p, a.node) // membership.go
		} else if p != nil && n.cl.member != nil {
			p.askDial(n.cfg.HandshakeTimeout)
		}
		if p = n.cl.peer(a.node); p == nil {
			n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoConnection})
			return
		}
	}
	p.mu.Lock()
	cn := p.live.Load()
	if cn == nil && !dial && n.cl.member != nil && p.member.Load() && len(p.links.waiting) < n.cfg.MaxPeerLinks {
		// the connection was asked for: made when it comes up
		// (linkHook.peerUp), or fired by expireWaiting
		if p.links.waiting == nil {
			p.links.waiting = map[viaLink]int64{}
		}
		p.links.waiting[viaLink{a, notify}] = monotime() + int64(2*n.cfg.HandshakeTimeout)
		p.mu.Unlock()
		return
	}
	if cn == nil || a.inc != cn.peerInc {
		p.mu.Unlock()
		reason := NoConnection
		if cn != nil {
			reason = NoProc
		}
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: reason})
		return
	}
	set := p.links.out[a]
	if _, dup := set[notify]; dup {
		p.mu.Unlock()
		return
	}
	if set == nil {
		if p.links.out == nil {
			p.links.out = map[Address]map[Address]struct{}{}
		}
		set = make(map[Address]struct{}, 1)
		p.links.out[a] = set
	}
	set[notify] = struct{}{}
	n.watches.add(notify.id, a)
	// If the connection is closing, appendFrame fails, and linkHook's
	// peerDown (which has not taken the links: p.live is still cn) fires
	// the link just recorded.
	_ = cn.appendFrame(wire.TypeLink, func(b []byte) []byte {
		return wire.AppendLink(b, wire.Link{Target: ref(a), Watcher: ref(notify)})
	})
	p.mu.Unlock()
}

// unlinkRemote cancels linkRemote.
func (n *Node) unlinkRemote(a, notify Address) {
	if n.cl == nil || n.cl.peer(a.node) == nil {
		return
	}
	p := n.cl.peer(a.node)
	p.mu.Lock()
	defer p.mu.Unlock()
	set, ok := p.links.out[a]
	if !ok {
		return
	}
	if _, ok := set[notify]; !ok {
		return
	}
	delete(set, notify)
	if len(set) == 0 {
		delete(p.links.out, a)
	}
	n.watches.remove(notify.id, a)
	if cn := p.live.Load(); cn != nil {
		_ = cn.appendFrame(wire.TypeUnlink, func(b []byte) []byte {
			return wire.AppendLink(b, wire.Link{Target: ref(a), Watcher: ref(notify)})
		})
	}
}

// remoteLinked handles the peer's Link: its mailbox watcher wants to know
// when our mailbox target closes. A watcher that would take the peer past
// MaxPeerLinks is not added: remoteLinked reports false, and the
// connection is closed.
func (p *peer) remoteLinked(target, watcher wire.Ref) bool {
	n := p.c.n
	notify := Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID}
	a := Address{n: n, node: n.id, inc: target.Inc, id: target.ID}
	if target.Inc == n.inc {
		if m := n.table.lookup(target.ID); m != nil {
			switch p.addWatcher(m, target.ID, notify, true) {
			case linkAdded, linkKnown:
				return true
			case linkFull:
				return false
			}
		}
	}
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: n.closedReason(a)})
	return true
}

// addWatcher adds notify, a mailbox of the peer, to the watchers of the
// local mailbox m (whose ID is id), and counts it; with bounded, not past
// MaxPeerLinks. p.mu is held across the mailbox's lock (p.mu before m.mu,
// never the other way), so a Close in between cannot take the watcher
// before it is counted: its unlinkWatcher waits for p.mu and then
// uncounts it.
func (p *peer) addWatcher(m *Mailbox, id uint64, notify Address, bounded bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := m.addPeerLink(notify, bounded && p.links.nwatch >= p.c.n.cfg.MaxPeerLinks)
	if st == linkAdded {
		if p.links.watched == nil {
			p.links.watched = map[uint64]int{}
		}
		p.links.watched[id]++
		p.links.nwatch++
	}
	return st
}

// removeWatcher removes notify, a mailbox of the peer, from the watchers
// of the local mailbox m (whose ID is id), and uncounts it.
func (p *peer) removeWatcher(m *Mailbox, id uint64, notify Address) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.mu.Lock()
	_, had := m.links[notify]
	delete(m.links, notify)
	m.mu.Unlock()
	if had {
		p.links.uncount(id, 1)
	}
}

// What addPeerLink did.
const (
	linkAdded  = iota // the watcher is new
	linkKnown         // it was there already
	linkFull          // it is new, but the peer is at its bound: not added
	linkClosed        // the mailbox is closed
)

// addPeerLink adds a peer's watcher notify unless full; see linkAdded.
func (m *Mailbox) addPeerLink(notify Address, full bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed() {
		return linkClosed
	}
	if _, ok := m.links[notify]; ok {
		return linkKnown
	}
	if full {
		return linkFull
	}
	if m.links == nil {
		m.links = make(map[Address]struct{}, 1)
	}
	m.links[notify] = struct{}{}
	return linkAdded
}

// remoteUnlinked handles the peer's Unlink.
func (p *peer) remoteUnlinked(target, watcher wire.Ref) {
	n := p.c.n
	if target.Inc != n.inc {
		return
	}
	if m := n.table.lookup(target.ID); m != nil {
		p.removeWatcher(m, target.ID, Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID})
	}
}

// uncount forgets k of the peer's watchers of local mailbox id. The
// caller holds the peer's mu.
func (l *peerLinks) uncount(id uint64, k int) {
	left := l.watched[id] - k
	if left <= 0 {
		k += left
		delete(l.watched, id)
	} else {
		l.watched[id] = left
	}
	l.nwatch -= k
}

// closedReceived handles the peer's Closed: its mailbox target closed, and
// our mailbox watcher wanted to know.
func (p *peer) closedReceived(target, watcher wire.Ref, reason Reason, text string) {
	n := p.c.n
	a := Address{n: n, node: p.id, inc: target.Inc, id: target.ID}
	notify := Address{n: n, node: n.id, inc: watcher.Inc, id: watcher.ID}
	p.mu.Lock()
	set, ok := p.links.out[a]
	_, linked := set[notify]
	if linked {
		delete(set, notify)
		if len(set) == 0 {
			delete(p.links.out, a)
		}
	}
	p.mu.Unlock()
	if !ok || !linked {
		// no such link (any more): removed since (RemoveNotify), or never
		// made — a Closed for it tells nobody
		p.c.stats.droppedUnlinkedClosed.Add(1)
		return
	}
	n.watches.remove(notify.id, a)
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: reason, Err: exitCause(reason, text)})
}

// sendClosedRemote tells a watcher on another node that mc.Address, a
// mailbox of this node, closed, with the text of its cause (MaxExitText
// bytes at most) if it closed abnormally.
func (n *Node) sendClosedRemote(notify Address, mc MailboxClosed) {
	if n.cl == nil || mc.Address.node != n.id {
		return
	}
	p := n.cl.peer(notify.node)
	if p == nil {
		return
	}
	cn := p.live.Load()
	if cn == nil || cn.peerInc != notify.inc {
		return
	}
	var text string
	if mc.Reason == Abnormal {
		text = exitText(mc.Err)
	}
	_ = cn.appendFrame(wire.TypeClosed, func(b []byte) []byte {
		return wire.AppendClosed(b, wire.Closed{Target: ref(mc.Address), Watcher: ref(notify), Reason: uint8(mc.Reason), Text: text})
	})
}

// unlinkWatcher forgets, for each peer, that a closed local mailbox was
// watched from there.
func (n *Node) unlinkWatcher(a Address) {
	if n.cl == nil {
		return
	}
	for _, p := range n.cl.peerList() {
		p.mu.Lock()
		p.links.uncount(a.id, p.links.watched[a.id])
		p.mu.Unlock()
	}
}

// handleLink: the peer's mailbox Watcher (which must be the peer's own)
// wants to know when our mailbox Target closes.
func handleLink(c *conn, payload []byte) error {
	l, err := wire.ParseLink(payload)
	if err != nil {
		return err
	}
	if err := c.checkPeerRef(l.Watcher); err != nil {
		return err
	}
	if !c.p.remoteLinked(l.Target, l.Watcher) {
		return c.exceeded(LimitLinks, "MaxPeerLinks", c.p.c.n.cfg.MaxPeerLinks)
	}
	return nil
}

// handleUnlink: the peer's mailbox Watcher (the peer's own) no longer
// watches our mailbox Target.
func handleUnlink(c *conn, payload []byte) error {
	l, err := wire.ParseLink(payload)
	if err != nil {
		return err
	}
	if err := c.checkPeerRef(l.Watcher); err != nil {
		return err
	}
	c.p.remoteUnlinked(l.Target, l.Watcher)
	return nil
}

// handleClosed: the peer's mailbox Target (the peer's own) closed, and our
// mailbox Watcher wanted to know.
func handleClosed(c *conn, payload []byte) error {
	cl, err := wire.ParseClosed(payload)
	if err != nil {
		return err
	}
	if err := c.checkPeerRef(cl.Target); err != nil {
		return err
	}
	c.p.closedReceived(cl.Target, cl.Watcher, Reason(cl.Reason), cl.Text)
	return nil
}

// The forwarded half of links: OnCloseNotify and RemoveNotify where
// neither the watched mailbox nor the watcher is on the node that a is
// bound to. The request goes to the watcher's node as a LinkFor frame,
// and that node links (or unlinks) itself. So a node only ever installs
// links for its own mailboxes, and a Closed frame only ever goes from the
// watched mailbox's node to the watcher's, over their own connection:
// nobody can make a node send notifications to a third party, and a
// node's links to a peer are all its own mailboxes' (which the peer's
// MaxPeerLinks bounds). The alternative, a Link frame naming a watcher on
// a third node, would have the watched node send Closed frames wherever a
// peer says.

// forwardLink asks notify's node to link notify to a (or, with remove, to
// unlink it). If that node is unreachable, notify cannot be told anything
// either: the refusal is counted and logged.
//
// With membership, a member with no connection yet is connected to first
// (as a send is: connectOnUse), unless this is a removal: a removal needs
// no connection, as the links went with the last one.
func (n *Node) forwardLink(a, notify Address, remove bool) {
	p := n.peerOf(notify.node)
	var cn *conn
	if p != nil {
		cn = p.live.Load()
	}
	if cn == nil && !remove && n.cl != nil && notify.node != n.id {
		cn = n.cl.connectOnUse(p, notify.node) // membership.go
	}
	if cn != nil && cn.peerInc != notify.inc {
		return // a watcher of an earlier run of its node: gone, nothing to tell
	}
	if cn != nil && cn.appendFrame(wire.TypeLinkFor, func(b []byte) []byte {
		return wire.AppendLinkFor(b, wire.LinkFor{Target: wire.Addr{Node: uint16(a.node), Inc: a.inc, ID: a.id}, Watcher: ref(notify), Remove: remove})
	}) == nil {
		if !remove {
			n.cl.stats.linksForwarded.Add(1)
		}
		return
	}
	if remove {
		return // its node is lost: its links with it
	}
	if n.cl != nil {
		n.cl.stats.linksRefused.Add(1)
		if held, ok := n.cl.linkLog.allow(); ok {
			n.log.Warn("OnCloseNotify refused: the watcher's node is unreachable, so the watcher cannot be told", "watched", a.String(), "watcher", notify.String(), "suppressed", held)
		}
		return
	}
	n.log.Warn("OnCloseNotify refused: a local-only node cannot reach the watcher's node", "watched", a.String(), "watcher", notify.String())
}

// handleLinkFor: the peer asks that our mailbox Watcher watch Target, a
// mailbox on any node (or stop watching it). A watcher that is not open
// on this run of the node needs nothing. The links a peer asked for that
// are still in place are bounded by MaxPeerLinks.
func handleLinkFor(c *conn, payload []byte) error {
	lf, err := wire.ParseLinkFor(payload)
	if err != nil {
		return err
	}
	n := c.p.c.n
	if lf.Watcher.Inc != n.inc || n.table.lookup(lf.Watcher.ID) == nil {
		return nil
	}
	l := viaLink{
		target:  Address{n: n, node: NodeID(lf.Target.Node), inc: lf.Target.Inc, id: lf.Target.ID},
		watcher: Address{n: n, node: n.id, inc: n.inc, id: lf.Watcher.ID},
	}
	via := &c.p.links.via // the reader's own: see peerLinks.via
	if lf.Remove {
		// only a link this peer asked for: never one the node's own code
		// made (a Call's link to its server, say)
		if _, ok := (*via)[l]; ok {
			delete(*via, l)
			l.target.RemoveNotify(l.watcher)
		}
		return nil
	}
	if _, ok := (*via)[l]; !ok {
		limit := n.cfg.MaxPeerLinks
		if len(*via) >= limit {
			n.sweepVia(*via)
		}
		if len(*via) >= limit {
			return c.exceeded(LimitLinks, "MaxPeerLinks", limit)
		}
		if *via == nil {
			*via = map[viaLink]struct{}{}
		}
		(*via)[l] = struct{}{}
	}
	if l.target.node != n.id {
		// linkRemote, not OnCloseNotify: this goroutine is the peer's
		// reader, and must not wait for a connection to a third node
		n.linkRemote(l.target, l.watcher, false)
		return nil
	}
	l.target.OnCloseNotify(l.watcher)
	return nil
}

// sweepVia forgets the links of via that are no longer in place: fired,
// removed, or never installed (the target was closed or unreachable).
func (n *Node) sweepVia(via map[viaLink]struct{}) {
	for l := range via {
		if !n.linked(l.target, l.watcher) {
			delete(via, l)
		}
	}
}

// linked reports whether this node's mailbox watcher watches target.
func (n *Node) linked(target, watcher Address) bool {
	if target.node == n.id {
		m := n.table.lookup(target.id)
		if target.inc != n.inc || m == nil {
			return false
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		_, ok := m.links[watcher]
		return ok
	}
	p := n.peerOf(target.node)
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.links.out[target][watcher]
	return ok
}

// askDial asks the peer's service to dial within d, without waiting.
func (p *peer) askDial(d time.Duration) {
	if until := monotime() + int64(d); until > p.demand.Load() {
		p.demand.Store(until)
	}
	p.wake()
}
