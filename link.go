package reign

import (
	"unicode/utf8"

	"github.com/reign-go/reign/internal/wire"
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
// another node: "" for a normal close. The connection code puts it in the
// Closed frame it sends for mc (see sendClosedRemote).
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
// saying so). The connection code calls it when it builds the
// MailboxClosed of a Closed frame (see closedReceived).
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
}

// notifyClosed delivers mc to notify, wherever it is. Delivery failures are
// not errors: a watcher that has itself closed needs no news.
func (n *Node) notifyClosed(notify Address, mc MailboxClosed) {
	if notify.IsZero() {
		return
	}
	if mc.Reason == Abnormal && mc.Err == nil {
		// from a peer whose Closed frame carried no text (the wire has
		// no field for it yet): Err is never nil for an Abnormal close
		mc.Err = exitCause(Abnormal, "")
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

// The remote half of links: this node's watches on peers' mailboxes, and
// peers' watches on this node's mailboxes, with the frames that carry
// them (Link, Unlink, Closed) and what a lost connection resolves.

// peerLinks is the link state of one peer, guarded by the peer's mu.
type peerLinks struct {
	out     map[Address]map[Address]struct{} // peer mailbox -> local watchers
	watched map[uint64]struct{}              // local mailboxes the peer's mailboxes watch
}

// linkHook is links' peerHook.
type linkHook struct{}

// peerUp: links are not restored on a new connection; nothing to send.
func (linkHook) peerUp(*peer, *conn) {}

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
	p.links = peerLinks{}
	p.mu.Unlock()
	for target, notifies := range l.out {
		for notify := range notifies {
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
func (n *Node) linkRemote(a, notify Address) {
	if n.cl == nil || n.cl.peer(a.node) == nil {
		n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoConnection})
		return
	}
	if notify.node != n.id || notify.inc != n.inc {
		return // only mailboxes of this node can watch through it
	}
	p := n.cl.peer(a.node)
	p.mu.Lock()
	cn := p.live.Load()
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
	if cn := p.live.Load(); cn != nil {
		_ = cn.appendFrame(wire.TypeUnlink, func(b []byte) []byte {
			return wire.AppendLink(b, wire.Link{Target: ref(a), Watcher: ref(notify)})
		})
	}
}

// remoteLinked handles the peer's Link: its mailbox watcher wants to know
// when our mailbox target closes.
func (p *peer) remoteLinked(target, watcher wire.Ref) {
	n := p.c.n
	notify := Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID}
	a := Address{n: n, node: n.id, inc: target.Inc, id: target.ID}
	if target.Inc == n.inc && n.table.lookup(target.ID) != nil {
		// remember the watch, so losing the peer removes it (before adding
		// it: a Close in between finds it and clears it again)
		p.mu.Lock()
		if p.links.watched == nil {
			p.links.watched = map[uint64]struct{}{}
		}
		p.links.watched[target.ID] = struct{}{}
		p.mu.Unlock()
	}
	n.linkLocal(a, notify)
}

// remoteUnlinked handles the peer's Unlink.
func (p *peer) remoteUnlinked(target, watcher wire.Ref) {
	n := p.c.n
	if target.Inc != n.inc {
		return
	}
	if m := n.table.lookup(target.ID); m != nil {
		notify := Address{n: n, node: p.id, inc: watcher.Inc, id: watcher.ID}
		m.mu.Lock()
		delete(m.links, notify)
		m.mu.Unlock()
	}
}

// closedReceived handles the peer's Closed: its mailbox target closed, and
// our mailbox watcher wanted to know.
func (p *peer) closedReceived(target, watcher wire.Ref, reason Reason) {
	n := p.c.n
	a := Address{n: n, node: p.id, inc: target.Inc, id: target.ID}
	notify := Address{n: n, node: n.id, inc: watcher.Inc, id: watcher.ID}
	p.mu.Lock()
	if set, ok := p.links.out[a]; ok {
		delete(set, notify)
		if len(set) == 0 {
			delete(p.links.out, a)
		}
	}
	p.mu.Unlock()
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: reason})
}

// sendClosedRemote tells a watcher on another node that mc.Address, a
// mailbox of this node, closed.
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
	_ = cn.appendFrame(wire.TypeClosed, func(b []byte) []byte {
		return wire.AppendClosed(b, wire.Closed{Target: ref(mc.Address), Watcher: ref(notify), Reason: uint8(mc.Reason)})
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
		delete(p.links.watched, a.id)
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
	c.p.remoteLinked(l.Target, l.Watcher)
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
	c.p.closedReceived(cl.Target, cl.Watcher, Reason(cl.Reason))
	return nil
}
