package reign

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"

	"github.com/reign-go/reign/internal/wire"
)

// The remote half of calls. A Request frame this node sends carries a
// fresh random reference, recorded in the node's call table with the peer
// it went to; only that peer's Reply or CallFailed for that reference is
// taken, once. Anything else is dropped and counted
// (Stats.DroppedUnmatchedReply). A Request that arrives from a peer is
// answered to that peer, with its reference, and to nobody else.

// callTable holds the Requests this node sent to peers and awaits answers
// for, by reference. It is guarded by mu; the references come from a
// ChaCha8 generator seeded from crypto/rand, per node, so a peer that sees
// this node's references cannot predict the next ones.
type callTable struct {
	mu  sync.Mutex
	rng *rand.ChaCha8 // nil until the first remote Request
	m   map[uint64]outCall
	// Entries no Call removes, forwarded Requests: those of this node's
	// callers (detached), and those that came from each peer (fromPeer,
	// bounded by maxPeer).
	detached int
	fromPeer map[NodeID]int
	maxPeer  int // Config.MaxPeerForwarded (0: DefaultMaxPeerForwarded)
}

// maxDetachedCalls bounds the Requests of this node's own callers that
// this node forwarded to other nodes and still awaits answers for (see
// sendRequest): beyond it, forwarding one fails with ErrTooManyForwarded.
// Those that came from a peer are bounded per peer, by
// Config.MaxPeerForwarded.
const maxDetachedCalls = 1 << 16

// outCall is one Request sent to a peer, waiting for its answer.
type outCall struct {
	peer    NodeID   // the node the Request went to: only it may answer
	replyTo wire.Ref // the Request's ReplyTo: a Reply's To must echo it
	owned   bool     // a Call waits for it and removes it when it returns
	// Where the answer goes: the local Call's reply mailbox (caller, with
	// the Call's reference ref), or, for a Request that came from another
	// node and was forwarded, back to that node (up, with ref its
	// Request frame's reference).
	caller Address
	ref    uint64
	up     origin
}

// add records oc under a new random reference, and returns it.
func (t *callTable) add(oc outCall) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rng == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (crypto/rand's contract)
		t.rng = rand.NewChaCha8(seed)
		t.m = map[uint64]outCall{}
	}
	switch {
	case oc.owned:
	case oc.up.remote:
		max := t.maxPeer
		if max == 0 {
			max = DefaultMaxPeerForwarded
		}
		if t.fromPeer[oc.up.node] >= max {
			return 0, fmt.Errorf("%w: %d forwarded calls from node %d await answers: %w", ErrTooManyForwarded,
				t.fromPeer[oc.up.node], oc.up.node, &LimitError{Limit: LimitForwarded, Field: "MaxPeerForwarded", Max: max})
		}
		if t.fromPeer == nil {
			t.fromPeer = map[NodeID]int{}
		}
		t.fromPeer[oc.up.node]++
	default:
		if t.detached >= maxDetachedCalls {
			t.sweep()
			if t.detached >= maxDetachedCalls {
				return 0, fmt.Errorf("%w: %d forwarded calls of this node's callers await answers", ErrTooManyForwarded, t.detached)
			}
		}
		t.detached++
	}
	for {
		r := t.rng.Uint64()
		if _, dup := t.m[r]; r != 0 && !dup {
			t.m[r] = oc
			return r, nil
		}
	}
}

// sweep forgets the forwarded requests of local callers that stopped
// waiting (their reply mailbox closed). The caller holds t.mu.
func (t *callTable) sweep() {
	for r, oc := range t.m {
		if !oc.owned && !oc.up.remote && oc.caller.n != nil && oc.caller.n.table.lookup(oc.caller.id) == nil {
			delete(t.m, r)
			t.forget(oc)
		}
	}
}

// forget uncounts oc, just removed from the table. The caller holds t.mu.
func (t *callTable) forget(oc outCall) {
	switch {
	case oc.owned:
	case oc.up.remote:
		if t.fromPeer[oc.up.node]--; t.fromPeer[oc.up.node] <= 0 {
			delete(t.fromPeer, oc.up.node)
		}
	default:
		t.detached--
	}
}

// remove forgets r, if it is still there.
func (t *callTable) remove(r uint64) {
	t.mu.Lock()
	if oc, ok := t.m[r]; ok {
		delete(t.m, r)
		t.forget(oc)
	}
	t.mu.Unlock()
}

