package reign

// Reason says why a mailbox is reported closed in a MailboxClosed.
type Reason uint8

// Close reasons. The numbers travel on the wire: ONLY APPEND.
const (
	// Normal: the mailbox was closed with Close.
	Normal Reason = iota
	// NoConnection: the mailbox's node became unreachable (connection
	// lost, or silent past the heartbeat timeout); the mailbox itself may
	// still be open. Erlang's noconnection.
	NoConnection
	// NodeShutdown: the mailbox's node shut down cleanly.
	NodeShutdown
	// NoProc: no such mailbox was ever open: the Address is from an earlier
	// run of its node, or was never valid. Erlang's noproc.
	NoProc
)

var reasonNames = [...]string{
	Normal:       "normal",
	NoConnection: "noconnection",
	NodeShutdown: "nodeshutdown",
	NoProc:       "noproc",
}

// String returns the reason's Erlang-style name, such as "noconnection".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + itoa(int(r)) + ")"
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	if neg {
		p--
		b[p] = '-'
	}
	return string(b[p:])
}

// MailboxClosed is the message an Address registered with OnCloseNotify
// receives when the watched mailbox closes or becomes unreachable.
type MailboxClosed struct {
	Address Address // the mailbox that closed
	Reason  Reason  // why
}

// OnCloseNotify asks that notify receive a MailboxClosed when the mailbox
// at a closes, or when a's node is lost (reason NoConnection) or shuts down
// (NodeShutdown): the equivalent of an Erlang monitor. It is delivered once.
// If the mailbox is already closed or unreachable, it is delivered at once.
// Asking again with the same notify changes nothing.
//
// notify is normally a mailbox of the node a is bound to. A link to a
// remote mailbox also fires, with NoConnection, if the connection to its
// node is lost, so a watcher is never left waiting for a node that is gone.
func (a Address) OnCloseNotify(notify Address) {
	n := a.n
	if n == nil {
		if notify.n != nil {
			notify.n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoProc})
		}
		return
	}
	notify = notify.withNode(n) // one key per watcher, however it was bound
	if a.node != n.id {
		n.linkRemote(a, notify)
		return
	}
	n.linkLocal(a, notify)
}

// linkLocal registers notify with the local mailbox a, or tells notify at
// once if a is closed or was never open.
func (n *Node) linkLocal(a, notify Address) {
	if a.inc == n.inc {
		if m := n.table.lookup(a.id); m != nil && m.addLink(notify) {
			return
		}
	}
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: n.closedReason(a)})
}

// addLink adds notify to the mailbox's watchers; it reports false if the
// mailbox is closed.
func (m *Mailbox) addLink(notify Address) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed() {
		return false
	}
	if m.links == nil {
		m.links = make(map[Address]struct{}, 1)
	}
	m.links[notify] = struct{}{}
	return true
}

// RemoveNotify cancels OnCloseNotify(notify): notify will not be told when
// a closes. A MailboxClosed already sent is not taken back.
func (a Address) RemoveNotify(notify Address) {
	n := a.n
	if n == nil {
		return
	}
	notify = notify.withNode(n)
	if a.node != n.id {
		n.unlinkRemote(a, notify)
		return
	}
	if a.inc != n.inc {
		return
	}
	if m := n.table.lookup(a.id); m != nil {
		m.mu.Lock()
		delete(m.links, notify)
		m.mu.Unlock()
	}
}

// closedReason is why a's local mailbox is not open: Normal if it existed
// on this run of the node, NoProc if it never did.
func (n *Node) closedReason(a Address) Reason {
	if a.inc == n.inc && n.table.existed(a.id) {
		return Normal
	}
	return NoProc
}

// mailboxClosed tells a closed mailbox's watchers and releases its names.
func (n *Node) mailboxClosed(a Address, links map[Address]struct{}) {
	remote := false
	for notify := range links {
		remote = remote || notify.node != n.id
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: Normal})
	}
	n.reg.releaseMailbox(a)
	if remote {
		n.unlinkWatcher(a)
	}
}

// notifyClosed delivers mc to notify, wherever it is. Delivery failures are
// not errors: a watcher that has itself closed needs no news.
func (n *Node) notifyClosed(notify Address, mc MailboxClosed) {
	if notify.IsZero() {
		return
	}
	if notify.node == n.id {
		if notify.n == nil {
			notify.n = n
		}
		_ = notify.Send(mc)
		return
	}
	n.sendClosedRemote(notify, mc)
}
