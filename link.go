package reign

import (
	"unicode/utf8"
)

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
	// Abnormal: the mailbox was closed with CloseWithError and a non-nil
	// cause, which MailboxClosed.Err carries: an Erlang exit with a reason
	// other than normal (a crash, an error, a stop with a reason).
	Abnormal
)

var reasonNames = [...]string{
	Normal:       "normal",
	NoConnection: "noconnection",
	NodeShutdown: "nodeshutdown",
	NoProc:       "noproc",
	Abnormal:     "abnormal",
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
//
// Err is nil unless Reason is Abnormal; then it is the cause the mailbox
// was closed with (CloseWithError): the very error value when the mailbox
// is on the watcher's node, so errors.Is and errors.As work on it, and a
// *RemoteError carrying its text when the mailbox was on another node.
// (A MailboxClosed a program sends on to another node as a message loses
// its Err there: an error value has no encoding.)
type MailboxClosed struct {
	Address Address // the mailbox that closed
	Reason  Reason  // why
	Err     error   `msgpack:"-" json:"-"` // the cause of an Abnormal close; nil otherwise
}

// RemoteError is an error that crossed from another node as its text: the
// cause of an abnormal close of a remote mailbox (MailboxClosed.Err, and so
// a failed Call), or an error a remote server passed to Request.Reply
// whose type is not registered on its node. Its Error is the original
// text, unchanged (it need not start with "reign: "). Like net/rpc's
// ServerError, it keeps the text but not the identity of the error:
// errors.Is against the original sentinel does not hold across nodes.
// Register an error type on both nodes to send it as a value instead.
type RemoteError struct {
	Text string // the error's text on the node where it happened
}

// Error returns the original error's text.
func (e *RemoteError) Error() string { return e.Text }

// MaxExitText bounds the text of an exit cause that travels to another
// node (in a Closed frame): longer texts are cut to this many bytes, at a
// character boundary.
const MaxExitText = 1024

// exitText is the text of an abnormal close's cause as it travels to
// another node: "" for a normal close. sendClosedRemote puts it in the
// Closed frame it sends.
func exitText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if s == "" {
		s = "reign: abnormal exit with an empty error text"
	}
	if len(s) > MaxExitText {
		i := MaxExitText
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

// exitCause is MailboxClosed.Err for a Closed frame received from a peer
// with reason r and error text text: nil unless r is Abnormal, else a
// *RemoteError with the text (or, from a peer that sent none, a text
// saying so): Err is never nil for an Abnormal close. closedReceived
// calls it when it builds the MailboxClosed of a Closed frame.
func exitCause(r Reason, text string) error {
	if r != Abnormal {
		return nil
	}
	if text == "" {
		text = "reign: abnormal exit (its node sent no cause)"
	}
	return &RemoteError{Text: text}
}

// OnCloseNotify asks that notify receive a MailboxClosed when the mailbox
// at a closes, or when a's node is lost (reason NoConnection) or shuts down
// (NodeShutdown): the equivalent of an Erlang monitor. It is delivered once.
// If the mailbox is already closed or unreachable, it is delivered at once.
// Asking again with the same notify changes nothing.
//
// notify may be on any node. A link is always installed by notify's own
// node, so that notifications only travel from a's node to notify's: when
// a and notify are both on other nodes than the one a is bound to, the
// request is forwarded to notify's node (a LinkFor frame), which links
// itself to a. If notify's node is unreachable, the request cannot be
// forwarded and notify cannot be told (it is unreachable too): the
// refusal is counted in Stats.LinksRefused and logged, at most once a
// second. A link to a remote mailbox also fires, with NoConnection, if the
// connection between notify's node and a's node is lost, so a watcher is
// never left waiting for a node that is gone. When notify's mailbox closes,
// its links to mailboxes on other nodes are removed, on both nodes, as
// Erlang removes a dead process's monitors.
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
		if notify.node != n.id {
			n.forwardLink(a, notify, false)
			return
		}
		n.linkRemote(a, notify, true)
		return
	}
	n.linkLocal(a, notify)
}

// linkLocal registers notify, on any node, with the local mailbox a, or
// tells notify at once if a is closed or was never open.
func (n *Node) linkLocal(a, notify Address) {
	if a.inc == n.inc {
		if m := n.table.lookup(a.id); m != nil {
			if p := n.peerOf(notify.node); p != nil {
				// counted with the peer's watchers: this node's own
				// request is never refused, but it counts
				if p.addWatcher(m, a.id, notify, false) != linkClosed {
					return
				}
			} else if m.addLink(notify) {
				return
			}
		}
	}
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: n.closedReason(a)})
}

// peerOf returns the peer of node id, or nil if id is this node, or not
// in the cluster spec, or this node is local-only.
func (n *Node) peerOf(id NodeID) *peer {
	if n.cl == nil || id == n.id {
		return nil
	}
	return n.cl.peer(id)
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
// a closes. A MailboxClosed already sent is not taken back. As with
// OnCloseNotify, when a and notify are both on other nodes the request is
// forwarded to notify's node.
func (a Address) RemoveNotify(notify Address) {
	n := a.n
	if n == nil {
		return
	}
	notify = notify.withNode(n)
	if a.node != n.id {
		if notify.node != n.id {
			n.forwardLink(a, notify, true)
			return
		}
		n.unlinkRemote(a, notify)
		return
	}
	if a.inc != n.inc {
		return
	}
	if m := n.table.lookup(a.id); m != nil {
		if p := n.peerOf(notify.node); p != nil {
			p.removeWatcher(m, a.id, notify)
			return
		}
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

// mailboxClosed tells a closed mailbox's watchers, with cause err (nil: a
// normal close), and releases its names.
func (n *Node) mailboxClosed(a Address, links map[Address]struct{}, err error) {
	mc := MailboxClosed{Address: a, Reason: Normal}
	if err != nil {
		mc.Reason, mc.Err = Abnormal, err
	}
	remote := false
	for notify := range links {
		remote = remote || notify.node != n.id
		n.notifyClosed(notify, mc)
	}
	n.reg.releaseMailbox(a)
	if remote {
		n.unlinkWatcher(a)
	}
	n.dropWatches(a)
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