// take removes and returns the call r if peer is the node it went to and
// (unless to is nil) to is the Request's ReplyTo. Anything else leaves the
// table as it was.
func (t *callTable) take(r uint64, peer NodeID, to *wire.Ref) (outCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	oc, ok := t.m[r]
	if !ok || oc.peer != peer || (to != nil && *to != oc.replyTo) {
		return outCall{}, false
	}
	delete(t.m, r)
	t.forget(oc)
	return oc, true
}

// takePeer removes and returns every call that went to, or came from,
// peer.
func (t *callTable) takePeer(peer NodeID) []outCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []outCall
	for r, oc := range t.m {
		if oc.peer == peer || (oc.up.remote && oc.up.node == peer) {
			out = append(out, oc)
			delete(t.m, r)
			t.forget(oc)
		}
	}
	return out
}

// peerConn returns the live connection to a's node. It returns nil and no
// error if a is from another run of that node: as good as closed, and, as
// with any remote closed mailbox, what was sent to it is dropped (and
// counted).
func (n *Node) peerConn(a Address) (*conn, error) {
	if n.cl == nil {
		return nil, &SendError{To: a, Err: ErrNodeUnreachable}
	}
	p := n.cl.peer(a.node)
	if p == nil {
		return nil, &SendError{To: a, Err: fmt.Errorf("%w: node %d is not in the cluster spec", ErrNodeUnreachable, a.node)}
	}
	cn := p.live.Load()
	if cn == nil {
		return nil, &SendError{To: a, Err: ErrNodeUnreachable}
	}
	if a.inc != cn.peerInc {
		n.cl.stats.droppedStale.Add(1)
		return nil, nil
	}
	return cn, nil
}

// sendRequest sends req to a, a mailbox of another node, as a Request
// frame with a fresh reference, and records it in the call table. owned
// says that the caller (Call) removes the record when it stops waiting;
// otherwise the Request is being forwarded, and the record lives until
// the answer comes, the peer is lost, or (for a local caller) a sweep
// finds the caller gone. It returns the reference (0 if nothing was sent).
// A body that cannot be encoded fails with a *CallError; if req came from
// another node, that node is told too, so its caller fails at once.
func (n *Node) sendRequest(a Address, req Request, owned bool) (uint64, error) {
	if req.replyTo.IsZero() {
		return 0, &SendError{To: a, Err: fmt.Errorf("%w: a Request without a reply address", ErrZeroAddress)}
	}
	cn, err := n.peerConn(a)
	if cn == nil {
		if err == nil && !owned {
			// a forwarded Request to an Address from an earlier run of its
			// node: as to a closed mailbox, its caller (who watches the
			// forwarding server, not a) is failed at once
			ce := &CallError{Side: ServerSide, Node: n.id, Type: n.typeNameOf(req.Body), Err: ErrMailboxClosed}
			n.answer(outCall{caller: req.replyTo, ref: req.ref, up: req.from}, nil, ce, nil)
		}
		return 0, err
	}
	oc := outCall{peer: a.node, replyTo: ref(req.replyTo), owned: owned, caller: req.replyTo, ref: req.ref, up: req.from}
	wref, err := n.calls.add(oc)
	if err != nil {
		// refused: the caller fails at once; a peer that crossed its bound
		// is disconnected (its calls through here fail with it)
		var le *LimitError
		if errors.As(err, &le) {
			if cn := n.originConn(req.from); cn != nil && cn.close(CloseLimitExceeded, le) {
				n.cl.stats.limits[le.Limit].Add(1)
			}
		} else {
			n.answer(outCall{caller: req.replyTo, ref: req.ref, up: req.from}, nil,
				&CallError{Side: ServerSide, Node: n.id, Type: n.typeNameOf(req.Body), Err: err}, nil)
		}
		return 0, &SendError{To: a, Err: err}
	}
	h := frameHead{t: wire.TypeRequest, to: ref(a), ref: wref,
		replyTo: wire.Addr{Node: uint16(req.replyTo.node), Inc: req.replyTo.inc, ID: req.replyTo.id}}
	if err := cn.sendValue(h, req.Body); err != nil {
		n.calls.remove(wref)
		if errors.Is(err, ErrNodeUnreachable) {
			return 0, &SendError{To: a, Err: err}
		}
		ce := &CallError{Side: CallerSide, Node: n.id, Type: n.typeNameOf(req.Body), Err: err}
		if req.from.remote {
			ce.Side = ServerSide
			n.failRemote(req.from, req.ref, ce)
		}
		return 0, ce
	}
	return wref, nil
}

