package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON keys of the figures; a figure with two values has two keys.
// The keys with "small" are of the common small message, the others of Msg
// (as in earlier versions of this bench).
var figureKeys = map[figure][]string{
	figLocal:         {"local_small_msgs_per_sec", "local_msgs_per_sec"},
	figLocalPingPong: {"local_small_pingpong_p50_us", "local_small_pingpong_p99_us", "local_pingpong_p50_us", "local_pingpong_p99_us"},
	figSelective:     {"selective_small_1k_ns", "selective_1k_ns"},
	figRemote:        {"remote_msgs_per_sec"},
	figRemotePingPong: {"remote_pingpong_p50_us", "remote_pingpong_p99_us",
		"tls_pingpong_p50_us", "tls_pingpong_p99_us",
		"remote_pingpong_p50_vs_tls", "remote_pingpong_p99_vs_tls"},
	figMailbox: {"mailbox_bytes"},
}

var figureTitle = map[figure]string{
	figLocal:          "1 local one-way throughput",
	figLocalPingPong:  "2 local ping-pong round trip",
	figSelective:      "3 selective receive, 1,000 queued",
	figRemote:         "4 remote one-way throughput (mTLS)",
	figRemotePingPong: "5 remote ping-pong round trip (mTLS)",
	figMailbox:        "6 idle mailbox, 100,000 mailboxes",
}

// rowSpec is one line of the table.
type rowSpec struct {
	f      figure
	key    string
	label  string
	unit   string
	target string
	format func(float64) string
}

var rows = []rowSpec{
	{figLocal, "local_small_msgs_per_sec", "1 local one-way throughput", "msgs/s", "≥ 15.5 M", fmtRate},
	{figLocal, "local_msgs_per_sec", "    with Msg (56 B)", "msgs/s", "", fmtRate},
	{figLocalPingPong, "local_small_pingpong_p50_us", "2 local ping-pong RTT, median", "µs", "≤ 1", fmtMicros},
	{figLocalPingPong, "local_small_pingpong_p99_us", "  local ping-pong RTT, p99", "µs", "≤ 0.6", fmtMicros},
	{figLocalPingPong, "local_pingpong_p50_us", "    with Msg, median", "µs", "", fmtMicros},
	{figLocalPingPong, "local_pingpong_p99_us", "    with Msg, p99", "µs", "", fmtMicros},
	{figSelective, "selective_small_1k_ns", "3 selective receive behind 1,000", "ns/match", "≤ 1,500", fmtInt},
	{figSelective, "selective_1k_ns", "    with Msg", "ns/match", "", fmtInt},
	{figRemote, "remote_msgs_per_sec", "4 remote one-way throughput (mTLS)", "msgs/s", "≥ 4 M", fmtRate},
	{figRemotePingPong, "remote_pingpong_p50_us", "5 remote ping-pong RTT, median", "µs", "", fmtMicros},
	{figRemotePingPong, "remote_pingpong_p99_us", "  remote ping-pong RTT, p99", "µs", "", fmtMicros},
	{figRemotePingPong, "tls_pingpong_p50_us", "  raw TLS 1.3 ping-pong, median", "µs", "", fmtMicros},
	{figRemotePingPong, "tls_pingpong_p99_us", "  raw TLS 1.3 ping-pong, p99", "µs", "", fmtMicros},
	{figRemotePingPong, "remote_pingpong_p50_vs_tls", "  5 over raw TLS, median", "ratio", "≤ 1.1", fmtRatio},
	{figRemotePingPong, "remote_pingpong_p99_vs_tls", "  5 over raw TLS, p99", "ratio", "≤ 1.15", fmtRatio},
	{figMailbox, "mailbox_bytes", "6 idle mailbox (100,000)", "bytes", "≤ 104", fmtInt},
}

// results are the values of every run, by key.
type results struct {
	o    *options
	vals map[string][]float64

	// the 1-minute load average before and after (-1: unknown); the
	// figures are only as good as the machine was quiet
	loadBefore, loadAfter float64
}

