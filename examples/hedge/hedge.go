package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

// The registry names hedge uses.
const (
	leaderName   = "hedge/leader"
	memberPrefix = "hedge/member/"
)

// Messages between members. Each travels as the Body of a reign.Call.
type (
	// SendMsg is Send's request to the leader.
	SendMsg struct {
		From uint16
		Data []byte
	}
	// BroadcastMsg is Broadcast's request to each member.
	BroadcastMsg struct {
		From uint16
		Data []byte
	}
	// Reply is the answer of a leader or broadcast handler.
	Reply struct{ Data []byte }
	// PutMsg asks the leader to append Key = Value; it replies Ack.
	PutMsg struct{ Key, Value string }
	// AppendMsg is the leader replicating its log to a member; the member
	// replies Ack with its last index.
	AppendMsg struct {
		Leader  reign.Address
		Entries []Entry
	}
	// Ack carries a log index.
	Ack struct{ Index uint64 }
	// SyncMsg asks a member, by a new leader, for its log from index From
	// on and for the semaphore slots it holds.
	SyncMsg struct{ From uint64 }
	// SyncReply answers SyncMsg.
	SyncReply struct {
		Entries []Entry
		Slots   []Slot
		Leaders []reign.Address // the claims of hedge/leader the member sees
	}
	// AcquireMsg asks the leader for a slot of a semaphore. Token names
	// the slot (a retry with the same token is not a second slot); Holder
	// is the member mailbox whose loss frees it.
	AcquireMsg struct {
		Slot Slot
		Wait bool // queue until a slot frees, rather than answer false
	}
	// Granted answers AcquireMsg.
	Granted struct{ OK bool }
	// ReleaseMsg gives a slot back (or withdraws a queued AcquireMsg).
	ReleaseMsg struct {
		Name  string
		Token uint64
	}
	// Slot is one held (or wanted) slot of a semaphore.
	Slot struct {
		Name   string
		Limit  int
		Token  uint64
		Holder reign.Address
	}
)

// messageTypes cross between nodes: every member registers them.
var messageTypes = []any{SendMsg{}, BroadcastMsg{}, Reply{}, PutMsg{}, AppendMsg{}, Ack{},
	SyncMsg{}, SyncReply{}, AcquireMsg{}, Granted{}, ReleaseMsg{}, Slot{}, Entry{}}

// ErrNoLeader is returned when no leader is reachable before the context
// ends.
var ErrNoLeader = errors.New("hedge: no leader")

// A Handler answers a Send (on the leader) or a Broadcast (on every
// member): from is the sender's node.
type Handler func(from reign.NodeID, msg []byte) ([]byte, error)

// Hedge is one member. Its methods are safe for concurrent use.
type Hedge struct {
	node      *reign.Node
	nodes     []reign.NodeID // the cluster spec's nodes
	store     *Store
	onSend    Handler
	onBcast   Handler
	logf      func(format string, args ...any)
	self      reign.Address // the member mailbox, "hedge/member/<id>"
	selfMB    *reign.Mailbox
	mu        sync.Mutex
	held      map[uint64]Slot // the semaphore slots this member holds, by token
	lead      *leader         // non-nil while this member leads
	leaderWas reign.NodeID    // for the log: the leader this member last saw
}

// New makes a member on node (which must have messageTypes registered),
// keeping the log in store.
func New(node *reign.Node, spec *reign.ClusterSpec, store *Store, onSend, onBcast Handler, logf func(string, ...any)) *Hedge {
	h := &Hedge{node: node, store: store, onSend: onSend, onBcast: onBcast, logf: logf, held: map[uint64]Slot{}}
	for _, ns := range spec.Nodes {
		h.nodes = append(h.nodes, ns.ID)
	}
	slices.Sort(h.nodes)
	h.self, h.selfMB = node.NewMailbox()
	return h
}

// Run registers the member and serves it (its mailbox, and the election)
// until ctx ends. The node must be serving.
func (h *Hedge) Run(ctx context.Context) error {
	defer h.selfMB.Close()
	if err := h.node.Register(memberPrefix+strconv.Itoa(int(h.node.ID())), h.self); err != nil {
		return err
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { h.elect(ctx) })
	for {
		m, err := h.selfMB.Receive(ctx)
		if err != nil {
			cancel()
			wg.Wait() // no election after this
			h.stepDown("stopping")
			return nil
		}
		if req, ok := m.(reign.Request); ok {
			_ = req.Reply(h.serveMember(req.Body))
		}
	}
}

