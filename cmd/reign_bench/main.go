// Command reign_bench measures the standard performance figures of reign
// (DESIGN.md, "Performance") on the machine it runs on and prints them as
// one table:
//
//  1. local one-way throughput, 1 sender goroutine to 1 mailbox (msgs/s),
//     from the first send to the last receive;
//  2. local ping-pong round trip between two mailboxes on two goroutines
//     (median and p99, µs);
//  3. selective receive: a match behind 1,000 non-matching queued messages
//     (ns per match);
//  4. remote one-way throughput between two nodes in two OS processes over
//     mutual TLS on 127.0.0.1 (msgs/s), counted at the receiver from its
//     first message to its last;
//  5. remote ping-pong round trip over mutual TLS between those processes
//     (median and p99, µs), beside a raw TLS 1.3 ping-pong between the same
//     two processes (one goroutine each side, no library, the same
//     certificates) measured in the same run, and as a ratio to it;
//  6. memory per idle mailbox with 100,000 mailboxes (bytes).
//
// Figures 1-3 are measured with the common small message of the peers'
// benchmarks, struct{I int; S string} (the headline), and with this
// bench's own 56-byte Msg beside it. Ping-pong runs a fixed number of
// round trips (-roundtrips). Each figure is the median of -runs runs, with
// the spread (min–max).
//
//	reign_bench [-runs K] [-duration D] [-count N] [-roundtrips N] [-payload BYTES] [-json]
//	            [-only LIST] [-cpuprofile F] [-memprofile F] [-mutexprofile F] [-blockprofile F]
//
// For figures 4 and 5 it mints throwaway certificates in a temporary
// folder, listens on two free ports of 127.0.0.1 and runs node 2 in a copy
// of itself (a child process); it removes both when done.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/reign-go/reign"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `reign_bench measures reign's standard performance figures on this machine.

usage: reign_bench [flags]

It prints one table: each figure is the median of -runs runs, with the
spread (min – max) of those runs. With the defaults it takes about 30 s.

  1 local            local one-way throughput, 1 sender to 1 mailbox (msgs/s)
  2 local-pingpong   local ping-pong round trip, two goroutines (p50, p99 µs)
  3 selective        selective receive behind 1,000 queued messages (ns/match)
  4 remote           remote one-way throughput, mutual TLS on 127.0.0.1 (msgs/s)
  5 remote-pingpong  remote ping-pong round trip, mutual TLS (p50, p99 µs),
                     and a raw TLS 1.3 ping-pong between the same processes
                     (the floor), with figure 5 as a ratio to it
  6 mailbox          memory per idle mailbox, 100,000 mailboxes (bytes)

Figures 1-3 run twice: with struct{I int; S string}, the small message of
the peers' benchmarks (the headline), and with this bench's 56-byte Msg.
Local throughput (1) is counted from the first send to the last receive;
remote throughput (4) at the receiver, from its first message to its last. Ping-pong (2, 5) is a fixed number of round trips (-roundtrips). Figures 4 and 5 run node 2 in a child process (this program again),
with throwaway certificates in a temporary folder; both are removed at the
end. To profile one path, e.g. remote throughput:

  reign_bench -only remote -cpuprofile cpu.out && go tool pprof -top cpu.out

