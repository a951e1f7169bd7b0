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

// Small is the common small message of figures 1-3, the one the peers'
// benchmarks send (hollywood, protoactor-go, thejerf/reign): an int and a
// string. It is the headline of those figures.
type Small struct {
	I int
	S string
}

// smallText is the string of every Small.
const smallText = "hello"

// Msg is this bench's own message, measured beside Small in figures 1-3
// and the message of figures 4 and 5: 56 bytes with an Address and a
// slice. From is set in ping-pong (where the echo replies) and zero
// elsewhere; Payload has -payload bytes.
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
	for _, v := range []any{Msg{}, Small{}, Begin{}, Report{}} {
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

// localThroughput is figure 1: one goroutine sends n messages (Small if
// small, else Msg) to a mailbox another goroutine receives from; the rate
// is n over the time from the first send to the last receive. (Counting
// from the first receive instead, as figure 4 must across two processes,
// overstates it whenever the receiver starts late and finds a full queue,
// which a busy machine makes common.)
func localThroughput(ctx context.Context, count int, d time.Duration, small bool, payload []byte) (float64, error) {
	n, err := runCount(count, d, func() (float64, error) {
		return localThroughputN(ctx, calibrateLocal, small, payload)
	})
	if err != nil {
		return 0, err
	}
	return localThroughputN(ctx, n, small, payload)
}

func localThroughputN(ctx context.Context, n int, small bool, payload []byte) (float64, error) {
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
	start := time.Now()
	go func() {
		for range n {
			if _, err := mb.Receive(ctx); err != nil {
				done <- result{err: err}
				return
			}
		}
		done <- result{d: time.Since(start)}
	}()
	for i := range n {
		var err error
		if small {
			err = to.Send(Small{I: i, S: smallText})
		} else {
			err = to.Send(Msg{Seq: int64(i), Payload: payload})
		}
		if err != nil {
			mb.Close()
			<-done
			return 0, err
		}
	}
	r := <-done
	if r.err != nil {
		return 0, r.err
	}
	if r.d <= 0 {
		return 0, fmt.Errorf("%d messages in no measurable time: use a larger -count", n)
	}
	return float64(n) / r.d.Seconds(), nil
}

// rate is the rate of n messages received over d, first to last.
func rate(n int, d time.Duration) (float64, error) {
	if d <= 0 {
		return 0, fmt.Errorf("%d messages in no measurable time: use a larger -count", n)
	}
	return float64(n-1) / d.Seconds(), nil
}

// localPingPong is figure 2: a goroutine with mailbox A sends to mailbox B
// and waits for the echo that B's goroutine sends back, rounds times after
// a warm-up; it returns the median and p99 round trip in µs. With small
// the message is a Small and the echo replies to A whatever it receives;
// else it is a Msg, echoed to its From (as the remote echo does).
func localPingPong(ctx context.Context, rounds int, small bool, payload []byte) (p50, p99 float64, err error) {
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
		if small {
			echoTo(ctx, mb, from)
		} else {
			echo(ctx, mb)
		}
	}()
	defer func() {
		mb.Close()
		<-done
	}()
	if small {
		return pingPong(ctx, rounds, to, ma, smallPing)
	}
	return pingPong(ctx, rounds, to, ma, msgPing(from, payload))
}

// echoTo sends every message it receives on mb to to, as it is, until mb
// is closed or ctx ends.
func echoTo(ctx context.Context, mb *reign.Mailbox, to reign.Address) {
	for {
		v, err := mb.Receive(ctx)
		if err != nil {
			return
		}
		_ = to.Send(v)
	}
}

// A ping makes the message of round trip seq, and reads the sequence
// number back from the echo.
type ping struct {
	make func(seq int64) any
	seq  func(v any) (int64, bool)
}

var smallPing = ping{
	make: func(seq int64) any { return Small{I: int(seq), S: smallText} },
	seq: func(v any) (int64, bool) {
		m, ok := v.(Small)
		return int64(m.I), ok
	},
}

