package reign

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// Mailbox is the receiving end of an Address: the queue of messages sent to
// it. It stays in the process that made it (Node.NewMailbox); its Address can
// go anywhere.
//
// A Mailbox is passive: it has no goroutine of its own. Messages wait in an
// unbounded FIFO queue (Erlang's choice) until a receiver takes them;
// receivers wait on their own goroutines. All methods are safe for
// concurrent use, though a mailbox usually has one receiving goroutine.
type Mailbox struct {
	mu      sync.Mutex
	buf     []any         // ring buffer of queued messages; nil while never used
	head    int32         // index in buf of the oldest message; -1 once closed
	count   int32         // number of queued messages
	peak    int32         // the most messages queued since the queue last emptied
	pushes  atomic.Uint32 // bumped by every push: a receiver watches it briefly before it parks
	id      uint64
	n       *Node
	waiters *waiter              // receivers waiting for a message, newest first
	links   map[Address]struct{} // who to tell when this mailbox closes; nil if none
}

// isClosed reports whether Close has run. The caller holds m.mu.
func (m *Mailbox) isClosed() bool { return m.head < 0 }

// A waiter is one blocked receiver. Waiters are pooled, so waiting allocates
// nothing in steady state.
type waiter struct {
	ch     chan struct{} // capacity 1: a push or Close wakes the receiver
	next   *waiter
	linked bool // on its mailbox's waiters list (guarded by the mailbox's mu)
}

// waiterPool caches waiters; it holds no state of any node.
var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// shrinkAbove is the buffer size beyond which an emptied queue may give its
// buffer back, so a burst does not pin memory for the mailbox's lifetime.
const shrinkAbove = 1024

// keepAtMost is the largest buffer (in slots, 16 bytes each) a drained queue
// keeps.
const keepAtMost = 1 << 16

// Address returns the mailbox's Address.
func (m *Mailbox) Address() Address {
	return Address{n: m.n, id: m.id, inc: m.n.inc, node: m.n.id}
}

// Len returns the number of messages waiting in the mailbox.
func (m *Mailbox) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int(m.count)
}

// push appends v to the queue and wakes the waiting receivers.
func (m *Mailbox) push(v any) error {
	m.mu.Lock()
	if m.isClosed() {
		m.mu.Unlock()
		return ErrMailboxClosed
	}
	if int(m.count) == len(m.buf) {
		m.grow()
	}
	i := int(m.head) + int(m.count)
	if i >= len(m.buf) {
		i -= len(m.buf)
	}
	m.buf[i] = v
	m.count++
	m.pushes.Add(1)
	if m.count > m.peak {
		m.peak = m.count
	}
	w := m.detachWaiters()
	m.mu.Unlock()
	wakeAll(w)
	return nil
}

// pushMany appends vs to the queue, in order, under one acquisition of the
// lock, and wakes the waiting receivers: all of vs are queued, or none if
// the mailbox is closed (ErrMailboxClosed). The connection's reader hands
// it the messages of consecutive frames for one mailbox.
func (m *Mailbox) pushMany(vs []any) error {
	m.mu.Lock()
	if m.isClosed() {
		m.mu.Unlock()
		return ErrMailboxClosed
	}
	for len(m.buf)-int(m.count) < len(vs) {
		m.grow()
	}
	size := len(m.buf)
	i := int(m.head) + int(m.count)
	if i >= size {
		i -= size
	}
	k := copy(m.buf[i:], vs)
	copy(m.buf, vs[k:])
	m.count += int32(len(vs))
	m.pushes.Add(uint32(len(vs)))
	if m.count > m.peak {
		m.peak = m.count
	}
	w := m.detachWaiters()
	m.mu.Unlock()
	wakeAll(w)
	return nil
}

// detachWaiters takes the whole waiters list off the mailbox, for wakeAll.
// The caller holds m.mu.
func (m *Mailbox) detachWaiters() *waiter {
	w := m.waiters
	m.waiters = nil
	for x := w; x != nil; x = x.next {
		x.linked = false
	}
	return w
}

// wakeAll wakes a detached list of waiters. The list must have been
// detached under the mailbox's lock; next is read before each wake, since a
// woken waiter may be reused at once.
func wakeAll(w *waiter) {
	for w != nil {
		next := w.next
		w.next = nil
		select {
		case w.ch <- struct{}{}:
		default:
		}
		w = next
	}
}

// grow doubles the ring buffer, keeping the messages in order.
func (m *Mailbox) grow() {
	size := 2 * len(m.buf)
	if size == 0 {
		size = 8
	}
	nb := make([]any, size)
	if m.count > 0 {
		k := copy(nb, m.buf[m.head:])
		if k < int(m.count) {
			copy(nb[k:], m.buf[:int(m.count)-k])
		}
	}
	m.buf = nb
	m.head = 0
}

