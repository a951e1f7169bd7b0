package gen

import (
	"context"
	"testing"
	"time"
)

// Calls without a deadline share a context that ends DefaultTimeout to
// DefaultTimeout+coarse after the call; a new window gets a new one.
func TestDefaultDeadline(t *testing.T) {
	start := time.Now()
	ctx := defaultDeadline()
	d, ok := ctx.Deadline()
	if !ok || d.Before(start.Add(DefaultTimeout)) || d.After(time.Now().Add(DefaultTimeout+coarse)) {
		t.Fatalf("default deadline %v after the call, want %v to %v", d.Sub(start), DefaultTimeout, DefaultTimeout+coarse)
	}
	if defaultDeadline() != ctx {
		t.Fatal("two calls in one window got different contexts")
	}
	deadline := time.Now().Add(10 * time.Second)
	for defaultDeadline() == ctx { // the window ends after coarse
		if time.Now().After(deadline) {
			t.Fatal("the shared deadline was never renewed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if next, _ := defaultDeadline().Deadline(); !next.After(d) {
		t.Fatalf("the next window's deadline %v is not later than %v", next, d)
	}
	if ctx.Err() != nil || context.Cause(ctx) != nil {
		t.Fatal("a shared deadline ended early")
	}
}
