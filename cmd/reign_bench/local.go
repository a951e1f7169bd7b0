package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/reign-go/reign"
)

// Msg is the message of every figure: a small struct. From is set in
// ping-pong (where the echo replies) and zero elsewhere; Payload has
// -payload bytes.
type Msg struct {
	Seq     int64
	From    reign.Address
	Payload []byte
}

// Begin tells the remote sink to expect N messages and to send a Report
// to ReplyTo after the last one.
type Begin struct {
	N       int64
	ReplyTo reign.Address
}

// Report is the sink's count of one throughput run: N messages, the first
// received Nanos nanoseconds before the last.
type Report struct {
	N     int64
	Nanos int64
}

func registerTypes(n *reign.Node) error {
	for _, v := range []any{Msg{}, Begin{}, Report{}} {
		if err := n.RegisterType(v); err != nil {
			return err
		}
	}
	return nil
}

// idleMailboxes is the number of mailboxes of figure 6.
const idleMailboxes = 100_000

// Calibration: a throughput run with -count 0 first sends this many
// messages to estimate the rate, then sizes the run to last -duration.
const (
	calibrateLocal  = 200_000
	calibrateRemote = 50_000
	maxRunCount     = 200_000_000
)

// runCount returns the message count of a throughput run: count if set,
// else what lasts about d at the rate measured by calibrate.
func runCount(count int, d time.Duration, calibrate func() (float64, error)) (int, error) {
	if count > 0 {
		return count, nil
	}
	rate, err := calibrate()
	if err != nil {
		return 0, err
	}
	return int(min(max(rate*d.Seconds(), 1000), maxRunCount)), nil
}

// echo sends every Msg it receives back to the Msg's From, until mb is
// closed or ctx ends.
func echo(ctx context.Context, mb *reign.Mailbox) {
	for {
		v, err := mb.Receive(ctx)
		if err != nil {
			return
		}
		if m, ok := v.(Msg); ok && !m.From.IsZero() {
			_ = m.From.Send(m)
		}
	}
}

// localThroughput is figure 1: one goroutine sends n small messages to a
// mailbox another goroutine receives from; the rate is counted at the
// receiver, from its first message to its last.
func localThroughput(ctx context.Context, count int, d time.Duration, payload []byte) (float64, error) {
	n, err := runCount(count, d, func() (float64, error) {
		return localThroughputN(ctx, calibrateLocal, payload)
	})
	if err != nil {
		return 0, err
	}
	return localThroughputN(ctx, n, payload)
}

func localThroughputN(ctx context.Context, n int, payload []byte) (float64, error) {
	node, err := reign.NewNode(reign.Config{})
	if err != nil {
		return 0, err
	}
	to, mb := node.NewMailbox()
	defer mb.Close()
	type result struct {
		d   time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		var first time.Time
		for i := range n {
			if _, err := mb.Receive(ctx); err != nil {
				done <- result{err: err}
				return
			}
			if i == 0 {
				first = time.Now()
			}
		}
		done <- result{d: time.Since(first)}
	}()
	for i := range n {
		if err := to.Send(Msg{Seq: int64(i), Payload: payload}); err != nil {
			mb.Close()
			<-done
			return 0, err
		}
	}
	r := <-done
	if r.err != nil {
		return 0, r.err
	}
	return rate(n, r.d)
}

// rate is the rate of n messages received over d, first to last.
func rate(n int, d time.Duration) (float64, error) {
	if d <= 0 {
		return 0, fmt.Errorf("%d messages in no measurable time: use a larger -count", n)
	}
	return float64(n-1) / d.Seconds(), nil
}

// localPingPong is figure 2: a goroutine with mailbox A sends to mailbox B
// and waits for the echo that B's goroutine sends back, for d; it returns
// the median and p99 round trip in µs.
func localPingPong(ctx context.Context, d time.Duration, payload []byte) (p50, p99 float64, err error) {
	node, err := reign.NewNode(reign.Config{})
	if err != nil {
		return 0, 0, err
	}
	from, ma := node.NewMailbox()
	defer ma.Close()
	to, mb := node.NewMailbox()
	done := make(chan struct{})
	go func() {
		defer close(done)
		echo(ctx, mb)
	}()
	defer func() {
		mb.Close()
		<-done
	}()
	return pingPong(ctx, d, to, from, ma, payload)
}