// take removes and returns the message at position i of the queue (0 is
// the oldest), moving whichever side of the queue is shorter.
func (m *Mailbox) take(i int) any {
	size := len(m.buf)
	head := int(m.head)
	at := head + i
	if at >= size {
		at -= size
	}
	v := m.buf[at]
	last := int(m.count) - 1
	switch {
	case i == 0:
		m.buf[at] = nil
		head++
		if head == size {
			head = 0
		}
		m.head = int32(head)
	case i == last:
		m.buf[at] = nil
	case i < last-i:
		// shift the i older messages one place towards the tail
		for j := i; j > 0; j-- {
			to := head + j
			if to >= size {
				to -= size
			}
			from := to - 1
			if from < 0 {
				from += size
			}
			m.buf[to] = m.buf[from]
		}
		m.buf[head] = nil
		head++
		if head == size {
			head = 0
		}
		m.head = int32(head)
	default:
		// shift the newer messages one place towards the head
		for j := i; j < last; j++ {
			to := head + j
			if to >= size {
				to -= size
			}
			from := to + 1
			if from >= size {
				from -= size
			}
			m.buf[to] = m.buf[from]
		}
		end := head + last
		if end >= size {
			end -= size
		}
		m.buf[end] = nil
	}
	m.count--
	if m.count == 0 {
		m.head = 0
		// Give back a large buffer when the burst that just drained used
		// a small part of it, or when it is very large: a queue under
		// steady traffic keeps its buffer instead of regrowing it from 8
		// slots after every drain, and an idle mailbox never pins more
		// than keepAtMost slots.
		if size > shrinkAbove && (int(m.peak) < size/4 || size > keepAtMost) {
			m.buf = nil
		}
		m.peak = 0
	}
	return v
}

// find returns the queue position of the first message from position from
// on that match accepts, or -1. A nil match accepts anything. The caller holds m.mu; if match
// panics, the caller's deferred unlock releases it.
func (m *Mailbox) find(match func(any) bool, from int) int {
	count := int(m.count)
	if from >= count {
		return -1
	}
	if match == nil {
		return from
	}
	size := len(m.buf)
	start := int(m.head) + from
	if start >= size {
		start -= size
	}
	// the messages from..count-1 lie in buf[start:] and then from buf[0]
	n := count - from
	first := m.buf[start:]
	if len(first) > n {
		first = first[:n]
	}
	for i, v := range first {
		if match(v) {
			return from + i
		}
	}
	for i, v := range m.buf[:n-len(first)] {
		if match(v) {
			return from + len(first) + i
		}
	}
	return -1
}

// A scan remembers how much of the queue one receive has already looked
// at: while no message has been taken since, the first count messages are
// the same ones and match already refused them, so a receive woken by a
// new message looks only at what is new (as Erlang's receive does), not
// at the whole queue again.
type scan struct {
	pushes uint32 // m.pushes when the scan ended
	count  int32  // m.count when the scan ended
	valid  bool
}

// tryTake takes the first message match accepts. It reports closed if the
// mailbox is closed (and so nothing can arrive); if w is non-nil and
// nothing matched, w is put on the waiters list before the lock is
// released, so no push can be missed.
func (m *Mailbox) tryTake(match func(any) bool, w *waiter, sc *scan) (v any, ok, closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from := 0
	pushes := m.pushes.Load()
	if sc != nil && sc.valid && int32(pushes-sc.pushes) == m.count-sc.count {
		from = int(sc.count) // nothing was taken since: skip what was refused
	}
	if i := m.find(match, from); i >= 0 {
		return m.take(i), true, false
	}
	if m.isClosed() {
		return nil, false, true
	}
	if sc != nil {
		*sc = scan{pushes: pushes, count: m.count, valid: true}
	}
	if w != nil {
		w.next = m.waiters
		w.linked = true
		m.waiters = w
	}
	return nil, false, false
}

// Receive returns the oldest message, waiting for one if the mailbox is
// empty. A message already queued is returned even if ctx is already done;
// ctx only bounds the wait. If ctx ends first, Receive returns ctx.Err()
// and has consumed nothing, and leaves nothing behind that could take a
// later message. Receive on a closed mailbox returns ErrMailboxClosed.
func (m *Mailbox) Receive(ctx context.Context) (any, error) {
	return m.receive(ctx, nil)
}

// ReceiveMatch returns the first queued message, oldest first, for which
// match returns true, waiting for one if there is none; the messages it
// passes over stay queued in order (Erlang's selective receive). Its cost is
// proportional to the number of messages match has to look at.
//
// match is called with the mailbox locked: it must be a quick test of the
// message that does not call methods of this Mailbox or send to it, and
// give the same answer for the same message throughout one call (like an
// Erlang pattern): a ReceiveMatch that waits looks only at messages that
// arrive after its last look, not at the whole queue again.
//
// Contexts and closing behave as for Receive.
func (m *Mailbox) ReceiveMatch(ctx context.Context, match func(any) bool) (any, error) {
	return m.receive(ctx, match) // a nil match takes the oldest message
}

// ReceiveAsync returns the oldest message, if there is one, without waiting.
func (m *Mailbox) ReceiveAsync() (any, bool) {
	v, ok, _ := m.tryTake(nil, nil, nil)
	return v, ok
}

