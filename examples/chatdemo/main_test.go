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

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\ntranscript:\n%s", err, out.String())
	}
	t.Logf("demo took %v", time.Since(start))
	for _, want := range []string{
		"node 1 | node 2 joined",
		"node 2 | node 1 joined",
		"node 2 | [node 1] hello node 2, this is node 1",
		"node 1 | [node 2] hi node 1, reign works!",
		"node 2 | [node 1] bye for now",
		"node 1 | node 2 left (normal)",
		"both nodes left",
	} {
		if !strings.Contains(out.String(), want+"\n") && !strings.Contains(out.String(), want+";") {
			t.Errorf("transcript lacks %q:\n%s", want, out.String())
		}
	}
}
