package reign

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/reign-go/reign/internal/wire"
)

// MultipleClaim is sent to a mailbox registered under a name when another
// node claims the same name too (as can happen after a partition heals).
// Each claimant is told once per conflict, by its own node; the name stays
// claimed by all of them (LookupAll lists them) until the application
// resolves it, typically by having all but one Unregister.
type MultipleClaim struct {
	Name string
}

// MaxNameLen is the longest registry name, in bytes.
const MaxNameLen = 1024

// registry is one node's view of the cluster-wide names: its own claims
// and those its peers have announced. Each node holds at most one claim per
// name; claims are kept sorted by node ID.
type registry struct {
	n     *Node
	mu    sync.RWMutex
	names map[string][]Address // name -> claims, at most one per node, by node ID
	owned map[uint64][]string  // local mailbox ID -> the names it claims
	peers map[NodeID]nameUse   // what each peer claims, for the per-peer bounds
}

// nameUse is how many names one peer claims, and their total length.
type nameUse struct{ count, bytes int }

func (r *registry) init(n *Node) {
	r.n = n
	r.names = map[string][]Address{}
	r.owned = map[uint64][]string{}
	r.peers = map[NodeID]nameUse{}
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes (1 to %d allowed)", ErrBadName, len(name), MaxNameLen)
	}
	return nil
}

// Register claims name, cluster-wide, for the local mailbox at a. On this
// node a name has at most one claim: registering it again replaces the
// claim. Register never refuses a name because another node holds it; if
// one does, both claimants receive MultipleClaim and LookupAll shows both.
// The claim ends on Unregister, when the mailbox closes, or (seen from
// other nodes) when this node is lost.
//
// a must be an open mailbox of this node: otherwise the error wraps
// ErrZeroAddress, ErrNotLocal or ErrMailboxClosed.
func (n *Node) Register(name string, a Address) error {
	if err := checkName(name); err != nil {
		return err
	}
	a, err := n.openMailbox(a)
	if err != nil {
		return err
	}
	r := &n.reg
	r.mu.Lock()
	claims := r.names[name]
	i, had := r.find(claims, n.id)
	var old Address
	if had {
		old = claims[i].withNode(n)
		if old == a {
			r.mu.Unlock()
			return nil
		}
		claims[i] = a
		r.disown(old.id, name)
	} else {
		claims = slices.Insert(claims, i, a)
		r.names[name] = claims
	}
	r.owned[a.id] = append(r.owned[a.id], name)
	conflict := len(claims) > 1
	if n.cl != nil {
		n.cl.broadcastClaim(name, a)
	}
	r.mu.Unlock()
	n.events.claimed(name) // wake WaitName

	if conflict {
		_ = a.Send(MultipleClaim{Name: name})
	}
	if n.table.lookup(a.id) == nil {
		// the mailbox closed while we registered it: its release may have
		// run before our claim existed
		n.Unregister(name, a)
	}
	return nil
}

// Unregister withdraws this node's claim of name, if a holds it.
func (n *Node) Unregister(name string, a Address) {
	if a.node != n.id || a.inc != n.inc || a.IsZero() {
		return
	}
	r := &n.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocal(name, a.id)
}

// removeLocal drops the local claim of name by mailbox id and tells the
// peers. Called with r.mu held.
func (r *registry) removeLocal(name string, id uint64) {
	claims := r.names[name]
	i, ok := r.find(claims, r.n.id)
	if !ok || claims[i].id != id {
		return
	}
	r.setClaims(name, slices.Delete(claims, i, i+1))
	r.disown(id, name)
	if r.n.cl != nil {
		r.n.cl.broadcastRelease(name, Address{node: r.n.id, inc: r.n.inc, id: id})
	}
}

