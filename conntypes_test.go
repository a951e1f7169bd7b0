package reign

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// connPair returns the two ends of a connection of the given kind:
// "pipe" (net.Pipe), "tcp" (loopback) or "tls" (mutual TLS on loopback with
// the nodes' own certificates; a is the dialer, node 1).
func connPair(t *testing.T, kind string, n1, n2 *Node) (a, b net.Conn) {
	t.Helper()
	if kind == "pipe" {
		return net.Pipe()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	if kind == "tcp" {
		return a, b
	}
	ta := tls.Client(a, n1.cl.tls.clientConfig(n2.id))
	tb := tls.Server(b, n2.cl.tls.serverConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tb.HandshakeContext(ctx) }()
	if err := ta.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if id, err := peerNodeID(tb.ConnectionState()); err != nil || id != n1.id {
		t.Fatalf("server sees peer %d, %v", id, err)
	}
	return ta, tb
}

// joinOver runs the reign handshake over a and b and serves the resulting
// connection between n1 (on a) and n2 (on b) until the returned stop is
// called (or the connection fails).
func joinOver(t *testing.T, n1, n2 *Node, a, b net.Conn) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
	defer hcancel()
	type res struct {
		cn  *conn
		err error
	}
	r1, r2 := make(chan res, 1), make(chan res, 1)
	go func() {
		h, err := exchangeHello(hctx, n1, a, n2.id)
		r1 <- res{newConn(n1.cl.peer(n2.id), a, h), err}
	}()
	go func() {
		h, err := exchangeHello(hctx, n2, b, n1.id)
		r2 <- res{newConn(n2.cl.peer(n1.id), b, h), err}
	}()
	x1, x2 := <-r1, <-r2
	if x1.err != nil || x2.err != nil {
		cancel()
		t.Fatalf("handshake: %v / %v", x1.err, x2.err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); x1.cn.p.runConn(ctx, x1.cn) }()
	go func() { defer wg.Done(); x2.cn.p.runConn(ctx, x2.cn) }()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// unservedPair makes nodes 1 and 2 of a cluster spec without serving them:
// the test connects them itself.
func unservedPair(t *testing.T) (*Node, *Node) {
	t.Helper()
	tc := newTestCluster(t, 2, nil)
	tc.stopAll()
	mk := func(id NodeID) *Node {
		cfg := tc.config(id, nil)
		cfg.Listener = nil
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RegisterType(testMsg{}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return mk(1), mk(2)
}

// TestProtocolOverConnTypes runs the same exchange over net.Pipe, TCP
// loopback and mutual TLS loopback: the protocol does not depend on the
// transport's buffering.
func TestProtocolOverConnTypes(t *testing.T) {
	for _, kind := range []string{"pipe", "tcp", "tls"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			n1, n2 := unservedPair(t)
			a, b := connPair(t, kind, n1, n2)
			stop := joinOver(t, n1, n2, a, b)
			checkFor(t, 5*time.Second, func() error {
				return unless(n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1, "n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1")
			})

			// messages both ways, with Addresses inside, in order
			x, xmb := n1.NewMailbox()
			y, ymb := n2.NewMailbox()
			rx, ry := n2.BindAddress(x), n1.BindAddress(y)
			for i := 0; i < 500; i++ {
				if err := ry.Send(testMsg{Seq: i, From: x, Text: kind}); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 500; i++ {
				m := recv(t, ymb).(testMsg)
				if m.Seq != i || m.From != rx || m.Text != kind {
					t.Fatalf("got %+v", m)
				}
			}
			if err := rx.Send("pong"); err != nil {
				t.Fatal(err)
			}
			if v := recv(t, xmb); v != "pong" {
				t.Fatalf("got %v", v)
			}

			// registry
			if err := n2.Register("y", y); err != nil {
				t.Fatal(err)
			}
			checkFor(t, 5*time.Second, func() error { got, ok := n1.Lookup("y"); return unless(ok && got == ry, "ok && got == ry") })

			// Call
			go func() {
				for {
					v, err := ymb.Receive(context.Background())
					if err != nil {
						return
					}
					if r, ok := v.(Request); ok {
						_ = r.Reply(r.Body.(string) + "!")
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if v, err := Call(ctx, ry, "hey"); err != nil || v != "hey!" {
				t.Fatalf("call: %v %v", v, err)
			}

			// a link fires with NoConnection when the connection goes
			w, wmb := n1.NewMailbox()
			ry.OnCloseNotify(w)
			checkFor(t, 5*time.Second, func() error {
				p := n2.cl.peer(1)
				p.mu.Lock()
				defer p.mu.Unlock()
				return unless(len(p.links.watched) == 1, "len(p.links.watched) == 1")
			})
			_ = b.Close() // n2's end fails; n1 sees the connection drop
			mc := recv(t, wmb).(MailboxClosed)
			if mc.Address != ry || mc.Reason != NoConnection {
				t.Fatalf("got %+v", mc)
			}
			stop()
			ymb.Close()
			if err := ry.Send(1); !errors.Is(err, ErrNodeUnreachable) {
				t.Fatalf("send after loss: %v", err)
			}
			if _, ok := n1.Lookup("y"); ok {
				t.Fatal("the lost node's claim survived")
			}
		})
	}
}
