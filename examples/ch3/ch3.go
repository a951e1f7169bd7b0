package main

// The port of OTP's ch3 (a gen_server) and ch_sup (its supervisor), from
// the OTP Design Principles. Everything else in this folder is the program
// around them (the Erlang shell's part).

import (
	"context"
	"slices"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
	"github.com/thejerf/suture/v4"
)

// ch3's messages: alloc is a call, {free, Ch} a cast.
type (
	Alloc struct{}
	Free  struct{ Ch int }
)

// messageTypes cross between nodes: register them on every node.
var messageTypes = []any{Alloc{}, Free{}}

// alloc and free are ch3's client API: ch3:alloc/0 and ch3:free/1.
func alloc(ctx context.Context, node *reign.Node) (int, error) {
	return gen.Call[int](ctx, node, "ch3", Alloc{})
}

func free(node *reign.Node, ch int) error { return gen.Cast(node, "ch3", Free{Ch: ch}) }

// ch3 is the channel allocator's state: {Allocated, Free}.
type ch3 struct{ allocated, free []int }

// Init is init/1: {ok, channels()}.
func (c *ch3) Init(*gen.Process) error {
	c.allocated, c.free = nil, nil
	for ch := 1; ch <= 100; ch++ {
		c.free = append(c.free, ch)
	}
	return nil
}

// HandleCall is handle_call(alloc, _From, Chs). With no channel free,
// c.free[0] panics, as [H|T] = Free fails to match in Erlang: the server
// crashes, and ch_sup restarts it with all channels free.
func (c *ch3) HandleCall(_ *gen.Process, req any) (any, error) {
	if _, ok := req.(Alloc); !ok {
		return nil, gen.ErrUnhandled
	}
	ch := c.free[0]
	c.allocated, c.free = append(c.allocated, ch), c.free[1:]
	return ch, nil
}

// HandleCast is handle_cast({free, Ch}, Chs).
func (c *ch3) HandleCast(_ *gen.Process, msg any) error {
	f, ok := msg.(Free)
	if !ok {
		return gen.ErrUnhandled
	}
	if i := slices.Index(c.allocated, f.Ch); i >= 0 {
		c.allocated = slices.Delete(c.allocated, i, i+1)
		c.free = append([]int{f.Ch}, c.free...)
	}
	return nil
}

// chSup is ch_sup: one_for_one, intensity 1, period 5, with ch3 as a
// permanent child registered as ch3 ({local, ch3}).
func chSup(node *reign.Node) *suture.Supervisor {
	sup := suture.New("ch_sup", suture.Spec{FailureThreshold: 1, FailureDecay: 5})
	sup.Add(gen.New(node, "ch3", &ch3{}))
	return sup
}
