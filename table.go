package reign

import (
	"sync"
	"sync/atomic"
)

// mailboxTable maps mailbox IDs to a node's open mailboxes. Lookups, done on
// every local send, take no lock: the table is an array of fixed-size chunks
// of atomic slots. A mailbox ID is (generation << 32 | slot): a slot is
// reused after its mailbox closes, with its generation bumped, so the ID of
// a closed mailbox never finds the slot's next occupant.
type mailboxTable struct {
	chunks atomic.Pointer[[]*tableChunk]

	mu   sync.Mutex // guards gens, free, next and growth of chunks
	free []uint32   // free slots, reused last-in first-out
	next uint32     // first never-used slot
	open atomic.Int64
}

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
)

type tableChunk struct {
	slots [chunkSize]atomic.Pointer[Mailbox]
	gens  [chunkSize]uint32 // current generation of each slot; guarded by mailboxTable.mu
}

// add assigns m an ID and makes it reachable.
func (t *mailboxTable) add(m *Mailbox) {
	t.mu.Lock()
	var slot uint32
	if k := len(t.free); k > 0 {
		slot = t.free[k-1]
		t.free = t.free[:k-1]
	} else {
		slot = t.next
		t.next++
	}
	c := t.chunkFor(slot)
	i := slot & (chunkSize - 1)
	c.gens[i]++
	if c.gens[i] == 0 { // after 2^32 reuses of one slot: skip 0, which no ID has
		c.gens[i] = 1
	}
	m.id = uint64(c.gens[i])<<32 | uint64(slot)
	c.slots[i].Store(m)
	t.mu.Unlock()
	t.open.Add(1)
}

// chunkFor returns the chunk holding slot, growing the table if needed.
// Called with t.mu held.
func (t *mailboxTable) chunkFor(slot uint32) *tableChunk {
	ci := int(slot >> chunkBits)
	var cur []*tableChunk
	if p := t.chunks.Load(); p != nil {
		cur = *p
	}
	if ci < len(cur) {
		return cur[ci]
	}
	grown := make([]*tableChunk, ci+1)
	copy(grown, cur)
	for j := len(cur); j <= ci; j++ {
		grown[j] = new(tableChunk)
	}
	t.chunks.Store(&grown)
	return grown[ci]
}

// lookup returns the open mailbox with the given ID, or nil.
func (t *mailboxTable) lookup(id uint64) *Mailbox {
	slot := uint32(id)
	p := t.chunks.Load()
	if p == nil {
		return nil
	}
	chunks := *p
	ci := int(slot >> chunkBits)
	if ci >= len(chunks) {
		return nil
	}
	m := chunks[ci].slots[slot&(chunkSize-1)].Load()
	if m == nil || m.id != id {
		return nil
	}
	return m
}

// remove frees the slot of the mailbox with the given ID.
func (t *mailboxTable) remove(id uint64) {
	slot := uint32(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.chunks.Load()
	if p == nil || int(slot>>chunkBits) >= len(*p) {
		return
	}
	c := (*p)[slot>>chunkBits]
	i := slot & (chunkSize - 1)
	if m := c.slots[i].Load(); m == nil || m.id != id {
		return
	}
	c.slots[i].Store(nil)
	t.free = append(t.free, slot)
	t.open.Add(-1)
}

// existed reports whether id was once given to a mailbox of this table (and
// so, if lookup no longer finds it, that mailbox has closed).
func (t *mailboxTable) existed(id uint64) bool {
	slot, gen := uint32(id), uint32(id>>32)
	if gen == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if slot >= t.next {
		return false
	}
	p := t.chunks.Load()
	return gen <= (*p)[slot>>chunkBits].gens[slot&(chunkSize-1)]
}

// each calls fn for every mailbox open in the table, without taking the
// table's lock: a mailbox added or removed meanwhile may or may not be
// seen. It is for introspection (Node.Snapshot), never for routing.
func (t *mailboxTable) each(fn func(m *Mailbox)) {
	p := t.chunks.Load()
	if p == nil {
		return
	}
	for _, c := range *p {
		for i := range c.slots {
			if m := c.slots[i].Load(); m != nil {
				fn(m)
			}
		}
	}
}

// count returns the number of open mailboxes.
func (t *mailboxTable) count() int { return int(t.open.Load()) }
