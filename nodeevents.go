package reign

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// NodeUp is the message a node-events watcher (Node.MonitorNodes) receives
// when a connection to Node comes up: Erlang's {nodeup, Node}. With
// membership (Config.Membership) it follows membership instead: NodeUp when
// Node joins (is first listed alive), whether or not a connection to it is
// up, since connections then come and go with use (see
// MembershipConfig.IdleTimeout).
//
// It arrives as soon as the connection is up, before the peer's registry
// names have arrived over it: to wait for a name the peer holds, use
// Node.WaitName.
//
// NodeUp is reserved to the node (see ErrReservedType): only a node makes
// one, for its own watchers. It cannot be sent to another node, and one
// arriving in a message from another node is refused as a forgery.
type NodeUp struct {
	Node NodeID
}

// NodeDown is the message a node-events watcher (Node.MonitorNodes)
// receives when the connection to Node ends: Erlang's {nodedown, Node}.
// With membership it follows membership instead: NodeDown when Node leaves
// (Reason CloseGoodbye) or membership declares it failed (CloseMemberGone),
// once its connection, if any, has ended; a connection that closes while
// the node stays a member (idle, or lost and made again) is no NodeDown.
//
// Reason is why, in the vocabulary of the node's logs and of Stats.Closes:
// CloseGoodbye when the peer shut down cleanly, CloseShutdown when this
// node is the one shutting down, CloseReplaced when a newer connection of
// the same node took over (a NodeUp follows), and a loss otherwise
// (ClosePeerClosed, CloseHeartbeatTimeout, CloseReadError, ...). It
// reuses CloseReason rather than a type of its own so that a NodeDown, the
// log line and the counter for one loss all say the same thing, and so
// that reasons added later reach watchers without a mapping to keep up.
//
// By the time NodeDown arrives, every link to the peer's mailboxes has
// fired (so a watcher that also watched one of them has its
// MailboxClosed{NoConnection} queued before the NodeDown) and the peer's
// registry names are gone.
//
// NodeDown is reserved to the node, as NodeUp is.
type NodeDown struct {
	Node   NodeID
	Reason CloseReason
}

// nodeEvents is a node's node-event watchers, the peers up as they saw
// them, and the goroutines waiting in WaitName. Its zero value is ready to
// use, so a local-only node has one too (with no peers, ever).
type nodeEvents struct {
	// deliver serializes the delivery of events (and of a new watcher's
	// first NodeUps), so every watcher sees them in one order. It is held
	// while sending; mu is not, so code run by a Send (a tracing hook, a
	// Codec) may call Peers, Register or WaitName.
	deliver sync.Mutex

	mu       sync.Mutex
	watchers []Address      // bound local mailboxes, in subscription order
	up       map[NodeID]int // connections up per node; a node is up while > 0
	peers    []NodeID       // the nodes up, sorted: Peers()

	// waiters are the WaitName calls blocked on a name, each with a
	// channel closed by the next claim of it; nwait counts them, so a
	// claim costs one atomic load when nobody waits.
	waiters map[string][]chan struct{}
	nwait   atomic.Int64
}

