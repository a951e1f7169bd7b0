// Package faultnet is a TCP proxy for fault-injection tests: it sits
// between a dialer and a listener on 127.0.0.1 and, on a test's command,
// cuts connections, black-holes them, delays them, stalls one direction,
// closes them after a number of bytes (mid-frame), flips a byte, or
// refuses new connections.
//
// A Proxy forwards each accepted connection to its target through two
// pumps, one per direction. Each pump reads a chunk (at most 32 KiB) from
// one side, waits while its direction is blocked (BlackHole, Stall), waits
// out the delay (Delay), applies byte faults (CloseAfter, Corrupt), and
// writes the chunk to the other side. A blocked pump holds the chunk it
// read and reads no more, so the sender feels TCP back-pressure as from a
// real network that stopped delivering; nothing is dropped, and held bytes
// flow again when the block is lifted (unless the connection was closed
// meanwhile).
//
// All methods are safe for concurrent use. Close stops everything and
// returns only when every goroutine of the Proxy has ended.
package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Dir is a direction of traffic through the proxy.
type Dir int

const (
	// Up is from the dialer (the client of the proxy) to the target.
	Up Dir = iota
	// Down is from the target to the dialer.
	Down
)

// String returns "up" or "down".
func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// chunkSize is the most a pump reads and forwards at once.
const chunkSize = 32 << 10

// dialTimeout bounds dialing the target for one accepted connection.
const dialTimeout = 5 * time.Second

// Proxy is a fault-injecting TCP proxy. Make one with NewProxy.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // done when the Proxy closes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	conns     map[*pconn]struct{}
	closed    bool
	blackHole bool
	stall     [2]bool
	delay     time.Duration
	refuse    bool
	changed   chan struct{} // closed and replaced whenever a gate changes
	accepted  int
	refused   int
	cuts      int // Cut calls so far: a connection accepted before a Cut dies
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection it accepts
// to target (host:port), until Close.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		conns:   map[*pconn]struct{}{},
		changed: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listening address, host:port: point dialers at it.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops accepting, closes every connection and returns when all the
// proxy's goroutines have ended. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	conns := p.takeConns()
	p.mu.Unlock()
	if !already {
		p.cancel()
		_ = p.ln.Close()
	}
	for _, c := range conns {
		c.close(false)
	}
	p.wg.Wait()
	return nil
}

// Cut closes every open connection now, both sides, with a reset (RST)
// where the system allows it. New connections are accepted as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cuts++
	conns := p.takeConns()
	p.mu.Unlock()
	for _, c := range conns {
		c.close(true)
	}
}

// BlackHole, while on, stops forwarding in both directions without
// closing anything: no data, no FIN. Connections accepted meanwhile are
// black-holed too (they connect, but no byte passes). Turning it off lets
// the held bytes flow again.
func (p *Proxy) BlackHole(on bool) {
	p.mu.Lock()
	p.blackHole = on
	p.notifyLocked()
	p.mu.Unlock()
}

// Stall, while on, stops forwarding in direction dir only; the other
// direction keeps flowing.
func (p *Proxy) Stall(dir Dir, on bool) {
	p.mu.Lock()
	p.stall[dir] = on
	p.notifyLocked()
	p.mu.Unlock()
}

// Delay holds each chunk for d after it was read before forwarding it
// (zero: no delay). Because a pump reads its next chunk only after
// writing the last, a byte may wait up to about 2d; order is kept.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.notifyLocked()
	p.mu.Unlock()
}

// CloseAfter makes every connection open now close (both sides, with a
// reset) once n more bytes have been forwarded in direction dir: exactly
// n bytes pass, then the connection ends, typically in the middle of a
// frame. Connections accepted later are not affected.
func (p *Proxy) CloseAfter(dir Dir, n int64) {
	p.mu.Lock()
	for c := range p.conns {
		c.closeAt[dir] = c.fwd[dir] + n
	}
	p.mu.Unlock()
}

// Corrupt makes every connection open now flip (invert every bit of) the
// byte at stream offset offset in direction dir, counted from the moment
// of the call: offset 0 is the next byte forwarded in that direction.
// Each connection is corrupted once; connections accepted later are not
// affected.
func (p *Proxy) Corrupt(dir Dir, offset int64) {
	p.mu.Lock()
	for c := range p.conns {
		c.corruptAt[dir] = append(c.corruptAt[dir], c.fwd[dir]+offset)
	}
	p.mu.Unlock()
}

// Refuse, while on, makes the proxy close each new connection as soon as
// it is accepted, without dialing the target. Open connections are not
// affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Stats are counts of what a Proxy did.
type Stats struct {
	Accepted int      // connections forwarded to the target
	Refused  int      // connections closed at once by Refuse, or whose target could not be dialed
	Open     int      // connections open now
	Forward  [2]int64 // bytes forwarded, per Dir, by the connections open now
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Accepted: p.accepted, Refused: p.refused, Open: len(p.conns)}
	for c := range p.conns {
		s.Forward[Up] += c.fwd[Up]
		s.Forward[Down] += c.fwd[Down]
	}
	return s
}