// pingPong measures round trips from the mailbox me (at from) to the echo
// at to for d, after a warm-up. It takes one clock reading per round trip:
// each round trip is the time since the previous reading.
func pingPong(ctx context.Context, d time.Duration, to, from reign.Address, me *reign.Mailbox, payload []byte) (p50, p99 float64, err error) {
	// one deadline for the whole run: a context per round trip would cost
	// more than a local round trip
	ctx, cancel := context.WithTimeout(ctx, d+d/10+30*time.Second)
	defer cancel()
	roundTrip := func(seq int64) error {
		if err := to.Send(Msg{Seq: seq, From: from, Payload: payload}); err != nil {
			return err
		}
		v, err := me.Receive(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the echo: %w", err)
		}
		if m, ok := v.(Msg); !ok || m.Seq != seq {
			return fmt.Errorf("echo: got %#v, want Msg %d", v, seq)
		}
		return nil
	}
	// warm up for a tenth of d, and estimate how many samples to expect
	var seq int64
	start := time.Now()
	for time.Since(start) < d/10 || seq < 10 {
		if err := roundTrip(seq); err != nil {
			return 0, 0, err
		}
		seq++
	}
	est := float64(seq) * float64(d) / float64(time.Since(start))
	samples := make([]time.Duration, 0, int(min(est*1.25, 50e6))+16)
	start = time.Now()
	prev := start
	for prev.Sub(start) < d || len(samples) < 10 {
		if err := roundTrip(seq); err != nil {
			return 0, 0, err
		}
		seq++
		t := time.Now()
		samples = append(samples, t.Sub(prev))
		prev = t
	}
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return us(percentile(samples, 50)), us(percentile(samples, 99)), nil
}

// selectiveBacklog is the number of non-matching messages of figure 3.
const selectiveBacklog = 1000

// selectiveReceive is figure 3: a mailbox holds 1,000 messages that do not
// match; each round sends one that does and takes it with ReceiveMatch,
// for d. It returns ns per round (one Send and one ReceiveMatch, which
// looks at 1,001 messages).
func selectiveReceive(ctx context.Context, d time.Duration) (float64, error) {
	node, err := reign.NewNode(reign.Config{})
	if err != nil {
		return 0, err
	}
	self, mb := node.NewMailbox()
	defer mb.Close()
	for range selectiveBacklog {
		if err := self.Send(Msg{Seq: -1}); err != nil {
			return 0, err
		}
	}
	var want int64
	match := func(v any) bool {
		m, ok := v.(Msg)
		return ok && m.Seq == want
	}
	round := func() error {
		want++
		if err := self.Send(Msg{Seq: want}); err != nil {
			return err
		}
		v, err := mb.ReceiveMatch(ctx, match)
		if err != nil {
			return err
		}
		if v.(Msg).Seq != want {
			return errors.New("selective receive took the wrong message")
		}
		return nil
	}
	for range 100 { // warm up
		if err := round(); err != nil {
			return 0, err
		}
	}
	const batch = 256
	rounds := 0
	start := time.Now()
	var elapsed time.Duration
	for elapsed < d {
		for range batch {
			if err := round(); err != nil {
				return 0, err
			}
		}
		rounds += batch
		elapsed = time.Since(start)
	}
	if mb.Len() != selectiveBacklog {
		return 0, fmt.Errorf("%d messages left queued, want %d", mb.Len(), selectiveBacklog)
	}
	return float64(elapsed.Nanoseconds()) / float64(rounds), nil
}

// mailboxMemory is figure 6: the live heap that count idle mailboxes add,
// after GC, per mailbox. The slice that keeps them (to close them after)
// is allocated before the first reading.
func mailboxMemory(count int) (float64, error) {
	node, err := reign.NewNode(reign.Config{})
	if err != nil {
		return 0, err
	}
	mbs := make([]*reign.Mailbox, 0, count)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range count {
		_, m := node.NewMailbox()
		mbs = append(mbs, m)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(count)
	for _, m := range mbs {
		m.Close()
	}
	runtime.KeepAlive(node)
	return per, nil
}
