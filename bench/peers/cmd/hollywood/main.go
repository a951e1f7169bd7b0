package main

import (
	"context"
	"fmt"
	"peers/bench"
	"time"

	"github.com/anthdm/hollywood/actor"
)

func main() { bench.Main("hollywood", func() (bench.Lib, error) { return hollywood{}, nil }) }

type hollywood struct{}

func (hollywood) OneWay(ctx context.Context, n int) (time.Duration, error) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		return 0, err
	}
	c := bench.NewCounter(n)
	pid := e.SpawnFunc(func(ctx *actor.Context) {
		if _, ok := ctx.Message().(bench.Small); ok {
			c.Add()
		}
	}, "sink")
	defer func() { <-e.Poison(pid).Done() }()
	c.Start = time.Now()
	for i := range n {
		e.Send(pid, bench.Small{I: i, S: bench.SmallText})
	}
	return c.Wait(ctx)
}

func (hollywood) PingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		return nil, err
	}
	echo := e.SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(bench.Small); ok {
			ctx.Respond(m)
		}
	}, "echo")
	r := bench.NewRecorder(warm, rounds)
	pinger := e.SpawnFunc(func(ctx *actor.Context) {
		switch m := ctx.Message().(type) {
		case actor.Started:
			ctx.Send(echo, bench.Small{I: 0, S: bench.SmallText})
		case bench.Small:
			if next, ok := r.Echo(m.I); ok {
				ctx.Send(echo, bench.Small{I: next, S: bench.SmallText})
			}
		}
	}, "pinger")
	defer func() {
		<-e.Poison(pinger).Done()
		<-e.Poison(echo).Done()
	}()
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("hollywood: %w", err)
	}
	return s, nil
}
