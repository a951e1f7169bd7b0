package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/anthdm/hollywood/remote"

	"peers/bench"
	"peers/pb"
)

// The remote figures: hollywood's remote layer (DRPC) with its TLS
// configuration. Its messages must be protobuf messages: pb.Small.

// node is the engine of this process in the remote figures.
var node struct {
	e          *actor.Engine
	sink, echo *actor.PID
	reports    chan *pb.Report
	reporter   *actor.PID
}

func startEngine(self string, cfg *tls.Config) error {
	r := remote.New(self, remote.NewConfig().WithTLS(cfg))
	e, err := actor.NewEngine(actor.NewEngineConfig().WithRemote(r))
	if err != nil {
		return err
	}
	node.e = e
	return nil
}

// sink counts the messages of one run after a Begin.
type sink struct {
	expect, got int64
	first       time.Time
	replyTo     *actor.PID
}

func (s *sink) Receive(ctx *actor.Context) {
	switch m := ctx.Message().(type) {
	case *pb.Begin:
		s.expect, s.got, s.replyTo = m.N, 0, ctx.Sender()
	case *pb.Small:
		s.got++
		if s.got == 1 {
			s.first = time.Now()
		}
		if s.got == s.expect {
			ctx.Send(s.replyTo, &pb.Report{N: s.got, Nanos: int64(time.Since(s.first))})
		}
	}
}

func (hollywood) Child(self string, cfg *tls.Config) error {
	if err := startEngine(self, cfg); err != nil {
		return err
	}
	node.e.Spawn(func() actor.Receiver { return &sink{} }, "sink", actor.WithID("1"))
	node.e.SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*pb.Small); ok {
			ctx.Respond(m)
		}
	}, "echo", actor.WithID("1"))
	return nil
}

func (hollywood) Parent(self, child string, cfg *tls.Config) error {
	if err := startEngine(self, cfg); err != nil {
		return err
	}
	node.sink = actor.NewPID(child, "sink/1")
	node.echo = actor.NewPID(child, "echo/1")
	node.reports = make(chan *pb.Report, 1)
	node.reporter = node.e.SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*pb.Report); ok {
			node.reports <- m
		}
	}, "reporter")
	return nil
}

func (hollywood) RemoteOneWay(ctx context.Context, n int) (time.Duration, error) {
	node.e.SendWithSender(node.sink, &pb.Begin{N: int64(n)}, node.reporter)
	for i := range n {
		node.e.Send(node.sink, &pb.Small{I: int64(i), S: bench.SmallText})
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	select {
	case r := <-node.reports:
		return time.Duration(r.Nanos), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("hollywood remote one-way: no report: %w", ctx.Err())
	}
}

func (hollywood) RemotePingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	r := bench.NewRecorder(warm, rounds)
	echo := node.echo
	pinger := node.e.SpawnFunc(func(ctx *actor.Context) {
		switch m := ctx.Message().(type) {
		case actor.Started:
			ctx.Send(echo, &pb.Small{I: 0, S: bench.SmallText})
		case *pb.Small:
			if next, ok := r.Echo(int(m.I)); ok {
				ctx.Send(echo, &pb.Small{I: int64(next), S: bench.SmallText})
			}
		}
	}, "pinger")
	defer func() { <-node.e.Poison(pinger).Done() }()
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("hollywood remote: %w", err)
	}
	return s, nil
}
