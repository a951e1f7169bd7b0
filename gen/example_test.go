package gen_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
	"github.com/thejerf/suture/v4"
)

// The requests and casts of a key-value store.
type (
	Put    struct{ Key, Value string } // cast
	Lookup struct{ Key string }        // call: reply the value
)

var errNotFound = errors.New("not found")

// store is the server: its state is its fields.
type store struct{ m map[string]string }

// Init runs at every (re)start: build the state afresh.
func (s *store) Init(p *gen.Process) error {
	s.m = map[string]string{}
	return nil
}

func (s *store) HandleCall(p *gen.Process, req any) (any, error) {
	switch r := req.(type) {
	case Lookup:
		if v, ok := s.m[r.Key]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("%q: %w", r.Key, errNotFound) // an error reply
	}
	return nil, gen.ErrUnhandled
}

func (s *store) HandleCast(p *gen.Process, msg any) error {
	switch m := msg.(type) {
	case Put:
		s.m[m.Key] = m.Value
		return nil
	}
	return gen.ErrUnhandled
}

// A gen_server: a store registered as "store", supervised by suture,
// called by name with a typed reply.
func Example() {
	node, _ := reign.NewNode(reign.Config{})
	sup := suture.NewSimple("app")
	sup.Add(gen.New(node, "store", &store{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := sup.ServeBackground(ctx)
	defer func() { cancel(); <-done }()
	for _, ok := node.Lookup("store"); !ok; _, ok = node.Lookup("store") {
		time.Sleep(time.Millisecond) // the supervisor starts it in the background
	}

	_ = gen.Cast(node, "store", Put{Key: "lang", Value: "erlang"})
	v, err := gen.Call[string](ctx, node, "store", Lookup{Key: "lang"})
	fmt.Println(v, err)
	_, err = gen.Call[string](ctx, node, "store", Lookup{Key: "color"})
	fmt.Println(errors.Is(err, errNotFound), err)
	_, err = gen.Call[string](ctx, node, "store", 42)
	fmt.Println(errors.Is(err, gen.ErrUnhandled))
	// Output:
	// erlang <nil>
	// true "color": not found
	// true
}

// A server that crashes fails the call in flight with the cause; its
// monitors see it; the supervisor restarts it with fresh state.
func ExamplePanicError() {
	node, _ := reign.NewNode(reign.Config{})
	sup := suture.New("app", suture.Spec{EventHook: func(suture.Event) {}})
	sup.Add(gen.New(node, "store", &fragile{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := sup.ServeBackground(ctx)
	defer func() { cancel(); <-done }()
	var srv reign.Address
	for ok := false; !ok; srv, ok = node.Lookup("store") {
		time.Sleep(time.Millisecond)
	}
	monitor, mb := node.NewMailbox()
	srv.OnCloseNotify(monitor)

	_, err := gen.Call[string](ctx, node, srv, Lookup{Key: "crash"})
	var pe *gen.PanicError
	fmt.Println(errors.Is(err, reign.ErrMailboxClosed), errors.As(err, &pe), pe.Value)
	down, _ := mb.Receive(ctx)
	fmt.Println(down.(reign.MailboxClosed).Reason, down.(reign.MailboxClosed).Err)
	// Output:
	// true true index out of range
	// abnormal reign: server "store" panicked: index out of range
}

// fragile is a store whose Lookup of "crash" panics.
type fragile struct{ store }

func (f *fragile) HandleCall(p *gen.Process, req any) (any, error) {
	if r, ok := req.(Lookup); ok && r.Key == "crash" {
		panic("index out of range")
	}
	return f.store.HandleCall(p, req)
}

// A timer sends a message later unless cancelled; CancelTimer says
// whether it was still pending.
func ExampleSendAfter() {
	node, _ := reign.NewNode(reign.Config{})
	me, mb := node.NewMailbox()
	reminder := gen.SendAfter(time.Hour, me, "too late")
	fmt.Println(gen.CancelTimer(reminder))
	gen.SendAfter(10*time.Millisecond, me, "ding")
	msg, _ := mb.Receive(context.Background())
	fmt.Println(msg)
	// Output:
	// true
	// ding
}

// The idle timeout: a server that flushes after 50 ms without messages,
// as Erlang's {noreply, State, 50} does.
func ExampleProcess_SetTimeout() {
	node, _ := reign.NewNode(reign.Config{})
	flushed := make(chan int, 1)
	svc := gen.New(node, "buffer", &buffer{flushed: flushed})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	for _, ok := node.Lookup("buffer"); !ok; _, ok = node.Lookup("buffer") {
		time.Sleep(time.Millisecond)
	}
	for i := range 3 {
		_ = gen.Cast(node, "buffer", i)
	}
	fmt.Println("flushed", <-flushed, "items")
	// Output:
	// flushed 3 items
}

type buffer struct {
	items   []int
	flushed chan int
}

func (b *buffer) HandleCall(*gen.Process, any) (any, error) { return nil, gen.ErrUnhandled }

func (b *buffer) HandleCast(p *gen.Process, msg any) error {
	b.items = append(b.items, msg.(int))
	p.SetTimeout(50 * time.Millisecond)
	return nil
}

func (b *buffer) HandleInfo(p *gen.Process, msg any) error {
	if _, ok := msg.(gen.Timeout); ok {
		b.flushed <- len(b.items)
		b.items = nil
	}
	return nil
}
