package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

// leader is the leader's side of a member, alive while it leads: one
// mailbox, registered as "hedge/leader", served by one goroutine that
// owns the semaphores.
type leader struct {
	h    *Hedge
	addr reign.Address
	mb   *reign.Mailbox
	done chan struct{}

	// owned by the serving goroutine
	sems   map[string]*semState
	linked map[reign.Address]bool // holders this mailbox watches

	mu       sync.Mutex
	upToDate map[reign.Address]bool // members known to hold the whole log
}

// semState is one semaphore: its slots, and the acquires queued for one.
type semState struct {
	limit   int
	holders map[uint64]Slot // by token
	waiters []waiter
}

type waiter struct {
	slot Slot
	req  reign.Request
}

// newLeader makes the leader's mailbox, with the slots the members said
// they hold (a new leader learns them from its predecessor's followers).
func newLeader(h *Hedge, slots []Slot) *leader {
	l := &leader{h: h, done: make(chan struct{}), sems: map[string]*semState{},
		linked: map[reign.Address]bool{}, upToDate: map[reign.Address]bool{}}
	l.addr, l.mb = h.node.NewMailbox()
	for _, s := range slots {
		st := l.sem(s.Name, s.Limit)
		st.holders[s.Token] = s
		l.link(s.Holder)
	}
	return l
}

// serve handles the leader's mailbox until it closes.
func (l *leader) serve() {
	defer close(l.done)
	for {
		m, err := l.mb.Receive(context.Background())
		if err != nil {
			return // closed by stepDown
		}
		switch m := m.(type) {
		case reign.Request:
			l.handle(m)
		case reign.MailboxClosed: // a holder's member mailbox, or its node, is gone
			l.holderLost(m.Address, m.Reason)
		case reign.MultipleClaim:
			l.h.logf("node %d: %s is claimed by several nodes", l.h.node.ID(), m.Name) // the election resolves it
		}
	}
}

func (l *leader) handle(req reign.Request) {
	switch m := req.Body.(type) {
	case SendMsg:
		out, err := l.h.onSend(reign.NodeID(m.From), m.Data)
		if err != nil {
			_ = req.Reply(err)
			return
		}
		_ = req.Reply(Reply{Data: out})
	case PutMsg:
		idx, err := l.put(m.Key, m.Value)
		if err != nil {
			_ = req.Reply(err)
			return
		}
		_ = req.Reply(Ack{Index: idx})
	case AcquireMsg:
		l.acquire(req, m)
	case ReleaseMsg:
		l.release(m.Name, m.Token)
		_ = req.Reply(Ack{})
	default:
		_ = req.Reply(fmt.Errorf("hedge: the leader got %T", req.Body))
	}
}

// put appends the entry to the leader's log, then to every member it
// can reach, and succeeds once a majority of the spec's nodes (the leader
// included) has it on disk.
func (l *leader) put(key, value string) (uint64, error) {
	last, err := l.h.store.Last()
	if err != nil {
		return 0, err
	}
	e := Entry{Index: last + 1, Key: key, Value: value, Leader: uint16(l.h.node.ID()), Time: time.Now().UnixNano()}
	if _, err := l.h.store.Append([]Entry{e}); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms := l.h.members()
	acks := make(chan bool, len(ms))
	for _, m := range ms {
		if m.ID == l.h.node.ID() {
			acks <- true
			continue
		}
		go func() { acks <- l.replicate(ctx, m.Addr, []Entry{e}) == nil }()
	}
	n := 0
	for range ms {
		if <-acks {
			n++
		}
	}
	if !l.h.quorum(n) {
		return 0, fmt.Errorf("hedge: entry %d is on %d of %d nodes, not a majority", e.Index, n, len(l.h.nodes))
	}
	return e.Index, nil
}