// releaseMailbox drops every claim of the closed local mailbox a.
func (r *registry) releaseMailbox(a Address) {
	r.mu.RLock()
	_, named := r.owned[a.id]
	r.mu.RUnlock()
	if !named {
		return // most mailboxes (every Call's among them) hold no name
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range slices.Clone(r.owned[a.id]) {
		r.removeLocal(name, a.id)
	}
}

// Lookup returns an Address registered under name, preferring this node's
// own claim, otherwise the claim of the node with the lowest ID. It is a
// local read: no network round trip.
func (n *Node) Lookup(name string) (Address, bool) {
	r := &n.reg
	r.mu.RLock()
	claims := r.names[name]
	var a Address
	ok := len(claims) > 0
	if ok {
		a = claims[0]
		if i, local := r.find(claims, n.id); local {
			a = claims[i]
		}
	}
	r.mu.RUnlock()
	return a.withNode(n), ok
}

// LookupAll returns every Address registered under name, one per claiming
// node, ordered by node ID. More than one means the name is in conflict.
func (n *Node) LookupAll(name string) []Address {
	r := &n.reg
	r.mu.RLock()
	out := slices.Clone(r.names[name])
	r.mu.RUnlock()
	for i := range out {
		out[i].n = n
	}
	return out
}

// withNode returns a bound to n (claims are stored bound already; this
// keeps the zero Address zero).
func (a Address) withNode(n *Node) Address {
	if !a.IsZero() {
		a.n = n
	}
	return a
}

// find returns the index of node's claim in claims, or where it would go.
func (r *registry) find(claims []Address, node NodeID) (int, bool) {
	return slices.BinarySearchFunc(claims, node, func(a Address, id NodeID) int {
		return int(a.node) - int(id)
	})
}

func (r *registry) setClaims(name string, claims []Address) {
	if len(claims) == 0 {
		delete(r.names, name)
		return
	}
	r.names[name] = claims
}

// disown drops name from the names local mailbox id claims.
func (r *registry) disown(id uint64, name string) {
	names := r.owned[id]
	if i := slices.Index(names, name); i >= 0 {
		names = slices.Delete(names, i, i+1)
	}
	if len(names) == 0 {
		delete(r.owned, id)
	} else {
		r.owned[id] = names
	}
}

// remoteClaim records peer's claim of name for a. If that makes this
// node's own claim one of several where it was alone, the local claimant
// is told with MultipleClaim. A new claim that would take the peer past
// MaxPeerNames or MaxPeerNameBytes is not recorded: it returns the
// *LimitError that closes the connection.
func (r *registry) remoteClaim(name string, a Address) error {
	r.mu.Lock()
	claims := r.names[name]
	before := len(claims)
	i, had := r.find(claims, a.node)
	if had {
		claims[i] = a
	} else {
		cfg := &r.n.cfg
		use := r.peers[a.node]
		switch {
		case use.count >= cfg.MaxPeerNames:
			r.mu.Unlock()
			return &LimitError{Limit: LimitNames, Field: "MaxPeerNames", Max: cfg.MaxPeerNames}
		case use.bytes+len(name) > cfg.MaxPeerNameBytes:
			r.mu.Unlock()
			return &LimitError{Limit: LimitNames, Field: "MaxPeerNameBytes", Max: cfg.MaxPeerNameBytes}
		}
		r.peers[a.node] = nameUse{use.count + 1, use.bytes + len(name)}
		claims = slices.Insert(claims, i, a)
		r.names[name] = claims
	}
	var tell Address
	if j, local := r.find(claims, r.n.id); local && before == 1 && !had {
		tell = claims[j]
	}
	r.mu.Unlock()
	r.n.events.claimed(name) // wake WaitName
	if !tell.IsZero() {
		_ = tell.Send(MultipleClaim{Name: name})
	}
	return nil
}

// remoteRelease drops peer's claim of name if it is for a.
func (r *registry) remoteRelease(name string, a Address) {
	r.mu.Lock()
	defer r.mu.Unlock()
	claims := r.names[name]
	if i, ok := r.find(claims, a.node); ok && claims[i].id == a.id && claims[i].inc == a.inc {
		r.setClaims(name, slices.Delete(claims, i, i+1))
		use := r.peers[a.node]
		r.peers[a.node] = nameUse{use.count - 1, use.bytes - len(name)}
	}
}

// dropNode forgets every claim of node (lost, or about to resynchronize).
func (r *registry) dropNode(node NodeID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.peers, node)
	for name, claims := range r.names {
		if i, ok := r.find(claims, node); ok {
			r.setClaims(name, slices.Delete(claims, i, i+1))
		}
	}
}

