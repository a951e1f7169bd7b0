package gen_test

import (
	"context"
	"testing"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
)

// echo is a gen server that replies with the request.
type echo struct{}

func (echo) HandleCall(_ *gen.Process, req any) (any, error) { return req, nil }

// BenchmarkCall compares a round trip through gen (Service and gen.Call)
// with the same through reign.Call and a hand-written receive loop, on one
// node and across two nodes over mutual TLS on loopback.
func BenchmarkCall(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
		var sn, cn *reign.Node
		if where == "local" {
			sn = localNode(b)
			cn = sn
		} else {
			sn, cn = testCluster(b)
		}
		// the hand-written server
		raw, mb := sn.NewMailbox()
		b.Cleanup(mb.Close)
		go func() {
			for {
				v, err := mb.Receive(context.Background())
				if err != nil {
					return
				}
				r := v.(reign.Request)
				_ = r.Reply(r.Body)
			}
		}()
		raw = cn.BindAddress(raw)
		supervise(b, gen.New(sn, "echo", echo{}))
		addr := lookup(b, cn, "echo", reign.Address{})
		ctx := context.Background()
		// the same calls bounded by a context with a deadline
		dctx, cancel := context.WithTimeout(ctx, time.Hour)
		b.Cleanup(cancel)
		b.Run(where+"/deadline/reign.Call", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := reign.Call(dctx, raw, i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(where+"/deadline/gen.Call-name", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := gen.Call[int](dctx, cn, "echo", i); err != nil {
					b.Fatal(err)
				}
			}
		})

		b.Run(where+"/reign.Call", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := reign.Call(ctx, raw, i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(where+"/reign.Call-to-gen-server", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := reign.Call(ctx, addr, i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(where+"/gen.Call-to-raw-server", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := gen.Call[int](ctx, cn, raw, i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(where+"/gen.Call-address", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := gen.Call[int](ctx, cn, addr, i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(where+"/gen.Call-name", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := gen.Call[int](ctx, cn, "echo", i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
