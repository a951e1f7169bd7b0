package reign

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// traceLog collects trace events, safely from any goroutine.
type traceLog struct {
	mu     sync.Mutex
	events []TraceEvent
}

func (l *traceLog) add(e TraceEvent) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *traceLog) take() []TraceEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// brief renders events as "kind type to" lines, for comparison.
func brief(evs []TraceEvent) []string {
	var out []string
	for _, e := range evs {
		s := fmt.Sprintf("%v %s %v peer=%d", e.Kind, e.Type, e.To, e.Peer)
		if e.Err != nil {
			s += " err"
		}
		out = append(out, s)
	}
	return out
}

func TestTraceLocal(t *testing.T) {
	t.Parallel()
	var log traceLog
	n := newTestNodeConfig(t, Config{Tracer: log.add})
	a, m := n.NewMailbox()
	w, _ := newTestMailbox(t, n)
	a.OnCloseNotify(w)
	msg := peekA{1}
	mustSend(t, a, msg)
	evs := log.take()
	want := []string{
		fmt.Sprintf("send reign.peekA %v peer=0", a),
		fmt.Sprintf("deliver reign.peekA %v peer=0", a),
	}
	if fmt.Sprint(brief(evs)) != fmt.Sprint(want) {
		t.Fatalf("events of a send:\n got %q\nwant %q", brief(evs), want)
	}
	if evs[1].Msg != msg {
		t.Errorf("deliver carries %v, want the message", evs[1].Msg)
	}

	// close: the close itself, then the MailboxClosed sent to the watcher
	m.Close()
	evs = log.take()
	want = []string{
		fmt.Sprintf("close  %v peer=0", a),
		fmt.Sprintf("send reign.MailboxClosed %v peer=0", w),
		fmt.Sprintf("deliver reign.MailboxClosed %v peer=0", w),
	}
	if fmt.Sprint(brief(evs)) != fmt.Sprint(want) || evs[0].Reason != Normal {
		t.Fatalf("events of a close:\n got %q\nwant %q", brief(evs), want)
	}

	// a send to the closed mailbox is a drop, with the error Send returned
	if err := a.Send("late"); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("send to closed: %v", err)
	}
	evs = log.take()
	if len(evs) != 1 || evs[0].Kind != TraceDrop || evs[0].Type != "string" || !errors.Is(evs[0].Err, ErrMailboxClosed) || evs[0].To != a {
		t.Fatalf("events of a send to a closed mailbox: %+v", evs)
	}
}

func TestTraceRemoteSend(t *testing.T) {
	t.Parallel()
	var log traceLog
	tc := newTestCluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.Tracer = log.add
		}
	})
	tc.connected()
	b, mb := newTestMailbox(t, tc.node(2))
	remote := tc.node(1).BindAddress(b)
	log.take() // whatever the connection set-up traced
	mustSend(t, remote, testMsg{Seq: 1})
	recv(t, mb)
	evs := log.take()
	want := []string{fmt.Sprintf("send reign.testMsg %v peer=2", b)}
	if fmt.Sprint(brief(evs)) != fmt.Sprint(want) {
		t.Fatalf("events of a remote send:\n got %q\nwant %q", brief(evs), want)
	}
	tc.kill(2)
	checkFor(t, testTimeout, func() error {
		return unless(tc.node(1).Stats().PeersUp == 0, "node 1 still has %d peers up", tc.node(1).Stats().PeersUp)
	})
	log.take()
	if err := remote.Send(testMsg{}); !errors.Is(err, ErrNodeUnreachable) {
		t.Fatalf("send to a lost node: %v", err)
	}
	evs = log.take()
	if len(evs) != 1 || evs[0].Kind != TraceDrop || !errors.Is(evs[0].Err, ErrNodeUnreachable) || evs[0].Peer != 2 || evs[0].Type != "reign.testMsg" {
		t.Fatalf("events of a send to a lost node: %+v", evs)
	}
}