// MonitorNodes subscribes the local mailbox at watcher to node events
// (Erlang's net_kernel:monitor_nodes(true)): it receives a NodeUp when a
// connection to another node comes up and a NodeDown when it goes down.
// For each node, a watcher sees NodeUp and NodeDown alternate, starting
// with NodeUp: a NodeDown always comes before the node's next NodeUp.
//
// Unlike Erlang, which reports only later changes, MonitorNodes sends the
// watcher a NodeUp for every node up at the moment it subscribes (in
// node ID order, before any later event), so that no watcher has to race
// Peers against the events; a watcher that does not want them can skip
// the NodeUps of the nodes Peers listed.
//
// Subscribing a watcher again does nothing. The subscription lasts until
// DemonitorNodes, or until the watcher's mailbox closes: a closed watcher
// is dropped at the next node event or the next MonitorNodes, whichever
// comes first, so subscriptions never pile up. A local-only node has no
// peers, and its watchers receive nothing.
//
// watcher must be an open mailbox of this node: otherwise the error wraps
// ErrZeroAddress, ErrNotLocal or ErrMailboxClosed.
func (n *Node) MonitorNodes(watcher Address) error {
	watcher, err := n.ownAddress(watcher)
	if err != nil {
		return err
	}
	e := &n.events
	e.deliver.Lock()
	defer e.deliver.Unlock()
	e.mu.Lock()
	e.watchers = slices.DeleteFunc(e.watchers, func(w Address) bool { return n.table.lookup(w.id) == nil })
	if n.table.lookup(watcher.id) == nil {
		e.mu.Unlock()
		return &SendError{To: watcher, Err: ErrMailboxClosed}
	}
	if slices.Contains(e.watchers, watcher) {
		e.mu.Unlock()
		return nil
	}
	e.watchers = append(e.watchers, watcher)
	up := slices.Clone(e.peers)
	e.mu.Unlock()
	// No event is delivered until these are: they come first.
	for _, id := range up {
		if watcher.Send(NodeUp{Node: id}) != nil {
			e.drop([]Address{watcher})
			return &SendError{To: watcher, Err: ErrMailboxClosed}
		}
	}
	return nil
}

// DemonitorNodes ends watcher's subscription to node events
// (net_kernel:monitor_nodes(false)). Events already queued in its mailbox
// stay there. It does nothing if watcher is not subscribed.
func (n *Node) DemonitorNodes(watcher Address) {
	watcher.n = n
	e := &n.events
	e.mu.Lock()
	e.watchers = slices.DeleteFunc(e.watchers, func(w Address) bool { return w == watcher })
	e.mu.Unlock()
}

// Peers returns the IDs of the nodes this node is connected to now, in
// increasing order (Erlang's nodes()); with membership, the members alive
// (connected or not). It agrees with the node events: a node is listed
// from just before its NodeUp is sent to the watchers until just before
// its NodeDown is.
func (n *Node) Peers() []NodeID {
	e := &n.events
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.peers)
}

// WaitName returns an Address registered under name, as Lookup does, at
// once if there is one; otherwise it waits until a claim of name is made
// on this node (Register) or arrives from another node, and returns it.
// It is how a client waits for a server that is starting, or for a name
// on a node that just came up (NodeUp comes before the peer's names),
// without polling Lookup.
//
// If ctx ends first, WaitName returns ctx.Err() and leaves nothing
// behind (a name already claimed is returned even if ctx has ended). It
// starts no goroutine. An invalid name is an error wrapping ErrBadName.
func (n *Node) WaitName(ctx context.Context, name string) (Address, error) {
	if err := checkName(name); err != nil {
		return Address{}, err
	}
	e := &n.events
	for {
		if a, ok := n.Lookup(name); ok {
			return a, nil
		}
		ch := e.wait(name)
		// A claim made between the Lookup above and wait did not close
		// ch: look again now that it would.
		if a, ok := n.Lookup(name); ok {
			e.unwait(name, ch)
			return a, nil
		}
		select {
		case <-ch:
			// claimed: look again (it may have been released since)
		case <-ctx.Done():
			e.unwait(name, ch)
			return Address{}, ctx.Err()
		}
	}
}

// wait returns a channel that the next claim of name closes.
func (e *nodeEvents) wait(name string) chan struct{} {
	ch := make(chan struct{})
	e.mu.Lock()
	if e.waiters == nil {
		e.waiters = map[string][]chan struct{}{}
	}
	e.waiters[name] = append(e.waiters[name], ch)
	e.nwait.Add(1)
	e.mu.Unlock()
	return ch
}

