package reign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// handshaken is the outcome of the reign handshake on a connection: the
// peer's Hello, the protocol version both speak, and the frame reader,
// which goes on to serve the connection (it may have read past the Hello).
type handshaken struct {
	wire.Hello
	version uint16
	r       *wire.Reader
	dr      *deadlineReader
}

// handshakeConn runs the reign handshake on tc, whose TLS handshake is done
// and whose verified certificate names p, and returns the connection.
func handshakeConn(ctx context.Context, p *peer, tc net.Conn) (*conn, error) {
	h, err := exchangeHello(ctx, p.c.n, tc, p.id)
	if err != nil {
		return nil, err
	}
	return newConn(p, tc, h), nil
}

// exchangeHello runs the reign handshake on a TLS connection whose TLS
// handshake is done: each side sends its Hello at once, reads the other's
// through internal/wire's frame reader, and checks that it names the node
// the certificate names, a shared protocol version and the same codec.
// ctx bounds it.
func exchangeHello(ctx context.Context, n *Node, tc net.Conn, certID NodeID) (handshaken, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
		defer tc.SetDeadline(time.Time{})
	}
	local := wire.Hello{
		MinVersion:  wire.MinVersion,
		MaxVersion:  wire.MaxVersion,
		Node:        uint16(n.id),
		Incarnation: n.inc,
		Codec:       n.codec.Name(),
		MaxFrame:    uint32(n.cfg.MaxFrameSize),
	}
	errc := make(chan error, 1)
	go func() { errc <- wire.WriteHello(tc, local) }()
	// No read deadline of its own until the connection runs: ctx's
	// deadline bounds the handshake.
	dr := &deadlineReader{nc: tc}
	r := wire.NewReader(dr, n.cfg.MaxFrameSize)
	remote, rerr := wire.ReadHello(r)
	werr := <-errc
	h := handshaken{Hello: remote, r: r, dr: dr}
	if rerr != nil {
		if refusedCertificate(rerr) {
			// TLS 1.3: the server's refusal of our certificate arrives
			// after the client's handshake completed
			return h, fmt.Errorf("%w: the peer refused this node's certificate: %w", ErrBadCertificate, rerr)
		}
		return h, fmt.Errorf("%w: reading hello: %w", ErrHandshake, rerr)
	}
	if werr != nil {
		return h, fmt.Errorf("%w: writing hello: %w", ErrHandshake, werr)
	}
	if NodeID(remote.Node) != certID {
		return h, fmt.Errorf("%w: peer says it is node %d, its certificate names node %d", ErrPeerIdentity, remote.Node, certID)
	}
	v, err := wire.Agree(local, remote)
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if remote.Incarnation == 0 {
		return h, fmt.Errorf("%w: incarnation 0", ErrHandshake)
	}
	h.version = v
	return h, nil
}

// handshakeReason classifies why a handshake (TLS or reign) failed.
func handshakeReason(err error) CloseReason {
	switch {
	case errors.Is(err, ErrBadCertificate):
		return CloseBadCertificate
	case errors.Is(err, ErrPeerIdentity):
		return ClosePeerIdentity
	case errors.Is(err, ErrDuplicateNode):
		return CloseDuplicateNode
	}
	return CloseHandshakeFailed
}

// networkError reports whether err is the network's or the peer's doing
// (it went away, reset, timed out) rather than a matter of certificates,
// identity or protocol to fix.
func networkError(err error) bool {
	if errors.Is(err, ErrBadCertificate) || errors.Is(err, ErrPeerIdentity) || errors.Is(err, ErrDuplicateNode) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