func newResults(o *options) *results {
	return &results{o: o, vals: map[string][]float64{}, loadBefore: loadAverage()}
}

// loadAverage returns the 1-minute load average from /proc/loadavg, or -1.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func (r *results) add(key string, v float64) { r.vals[key] = append(r.vals[key], v) }

// summary returns the median, min and max of the runs of key.
func (r *results) summary(key string) (med, lo, hi float64, ok bool) {
	v := slices.Clone(r.vals[key])
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	slices.Sort(v)
	return median(v), v[0], v[len(v)-1], true
}

// median of sorted values; the mean of the middle two for an even count.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted
// durations by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func (r *results) printTable(w io.Writer) {
	fmt.Fprintf(w, "reign_bench: median of %d runs [min – max]; %s\n", r.o.runs, machineLine())
	fmt.Fprintf(w, "payload %d bytes; %s", r.o.payload, runLengthLine(r.o))
	if r.loadBefore >= 0 {
		fmt.Fprintf(w, "; load average %.2f before, %.2f after", r.loadBefore, r.loadAfter)
	}
	fmt.Fprint(w, "\n\n")
	const line = "%-36s %10s %21s  %-8s %s\n"
	fmt.Fprintf(w, line, "figure", "median", "min – max", "unit", "target")
	for _, row := range rows {
		med, lo, hi, ok := r.summary(row.key)
		if !ok {
			continue
		}
		fmt.Fprintf(w, line, row.label, row.format(med), row.format(lo)+" – "+row.format(hi), row.unit, row.target)
	}
	if r.o.verbose {
		fmt.Fprintln(w)
		for _, row := range rows {
			if v := r.vals[row.key]; len(v) > 0 {
				s := make([]string, len(v))
				for i, x := range v {
					s[i] = row.format(x)
				}
				fmt.Fprintf(w, "%s runs: %s\n", row.key, strings.Join(s, ", "))
			}
		}
	}
}

func runLengthLine(o *options) string {
	rounds := fmt.Sprintf("ping-pong runs of %d round trips locally, %d remote", defaultLocalRounds, defaultRemoteRounds)
	if o.rounds > 0 {
		rounds = fmt.Sprintf("ping-pong runs of %d round trips", o.rounds)
	}
	if o.count > 0 {
		return fmt.Sprintf("throughput runs of %d messages, selective runs of %v, %s", o.count, o.duration, rounds)
	}
	return fmt.Sprintf("throughput and selective runs of about %v each, %s", o.duration, rounds)
}

func (r *results) jsonObject() map[string]any {
	m := map[string]any{
		"runs":          r.o.runs,
		"payload_bytes": r.o.payload,
		"duration_ms":   r.o.duration.Milliseconds(),
		"count":         r.o.count,
		"roundtrips":    r.o.rounds,
		"gomaxprocs":    runtime.GOMAXPROCS(0),
		"num_cpu":       runtime.NumCPU(),
		"cpu_model":     cpuModel(),
		"go_version":    runtime.Version(),
		"goos":          runtime.GOOS,
		"goarch":        runtime.GOARCH,
	}
	if r.loadBefore >= 0 {
		m["load_avg_before"] = r.loadBefore
		m["load_avg_after"] = r.loadAfter
	}
	for _, row := range rows {
		med, lo, hi, ok := r.summary(row.key)
		if !ok {
			continue
		}
		m[row.key] = med
		m[row.key+"_min"] = lo
		m[row.key+"_max"] = hi
		m[row.key+"_runs"] = r.vals[row.key]
	}
	return m
}

func machineLine() string {
	return fmt.Sprintf("GOMAXPROCS=%d, %d CPUs, %s, %s %s/%s", runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// cpuModel returns the CPU model named in /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtMicros(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRatio(v float64) string { return fmt.Sprintf("%.2f×", v) }

func fmtInt(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