// notifyLocked wakes the pumps waiting for a gate to change.
func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// takeConns removes and returns every open connection; p.mu is held.
func (p *Proxy) takeConns() []*pconn {
	conns := make([]*pconn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
		delete(p.conns, c)
	}
	return conns
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// a listener that fails for good: stop accepting
			return
		}
		p.mu.Lock()
		refuse, closed, cuts := p.refuse, p.closed, p.cuts
		if refuse {
			p.refused++
		}
		p.mu.Unlock()
		if refuse || closed {
			reset(nc)
			continue
		}
		p.wg.Add(1)
		go p.connect(nc, cuts)
	}
}

// connect dials the target for an accepted connection and starts its pumps.
// A Cut since the connection was accepted (cuts changed) ends it.
func (p *Proxy) connect(client net.Conn, cuts int) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		reset(client)
		return
	}
	c := &pconn{p: p, side: [2]net.Conn{Up: client, Down: server}, done: make(chan struct{})}
	c.closeAt = [2]int64{-1, -1}
	p.mu.Lock()
	if p.closed || p.cuts != cuts {
		p.mu.Unlock()
		reset(client)
		reset(server)
		return
	}
	p.conns[c] = struct{}{}
	p.accepted++
	p.mu.Unlock()
	p.wg.Add(2)
	go c.pump(Up)
	go c.pump(Down)
}

// reset closes nc with a TCP reset where possible.
func reset(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// pconn is one proxied connection: side[Up] is the client (the dialer),
// side[Down] the target. Bytes of direction Up are read from side[Up] and
// written to side[Down], and the other way round.
type pconn struct {
	p    *Proxy
	side [2]net.Conn
	done chan struct{} // closed by close
	once sync.Once

	// guarded by p.mu
	fwd       [2]int64   // bytes forwarded per direction
	closeAt   [2]int64   // close when fwd reaches this; -1: never
	corruptAt [2][]int64 // stream offsets to flip
	eof       [2]bool    // that direction has ended cleanly
}

// close ends the connection, both sides; rst asks for a reset.
func (c *pconn) close(rst bool) {
	c.once.Do(func() {
		close(c.done)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		for _, s := range c.side {
			if rst {
				reset(s)
			} else {
				_ = s.Close()
			}
		}
	})
}

// gate waits while direction dir is blocked and returns the delay to
// apply, or false if the connection ended meanwhile.
func (c *pconn) gate(dir Dir) (time.Duration, bool) {
	for {
		c.p.mu.Lock()
		blocked := c.p.blackHole || c.p.stall[dir]
		changed, delay := c.p.changed, c.p.delay
		c.p.mu.Unlock()
		if !blocked {
			return delay, true
		}
		select {
		case <-changed:
		case <-c.done:
			return 0, false
		}
	}
}

// pump forwards direction dir until either side fails or the connection
// is closed. A clean end of stream is passed on as a half-close, and the
// connection is closed when both directions have ended.
func (c *pconn) pump(dir Dir) {
	defer c.p.wg.Done()
	src, dst := c.side[dir], c.side[1-dir]
	buf := make([]byte, chunkSize)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			readAt := time.Now()
			delay, ok := c.gate(dir)
			if !ok {
				return
			}
			if wait := time.Until(readAt.Add(delay)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			// a block may have started during the delay
			if _, ok := c.gate(dir); !ok {
				return
			}
			n, cut := c.faults(dir, buf[:n])
			if n > 0 {
				if _, err := dst.Write(buf[:n]); err != nil {
					c.close(true)
					return
				}
			}
			if cut {
				c.close(true)
				return
			}
		}
		if rerr != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(rerr, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				c.p.mu.Lock()
				c.eof[dir] = true
				both := c.eof[Up] && c.eof[Down]
				c.p.mu.Unlock()
				if both {
					c.close(false)
				}
				return
			}
			c.close(true)
			return
		}
	}
}

// faults applies CloseAfter and Corrupt to a chunk about to be forwarded
// in direction dir, and counts it. It returns how much of b to forward
// and whether the connection must close after that.
func (c *pconn) faults(dir Dir, b []byte) (int, bool) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	start := c.fwd[dir]
	n := int64(len(b))
	cut := false
	if at := c.closeAt[dir]; at >= 0 && start+n >= at {
		n = at - start
		cut = true
	}
	offs := c.corruptAt[dir][:0]
	for _, off := range c.corruptAt[dir] {
		if off >= start && off < start+n {
			b[off-start] ^= 0xff
			continue
		}
		if off >= start {
			offs = append(offs, off)
		}
	}
	c.corruptAt[dir] = offs
	c.fwd[dir] += n
	return int(n), cut
}
