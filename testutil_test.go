package reign

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests: long enough for a loaded CI
// machine under -race, short enough that a hang fails instead of stalling.
const testTimeout = 10 * time.Second

// checkFor polls check until it returns nil, and fails t with check's
// last error, which says why the condition is not met yet, if it has not
// after total (nats-server's checkFor). It is the tests' one way to wait
// for something that happens asynchronously: never sleep and hope.
func checkFor(t testing.TB, total time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	poll := time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after %v: %v", total, err)
		}
		time.Sleep(poll)
		poll = min(2*poll, 10*time.Millisecond)
	}
}

// unless returns nil if ok, else an error saying what is not true yet:
// the usual body of a checkFor predicate.
func unless(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("not yet: "+format, args...)
}

// newTestNode returns a new local-only node.
func newTestNode(t testing.TB) *Node {
	t.Helper()
	n, err := NewNode(Config{})
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	return n
}

// newTestNodeConfig returns a new node made from cfg.
func newTestNodeConfig(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	return n
}

// twoTestNodes returns two local-only nodes with the same node ID and
// different incarnations, as two runs of one node would have.
func twoTestNodes(t testing.TB) (*Node, *Node) {
	t.Helper()
	n1 := newTestNode(t)
	for {
		n2 := newTestNode(t)
		if n2.inc != n1.inc {
			return n1, n2
		}
	}
}

// newTestMailbox makes a mailbox on n that is closed when the test ends.
func newTestMailbox(t testing.TB, n *Node) (Address, *Mailbox) {
	t.Helper()
	a, m := n.NewMailbox()
	t.Cleanup(m.Close)
	return a, m
}

// testCtx returns a context bounded by testTimeout and cancelled when the
// test ends.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recv receives one message from m, failing t if none comes in time.
func recv(t testing.TB, m *Mailbox) any {
	t.Helper()
	v, err := m.Receive(testCtx(t))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return v
}

// mustSend sends msg to a, failing t on error.
func mustSend(t testing.TB, a Address, msg any) {
	t.Helper()
	if err := a.Send(msg); err != nil {
		t.Fatalf("Send(%v) to %v: %v", msg, a, err)
	}
}

// drain returns every message queued in m, oldest first, without waiting.
func drain(m *Mailbox) []any {
	var out []any
	for {
		v, ok := m.ReceiveAsync()
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// numWaiters counts the receivers blocked on m (white-box).
func numWaiters(m *Mailbox) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := 0
	for w := m.waiters; w != nil; w = w.next {
		k++
	}
	return k
}

// numLinks counts the Addresses to notify when m closes (white-box).
func numLinks(m *Mailbox) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.links)
}

// goGroup runs goroutines and waits for them when the test ends, so that
// none outlives its test even when the test fails early.
type goGroup struct{ wg sync.WaitGroup }

func newGoGroup(t testing.TB) *goGroup {
	g := new(goGroup)
	t.Cleanup(g.wg.Wait)
	return g
}

func (g *goGroup) Go(fn func()) { g.wg.Go(fn) }

// startServer runs handle for every message of a new mailbox on n, on one
// goroutine, until the mailbox closes. The mailbox is closed and the
// goroutine waited for when the test ends.
func startServer(t testing.TB, n *Node, handle func(v any)) (Address, *Mailbox) {
	t.Helper()
	a, m := n.NewMailbox()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v, err := m.Receive(context.Background())
			if err != nil {
				return
			}
			handle(v)
		}
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return a, m
}

// doubler is a server handler that replies to Request{Body: int} with
// twice the int.
func doubler(v any) {
	if req, ok := v.(Request); ok {
		_ = req.Reply(req.Body.(int) * 2)
	}
}