// localClaims calls fn for each of this node's claims, with r.mu held for
// reading, so a connection can send its peer a consistent snapshot.
func (r *registry) localClaims(fn func(name string, a Address)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name, claims := range r.names {
		if i, ok := r.find(claims, r.n.id); ok {
			fn(name, claims[i])
		}
	}
}

// registryHook is the registry's peerHook.
type registryHook struct{}

// peerUp sends the peer this node's claims, then RegSyncDone. (The peer's
// claims from an earlier connection were dropped when it ended.)
func (registryHook) peerUp(p *peer, cn *conn) {
	p.c.n.reg.localClaims(func(name string, a Address) {
		_ = cn.appendSyncFrame(wire.TypeRegClaim, func(b []byte) []byte {
			return wire.AppendClaim(b, wire.Claim{Name: name, Mailbox: ref(a)})
		})
	})
	_ = cn.appendSyncFrame(wire.TypeRegSyncDone, func(b []byte) []byte { return b })
}

// peerDown drops every claim the peer made.
func (registryHook) peerDown(p *peer, _ *conn, _ CloseReason) { p.c.n.reg.dropNode(p.id) }

// handleRegClaim records the peer's claim of a name for one of its own
// mailboxes.
func handleRegClaim(c *conn, payload []byte) error {
	rc, err := wire.ParseClaim(payload)
	if err != nil {
		return err
	}
	if checkName(rc.Name) != nil || rc.Mailbox.ID == 0 {
		return fmt.Errorf("%w: bad registry claim", wire.ErrMalformed)
	}
	if err := c.checkPeerRef(rc.Mailbox); err != nil {
		return err
	}
	if err := c.p.c.n.reg.remoteClaim(rc.Name, c.peerAddress(rc.Mailbox)); err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			return c.exceeded(le.Limit, le.Field, le.Max)
		}
		return err
	}
	return nil
}

// handleRegRelease drops the peer's claim of a name, if it is still for
// that mailbox of the peer's.
func handleRegRelease(c *conn, payload []byte) error {
	rc, err := wire.ParseClaim(payload)
	if err != nil {
		return err
	}
	if err := c.checkPeerRef(rc.Mailbox); err != nil {
		return err
	}
	c.p.c.n.reg.remoteRelease(rc.Name, c.peerAddress(rc.Mailbox))
	return nil
}

// handleRegSyncDone: the peer has sent every claim it held when the
// connection came up. Conflicts need no settling here: each claim that
// makes a name multiply claimed was reported (MultipleClaim) as it
// arrived.
func handleRegSyncDone(c *conn, payload []byte) error {
	if err := wire.ParseEmpty(payload); err != nil {
		return err
	}
	c.p.log.Debug("registry synchronized")
	return nil
}

// each calls fn for every name with its claims (at most one per node, by
// node ID), with r.mu held for reading: fn must copy what it keeps, be
// quick, and not use the registry. It is for introspection (Node.Snapshot).
func (r *registry) each(fn func(name string, claims []Address)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name, claims := range r.names {
		fn(name, claims)
	}
}

// size returns the number of names claimed anywhere in the cluster.
func (r *registry) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.names)
}

// withOwned calls fn with the map of local mailbox IDs to the names they
// claim, under r.mu held for reading: fn must not keep or modify it. It is
// for introspection (Node.Snapshot).
func (r *registry) withOwned(fn func(owned map[uint64][]string)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn(r.owned)
}