// replicate sends entries to the member at to, then whatever else of the
// log it lacks, until it has the whole log as of now.
func (l *leader) replicate(ctx context.Context, to reign.Address, entries []Entry) error {
	last, err := l.h.store.Last()
	if err != nil {
		return err
	}
	for {
		v, err := reign.Call(ctx, to, AppendMsg{Leader: l.addr, Entries: entries})
		if err != nil {
			l.mu.Lock()
			delete(l.upToDate, to)
			l.mu.Unlock()
			return err
		}
		got := v.(Ack).Index
		if got >= last {
			l.mu.Lock()
			l.upToDate[to] = true
			l.mu.Unlock()
			return nil
		}
		if entries, err = l.h.store.Since(got+1, syncBatch); err != nil {
			return err
		}
	}
}

// catchUp brings every member not known to hold the whole log (one that
// joined, or restarted) up to date.
func (l *leader) catchUp(ctx context.Context, ms []member) {
	for _, m := range ms {
		l.mu.Lock()
		ok := l.upToDate[m.Addr]
		l.mu.Unlock()
		if ok || m.ID == l.h.node.ID() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := l.replicate(cctx, m.Addr, nil); err != nil {
			l.h.logf("catch up node %d: %v", m.ID, err)
		}
		cancel()
	}
}

func (l *leader) sem(name string, limit int) *semState {
	s := l.sems[name]
	if s == nil {
		s = &semState{limit: limit, holders: map[uint64]Slot{}}
		l.sems[name] = s
	}
	return s
}

// link watches a holder's member mailbox: when it closes, or its node is
// lost, MailboxClosed frees its slots.
func (l *leader) link(holder reign.Address) {
	if !l.linked[holder] {
		l.linked[holder] = true
		holder.OnCloseNotify(l.addr)
	}
}

func (l *leader) acquire(req reign.Request, m AcquireMsg) {
	s := l.sem(m.Slot.Name, m.Slot.Limit)
	switch {
	case s.limit != m.Slot.Limit:
		_ = req.Reply(fmt.Errorf("hedge: semaphore %q has limit %d, not %d", m.Slot.Name, s.limit, m.Slot.Limit))
	case s.holders[m.Slot.Token].Token != 0: // a retry of a granted acquire
		_ = req.Reply(Granted{OK: true})
	case len(s.holders) < s.limit:
		s.holders[m.Slot.Token] = m.Slot
		l.link(m.Slot.Holder)
		_ = req.Reply(Granted{OK: true})
	case m.Wait:
		s.waiters = append(s.waiters, waiter{slot: m.Slot, req: req})
		l.link(m.Slot.Holder)
	default:
		_ = req.Reply(Granted{OK: false})
	}
}

func (l *leader) release(name string, token uint64) {
	s := l.sems[name]
	if s == nil {
		return
	}
	delete(s.holders, token)
	for i, w := range s.waiters {
		if w.slot.Token == token {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			break
		}
	}
	l.grant(s)
}

// grant gives free slots to the oldest waiters.
func (l *leader) grant(s *semState) {
	for len(s.holders) < s.limit && len(s.waiters) > 0 {
		w := s.waiters[0]
		s.waiters = s.waiters[1:]
		s.holders[w.slot.Token] = w.slot
		_ = w.req.Reply(Granted{OK: true})
	}
}

// holderLost frees every slot, and drops every queued acquire, of the
// member mailbox at a.
func (l *leader) holderLost(a reign.Address, why reign.Reason) {
	delete(l.linked, a)
	freed := 0
	for _, s := range l.sems {
		for tok, slot := range s.holders {
			if slot.Holder == a {
				delete(s.holders, tok)
				freed++
			}
		}
		s.waiters = dropHolder(s.waiters, a)
		l.grant(s)
	}
	l.h.logf("node %d's member is gone (%v): %d semaphore slots released", a.NodeID(), why, freed)
}

func dropHolder(ws []waiter, a reign.Address) []waiter {
	out := ws[:0]
	for _, w := range ws {
		if w.slot.Holder != a {
			out = append(out, w)
		}
	}
	return out
}
