package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/reign-go/reign"
)

// group is the process group of the counter actors, one per node: its
// members are whom a node exchanges state with and broadcasts to.
const group = "counter"

// maxBatch bounds how many messages the actor takes before it saves and
// replies: one synced write for up to this many increments and merges.
const maxBatch = 256

// errOverflow answers an Inc that would overflow the node's entry.
var errOverflow = errors.New("counter: the increment would overflow this node's entry")

// A replica is one node's copy of the counter: an actor (a goroutine
// owning a mailbox in group "counter") that alone reads and writes counts,
// and a syncer that runs the periodic push/pull.
type replica struct {
	node      *reign.Node
	self      reign.Address // the actor's mailbox, a member of group
	inbox     *reign.Mailbox
	counts    GCounter // owned by the actor's goroutine
	store     *store
	interval  time.Duration // between two push/pulls
	broadcast bool          // broadcast the state when this node's entry grows
	say       func(format string, a ...any)
}

// pending is a request answered once the batch is on disk.
type pending struct {
	req reign.Request
	err error
}

// serve is the actor: it takes a batch of messages, applies them to
// counts, saves the entries that grew (synced), then broadcasts if this
// node's own entry grew, then replies. Nothing leaves this node, neither
// a reply nor a broadcast, before it is on disk: no other node can hold
// this node's entry larger than its disk does, so after a restart (even
// kill -9) this node resumes its own entry where every other node has it,
// and its next increments are not hidden by a merge's maximum. It returns
// when ctx ends, or with the error if the store fails (a node that cannot
// persist must not go on counting).
func (r *replica) serve(ctx context.Context) error {
	id := r.node.ID()
	for {
		m, err := r.inbox.Receive(ctx)
		if err != nil {
			return nil // ctx ended
		}
		batch := []any{m}
		for len(batch) < maxBatch {
			m, ok := r.inbox.ReceiveAsync()
			if !ok {
				break
			}
			batch = append(batch, m)
		}
		var replies []pending
		grew := map[reign.NodeID]bool{}
		merge := func(o GCounter) {
			for _, n := range r.counts.Merge(o) {
				grew[n] = true
			}
		}
		for _, m := range batch {
			switch m := m.(type) {
			case reign.Request:
				switch b := m.Body.(type) {
				case Inc:
					if !r.counts.Inc(id, b.Amount) {
						replies = append(replies, pending{m, errOverflow})
						continue
					}
					grew[id] = true
				case PushPull:
					merge(b.Counts)
				case Get:
				default:
					replies = append(replies, pending{m, fmt.Errorf("counter: unknown request %T", b)})
					continue
				}
				replies = append(replies, pending{req: m})
			case Update:
				merge(m.Counts)
			}
		}
		if len(grew) > 0 {
			nodes := make([]reign.NodeID, 0, len(grew))
			for n := range grew {
				nodes = append(nodes, n)
			}
			if err := r.store.Save(r.counts, nodes); err != nil {
				err = fmt.Errorf("counter: saving the state: %w", err)
				for _, p := range replies {
					_ = p.req.Reply(err)
				}
				return err
			}
		}
		// one copy for this batch's messages, read-only from here
		st := r.counts.Clone()
		if grew[id] && r.broadcast {
			// to every member, this actor included (a no-op merge)
			if _, err := r.node.Broadcast(group, Update{Counts: st}); err != nil {
				r.say("broadcast: %v", err)
			}
		}
		for _, p := range replies {
			if p.err != nil {
				_ = p.req.Reply(p.err)
			} else {
				_ = p.req.Reply(State{Counts: st})
			}
		}
	}
}

// sync is the syncer: every interval (with a little jitter) it does a
// push/pull with one random other member of the group, and one with each
// member it sees join (a node that starts late, or restarts, converges at
// once). It returns when ctx ends.
func (r *replica) sync(ctx context.Context) {
	watch, events := r.node.NewMailbox()
	defer events.Close()
	members, err := r.node.MonitorGroup(group, watch)
	if err != nil {
		r.say("monitor group: %v", err)
		return
	}
	for _, a := range members {
		if a.NodeID() != r.node.ID() {
			r.exchange(ctx, a)
		}
	}
	next := time.Now().Add(r.interval)
	for {
		wait, cancel := context.WithDeadline(ctx, next)
		m, err := events.Receive(wait)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil { // the interval is up
			next = time.Now().Add(r.interval/2 + rand.N(r.interval))
			if a, ok := r.randomPeer(); ok {
				r.exchange(ctx, a)
			}
			continue
		}
		gc, ok := m.(reign.GroupChanged)
		if !ok {
			continue
		}
		for _, a := range gc.Left {
			if a.NodeID() != r.node.ID() {
				r.say("member %v on node %d left", a, a.NodeID())
			}
		}
		for _, a := range gc.Joined {
			if a.NodeID() != r.node.ID() {
				r.say("member %v on node %d joined", a, a.NodeID())
				r.exchange(ctx, a)
			}
		}
	}
}

// randomPeer picks one member of the group on another node.
func (r *replica) randomPeer() (reign.Address, bool) {
	var others []reign.Address
	for _, a := range r.node.Members(group) {
		if a.NodeID() != r.node.ID() {
			others = append(others, a)
		}
	}
	if len(others) == 0 {
		return reign.Address{}, false
	}
	return others[rand.N(len(others))], true
}

// exchange is one push/pull, the talk's LocalState/MergeRemoteState as a
// request and its reply: our full state to member, which merges it and
// replies with its own, which our actor merges. A member that dies
// meanwhile fails the Call at once (reign watches it for us).
func (r *replica) exchange(parent context.Context, member reign.Address) {
	ctx, cancel := context.WithTimeout(parent, max(r.interval, 2*time.Second))
	defer cancel()
	mine, err := reign.Call(ctx, r.self, Get{})
	if err != nil {
		return // our actor is stopping
	}
	theirs, err := reign.Call(ctx, member, PushPull{Counts: mine.(State).Counts})
	if err != nil {
		if parent.Err() == nil { // not stopping: say why
			r.say("push/pull with node %d: %v", member.NodeID(), err)
		}
		return
	}
	if st, ok := theirs.(State); ok {
		_ = r.self.Send(Update{Counts: st.Counts})
	}
}
