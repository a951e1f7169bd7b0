package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"peers/bench"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func main() { bench.Main("protoactor", func() (bench.Lib, error) { return protoactor{}, nil }) }

type protoactor struct{}

func protoSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
}

func (protoactor) OneWay(ctx context.Context, n int) (time.Duration, error) {
	sys := protoSystem()
	defer sys.Shutdown()
	c := bench.NewCounter(n)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(bench.Small); ok {
			c.Add()
		}
	}))
	defer func() { _ = sys.Root.PoisonFuture(pid).Wait() }()
	c.Start = time.Now()
	for i := range n {
		sys.Root.Send(pid, bench.Small{I: i, S: bench.SmallText})
	}
	return c.Wait(ctx)
}

func (protoactor) PingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	sys := protoSystem()
	defer sys.Shutdown()
	echo := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(bench.Small); ok {
			ctx.Respond(m)
		}
	}))
	r := bench.NewRecorder(warm, rounds)
	pinger := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(echo, bench.Small{I: 0, S: bench.SmallText})
		case bench.Small:
			if next, ok := r.Echo(m.I); ok {
				ctx.Request(echo, bench.Small{I: next, S: bench.SmallText})
			}
		}
	}))
	defer func() {
		_ = sys.Root.PoisonFuture(pinger).Wait()
		_ = sys.Root.PoisonFuture(echo).Wait()
	}()
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("protoactor: %w", err)
	}
	return s, nil
}