// replyRemote sends the reply v, to the Request ref that came from the
// node from, back to that node. A reply that cannot be encoded fails the
// caller at once (a CallFailed frame) and is returned as a *CallError.
func (n *Node) replyRemote(from origin, ref uint64, replyTo Address, v any) error {
	cn := n.originConn(from)
	if cn == nil {
		return &SendError{To: replyTo, Err: ErrNodeUnreachable}
	}
	err := cn.sendValue(frameHead{t: wire.TypeReply, to: wireRef(replyTo), ref: ref}, v)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNodeUnreachable) {
		return &SendError{To: replyTo, Err: err}
	}
	ce := &CallError{Side: ServerSide, Node: n.id, Reply: true, Type: n.typeNameOf(v), Err: err}
	n.failRemote(from, ref, ce)
	return ce
}

func wireRef(a Address) wire.Ref { return ref(a) }

// relayReply passes on the reply v to a forwarded Request (ref, from the
// node from): it runs on the reader of the connection the reply came in
// on, so it never waits for room in from's send buffer (a node that
// stopped reading would stall everything else that connection carries).
// The reply goes in from's buffer as any Reply while the buffer is within
// SendBufferLimit; past it, it is queued anyway and counted against
// ControlBufferLimit, and a reply that would cross that closes from's
// connection with CloseLimitExceeded (its caller's link to the forwarding
// server then fails the Call). A reply that cannot be encoded fails the
// call with a CallFailed frame, as replyRemote does.
func (n *Node) relayReply(from origin, ref uint64, replyTo Address, v any) {
	cn := n.originConn(from)
	if cn == nil {
		return // its caller is failed by its link to the forwarding server
	}
	err := cn.queueRelayed(frameHead{t: wire.TypeReply, to: wireRef(replyTo), ref: ref}, v)
	if err != nil && !errors.Is(err, ErrNodeUnreachable) {
		n.failRemote(from, ref, &CallError{Side: ServerSide, Node: n.id, Reply: true, Type: n.typeNameOf(v), Err: err})
	}
}

// queueRelayed queues the Reply frame h carrying v without waiting, as
// relayReply says: within SendBufferLimit as data, past it as a control
// frame, bounded by ControlBufferLimit. It never writes to the socket
// itself (a write may block): it wakes the writer.
func (c *conn) queueRelayed(h frameHead, v any) error {
	n := c.p.c.n
	sb := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sb)
	body, info, err := c.encodeBody(sb, v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNodeUnreachable
	}
	wasEmpty := len(c.out) == 0
	over := len(c.out) > c.limit
	before := len(c.out)
	var id uint32
	if info != nil {
		id = c.typeNumber(info) // may queue its TypeDef (never counted: see typeNumber)
	}
	out, start := wire.BeginFrame(c.out, h.t)
	out = h.append(out, id, body)
	if over {
		limit := n.cfg.ControlBufferLimit
		size := len(out) - before
		if c.ctlQueued+c.ctlWriting+size > limit {
			c.out = out[:start]
			c.mu.Unlock()
			if c.close(CloseLimitExceeded, &LimitError{Limit: LimitControl, Field: "ControlBufferLimit", Max: limit}) {
				c.p.c.stats.limits[LimitControl].Add(1)
			}
			return ErrNodeUnreachable
		}
		c.ctlQueued += size
	}
	if err := c.commitFrame(out, start); err != nil {
		return err
	}
	c.p.traffic.msgsOut.Add(1)
	if wasEmpty {
		c.kick()
	}
	return nil
}

// originConn is the live connection to the node a Request came from, if
// that run of it is still connected.
func (n *Node) originConn(from origin) *conn {
	if n.cl == nil {
		return nil
	}
	p := n.cl.peer(from.node)
	if p == nil {
		return nil
	}
	if cn := p.live.Load(); cn != nil && cn.peerInc == from.inc {
		return cn
	}
	return nil
}

// failRemote tells the node a Request came from that the call ref failed,
// with a CallFailed frame: its caller fails at once with ce.
func (n *Node) failRemote(from origin, ref uint64, ce *CallError) {
	cn := n.originConn(from)
	if cn == nil {
		return
	}
	part := wire.CallPartRequest
	if ce.Reply {
		part = wire.CallPartReply
	}
	f := wire.CallFailed{CallRef: ref, Node: uint16(ce.Node), Part: part, Code: failCode(ce.Err), Type: ce.Type, Text: ce.Err.Error()}
	_ = cn.appendFrame(wire.TypeCallFailed, func(b []byte) []byte { return wire.AppendCallFailed(b, f) })
}

