package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// run re-executes this test binary as the child node
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// tinyArgs make a full run take a few seconds, even with -race.
var tinyArgs = []string{"-count", "3000", "-duration", "20ms", "-roundtrips", "300", "-runs", "2"}

func TestRunJSON(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the bench's certificates go here, and must be gone after

	var pids []int
	testHookChildStarted = func(pid int) { pids = append(pids, pid) }
	defer func() { testHookChildStarted = nil }()

	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(append(tinyArgs, "-json"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	t.Logf("took %v", time.Since(start))

	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	for _, key := range []string{
		"local_small_msgs_per_sec", "local_msgs_per_sec",
		"local_small_pingpong_p50_us", "local_small_pingpong_p99_us",
		"local_pingpong_p50_us", "local_pingpong_p99_us",
		"selective_small_1k_ns", "selective_1k_ns", "remote_msgs_per_sec",
		"remote_pingpong_p50_us", "remote_pingpong_p99_us",
		"tls_pingpong_p50_us", "tls_pingpong_p99_us",
		"remote_pingpong_p50_vs_tls", "remote_pingpong_p99_vs_tls",
		"mailbox_bytes", "gomaxprocs",
	} {
		for _, k := range []string{key, key + "_min", key + "_max"} {
			if k != key && key == "gomaxprocs" {
				continue
			}
			v, ok := got[k].(float64)
			if !ok || !(v > 0) {
				t.Errorf("%s = %v, want a positive number", k, got[k])
			}
		}
	}
	// each ratio is of the same run's figures: their median lies within
	// the spread of the runs' quotients
	for _, q := range []string{"p50", "p99"} {
		runs := func(k string) []any { r, _ := got[k+"_runs"].([]any); return r }
		reignRuns, tlsRuns, ratioRuns := runs("remote_pingpong_"+q+"_us"), runs("tls_pingpong_"+q+"_us"), runs("remote_pingpong_"+q+"_vs_tls")
		if len(reignRuns) != 2 || len(tlsRuns) != 2 || len(ratioRuns) != 2 {
			t.Errorf("%s: %d, %d and %d runs of reign, raw TLS and their ratio, want 2 each", q, len(reignRuns), len(tlsRuns), len(ratioRuns))
			continue
		}
		for i := range ratioRuns {
			want := reignRuns[i].(float64) / tlsRuns[i].(float64)
			if r := ratioRuns[i].(float64); r < want*0.999 || r > want*1.001 {
				t.Errorf("%s run %d: ratio %v, want %v / %v", q, i, r, reignRuns[i], tlsRuns[i])
			}
		}
	}
	for _, k := range []string{"cpu_model", "go_version"} {
		if s, ok := got[k].(string); !ok || s == "" {
			t.Errorf("%s = %v, want a string", k, got[k])
		}
	}

	if len(pids) != 1 {
		t.Fatalf("started %d child processes, want 1", len(pids))
	}
	// run waited for the child, so it is reaped: no process has its ID
	// (unless the system reused it at once, which it does not do so soon).
	if err := syscall.Kill(pids[0], 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("child %d still exists after run returned (kill 0: %v)", pids[0], err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind in the temporary folder: %s", e.Name())
	}
}

func TestRunTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(append(tinyArgs, "-only", "1,selective,6"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"local one-way throughput", "with Msg (56 B)", "selective receive", "idle mailbox", "GOMAXPROCS=", "300 round trips"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "remote") {
		t.Errorf("table has remote figures that -only excluded:\n%s", out)
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-runs", "0"},
		{"-only", "7"},
		{"-count", "1"},
		{"-roundtrips", "-5"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr:\n%s", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-duration") || strings.Contains(stderr.String(), childNodeFlag) {
		t.Errorf("-h: code %d, usage:\n%s", code, stderr.String())
	}
}
