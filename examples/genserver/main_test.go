package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTranscript(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\ntranscript:\n%s", err, out.String())
	}
	t.Logf("run took %v", time.Since(start))
	transcript := out.String()
	// Each of these lines must appear, in this order (other lines may
	// interleave: server and client print from their own goroutines).
	want := []string{
		`server: init: registered "bank" as <1.`,
		`client: call GetBalance{} -> balance 0`,
		`server: handle_cast Deposit 100 -> 100`,
		`client: call Withdraw{Amount:30} -> balance 70`,
		`client: call Withdraw{Amount:500} -> error: insufficient funds: balance 70`,
		`server: handle_cast Watch <2.`,
		`server: handle_info: client <2.`,
		`server: timeout: idle for 300ms, balance 70 saved to the journal`,
		`server: handle_cast Deposit 5 -> 75`,
		`server: handle_call Poison: crashing`,
		`server: init: registered "bank" as <1.`,
		`client: call GetBalance{} -> balance 70`,
		`client: call Withdraw{Amount:20} -> balance 50`,
		`server: shutting down, balance 50 saved`,
	}
	rest := transcript
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("transcript lacks %q after the earlier lines:\n%s", w, transcript)
		}
		rest = rest[i+len(w):]
	}
	for _, w := range []string{
		`supervisor: bank terminated (reign: server "bank" panicked: bank: poison message); restarting: true`,
		"went away (normal)",
		"client:   errors.Is(err, reign.ErrMailboxClosed) = true",
	} {
		if !strings.Contains(transcript, w) {
			t.Errorf("transcript lacks %q:\n%s", w, transcript)
		}
	}
}