// The receiving node traces a remote message's delivery, and its drop
// when the mailbox has closed, with the sending peer.
func TestTraceRemoteDeliver(t *testing.T) {
	t.Parallel()
	var log traceLog
	tc := newTestCluster(t, 2, func(c *Config) {
		if c.NodeID == 2 {
			c.Tracer = log.add
		}
	})
	tc.connected()
	b, mb := newTestMailbox(t, tc.node(2))
	remote := tc.node(1).BindAddress(b)
	log.take() // whatever the connection set-up traced
	mustSend(t, remote, testMsg{Seq: 1})
	recv(t, mb)
	evs := log.take()
	want := []string{fmt.Sprintf("deliver reign.testMsg %v peer=1", b)}
	if fmt.Sprint(brief(evs)) != fmt.Sprint(want) {
		t.Fatalf("events of a remote delivery:\n got %q\nwant %q", brief(evs), want)
	}
	mb.Close()
	log.take()
	mustSend(t, remote, testMsg{Seq: 2}) // dropped on node 2
	var drops []TraceEvent
	checkFor(t, testTimeout, func() error {
		drops = append(drops, log.take()...)
		return unless(len(drops) > 0, "no event on node 2")
	})
	if d := drops[0]; d.Kind != TraceDrop || d.Peer != 1 || d.Type != "reign.testMsg" || !errors.Is(d.Err, ErrMailboxClosed) || d.To != b {
		t.Fatalf("events of a remote message to a closed mailbox: %+v", drops)
	}
}

func TestTraceKindString(t *testing.T) {
	for k, want := range map[TraceKind]string{TraceSend: "send", TraceDeliver: "deliver", TraceDrop: "drop", TraceClose: "close", 0: "tracekind(0)", 9: "tracekind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}

// TestTraceNilCostsNothing checks that with no tracer a local send and
// receive allocate nothing, as without the hook.
func TestTraceNilCostsNothing(t *testing.T) {
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	var msg any = benchMsg{Seq: 1}
	mustSend(t, a, msg) // let the queue grow its buffer first
	recv(t, m)
	allocs := testing.AllocsPerRun(1000, func() {
		_ = a.Send(msg)
		_, _ = m.ReceiveAsync()
	})
	if allocs != 0 {
		t.Errorf("a send and receive with no tracer allocate %v times", allocs)
	}
}

// BenchmarkTracedSend is a send and a receive on one goroutine (the path
// the tracer's nil check sits on, without scheduler noise), with no tracer
// and with one that counts events.
func BenchmarkTracedSend(b *testing.B) {
	var count atomic.Uint64
	for _, bc := range []struct {
		name   string
		tracer func(TraceEvent)
	}{{"nil", nil}, {"counting", func(TraceEvent) { count.Add(1) }}} {
		b.Run(bc.name, func(b *testing.B) {
			n := newTestNodeConfig(b, Config{Tracer: bc.tracer})
			a, m := n.NewMailbox()
			defer m.Close()
			var msg any = benchMsg{Seq: 1}
			b.ReportAllocs()
			for b.Loop() {
				_ = a.Send(msg)
				_, _ = m.ReceiveAsync()
			}
		})
	}
}

// A send to an Address from an earlier run of a connected node returns
// nil (as for any remote closed mailbox) and is traced once, as a drop.
func TestTraceStaleRemoteSendOnce(t *testing.T) {
	t.Parallel()
	var log traceLog
	tc := newTestCluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.Tracer = log.add
		}
	})
	tc.connected()
	b, _ := newTestMailbox(t, tc.node(2))
	stale := tc.node(1).BindAddress(b)
	stale.inc++
	log.take()
	before := tc.node(1).Stats().DroppedStale
	if err := stale.Send(testMsg{Seq: 1}); err != nil {
		t.Fatalf("send to a stale Address: %v, want nil", err)
	}
	evs := log.take()
	if len(evs) != 1 || evs[0].Kind != TraceDrop || !errors.Is(evs[0].Err, ErrMailboxClosed) {
		t.Fatalf("events of a stale send: %+v, want one drop", evs)
	}
	if d := tc.node(1).Stats().DroppedStale - before; d != 1 {
		t.Fatalf("DroppedStale moved by %d, want 1", d)
	}
}
