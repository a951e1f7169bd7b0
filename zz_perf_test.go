package reign

import (
	"context"
	"testing"
)

type small struct{ A, B int }

func BenchmarkZZOneWay(b *testing.B) {
	n, _ := NewNode(Config{})
	a, mb := n.NewMailbox()
	var msg any = small{1, 2}
	done := make(chan struct{})
	go func() {
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			mb.Receive(ctx)
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Send(msg)
	}
	<-done
}

func BenchmarkZZPingPong(b *testing.B) {
	n, _ := NewNode(Config{})
	a, amb := n.NewMailbox()
	c, cmb := n.NewMailbox()
	var msg any = small{1, 2}
	go func() {
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			amb.Receive(ctx)
			c.Send(msg)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		a.Send(msg)
		cmb.Receive(ctx)
	}
}

func BenchmarkZZSelective(b *testing.B) {
	n, _ := NewNode(Config{})
	a, mb := n.NewMailbox()
	for i := 0; i < 1000; i++ {
		a.Send(i)
	}
	var want any = "match"
	match := func(v any) bool { _, ok := v.(string); return ok }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Send(want)
		mb.ReceiveMatchAsync(match)
	}
}
