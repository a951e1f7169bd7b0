// Package bench measures, through each peer library's public API, the
// local figures that reign's cmd/reign_bench measures, by the same method:
//
//  1. local one-way throughput: one goroutine sends n messages to one
//     actor; the rate is n over the time from the first send to the last
//     receive (n sized by a calibration run to last about -duration);
//  2. local ping-pong: a pinger actor sends to an echo actor and waits for
//     the echo, -roundtrips times after a warm-up of a tenth as many, one
//     clock reading per round trip; median and p99 in µs.
//
// The message is the peers' common small message, struct{I int; S string}
// (a generated protobuf message with the same two fields for GoAkt, whose
// API takes only proto.Message).
//
// Each peer is its own command (cmd/NAME), since some peers' generated
// protobuf files clash when linked into one binary:
//
//	go run ./cmd/NAME [-only 1,2] [-runs K] [-duration D] [-roundtrips N] [-json]
package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// Small is the common small message (reign_bench's Small).
type Small struct {
	I int
	S string
}

const SmallText = "hello"

// A lib is one peer library's implementation of the figures.
type Lib interface {
	// oneWay sends n messages from one goroutine to one actor and returns
	// the time from the first send to the last receive.
	OneWay(ctx context.Context, n int) (time.Duration, error)
	// pingPong runs warm+rounds round trips between two actors and returns
	// the rounds measured ones.
	PingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error)
}

const (
	calibrate   = 200_000
	maxRunCount = 200_000_000
	runTimeout  = 5 * time.Minute
)

// Main runs the figures for the library name with l's implementation.
func Main(name string, mk func() (Lib, error)) {
	only := flag.String("only", "1,2", "figures to run: 1 (local one-way), 2 (local ping-pong), 4 (remote one-way), 5 (remote ping-pong)")
	childAddr := flag.String("child", "", "internal: run as node 2 of the remote figures at this address")
	certs := flag.String("certs", "", "internal: the certificates folder of the remote figures")
	runs := flag.Int("runs", 5, "runs per figure; each figure is their median")
	dur := flag.Duration("duration", time.Second, "target length of each throughput run")
	rounds := flag.Int("roundtrips", 200_000, "round trips per ping-pong run, after a warm-up of a tenth as many")
	asJSON := flag.Bool("json", false, "print one JSON object")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measurements to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "peers: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "peers: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	l, err := mk()
	if err != nil {
		fmt.Fprintf(os.Stderr, "peers: %s: %v\n", name, err)
		os.Exit(1)
	}
	if *childAddr != "" {
		if err := runChild(l, *childAddr, *certs); err != nil {
			fmt.Fprintf(os.Stderr, "peers: %s child: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	vals := map[string][]float64{}
	load0 := loadAverage()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "peers: %s: %v\n", name, err)
		os.Exit(1)
	}
	if strings.Contains(*only, "1") {
		for range *runs {
			d, err := l.OneWay(ctx, calibrate)
			if err != nil {
				fail(err)
			}
			n := int(min(max(float64(calibrate)/d.Seconds()*dur.Seconds(), 1000), maxRunCount))
			d, err = l.OneWay(ctx, n)
			if err != nil {
				fail(err)
			}
			vals["local_small_msgs_per_sec"] = append(vals["local_small_msgs_per_sec"], float64(n)/d.Seconds())
		}
	}
	if strings.Contains(*only, "2") {
		for range *runs {
			s, err := l.PingPong(ctx, max(*rounds/10, 10), *rounds)
			if err != nil {
				fail(err)
			}
			slices.Sort(s)
			vals["local_small_pingpong_p50_us"] = append(vals["local_small_pingpong_p50_us"], us(percentile(s, 50)))
			vals["local_small_pingpong_p99_us"] = append(vals["local_small_pingpong_p99_us"], us(percentile(s, 99)))
		}
	}
	if strings.ContainsAny(*only, "45") {
		if err := remoteFigures(ctx, l, *only, *runs, *dur, vals); err != nil {
			fail(err)
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range vals {
			if !yield(k) {
				return
			}
		}
	})
	if *asJSON {
		out := map[string]any{"lib": name, "runs": *runs, "load_before": load0, "load_after": loadAverage()}
		for _, k := range keys {
			out[k] = median(vals[k])
			out[k+"_runs"] = vals[k]
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	fmt.Printf("%s: median of %d runs; load %.2f before, %.2f after\n", name, *runs, load0, loadAverage())
	for _, k := range keys {
		v := slices.Clone(vals[k])
		slices.Sort(v)
		fmt.Printf("%-32s %14.4g  [%.4g – %.4g]\n", k, median(v), v[0], v[len(v)-1])
	}
}

func sortDurations(s []time.Duration) { slices.Sort(s) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median of values (sorted here); the mean of the middle two for an even count.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// percentile by the nearest-rank method, as reign_bench.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var v float64
	fmt.Sscan(string(data), &v)
	return v
}

// recorder times the round trips of a ping-pong run from inside the
// pinger actor: one clock reading per echo, as reign_bench does.
type Recorder struct {
	warm, rounds int
	seq          int
	prev         time.Time
	samples      []time.Duration
	done         chan error
}

func NewRecorder(warm, rounds int) *Recorder {
	return &Recorder{warm: warm, rounds: rounds, samples: make([]time.Duration, 0, rounds), done: make(chan error, 1)}
}

// echo records the echo of round trip got; it returns the next round
// trip's number, or false when the run is over (done is then signalled).
func (r *Recorder) Echo(got int) (int, bool) {
	t := time.Now()
	if got != r.seq {
		r.done <- fmt.Errorf("echo: got round trip %d, want %d", got, r.seq)
		return 0, false
	}
	if r.seq >= r.warm {
		r.samples = append(r.samples, t.Sub(r.prev))
	}
	r.prev = t
	r.seq++
	if r.seq == r.warm+r.rounds {
		r.done <- nil
		return 0, false
	}
	return r.seq, true
}

func (r *Recorder) Wait(ctx context.Context) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	select {
	case err := <-r.done:
		return r.samples, err
	case <-ctx.Done():
		return nil, fmt.Errorf("ping-pong: %w after %d round trips", ctx.Err(), r.seq)
	}
}

// counter counts the messages of a one-way run inside the receiving actor.
type Counter struct {
	n, got int
	Start  time.Time
	done   chan time.Duration
}

func NewCounter(n int) *Counter { return &Counter{n: n, done: make(chan time.Duration, 1)} }

func (c *Counter) Add() {
	c.got++
	if c.got == c.n {
		c.done <- time.Since(c.Start)
	}
}

func (c *Counter) Wait(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	select {
	case d := <-c.done:
		return d, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("one-way: %w after %d of %d messages", ctx.Err(), c.got, c.n)
	}
}
