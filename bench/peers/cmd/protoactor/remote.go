package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"peers/bench"
	"peers/pb"
)

// The remote figures: protoactor-go's remote layer (gRPC streams) with TLS
// credentials on both the server and the dialling side. Its messages must
// be protobuf messages: pb.Small.

// node is the actor system of this process in the remote figures.
var node struct {
	sys        *actor.ActorSystem
	sink, echo *actor.PID
	reports    chan *pb.Report
	reporter   *actor.PID
}

func startSystem(self string, cfg *tls.Config) error {
	host, p, err := net.SplitHostPort(self)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	node.sys = protoSystem()
	r := remote.NewRemote(node.sys, remote.Configure(host, port,
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(cfg))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(cfg)))))
	r.Start()
	return nil
}

// sink counts the messages of one run after a Begin.
type sink struct {
	expect, got int64
	first       time.Time
	replyTo     *actor.PID
}

func (s *sink) Receive(ctx actor.Context) {
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

func (protoactor) Child(self string, cfg *tls.Config) error {
	if err := startSystem(self, cfg); err != nil {
		return err
	}
	if _, err := node.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &sink{} }), "sink"); err != nil {
		return err
	}
	_, err := node.sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*pb.Small); ok {
			ctx.Respond(m)
		}
	}), "echo")
	return err
}

func (protoactor) Parent(self, child string, cfg *tls.Config) error {
	if err := startSystem(self, cfg); err != nil {
		return err
	}
	node.sink = actor.NewPID(child, "sink")
	node.echo = actor.NewPID(child, "echo")
	node.reports = make(chan *pb.Report, 1)
	node.reporter = node.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*pb.Report); ok {
			node.reports <- m
		}
	}))
	return nil
}

func (protoactor) RemoteOneWay(ctx context.Context, n int) (time.Duration, error) {
	node.sys.Root.RequestWithCustomSender(node.sink, &pb.Begin{N: int64(n)}, node.reporter)
	for i := range n {
		node.sys.Root.Send(node.sink, &pb.Small{I: int64(i), S: bench.SmallText})
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	select {
	case r := <-node.reports:
		return time.Duration(r.Nanos), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("protoactor remote one-way: no report: %w", ctx.Err())
	}
}

func (protoactor) RemotePingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	r := bench.NewRecorder(warm, rounds)
	echo := node.echo
	pinger := node.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(echo, &pb.Small{I: 0, S: bench.SmallText})
		case *pb.Small:
			if next, ok := r.Echo(int(m.I)); ok {
				ctx.Request(echo, &pb.Small{I: int64(next), S: bench.SmallText})
			}
		}
	}))
	defer func() { _ = node.sys.Root.PoisonFuture(pinger).Wait() }()
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("protoactor remote: %w", err)
	}
	return s, nil
}