// ReceiveMatchAsync returns the first message for which match returns true,
// if there is one, without waiting. match is called as by ReceiveMatch.
func (m *Mailbox) ReceiveMatchAsync(match func(any) bool) (any, bool) {
	v, ok, _ := m.tryTake(match, nil, nil) // a nil match takes the oldest
	return v, ok
}

func (m *Mailbox) receive(ctx context.Context, match func(any) bool) (any, error) {
	var sc scan
	if v, ok, closed := m.tryTake(match, nil, &sc); ok {
		return v, nil
	} else if closed {
		return nil, ErrMailboxClosed
	}
	if v, ok := m.spin(match, &sc); ok {
		return v, nil
	}
	done := ctx.Done()
	w := waiterPool.Get().(*waiter)
	defer waiterPool.Put(w)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, ok, closed := m.tryTake(match, w, &sc)
		if ok {
			return v, nil
		}
		if closed {
			return nil, ErrMailboxClosed
		}
		select {
		case <-w.ch:
			// a push or Close detached w from the list; look again
		case <-done:
			return m.cancelWait(w, match, ctx.Err())
		}
	}
}

// spinRounds is how many times a receiver yields, watching for a push,
// before it parks. Parking and waking a goroutine costs a few hundred
// nanoseconds each way; a brief spin lets two busy goroutines exchanging
// messages skip both, and costs little when nothing comes.
const spinRounds = 8

// spin yields the processor a few times while watching for a push, and
// takes a matching message if one arrives.
func (m *Mailbox) spin(match func(any) bool, sc *scan) (any, bool) {
	seen := m.pushes.Load()
	for i := 0; i < spinRounds; i++ {
		runtime.Gosched()
		if now := m.pushes.Load(); now != seen {
			seen = now
			if v, ok, closed := m.tryTake(match, nil, sc); ok || closed {
				return v, ok
			}
		}
	}
	return nil, false
}

// cancelWait takes w off the waiters list after ctx ended. If a push
// already detached it, its wake-up is drained so the pooled waiter is
// clean. A message that matched in the meantime is still returned.
func (m *Mailbox) cancelWait(w *waiter, match func(any) bool, err error) (any, error) {
	m.mu.Lock()
	wasLinked := w.linked
	if wasLinked {
		for p := &m.waiters; *p != nil; p = &(*p).next {
			if *p == w {
				*p = w.next
				break
			}
		}
		w.next = nil
		w.linked = false
	}
	m.mu.Unlock()
	if !wasLinked {
		<-w.ch // the waker detached w and is sending (or has sent) its token
	}
	if v, ok, _ := m.tryTake(match, nil, nil); ok {
		return v, nil
	}
	return nil, err
}

// Close closes the mailbox: queued messages are discarded, later sends to
// it fail (locally with ErrMailboxClosed), receivers waiting on it return
// ErrMailboxClosed, every Address registered with OnCloseNotify receives a
// MailboxClosed with reason Normal, and its registry names are released.
// Close is idempotent. It is CloseWithError(nil).
func (m *Mailbox) Close() { m.CloseWithError(nil) }

// CloseWithError closes the mailbox as Close does, with a cause, as
// io.PipeWriter.CloseWithError does: the Erlang process's exit reason. A
// nil err is a normal close. A non-nil err is an abnormal one: watchers
// receive a MailboxClosed with reason Abnormal and Err set to err (on
// another node, a *RemoteError with its text), and a Call waiting on this
// mailbox fails with an error that wraps both ErrMailboxClosed and err.
// Only the first Close or CloseWithError has an effect.
func (m *Mailbox) CloseWithError(err error) {
	m.mu.Lock()
	if m.isClosed() {
		m.mu.Unlock()
		return
	}
	clear(m.buf)
	m.buf, m.head, m.count = nil, -1, 0
	w := m.detachWaiters()
	links := m.links
	m.links = nil
	m.mu.Unlock()

	m.n.table.remove(m.id)
	wakeAll(w)
	if m.n.cfg.Tracer != nil {
		reason := Normal
		if err != nil {
			reason = Abnormal
		}
		m.n.traceClose(m.Address(), reason)
	}
	m.n.mailboxClosed(m.Address(), links, err)
	m.n.pg.release(m.Address()) // groups.go: leave its groups, end its monitors
}

// stat reports, for Node.Snapshot, the number of queued messages and of
// watchers (OnCloseNotify), under the mailbox's lock; ok is false if the
// mailbox has closed.
func (m *Mailbox) stat() (queued, watchers int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int(m.count), len(m.links), !m.isClosed()
}

// peek calls fn with each of the first max queued messages, oldest first,
// without taking them, under the mailbox's lock (fn must be quick and must
// not use the mailbox). It reports false if the mailbox has closed.
func (m *Mailbox) peek(max int, fn func(v any)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed() {
		return false
	}
	size := len(m.buf)
	for i := 0; i < max && i < int(m.count); i++ {
		at := int(m.head) + i
		if at >= size {
			at -= size
		}
		fn(m.buf[at])
	}
	return true
}
