// Command ergo measures Ergo's local figures (see package bench), with
// github.com/ergo-services/ergo v1.999.224 (Ergo 2.2.4), the newest version
// the module proxy serves here. Ergo's mailbox is a bounded channel that
// refuses a message when full: the one-way sender retries then, and the
// sink's mailbox has Ergo's largest size (65,535).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"time"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"peers/bench"
)

func main() {
	// Ergo prints a warning for every message a full mailbox refuses
	// (its flag ergo.warning, registered on the command line's flag set).
	_ = flag.Set("ergo.warning", "false")
	bench.Main("ergo", func() (bench.Lib, error) {
		n, err := ergo.StartNode(fmt.Sprintf("bench%d@127.0.0.1", time.Now().UnixNano()%1e6), "cookie", node.Options{})
		if err != nil {
			return nil, err
		}
		return &ergoLib{n: n}, nil
	})
}

type ergoLib struct{ n node.Node }

// server is a gen.Server whose HandleInfo calls info.
type server struct {
	gen.Server
	info func(p *gen.ServerProcess, m etf.Term)
}

func (s *server) HandleInfo(p *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	s.info(p, m)
	return gen.ServerStatusOK
}

// start is the message that starts the pinger.
type start struct{}

const mailbox = 65535

func (e *ergoLib) OneWay(ctx context.Context, n int) (time.Duration, error) {
	c := bench.NewCounter(n)
	sink, err := e.n.Spawn("", gen.ProcessOptions{MailboxSize: mailbox}, &server{info: func(_ *gen.ServerProcess, m etf.Term) {
		if _, ok := m.(bench.Small); ok {
			c.Add()
		}
	}})
	if err != nil {
		return 0, err
	}
	defer sink.Kill()
	sender, err := e.n.Spawn("", gen.ProcessOptions{}, &server{info: func(*gen.ServerProcess, etf.Term) {}})
	if err != nil {
		return 0, err
	}
	defer sender.Kill()
	to := sink.Self()
	c.Start = time.Now()
	for i := range n {
		for {
			err := sender.Send(to, bench.Small{I: i, S: bench.SmallText})
			if err == nil {
				break
			}
			if !errors.Is(err, lib.ErrProcessMailboxFull) {
				return 0, err
			}
			runtime.Gosched()
		}
	}
	return c.Wait(ctx)
}

func (e *ergoLib) PingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error) {
	r := bench.NewRecorder(warm, rounds)
	var echo etf.Pid
	pinger, err := e.n.Spawn("", gen.ProcessOptions{}, &server{info: func(p *gen.ServerProcess, m etf.Term) {
		switch m := m.(type) {
		case start:
			_ = p.Send(echo, bench.Small{I: 0, S: bench.SmallText})
		case bench.Small:
			if next, ok := r.Echo(m.I); ok {
				_ = p.Send(echo, bench.Small{I: next, S: bench.SmallText})
			}
		}
	}})
	if err != nil {
		return nil, err
	}
	defer pinger.Kill()
	back := pinger.Self()
	ep, err := e.n.Spawn("", gen.ProcessOptions{}, &server{info: func(p *gen.ServerProcess, m etf.Term) {
		_ = p.Send(back, m)
	}})
	if err != nil {
		return nil, err
	}
	defer ep.Kill()
	echo = ep.Self()
	if err := pinger.Send(back, start{}); err != nil {
		return nil, err
	}
	s, err := r.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("ergo: %w", err)
	}
	return s, nil
}
