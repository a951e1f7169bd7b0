package reign

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// FuzzHandshake feeds arbitrary bytes to a node's side of the reign
// handshake, as a peer that passed TLS would send them: the handshake must
// end with an error or a checked Hello, never a panic or a hang.
func FuzzHandshake(f *testing.F) {
	good := wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, wire.Hello{
		MinVersion: wire.MinVersion, MaxVersion: wire.MaxVersion, Node: 2, Incarnation: 7, Codec: "msgpack", MaxFrame: 1 << 20,
	}))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{0, 0, 0, 1, byte(wire.TypeHeartbeat)})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, byte(wire.TypeHello)})
	f.Add(append(bytes.Clone(good), 0, 0, 0, 1, byte(wire.TypeHeartbeat)))
	n, err := NewNode(Config{NodeID: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			// the peer: read whatever our side writes, send data, hang up
			go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(b) }()
			_, _ = b.Write(data)
			_ = b.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, err := exchangeHello(ctx, n, a, 2)
		if err == nil {
			if h.Node != 2 || h.Incarnation == 0 || h.Codec != "msgpack" {
				t.Fatalf("accepted a bad hello %+v", h)
			}
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handshake hung: %v", err)
		}
	})
}