// failCode is the CallFailed code for err.
func failCode(err error) uint8 {
	switch {
	case errors.Is(err, ErrUnknownType):
		return wire.CallFailedUnknownType
	case errors.Is(err, ErrReservedType):
		return wire.CallFailedReserved
	case errors.Is(err, ErrFrameTooLarge):
		return wire.CallFailedTooLarge
	case errors.Is(err, ErrNodeUnreachable):
		return wire.CallFailedUnreachable
	case errors.Is(err, ErrMailboxClosed):
		return wire.CallFailedNoMailbox
	case errors.Is(err, ErrEncode):
		return wire.CallFailedUnencodable
	case errors.Is(err, ErrDecode):
		return wire.CallFailedUndecodable
	}
	return wire.CallFailedUnencodable
}

// failCause turns a CallFailed frame's code and text back into a condition.
func failCause(f wire.CallFailed) error {
	var kind error
	switch f.Code {
	case wire.CallFailedUnknownType:
		return &TypeError{Type: f.Type}
	case wire.CallFailedUndecodable:
		kind = ErrDecode
	case wire.CallFailedReserved:
		kind = ErrReservedType
	case wire.CallFailedUnencodable:
		kind = ErrEncode
	case wire.CallFailedTooLarge:
		kind = ErrFrameTooLarge
	case wire.CallFailedUnreachable:
		kind = ErrNodeUnreachable
	case wire.CallFailedNoMailbox:
		kind = ErrMailboxClosed
	default:
		kind = fmt.Errorf("reign: call failed (code %d)", f.Code)
	}
	return &remoteCause{kind: kind, text: f.Text}
}

// typeNameOf is the name of v's type as it travels: its registered name,
// or its Go type if it has none.
func (n *Node) typeNameOf(v any) string {
	if v == nil {
		return "nil"
	}
	if info := n.types.forType(reflect.TypeOf(v)); info != nil {
		return info.name
	}
	return reflect.TypeOf(v).String()
}

// answer delivers the answer to oc (a reply value, or failure): to the
// local caller's reply mailbox, or back to the node a forwarded Request
// came from.
func (n *Node) answer(oc outCall, v any, failure *CallError, f *wire.CallFailed) {
	if oc.up.remote {
		switch {
		case f != nil: // a failure further along: pass it on as it is
			g := *f
			g.CallRef = oc.ref
			if cn := n.originConn(oc.up); cn != nil {
				_ = cn.appendFrame(wire.TypeCallFailed, func(b []byte) []byte { return wire.AppendCallFailed(b, g) })
			}
		case failure != nil:
			failure.Side = ServerSide
			n.failRemote(oc.up, oc.ref, failure)
		default:
			n.relayReply(oc.up, oc.ref, oc.caller, v)
		}
		return
	}
	if failure != nil {
		v = failure
	}
	if m := n.table.lookup(oc.caller.id); m == nil || m.push(callReply{ref: oc.ref, value: v}) != nil {
		n.cl.stats.droppedClosed.Add(1) // the caller just stopped waiting
	}
}

// handleRequest delivers a peer's call to a local mailbox. Its ReplyTo
// may name a mailbox of any node (the Request may have been forwarded on
// the way): it is for Request.ReplyTo only; the reply goes back to this
// peer. A body that cannot be decoded, or a mailbox that is closed, is
// answered at once with a CallFailed frame. (For a closed mailbox, the
// caller's link to it says so too, and first: the CallFailed matters when
// the Request was forwarded, and the caller watches another mailbox.)
func handleRequest(c *conn, payload []byte) error {
	m, err := wire.ParseRequest(payload)
	if err != nil {
		return err
	}
	n := c.p.c.n
	from := origin{node: c.p.id, inc: c.peerInc, remote: true}
	mb := c.localMailbox(m.To)
	if mb == nil {
		c.p.c.stats.droppedClosed.Add(1)
		typ := ""
		if m.TypeID > 0 && int(m.TypeID) <= len(c.rnames) {
			typ = c.rnames[m.TypeID-1]
		}
		n.failRemote(from, m.CallRef, &CallError{Side: ServerSide, Node: n.id, Type: typ,
			Err: fmt.Errorf("%w: no mailbox %d of this run of node %d", ErrMailboxClosed, m.To.ID, n.id)})
		return nil
	}
	v, typ, cause, err := c.decodeCallBody(m.TypeID, m.Body)
	if err != nil {
		return err
	}
	if cause != nil {
		n.failRemote(from, m.CallRef, &CallError{Side: ServerSide, Node: n.id, Type: typ, Err: cause})
		return nil
	}
	replyTo := Address{n: n, node: NodeID(m.ReplyTo.Node), inc: m.ReplyTo.Inc, id: m.ReplyTo.ID}
	if mb.push(Request{Body: v, replyTo: replyTo, ref: m.CallRef, from: from}) != nil {
		c.p.c.stats.droppedClosed.Add(1)
	}
	return nil
}

