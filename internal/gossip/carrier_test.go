package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// The test carrier: an in-process stand-in for the root package's
// connections. Each carrier node listens on a real TCP loopback socket, and
// its connections carry the Transport's frames as real bytes, framed as
// reign frames are (4-byte length, 1-byte type, payload). A two-line
// handshake (name, address) stands in for TLS and the Hello: it is where
// the root package learns the peer's node from its certificate.

const (
	frameHello  = 0
	framePacket = 1
	frameStream = 2
)

// carrier is one node's connections.
type carrier struct {
	name string
	ln   net.Listener
	tr   *Transport // set after New; used by the frame handlers

	mu     sync.Mutex
	conns  map[*carrierConn]struct{}
	byName map[string]*carrierConn
	closed bool
	errs   []error // why connections were closed by this side's handlers

	wg sync.WaitGroup
}

// carrierConn is one connection; it implements Conn.
type carrierConn struct {
	c        *carrier
	nc       net.Conn
	r        *bufio.Reader
	peerName string
	peerAddr memberAddr
	done     chan struct{}
	once     sync.Once
	sendq    chan []byte
}

// newCarrier listens on 127.0.0.1:0. The node's memberlist address is the
// listener's.
func newCarrier(tb testing.TB, name string) *carrier {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return &carrier{name: name, ln: ln, conns: map[*carrierConn]struct{}{}, byName: map[string]*carrierConn{}}
}

func (c *carrier) addr() string { return c.ln.Addr().String() }

// start accepts connections until close.
func (c *carrier) start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			nc, err := c.ln.Accept()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.handshake(nc); err != nil {
					_ = nc.Close()
				}
			}()
		}
	}()
}

// handshake exchanges names and addresses and registers the connection.
func (c *carrier) handshake(nc net.Conn) (*carrierConn, error) {
	hello := []byte(c.name + "\n" + c.addr())
	if err := writeFrame(nc, frameHello, hello); err != nil {
		return nil, err
	}
	r := bufio.NewReader(nc)
	typ, p, err := readFrame(r, nil)
	if err != nil {
		return nil, err
	}
	name, addr, ok := strings.Cut(string(p), "\n")
	if !ok || typ != frameHello {
		return nil, fmt.Errorf("bad hello %q", p)
	}
	_ = nc.SetDeadline(time.Time{})
	cc := &carrierConn{c: c, nc: nc, r: r, peerName: name, peerAddr: memberAddr(addr), done: make(chan struct{}), sendq: make(chan []byte, 128)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, net.ErrClosed
	}
	c.conns[cc] = struct{}{}
	c.byName[name] = cc
	c.wg.Add(2)
	c.mu.Unlock()
	go cc.readLoop()
	go cc.writeLoop()
	return cc, nil
}

// DialNode implements Dialer: the connection to a.Name if there is one,
// else a new one to a.Addr, checked against a.Name.
func (c *carrier) DialNode(ctx context.Context, a memberlist.Address) (Conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, net.ErrClosed
	}
	if cc := c.byName[a.Name]; a.Name != "" && cc != nil {
		c.mu.Unlock()
		return cc, nil
	}
	if a.Name == "" {
		for cc := range c.conns {
			if string(cc.peerAddr) == a.Addr {
				c.mu.Unlock()
				return cc, nil
			}
		}
	}
	c.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	cc, err := c.handshake(nc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	if a.Name != "" && cc.peerName != a.Name {
		cc.close(fmt.Errorf("dialed %s, reached %s", a.Name, cc.peerName))
		return nil, ErrWrongNode
	}
	return cc, nil
}

// close cuts every connection and stops accepting: the node's carrier is
// gone, as if its process were killed.
func (c *carrier) close() {
	c.mu.Lock()
	c.closed = true
	conns := make([]*carrierConn, 0, len(c.conns))
	for cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	_ = c.ln.Close()
	for _, cc := range conns {
		cc.close(nil)
	}
	c.wg.Wait()
}

// connCount returns the number of connections open.
func (c *carrier) connCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// closeErrs returns the errors this side's frame handlers closed
// connections with.
func (c *carrier) closeErrs() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

func (cc *carrierConn) Node() string         { return cc.peerName }
func (cc *carrierConn) RemoteAddr() net.Addr { return cc.peerAddr }
func (cc *carrierConn) Done() <-chan struct{} {
	return cc.done
}

func (cc *carrierConn) SendPacket(b []byte) error {
	select {
	case <-cc.done:
		return net.ErrClosed
	case cc.sendq <- appendFrame(nil, framePacket, b):
		return nil
	default:
		return nil // best effort: dropped
	}
}

func (cc *carrierConn) SendStream(p []byte) error {
	select {
	case <-cc.done:
		return net.ErrClosed
	case cc.sendq <- appendFrame(nil, frameStream, p):
		return nil
	}
}

// close closes the connection once, with the handler error that caused it
// (nil for a cut), and tells the Transport.
func (cc *carrierConn) close(err error) {
	cc.once.Do(func() {
		close(cc.done)
		_ = cc.nc.Close()
		c := cc.c
		c.mu.Lock()
		delete(c.conns, cc)
		if c.byName[cc.peerName] == cc {
			delete(c.byName, cc.peerName)
		}
		if err != nil {
			c.errs = append(c.errs, err)
		}
		tr := c.tr
		c.mu.Unlock()
		if tr != nil {
			tr.ConnLost(cc)
		}
	})
}

func (cc *carrierConn) readLoop() {
	defer cc.c.wg.Done()
	r := cc.r
	var buf []byte
	for {
		typ, p, err := readFrame(r, buf)
		if err != nil {
			cc.close(nil)
			return
		}
		buf = p[:0]
		tr := cc.c.tr
		switch typ {
		case framePacket:
			err = tr.HandlePacket(cc, p, time.Now())
		case frameStream:
			err = tr.HandleStream(cc, p)
		default:
			err = fmt.Errorf("frame type %d", typ)
		}
		if err != nil {
			cc.close(err)
			return
		}
	}
}

func (cc *carrierConn) writeLoop() {
	defer cc.c.wg.Done()
	w := bufio.NewWriter(cc.nc)
	for {
		select {
		case <-cc.done:
			return
		case f := <-cc.sendq:
			if _, err := w.Write(f); err != nil {
				cc.close(nil)
				return
			}
			if len(cc.sendq) == 0 {
				if err := w.Flush(); err != nil {
					cc.close(nil)
					return
				}
			}
		}
	}
}

func appendFrame(b []byte, typ byte, p []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)+1))
	b = append(b, typ)
	return append(b, p...)
}

func writeFrame(w io.Writer, typ byte, p []byte) error {
	_, err := w.Write(appendFrame(nil, typ, p))
	return err
}

// readFrame reads one frame into buf's storage. Frames over 1 MiB are
// refused, as the root package refuses frames over its MaxFrameSize.
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > 1<<20 {
		return 0, nil, errors.New("bad frame length")
	}
	if cap(buf) < int(n-1) {
		buf = make([]byte, n-1)
	}
	buf = buf[:n-1]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return h[4], buf, nil
}