func msgPing(from reign.Address, payload []byte) ping {
	return ping{
		make: func(seq int64) any { return Msg{Seq: seq, From: from, Payload: payload} },
		seq: func(v any) (int64, bool) {
			m, ok := v.(Msg)
			return m.Seq, ok
		},
	}
}

// warmUpRounds is the number of round trips before the measured ones: a
// tenth of them, at least 10.
func warmUpRounds(rounds int) int { return max(rounds/10, 10) }

// timeRoundTrips runs roundTrip (numbered from 0) for warmUpRounds(rounds)
// rounds, then times rounds more one by one, and returns the median and
// p99 round trip in µs.
func timeRoundTrips(rounds int, roundTrip func(seq int64) error) (p50, p99 float64, err error) {
	var seq int64
	for range warmUpRounds(rounds) {
		if err := roundTrip(seq); err != nil {
			return 0, 0, err
		}
		seq++
	}
	samples := make([]time.Duration, rounds)
	prev := time.Now()
	for i := range samples {
		if err := roundTrip(seq); err != nil {
			return 0, 0, err
		}
		seq++
		t := time.Now()
		samples[i] = t.Sub(prev)
		prev = t
	}
	p50, p99 = latencies(samples)
	return p50, p99, nil
}

// pingPong measures rounds round trips from the mailbox me to the echo at
// to, after a warm-up. It takes one clock reading per round trip: each
// round trip is the time since the previous reading.
func pingPong(ctx context.Context, rounds int, to reign.Address, me *reign.Mailbox, p ping) (p50, p99 float64, err error) {
	// one deadline for the whole run: a context per round trip would cost
	// more than a local round trip
	ctx, cancel := context.WithTimeout(ctx, pingPongTimeout)
	defer cancel()
	roundTrip := func(seq int64) error {
		if err := to.Send(p.make(seq)); err != nil {
			return err
		}
		v, err := me.Receive(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the echo: %w", err)
		}
		if got, ok := p.seq(v); !ok || got != seq {
			return fmt.Errorf("echo: got %#v, want round trip %d", v, seq)
		}
		return nil
	}
	return timeRoundTrips(rounds, roundTrip)
}

// pingPongTimeout bounds one ping-pong run.
const pingPongTimeout = 5 * time.Minute

// latencies sorts samples and returns their median and p99 in µs.
func latencies(samples []time.Duration) (p50, p99 float64) {
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return us(percentile(samples, 50)), us(percentile(samples, 99))
}

// selectiveBacklog is the number of non-matching messages of figure 3.
const selectiveBacklog = 1000

// selectiveReceive is figure 3: a mailbox holds 1,000 messages that do not
// match; each round sends one that does and takes it with ReceiveMatch,
// for d. The match reads a field of each message, as a receive on a
// pattern does. It returns ns per round (one Send and one ReceiveMatch,
// which looks at 1,001 messages). With small the messages are Smalls, else
// Msgs.
func selectiveReceive(ctx context.Context, d time.Duration, small bool) (float64, error) {
	node, err := reign.NewNode(reign.Config{})
	if err != nil {
		return 0, err
	}
	self, mb := node.NewMailbox()
	defer mb.Close()
	newMsg := func(seq int64) any { return Msg{Seq: seq} }
	if small {
		newMsg = func(seq int64) any { return Small{I: int(seq), S: smallText} }
	}
	for range selectiveBacklog {
		if err := self.Send(newMsg(-1)); err != nil {
			return 0, err
		}
	}
	var want int64
	match := func(v any) bool {
		m, ok := v.(Msg)
		return ok && m.Seq == want
	}
	if small {
		match = func(v any) bool {
			m, ok := v.(Small)
			return ok && int64(m.I) == want
		}
	}
	round := func() error {
		want++
		if err := self.Send(newMsg(want)); err != nil {
			return err
		}
		v, err := mb.ReceiveMatch(ctx, match)
		if err != nil {
			return err
		}
		if !match(v) {
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