// handleReply takes the answer to a Request this node sent to the peer.
// A Reply for a reference this node does not await from this peer (forged,
// or late: the caller gave up) is dropped and counted. A body the caller's
// node cannot decode fails the call at once.
func handleReply(c *conn, payload []byte) error {
	m, err := wire.ParseReply(payload)
	if err != nil {
		return err
	}
	n := c.p.c.n
	if int(m.TypeID) > len(c.rtypes) {
		// malformed: checked before the record is taken, so that the
		// connection's end still finds (and fails) the call
		return fmt.Errorf("%w: type number %d not defined", wire.ErrMalformed, m.TypeID)
	}
	oc, ok := n.calls.take(m.CallRef, c.p.id, &m.To)
	if !ok {
		c.p.c.stats.droppedUnmatchedReply.Add(1)
		return nil
	}
	v, typ, cause, err := c.decodeCallBody(m.TypeID, m.Body)
	if err != nil {
		return err
	}
	var failure *CallError
	if cause != nil {
		failure = &CallError{Side: CallerSide, Node: n.id, Reply: true, Type: typ, Err: cause}
	}
	n.answer(oc, v, failure, nil)
	return nil
}

// handleCallFailed takes the peer's word that a Request this node sent it
// could not be delivered or answered, under the same rule as a Reply.
func handleCallFailed(c *conn, payload []byte) error {
	f, err := wire.ParseCallFailed(payload)
	if err != nil {
		return err
	}
	n := c.p.c.n
	oc, ok := n.calls.take(f.CallRef, c.p.id, nil)
	if !ok {
		c.p.c.stats.droppedUnmatchedReply.Add(1)
		return nil
	}
	if oc.up.remote {
		n.answer(oc, nil, nil, &f)
		return nil
	}
	n.answer(oc, nil, &CallError{Side: ServerSide, Node: NodeID(f.Node), Reply: f.Part == wire.CallPartReply, Type: f.Type, Err: failCause(f)}, nil)
	return nil
}

// decodeCallBody decodes the body of a Request or Reply of the peer's
// type number id, as decodeValue does (counting and logging what it
// drops), but says why a body cannot be decoded: cause is set, with the
// type's name, for a type unknown here, a reserved one, or bytes the codec
// rejects; err only for a malformed frame.
func (c *conn) decodeCallBody(id uint32, body []byte) (v any, typ string, cause, err error) {
	stats := &c.p.c.stats
	if id == 0 {
		if len(body) != 0 {
			stats.droppedUndecodable.Add(1)
			return nil, "nil", fmt.Errorf("%w: %d bytes of a body without a type", ErrDecode, len(body)), nil
		}
		return nil, "", nil, nil
	}
	if int(id) > len(c.rtypes) {
		return nil, "", nil, fmt.Errorf("%w: type number %d not defined", wire.ErrMalformed, id)
	}
	info, typ := c.rtypes[id-1], c.rnames[id-1]
	if info == nil {
		stats.droppedUnknownType.Add(1)
		cause = &TypeError{Type: typ}
		c.p.logDrop(cause)
		return nil, typ, cause, nil
	}
	v, cause = c.p.c.n.decodeMessage(info, body)
	if cause != nil {
		if !errors.Is(cause, ErrReservedType) { // counted by the type registry
			stats.droppedUndecodable.Add(1)
		}
		c.p.logDrop(cause)
		return nil, typ, cause, nil
	}
	return v, typ, nil, nil
}

// callHook is calls' peerHook.
type callHook struct{}

// peerUp: nothing waits on a new connection.
func (callHook) peerUp(*peer, *conn) {}

// peerDown forgets the calls that went to the lost peer or came from it.
// A forwarded one fails at once: a local caller gets a *CallError wrapping
// ErrNodeUnreachable, a caller on another node a CallFailed. (A Call that
// sent its request straight to the peer fails through its link.)
func (callHook) peerDown(p *peer, _ *conn, _ CloseReason) {
	n := p.c.n
	for _, oc := range n.calls.takePeer(p.id) {
		if oc.owned || oc.peer != p.id {
			continue
		}
		n.answer(oc, nil, &CallError{Side: ServerSide, Node: p.id,
			Err: fmt.Errorf("%w: node %d, which a forwarded request went to, was lost", ErrNodeUnreachable, p.id)}, nil)
	}
}
