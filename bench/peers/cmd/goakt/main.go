// Command goakt measures GoAkt v3's local figures (see package bench).
// GoAkt's Tell takes a proto.Message, so the message is pb.Small, a
// generated protobuf message with the common message's two fields.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tochemey/goakt/v3/actor"
	"github.com/tochemey/goakt/v3/goaktpb"
	"github.com/tochemey/goakt/v3/log"

	"peers/bench"
	"peers/pb"
)

func main() {
	bench.Main("goakt", func() (bench.Lib, error) { return goakt{}, nil })
}

type goakt struct{}

// fn is an actor whose Receive calls f.
type fn struct{ f func(*actor.ReceiveContext) }

func (a *fn) PreStart(*actor.Context) error     { return nil }
func (a *fn) Receive(ctx *actor.ReceiveContext) { a.f(ctx) }
func (a *fn) PostStop(*actor.Context) error     { return nil }

func system(ctx context.Context) (actor.ActorSystem, error) {
	sys, err := actor.NewActorSystem("bench", actor.WithLogger(log.DiscardLogger))
	if err != nil {
		return nil, err
	}
	return sys, sys.Start(ctx)
}

func (goakt) OneWay(ctx context.Context, n int) (time.Duration, error) {
	sys, err := system(ctx)
	if err != nil {
		return 0, err
	}
	defer sys.Stop(context.Background())
	c := bench.NewCounter(n)
	pid, err := sys.Spawn(ctx, "sink", &fn{func(ctx *actor.ReceiveContext) {
		if _, ok := ctx.Message().(*pb.Small); ok {
			c.Add()
		}
	}})
	if err != nil {
		return 0, err
	}
	c.Start = time.Now()
	for i := range n {
		if err := actor.Tell(ctx, pid, &pb.Small{I: int64(i), S: bench.SmallText}); err != nil {
			return 0, err
		}
	}
	return c.Wait(ctx)
}

func (goakt) PingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	sys, err := system(ctx)
	if err != nil {
		return nil, err
	}
	defer sys.Stop(context.Background())
	echo, err := sys.Spawn(ctx, "echo", &fn{func(ctx *actor.ReceiveContext) {
		if m, ok := ctx.Message().(*pb.Small); ok {
			ctx.Tell(ctx.Sender(), m)
		}
	}})
	if err != nil {
		return nil, err
	}
	r := bench.NewRecorder(warm, rounds)
	_, err = sys.Spawn(ctx, "pinger", &fn{func(ctx *actor.ReceiveContext) {
		switch m := ctx.Message().(type) {
		case *goaktpb.PostStart:
			ctx.Tell(echo, &pb.Small{I: 0, S: bench.SmallText})
		case *pb.Small:
			if next, ok := r.Echo(int(m.I)); ok {
				ctx.Tell(echo, &pb.Small{I: int64(next), S: bench.SmallText})
			}
		}
	}})
	if err != nil {
		return nil, err
	}
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("goakt: %w", err)
	}
	return s, nil
}