Flags:
`

// Hidden flags run this program as the remote node of the bench.
const (
	childNodeFlag = "child-node"
	childSpecFlag = "spec"
)

// childEnv is set in the child's environment: a test binary (whose
// TestMain sees it) then runs as the child instead of running tests.
const childEnv = "REIGN_BENCH_CHILD"

type options struct {
	count    int
	rounds   int
	payload  int
	duration time.Duration
	runs     int
	json     bool
	verbose  bool
	only     map[figure]bool

	cpuProfile, memProfile, mutexProfile, blockProfile string

	codec     string
	childNode int
	childSpec string
}

// benchCodec is the codec both nodes of the remote figures use (-codec).
var benchCodec reign.Codec = reign.MsgpackCodec{}

// codecNamed returns the codec -codec names.
func codecNamed(name string) (reign.Codec, error) {
	switch name {
	case "msgpack":
		return reign.MsgpackCodec{}, nil
	case "msgpack-compact":
		return reign.MsgpackCodec{Compact: true}, nil
	case "json":
		return reign.JSONCodec{}, nil
	}
	return nil, fmt.Errorf("unknown codec %q (use msgpack, msgpack-compact or json)", name)
}

// run is reign_bench: it returns the exit code: 0 done, 1 failed, 2 bad
// usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reign_bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.count, "count", 0, "messages per throughput run (figures 1 and 4); 0 sizes each run to last about -duration")
	fs.IntVar(&o.payload, "payload", 0, "size in bytes of the []byte field of each message")
	fs.IntVar(&o.rounds, "roundtrips", 0, fmt.Sprintf("round trips per ping-pong run (figures 2 and 5, and the raw TLS floor), after a warm-up of a tenth as many; 0 means %d local and %d remote", defaultLocalRounds, defaultRemoteRounds))
	fs.DurationVar(&o.duration, "duration", time.Second, "target length of each run: selective runs last this long, throughput runs too with -count 0")
	fs.IntVar(&o.runs, "runs", 5, "runs per figure; each figure is their median")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	fs.StringVar(&o.codec, "codec", "msgpack", "codec for the remote figures: msgpack, msgpack-compact or json")
	fs.BoolVar(&o.verbose, "v", false, "report progress and every run's value on standard error")
	only := fs.String("only", "", "comma-separated `list` of figures to run, by number or name (default all)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measurements to `file` (and of the child node, for figures 4 and 5, to file.child)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile to `file`")
	fs.StringVar(&o.mutexProfile, "mutexprofile", "", "write a mutex contention profile to `file`")
	fs.StringVar(&o.blockProfile, "blockprofile", "", "write a goroutine blocking profile to `file`")
	fs.IntVar(&o.childNode, childNodeFlag, 0, "")
	fs.StringVar(&o.childSpec, childSpecFlag, "", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == childNodeFlag || f.Name == childSpecFlag {
				return // internal: how the bench runs its second node
			}
			name, u := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(fs.Output(), "  -%s%s\n    \t%s", f.Name, name, u)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(fs.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reign_bench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	codec, err := codecNamed(o.codec)
	if err != nil {
		fmt.Fprintf(stderr, "reign_bench: -codec: %v\n", err)
		return 2
	}
	benchCodec = codec
	if o.childNode != 0 {
		return runChild(o.childNode, o.childSpec, o.cpuProfile, stderr)
	}
	if o.only, err = parseOnly(*only); err != nil {
		fmt.Fprintf(stderr, "reign_bench: -only: %v\n", err)
		return 2
	}
	switch {
	case o.count < 0:
		err = errors.New("-count must not be negative")
	case o.count == 1:
		err = errors.New("-count must be at least 2 (throughput is counted from the first message to the last)")
	case o.rounds < 0:
		err = errors.New("-roundtrips must not be negative")
	case o.payload < 0:
		err = errors.New("-payload must not be negative")
	case o.duration <= 0:
		err = errors.New("-duration must be positive")
	case o.runs < 1:
		err = errors.New("-runs must be at least 1")
	}
	if err != nil {
		fmt.Fprintf(stderr, "reign_bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := measure(ctx, &o, stderr)
	if err == nil {
		res.loadAfter = loadAverage()
	}
	if err != nil {
		fmt.Fprintf(stderr, "reign_bench: %v\n", err)
		return 1
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res.jsonObject()); err != nil {
			fmt.Fprintf(stderr, "reign_bench: %v\n", err)
			return 1
		}
		return 0
	}
	res.printTable(stdout)
	return 0
}

// The number of round trips of a ping-pong run with -roundtrips 0.
const (
	defaultLocalRounds  = 200_000
	defaultRemoteRounds = 10_000
)

// figure is one of the six standard figures.
type figure int

const (
	figLocal figure = iota + 1
	figLocalPingPong
	figSelective
	figRemote
	figRemotePingPong
	figMailbox
)

var figureNames = map[string]figure{
	"local":           figLocal,
	"local-pingpong":  figLocalPingPong,
	"selective":       figSelective,
	"remote":          figRemote,
	"remote-pingpong": figRemotePingPong,
	"mailbox":         figMailbox,
}

// parseOnly parses -only; "" selects every figure.
func parseOnly(s string) (map[figure]bool, error) {
	sel := map[figure]bool{}
	if strings.TrimSpace(s) == "" {
		for f := figLocal; f <= figMailbox; f++ {
			sel[f] = true
		}
		return sel, nil
	}
	for _, w := range strings.Split(s, ",") {
		w = strings.ToLower(strings.TrimSpace(w))
		if f, ok := figureNames[w]; ok {
			sel[f] = true
			continue
		}
		if k, err := strconv.Atoi(w); err == nil && k >= int(figLocal) && k <= int(figMailbox) {
			sel[figure(k)] = true
			continue
		}
		return nil, fmt.Errorf("unknown figure %q (use 1-6 or local, local-pingpong, selective, remote, remote-pingpong, mailbox)", w)
	}
	return sel, nil
}

// measure runs the selected figures, under the requested profiles.
func measure(ctx context.Context, o *options, stderr io.Writer) (res *results, err error) {
	res = newResults(o)
	payload := make([]byte, o.payload)
	for i := range payload {
		payload[i] = byte(i)
	}
	logf := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}

	// The remote node starts before the profiles, so that minting
	// certificates and the handshakes stay out of them.
	var rem *remote
	if o.only[figRemote] || o.only[figRemotePingPong] {
		logf("starting node 2 in a child process")
		childArgs := []string{"-codec", o.codec}
		if o.cpuProfile != "" {
			// the receiving side of figures 4 and 5 is in the child
			childArgs = append(childArgs, "-cpuprofile", o.cpuProfile+".child")
		}
		if rem, err = startRemote(ctx, childArgs...); err != nil {
			return nil, err
		}
		defer func() {
			if cerr := rem.stop(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}

	stopProfiles, err := startProfiles(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if perr := stopProfiles(); perr != nil && err == nil {
			err = perr
		}
	}()

	// Local figures first, and the mailbox census before the remote
	// figures, so their garbage does not blur it.
	type step struct {
		f   figure
		run func() ([]float64, error)
	}
	localRounds, remoteRounds := defaultLocalRounds, defaultRemoteRounds
	if o.rounds > 0 {
		localRounds, remoteRounds = o.rounds, o.rounds
	}
	// Each step measures the small message, then Msg; its values are in
	// the order of figureKeys.
	steps := []step{
		{figLocal, func() ([]float64, error) {
			small, err := localThroughput(ctx, o.count, o.duration, true, payload)
			if err != nil {
				return nil, err
			}
			r, err := localThroughput(ctx, o.count, o.duration, false, payload)
			return []float64{small, r}, err
		}},
		{figLocalPingPong, func() ([]float64, error) {
			s50, s99, err := localPingPong(ctx, localRounds, true, payload)
			if err != nil {
				return nil, err
			}
			p50, p99, err := localPingPong(ctx, localRounds, false, payload)
			return []float64{s50, s99, p50, p99}, err
		}},
		{figSelective, func() ([]float64, error) {
			small, err := selectiveReceive(ctx, o.duration, true)
			if err != nil {
				return nil, err
			}
			ns, err := selectiveReceive(ctx, o.duration, false)
			return []float64{small, ns}, err
		}},
		{figMailbox, func() ([]float64, error) {
			b, err := mailboxMemory(idleMailboxes)
			return []float64{b}, err
		}},
		{figRemote, func() ([]float64, error) {
			r, err := rem.throughput(ctx, o.count, o.duration, payload)
			return []float64{r}, err
		}},
		{figRemotePingPong, func() ([]float64, error) {
			// reign, then the raw TLS floor right after, in each run: the
			// ratios are of the same moment of a noisy machine
			p50, p99, err := rem.pingPong(ctx, remoteRounds, payload)
			if err != nil {
				return nil, err
			}
			f50, f99, err := rem.rawPingPong(remoteRounds)
			if err != nil {
				return nil, fmt.Errorf("raw TLS ping-pong: %w", err)
			}
			return []float64{p50, p99, f50, f99, p50 / f50, p99 / f99}, nil
		}},
	}
	for _, s := range steps {
		if !o.only[s.f] {
			continue
		}
		keys := figureKeys[s.f]
		for k := 1; k <= o.runs; k++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			vals, err := s.run()
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", keys[0], k, err)
			}
			for i, v := range vals {
				res.add(keys[i], v)
				logf("%s run %d/%d: %s = %.4g", figureTitle[s.f], k, o.runs, keys[i], v)
			}
		}
	}
	return res, nil
}

// startProfiles starts the profiles o asks for and returns what stops them
// and writes them.
func startProfiles(o *options) (stop func() error, err error) {
	var cpu *os.File
	if o.cpuProfile != "" {
		if cpu, err = os.Create(o.cpuProfile); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, err
		}
	}
	if o.mutexProfile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	if o.blockProfile != "" {
		runtime.SetBlockProfileRate(1)
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		write := func(file, profile string) {
			if file == "" {
				return
			}
			f, err := os.Create(file)
			if err != nil {
				errs = append(errs, err)
				return
			}
			errs = append(errs, pprof.Lookup(profile).WriteTo(f, 0), f.Close())
		}
		if o.memProfile != "" {
			runtime.GC() // the allocation profile is up to date as of the last GC
		}
		write(o.memProfile, "allocs")
		write(o.mutexProfile, "mutex")
		write(o.blockProfile, "block")
		if o.mutexProfile != "" {
			runtime.SetMutexProfileFraction(0)
		}
		if o.blockProfile != "" {
			runtime.SetBlockProfileRate(0)
		}
		return errors.Join(errs...)
	}, nil
}