// member is a member seen through the registry.
type member struct {
	ID   reign.NodeID
	Addr reign.Address
}

// members returns the members this node can reach now, itself included,
// by node ID: the spec's nodes whose "hedge/member/<id>" name is claimed.
// (The one function to switch to process groups, JoinGroup/Members, when
// the library has them.)
func (h *Hedge) members() []member {
	var out []member
	for _, id := range h.nodes {
		if id == h.node.ID() {
			out = append(out, member{id, h.self})
		} else if a, ok := h.node.Lookup(memberPrefix + strconv.Itoa(int(id))); ok && a.NodeID() == id {
			out = append(out, member{id, a})
		}
	}
	return out
}

// quorum says whether n members are a majority of the spec's nodes.
func (h *Hedge) quorum(n int) bool { return 2*n > len(h.nodes) }

// Leader returns the leader's node, if exactly one member claims the
// leadership now.
func (h *Hedge) Leader() (reign.NodeID, bool) {
	claims := h.node.LookupAll(leaderName)
	if len(claims) != 1 {
		return 0, false
	}
	return claims[0].NodeID(), true
}

// elect runs the election every tick until ctx ends: a member that sees a
// majority of the spec's nodes, no leader, and no lower node ID than its
// own takes office; a leader that loses the majority, or finds a lower
// node claiming the leadership too (MultipleClaim), steps down.
func (h *Hedge) elect(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ms := h.members()
		claims := h.node.LookupAll(leaderName)
		h.mu.Lock()
		lead := h.lead
		h.mu.Unlock()
		switch {
		case lead != nil && !h.quorum(len(ms)):
			h.stepDown(fmt.Sprintf("sees %d of %d nodes, no majority", len(ms), len(h.nodes)))
		case lead != nil && len(claims) > 1 && claims[0].NodeID() < h.node.ID():
			h.stepDown(fmt.Sprintf("node %d claims the leadership too, and the lowest ID keeps it", claims[0].NodeID()))
		case lead != nil:
			lead.catchUp(ctx, ms)
		case h.quorum(len(ms)) && len(claims) == 0 && ms[0].ID == h.node.ID():
			h.takeOffice(ctx, ms)
		}
		if id, ok := h.Leader(); ok && id != h.leaderWas {
			h.leaderWas = id
			h.logf("leader is node %d", id)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// takeOffice pulls what the other members have that this one lacks (log
// entries, held semaphore slots), then claims the leadership, unless a
// member it asked sees a leader already (a node that has just
// reconnected may see the others' member names before their leader's
// claim).
func (h *Hedge) takeOffice(ctx context.Context, ms []member) {
	h.mu.Lock()
	var slots []Slot
	for _, s := range h.held {
		slots = append(slots, s)
	}
	h.mu.Unlock()
	answered := 1
	for _, m := range ms {
		if m.ID == h.node.ID() {
			continue
		}
		leaders, err := h.pull(ctx, m, &slots)
		if err != nil {
			h.logf("sync from node %d: %v", m.ID, err)
			continue
		}
		if len(leaders) > 0 {
			return // m sees a leader this member has not heard of yet (the registry is still syncing)
		}
		answered++
	}
	if !h.quorum(answered) {
		return // try again on the next tick
	}
	l := newLeader(h, slots)
	if err := h.node.Register(leaderName, l.addr); err != nil {
		l.mb.Close()
		h.logf("claim the leadership: %v", err)
		return
	}
	h.mu.Lock()
	h.lead = l
	h.mu.Unlock()
	last, _ := h.store.Last()
	h.logf("node %d takes the leadership (log at %d, %d semaphore slots held)", h.node.ID(), last, len(slots))
	go l.serve() // ended by stepDown, which waits for it
}

// pull copies m's log entries past this member's last one, adds the
// slots m holds to slots, and returns the leadership claims m sees.
func (h *Hedge) pull(ctx context.Context, m member, slots *[]Slot) ([]reign.Address, error) {
	for {
		last, err := h.store.Last()
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := reign.Call(cctx, m.Addr, SyncMsg{From: last + 1})
		cancel()
		if err != nil {
			return nil, err
		}
		r, ok := v.(SyncReply)
		if !ok {
			return nil, fmt.Errorf("hedge: sync reply is %T", v)
		}
		if _, err := h.store.Append(r.Entries); err != nil {
			return nil, err
		}
		if len(r.Entries) < syncBatch {
			*slots = append(*slots, r.Slots...)
			return r.Leaders, nil
		}
	}
}

const syncBatch = 1000

// stepDown ends this member's leadership, if it leads: the leader's
// mailbox closes, which withdraws its claim and fails the calls waiting on
// it (their callers retry with the next leader).
func (h *Hedge) stepDown(why string) {
	h.mu.Lock()
	l := h.lead
	h.lead = nil
	h.mu.Unlock()
	if l == nil {
		return
	}
	l.mb.Close()
	<-l.done
	h.logf("node %d steps down: %s", h.node.ID(), why)
}

// serveMember answers a request to this member.
func (h *Hedge) serveMember(body any) any {
	switch m := body.(type) {
	case BroadcastMsg:
		out, err := h.onBcast(reign.NodeID(m.From), m.Data)
		if err != nil {
			return err
		}
		return Reply{Data: out}
	case AppendMsg:
		// only from the one leader this member sees: a member whose view
		// has two claims (or another one) helps no one reach a majority
		claims := h.node.LookupAll(leaderName)
		if len(claims) != 1 || claims[0] != m.Leader {
			return fmt.Errorf("hedge: node %d does not see %v as the only leader (claims: %v)", h.node.ID(), m.Leader, claims)
		}
		last, err := h.store.Append(m.Entries)
		if err != nil {
			return err
		}
		return Ack{Index: last}
	case SyncMsg:
		entries, err := h.store.Since(m.From, syncBatch)
		if err != nil {
			return err
		}
		h.mu.Lock()
		var slots []Slot
		for _, s := range h.held {
			slots = append(slots, s)
		}
		h.mu.Unlock()
		return SyncReply{Entries: entries, Slots: slots, Leaders: h.node.LookupAll(leaderName)}
	}
	return fmt.Errorf("hedge: member got %T", body)
}

// callLeader calls the leader with body, retrying (every 50 ms) while
// there is none or it is lost before replying, until ctx ends.
func (h *Hedge) callLeader(ctx context.Context, body any) (any, error) {
	for {
		claims := h.node.LookupAll(leaderName)
		if len(claims) == 1 {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			v, err := reign.Call(cctx, claims[0], body)
			cancel()
			if err == nil || !(errors.Is(err, reign.ErrMailboxClosed) || errors.Is(err, reign.ErrNodeUnreachable)) {
				return v, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Send sends msg to the leader's Send handler and returns its reply.
func (h *Hedge) Send(ctx context.Context, msg []byte) ([]byte, error) {
	v, err := h.callLeader(ctx, SendMsg{From: uint16(h.node.ID()), Data: msg})
	if err != nil {
		return nil, err
	}
	return v.(Reply).Data, nil
}

// A BroadcastResult is one member's answer to Broadcast.
type BroadcastResult struct {
	Node  reign.NodeID
	Reply []byte
	Err   error
}

// Broadcast sends msg to the broadcast handler of every member, this one
// included, at once, and returns their answers by node ID.
func (h *Hedge) Broadcast(ctx context.Context, msg []byte) []BroadcastResult {
	ms := h.members()
	out := make([]BroadcastResult, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			out[i].Node = m.ID
			v, err := reign.Call(ctx, m.Addr, BroadcastMsg{From: uint16(h.node.ID()), Data: msg})
			if err != nil {
				out[i].Err = err
				return
			}
			out[i].Reply = v.(Reply).Data
		})
	}
	wg.Wait()
	return out
}

// Put appends key = value to the store, through the leader; it returns
// the entry's index once a majority of the nodes has it on disk. A Put
// that fails may still be in the log (append-only: it is not undone).
func (h *Hedge) Put(ctx context.Context, key, value string) (uint64, error) {
	v, err := h.callLeader(ctx, PutMsg{Key: key, Value: value})
	if err != nil {
		return 0, err
	}
	return v.(Ack).Index, nil
}

// Get reads key's latest value from this member's copy of the log: every
// Put acknowledged while this member was reachable is in it.
func (h *Hedge) Get(key string) (string, bool, error) { return h.store.Get(key) }
