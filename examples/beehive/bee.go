package main

import (
	"context"
	"time"

	"github.com/reign-go/reign"
)

// A bee owns one cell of the hello dictionary (one name) and runs the
// application's Rcv for the Hello messages mapped to it, one at a time,
// on its own goroutine. It is the only one in the cluster to count that
// name: see the README's "Who owns a key".
type bee struct {
	h      *hive
	key    string
	name   string // its registry name, beeName(key)
	addr   reign.Address
	mb     *reign.Mailbox
	n      uint64                 // the cell: hellos counted for key
	linked map[reign.Address]bool // other claimants the bee watches
}

// run is the bee's life: for a fresh key, make sure its claim has
// reached every hive it can see; then, until the hive stops or the bee
// hands its cell over, settle any conflicting claim and count hellos.
func (b *bee) run(fresh bool) {
	defer b.h.wg.Done()
	defer b.h.gone(b.key, b.addr)
	defer b.mb.Close() // fails the calls it did not answer: they are sent again
	if fresh {
		b.h.pingPeers()
	}
	var pending []reign.Request // hellos taken while the claim was in conflict
	for {
		if !b.settle() {
			return
		}
		for len(pending) > 0 && b.alone() {
			b.rcv(pending[0])
			pending = pending[1:]
		}
		if len(pending) > 0 {
			continue
		}
		m, err := b.mb.Receive(b.h.ctx)
		if err != nil {
			return
		}
		req, ok := m.(reign.Request)
		if !ok {
			continue // MultipleClaim or a watched claimant's MailboxClosed: settle looks again
		}
		switch body := req.Body.(type) {
		case Hello:
			pending = append(pending, req) // counted once settle finds the claim alone
		case Handover:
			b.takeOver(req, body)
		}
	}
}

// alone reports whether the bee's claim is the only one this node sees.
func (b *bee) alone() bool { return len(b.h.node.LookupAll(b.name)) <= 1 }

// rcv is the application's Rcv for Hello: count, store, reply.
func (b *bee) rcv(req reign.Request) {
	b.n++
	if err := b.h.dict.Put(b.key, b.n); err != nil {
		b.n--
		_ = req.Reply(err)
		return
	}
	b.h.say("hello %s (%d)", b.key, b.n)
	_ = req.Reply(Count{N: b.n, Hive: b.h.node.ID()})
}

// settle returns true once the bee's claim is the only one it sees, and
// false when the bee must stop (it handed its cell over, or the hive is
// stopping). With several claims, the claimant on the lowest node ID
// keeps the key (every node orders claims the same way): the others hand
// their counts to it, then withdraw; the keeper counts nothing until they
// have.
func (b *bee) settle() bool {
	for {
		claims := b.h.node.LookupAll(b.name)
		if len(claims) <= 1 {
			return true
		}
		if keeper := claims[0]; keeper != b.addr {
			if b.yield(keeper) {
				return false
			}
			select { // the keeper went away: look again, once its claim is gone
			case <-b.h.ctx.Done():
				return false
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		for _, c := range claims[1:] {
			if !b.linked[c] {
				b.linked[c] = true
				c.OnCloseNotify(b.addr) // its withdrawal, or its node's loss, wakes us
			}
		}
		ctx, cancel := context.WithTimeout(b.h.ctx, time.Second)
		m, err := b.mb.ReceiveMatch(ctx, func(m any) bool {
			switch m := m.(type) {
			case reign.MailboxClosed, reign.MultipleClaim:
				return true
			case reign.Request:
				_, ok := m.Body.(Handover)
				return ok // hellos wait in the queue, in order
			}
			return false
		})
		cancel()
		if b.h.ctx.Err() != nil {
			return false
		}
		if err == nil {
			if req, ok := m.(reign.Request); ok {
				b.takeOver(req, req.Body.(Handover))
			}
		}
	}
}

// takeOver adds a handed-over count to the cell.
func (b *bee) takeOver(req reign.Request, h Handover) {
	b.n += h.N
	if err := b.h.dict.Put(b.key, b.n); err != nil {
		b.n -= h.N
		_ = req.Reply(err)
		return
	}
	b.h.say("bee %s: took over %d hellos from hive %d, now %d", b.name, h.N, h.From, b.n)
	_ = req.Reply(Count{N: b.n, Hive: b.h.node.ID()})
}

// yield hands the cell to keeper, then drops it from this node's
// dictionary and withdraws the claim. It returns false if keeper did not
// take it.
func (b *bee) yield(keeper reign.Address) bool {
	ctx, cancel := context.WithTimeout(b.h.ctx, 5*time.Second)
	defer cancel()
	if _, err := reign.Call(ctx, keeper, Handover{Name: b.key, N: b.n, From: b.h.node.ID()}); err != nil {
		b.h.say("bee %s: handing over to %v: %v", b.name, keeper, err)
		return false
	}
	if err := b.h.dict.Delete(b.key); err != nil {
		b.h.say("bee %s: %v", b.name, err)
	}
	b.h.node.Unregister(b.name, b.addr)
	b.h.say("bee %s: handed %d hellos to hive %d", b.name, b.n, keeper.NodeID())
	return true
}