// unwait forgets ch, a waiter of name that stopped waiting, unless a
// claim has already taken it.
func (e *nodeEvents) unwait(name string, ch chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	chs := e.waiters[name]
	i := slices.Index(chs, ch)
	if i < 0 {
		return
	}
	if chs = slices.Delete(chs, i, i+1); len(chs) == 0 {
		delete(e.waiters, name)
	} else {
		e.waiters[name] = chs
	}
	e.nwait.Add(-1)
}

// claimed wakes the WaitName calls waiting for name. The registry calls it
// after each claim, local or remote, once the claim is visible to Lookup.
func (e *nodeEvents) claimed(name string) {
	if e.nwait.Load() == 0 {
		return
	}
	e.mu.Lock()
	chs := e.waiters[name]
	delete(e.waiters, name)
	e.nwait.Add(-int64(len(chs)))
	e.mu.Unlock()
	for _, ch := range chs {
		close(ch)
	}
}

// waiting is the number of WaitName calls blocked now (for tests).
func (e *nodeEvents) waiting() int { return int(e.nwait.Load()) }

// watching is the number of subscribed watchers, closed ones not yet
// dropped included (for tests).
func (e *nodeEvents) watching() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.watchers)
}

// nodeUp records one more connection to node; the first makes it up and
// is reported to the watchers.
func (e *nodeEvents) nodeUp(node NodeID) {
	e.deliver.Lock()
	defer e.deliver.Unlock()
	e.mu.Lock()
	if e.up == nil {
		e.up = map[NodeID]int{}
	}
	if e.up[node]++; e.up[node] > 1 {
		e.mu.Unlock()
		return // a second peer for one node, which the node layer does not make
	}
	i, _ := slices.BinarySearch(e.peers, node)
	e.peers = slices.Insert(e.peers, i, node)
	e.mu.Unlock()
	e.tell(NodeUp{Node: node})
}

// nodeDown records the end of a connection to node; the last makes it down
// and is reported to the watchers.
func (e *nodeEvents) nodeDown(node NodeID, why CloseReason) {
	e.deliver.Lock()
	defer e.deliver.Unlock()
	e.mu.Lock()
	if e.up[node] == 0 {
		e.mu.Unlock()
		return
	}
	if e.up[node]--; e.up[node] > 0 {
		e.mu.Unlock()
		return
	}
	delete(e.up, node)
	if i, ok := slices.BinarySearch(e.peers, node); ok {
		e.peers = slices.Delete(e.peers, i, i+1)
	}
	e.mu.Unlock()
	e.tell(NodeDown{Node: node, Reason: why})
}

// tell sends ev to every watcher and drops those whose mailbox has closed.
// Called with e.deliver held, so every watcher sees the events in one
// order, the order Peers changes in. A local Send never blocks.
func (e *nodeEvents) tell(ev any) {
	e.mu.Lock()
	ws := slices.Clone(e.watchers)
	e.mu.Unlock()
	var gone []Address
	for _, w := range ws {
		if w.Send(ev) != nil {
			gone = append(gone, w)
		}
	}
	e.drop(gone)
}

// drop unsubscribes the watchers in gone.
func (e *nodeEvents) drop(gone []Address) {
	if len(gone) == 0 {
		return
	}
	e.mu.Lock()
	e.watchers = slices.DeleteFunc(e.watchers, func(w Address) bool { return slices.Contains(gone, w) })
	e.mu.Unlock()
}

// nodeEventsHook is the node events' peerHook. It runs after the link and
// registry hooks (it is last in newCluster's list), so a watcher handling
// NodeDown finds the peer's links fired and its names dropped.
type nodeEventsHook struct{}

// With membership, node events follow membership instead (membership.go's
// report): connections come and go with use.
func (nodeEventsHook) peerUp(p *peer, _ *conn) {
	if p.c.member == nil {
		p.c.n.events.nodeUp(p.id)
	}
}

func (nodeEventsHook) peerDown(p *peer, _ *conn, why CloseReason) {
	if p.c.member == nil {
		p.c.n.events.nodeDown(p.id, why)
	}
}
