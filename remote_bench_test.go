package reign

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// Benchmarks of the remote paths over real mutual TLS on 127.0.0.1, two
// nodes in this process (newTestCluster). cmd/reign_bench measures the same
// paths between two processes; these are for profiling:
//
//	go test -run '^$' -bench Remote -cpuprofile cpu.out && go tool pprof -top cpu.out

// benchCluster starts nodes 1 and 2 and waits until they are connected.
func benchCluster(b *testing.B) (n1, n2 *Node) {
	b.Helper()
	tc := newTestCluster(b, 2, nil)
	tc.connected()
	return tc.node(1), tc.node(2)
}

// serveMailbox runs fn on its own goroutine with a new mailbox of n, and
// closes the mailbox and waits for fn at the end of the benchmark.
func serveMailbox(b *testing.B, n *Node, fn func(ctx context.Context, mb *Mailbox)) Address {
	b.Helper()
	a, mb := n.NewMailbox()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx, mb)
	}()
	b.Cleanup(func() {
		cancel()
		mb.Close()
		<-done
	})
	return a
}

// BenchmarkRemoteSend sends b.N messages one way from node 1 to node 2;
// the time runs until the last one is received.
func BenchmarkRemoteSend(b *testing.B) {
	n1, n2 := benchCluster(b)
	got := make(chan error, 1)
	count := b.N
	sink := serveMailbox(b, n2, func(ctx context.Context, mb *Mailbox) {
		for range count {
			if _, err := mb.Receive(ctx); err != nil {
				got <- err
				return
			}
		}
		got <- nil
	})
	sink = n1.BindAddress(sink)
	msg := testMsg{Seq: 1, Text: "hello"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		msg.Seq = i
		if err := sink.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case err := <-got:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(time.Minute):
		b.Fatal("messages lost")
	}
	b.StopTimer()
}

// echoPing sends every netPing back to its Reply address.
func echoPing(ctx context.Context, mb *Mailbox) {
	for {
		v, err := mb.Receive(ctx)
		if err != nil {
			return
		}
		if p, ok := v.(netPing); ok {
			_ = p.Reply.Send(p)
		}
	}
}

// BenchmarkRemotePingPong measures one round trip, node 1 to node 2 and
// back, per operation.
func BenchmarkRemotePingPong(b *testing.B) {
	n1, n2 := benchCluster(b)
	echo := n1.BindAddress(serveMailbox(b, n2, echoPing))
	me, mb := n1.NewMailbox()
	defer mb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := echo.Send(netPing{N: i, Reply: me}); err != nil {
			b.Fatal(err)
		}
		v, err := mb.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p, ok := v.(netPing); !ok || p.N != i {
			b.Fatalf("got %#v, want ping %d", v, i)
		}
	}
}

// BenchmarkRemoteCall measures one Call from node 1 to a server on node 2.
func BenchmarkRemoteCall(b *testing.B) {
	n1, n2 := benchCluster(b)
	server := n1.BindAddress(serveMailbox(b, n2, func(ctx context.Context, mb *Mailbox) {
		for {
			v, err := mb.Receive(ctx)
			if err != nil {
				return
			}
			if r, ok := v.(Request); ok {
				_ = r.Reply(r.Body)
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		v, err := Call(ctx, server, i)
		if err != nil {
			b.Fatal(err)
		}
		if v != i {
			b.Fatalf("reply %v, want %d", v, i)
		}
	}
}

// codecs are the codecs the encode and decode benchmarks run with.
var codecs = []struct {
	name  string
	codec Codec
}{
	{"msgpack", MsgpackCodec{}},
	{"msgpack-compact", MsgpackCodec{Compact: true}},
	{"json", JSONCodec{}},
}

// codecNode is a local-only node with codec and testMsg registered, and a
// testMsg whose From is one of its mailboxes.
func benchCodecNode(b *testing.B, codec Codec) (*Node, testMsg) {
	b.Helper()
	n, err := NewNode(Config{Codec: codec})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.RegisterType(testMsg{}); err != nil {
		b.Fatal(err)
	}
	from, mb := n.NewMailbox()
	b.Cleanup(mb.Close)
	return n, testMsg{Seq: 12345, From: from, Text: "hello, world"}
}

func BenchmarkEncodeMessage(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			n, msg := benchCodecNode(b, c.codec)
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				out, _, err := n.encodeMessage(buf[:0], msg)
				if err != nil {
					b.Fatal(err)
				}
				buf = out[:0]
			}
		})
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			n, msg := benchCodecNode(b, c.codec)
			data, info, err := n.encodeMessage(nil, msg)
			if err != nil {
				b.Fatal(err)
			}
			if info != n.types.forType(reflect.TypeOf(msg)) {
				b.Fatal("encodeMessage returned another type's info")
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				v, err := n.decodeMessage(info, data)
				if err != nil {
					b.Fatal(err)
				}
				if v.(testMsg).Seq != msg.Seq {
					b.Fatal("decoded the wrong value")
				}
			}
		})
	}
}
