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
// dialed says this node dialed it: with membership, a connection the
// higher ID dialed is the pair's only once the lower takes it (see
// peer.take).
func handshakeConn(ctx context.Context, p *peer, tc net.Conn, dialed bool) (*conn, error) {
	h, err := exchangeHello(ctx, p.c.n, tc, p.id)
	if err != nil {
		return nil, err
	}
	if dialed && p.c.member != nil && !p.arbiter() {
		if err := awaitAccept(ctx, tc, h); err != nil {
			return nil, err
		}
	}
	return newConn(p, tc, h), nil
}

// errConnRefused is the lower ID's refusal of a connection this node
// dialed while that node had one of its own on the way.
var errConnRefused = errors.New("reign: the peer refused this connection: it has one of its own on the way")

// awaitAccept reads the arbiter's verdict on a connection this node (the
// higher ID of the pair) dialed, the first frame after its Hello:
// ConnAccept, or a Goodbye that refuses it (errConnRefused, or
// ErrDuplicateNode when another live process holds this node's ID).
func awaitAccept(ctx context.Context, tc net.Conn, h handshaken) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetReadDeadline(dl)
		defer tc.SetReadDeadline(time.Time{})
	}
	t, payload, err := h.r.Next()
	if err != nil {
		return fmt.Errorf("%w: waiting for the peer to take the connection: %w", ErrHandshake, err)
	}
	switch t {
	case wire.TypeConnAccept:
		if len(payload) != 0 {
			return fmt.Errorf("%w: ConnAccept with a payload", ErrHandshake)
		}
		return nil
	case wire.TypeGoodbye:
		g, err := wire.ParseGoodbye(payload)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %w", ErrHandshake, err)
		case g.Reason == wire.GoodbyeDuplicateConn:
			return errConnRefused
		case g.Reason == wire.GoodbyeDuplicate:
			return fmt.Errorf("%w: the peer keeps a connection from another live process with this node's ID", ErrDuplicateNode)
		}
		return fmt.Errorf("%w: the peer said goodbye (reason %d) before taking the connection", ErrHandshake, g.Reason)
	}
	return fmt.Errorf("%w: expected ConnAccept, got %v", ErrHandshake, t)
}

// exchangeHello runs the reign handshake on a TLS connection whose TLS
// handshake is done: each side sends its Hello at once, reads the other's
// through internal/wire's frame reader, and checks that it names the node
// the certificate names, a shared protocol version and the same codec.
// ctx bounds it.
func exchangeHello(ctx context.Context, n *Node, tc net.Conn, certID NodeID) (handshaken, error) {
	return exchangeHelloGated(ctx, n, tc, certID, nil)
}

// exchangeHelloGated is exchangeHello; with a gate, this node reads and
// checks the peer's Hello first and sends its own only if gate returns nil
// (the peer, an accepting node, sends its Hello without waiting): until
// then the peer cannot have run the connection.
func exchangeHelloGated(ctx context.Context, n *Node, tc net.Conn, certID NodeID, gate func() error) (handshaken, error) {
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
	if gate == nil {
		go func() { errc <- wire.WriteHello(tc, local) }()
	}
	// No read deadline of its own until the connection runs: ctx's
	// deadline bounds the handshake.
	dr := &deadlineReader{nc: tc}
	r := wire.NewReader(dr, n.cfg.MaxFrameSize)
	remote, rerr := wire.ReadHello(r)
	h := handshaken{Hello: remote, r: r, dr: dr}
	if gate != nil {
		if rerr == nil {
			rerr = checkHello(&h, local, certID)
		}
		if rerr != nil {
			return h, helloError(rerr)
		}
		if err := gate(); err != nil {
			return h, err
		}
		if err := wire.WriteHello(tc, local); err != nil {
			return h, fmt.Errorf("%w: writing hello: %w", ErrHandshake, err)
		}
		return h, nil
	}
	werr := <-errc
	if rerr != nil {
		return h, helloError(rerr)
	}
	if werr != nil {
		return h, fmt.Errorf("%w: writing hello: %w", ErrHandshake, werr)
	}
	return h, checkHello(&h, local, certID)
}

// helloError says why reading the peer's Hello failed.
func helloError(err error) error {
	if errors.Is(err, ErrPeerIdentity) || errors.Is(err, ErrHandshake) {
		return err
	}
	if refusedCertificate(err) {
		// TLS 1.3: the server's refusal of our certificate arrives
		// after the client's handshake completed
		return fmt.Errorf("%w: the peer refused this node's certificate: %w", ErrBadCertificate, err)
	}
	return fmt.Errorf("%w: reading hello: %w", ErrHandshake, err)
}

// checkHello checks the peer's Hello against this node's and the
// certificate, and sets the version both speak.
func checkHello(h *handshaken, local wire.Hello, certID NodeID) error {
	if NodeID(h.Node) != certID {
		return fmt.Errorf("%w: peer says it is node %d, its certificate names node %d", ErrPeerIdentity, h.Node, certID)
	}
	v, err := wire.Agree(local, h.Hello)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if h.Incarnation == 0 {
		return fmt.Errorf("%w: incarnation 0", ErrHandshake)
	}
	h.version = v
	return nil
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
