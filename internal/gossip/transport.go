package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Conn is one authenticated reign connection as the Transport uses it. The
// root package implements it over its connections; the Transport compares
// Conns with ==, so it must be a comparable value, typically a pointer.
type Conn interface {
	// Node returns the memberlist name of the node at the other end
	// (NodeName of the ID in its certificate).
	Node() string

	// RemoteAddr returns the peer's memberlist address (its reign listen
	// address) if known, else the connection's remote TCP address. It is
	// the From of the peer's packets and the RemoteAddr of its streams.
	RemoteAddr() net.Addr

	// SendPacket sends b as the payload of one Packet frame.
	// SendStream sends payload as the payload of one Stream frame.
	//
	// Both must keep the order of calls (frames of one stream are sent in
	// the order the Transport makes them), must not retain their argument
	// after returning, must not wait for the peer (they queue: a stream
	// never has more than StreamWindow bytes unacknowledged, so what the
	// Transport queues is bounded), and must not call back into the
	// Transport. They may be called from the connection's own frame
	// handler. SendPacket may drop a packet (it is best effort); SendStream
	// may not, and returns an error only when the connection is closed.
	SendPacket(b []byte) error
	SendStream(payload []byte) error

	// Done is closed when the connection is closed, before the root package
	// calls ConnLost for it.
	Done() <-chan struct{}
}

// Dialer finds the connection to a member, opening it if needed. The root
// package implements it.
type Dialer interface {
	// DialNode returns the connection to the member a: a.Addr is its
	// memberlist address (its reign listen address); a.Name is its
	// memberlist name, or "" when memberlist knows only the address (a
	// join). With a name, the connection must be to that node (the
	// certificate says so), else DialNode fails; without one, the node is
	// whichever one answers at a.Addr, as its certificate tells. DialNode
	// returns by ctx's deadline.
	DialNode(ctx context.Context, a memberlist.Address) (Conn, error)
}

// Config configures a Transport. Zero values of the optional fields take
// the documented defaults.
type Config struct {
	// Name is this node's memberlist name, NodeName(its ID). Required; it
	// must be the memberlist.Config.Name too.
	Name string

	// Addr is this node's memberlist address, "ip:port": its reign listen
	// address as other nodes reach it (memberlist gossips addresses as IP
	// and port, so a host name must be resolved first). Required.
	// FinalAdvertiseAddr returns it whatever memberlist's own advertise
	// settings say.
	Addr string

	// Dialer finds connections to members. Required.
	Dialer Dialer

	// MaxPacketSize bounds one packet, both ways: a larger outbound packet
	// fails with ErrPacketTooLarge, a larger inbound one is a protocol
	// error. Default 64 KiB. memberlist.Config.UDPBufferSize (the size of
	// the packets memberlist makes) must not exceed it.
	MaxPacketSize int

	// MaxStreamsPerPeer bounds the streams open at once on one connection,
	// counted separately for each side's opens. An Open beyond it is
	// refused (the opener's stream fails with ErrTooManyStreams; the
	// connection stays up); DialTimeout beyond it fails the same way. Each
	// stream buffers at most StreamWindow bytes, so a peer can make this
	// node hold at most MaxStreamsPerPeer × StreamWindow bytes of stream
	// data. Default 8 (memberlist uses one stream per push/pull, user
	// message or fallback ping, and closes it when done).
	MaxStreamsPerPeer int

	// StreamIdleTimeout closes a stream on which nothing was sent or
	// received for this long, including an accepted stream memberlist has
	// not picked up. Default 30 s. memberlist sets its own, shorter
	// deadlines (TCPTimeout) on the streams it uses; this bounds the rest.
	StreamIdleTimeout time.Duration

	// PacketDialTimeout bounds how long WriteTo waits for the Dialer when
	// there is no connection yet. Default 500 ms. memberlist sends pings
	// from its probe loop, so this should stay below its ProbeInterval.
	PacketDialTimeout time.Duration

	// PacketBacklog is the capacity of PacketCh. A packet arriving when it
	// is full is dropped and counted (Stats.PacketsDropped), as a UDP
	// socket would. Default 256.
	PacketBacklog int

	// StreamBacklog is the capacity of StreamCh. A stream opened when it is
	// full is refused. Default 16.
	StreamBacklog int
}

// Defaults of Config's optional fields.
const (
	DefaultMaxPacketSize     = 64 << 10
	DefaultMaxStreamsPerPeer = 8
	DefaultStreamIdleTimeout = 30 * time.Second
	DefaultPacketDialTimeout = 500 * time.Millisecond
	DefaultPacketBacklog     = 256
	DefaultStreamBacklog     = 16
)

// Stats counts what a Transport dropped or refused.
type Stats struct {
	PacketsDropped uint64 // inbound packets dropped: PacketCh was full
	StreamsRefused uint64 // inbound Opens refused: too many streams, backlog full or shutting down
	Streams        int    // streams open now, both directions, all peers
}

// Transport is a memberlist.NodeAwareTransport over reign connections. It
// is safe for concurrent use.
type Transport struct {
	cfg      Config
	ip       net.IP
	port     int
	addr     net.Addr
	epoch    time.Time
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	mu     sync.Mutex
	peers  map[Conn]*peer
	closed bool

	packetsDropped atomic.Uint64
	streamsRefused atomic.Uint64
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// peer is the Transport's state for one connection.
type peer struct {
	lastOpened   uint64 // the last stream ID this side opened
	lastAccepted uint64 // the last stream ID the peer opened
	opened       int    // live streams this side opened
	accepted     int    // live streams the peer opened
	streams      map[streamKey]*stream
}

// streamKey names a stream on one connection: its ID in its opener's
// numbering, and whether the opener is this side.
type streamKey struct {
	mine bool
	id   uint64
}

// NodeName returns the memberlist name of node id: "reign-node-<id>", the
// DNS name its certificate carries.
func NodeName(id uint16) string {
	return "reign-node-" + strconv.Itoa(int(id))
}

// ParseNodeName returns the node ID a NodeName names.
func ParseNodeName(name string) (uint16, bool) {
	s, ok := strings.CutPrefix(name, "reign-node-")
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err == nil
}

// New returns a Transport. It does no I/O and starts no goroutine.
func New(cfg Config) (*Transport, error) {
	if cfg.Name == "" {
		return nil, errors.New("reign: gossip Config.Name is required")
	}
	if cfg.Dialer == nil {
		return nil, errors.New("reign: gossip Config.Dialer is required")
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("reign: gossip Config.Addr: %w", err)
	}
	ip := net.ParseIP(host)
	port, perr := strconv.ParseUint(portStr, 10, 16)
	if ip == nil || perr != nil || port == 0 {
		return nil, fmt.Errorf("reign: gossip Config.Addr %q is not ip:port", cfg.Addr)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxPacketSize", &cfg.MaxPacketSize, DefaultMaxPacketSize},
		{"MaxStreamsPerPeer", &cfg.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer},
		{"PacketBacklog", &cfg.PacketBacklog, DefaultPacketBacklog},
		{"StreamBacklog", &cfg.StreamBacklog, DefaultStreamBacklog},
	} {
		if *f.v < 0 {
			return nil, fmt.Errorf("reign: gossip Config.%s is negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"StreamIdleTimeout", &cfg.StreamIdleTimeout, DefaultStreamIdleTimeout},
		{"PacketDialTimeout", &cfg.PacketDialTimeout, DefaultPacketDialTimeout},
	} {
		if *f.v < 0 {
			return nil, fmt.Errorf("reign: gossip Config.%s is negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return &Transport{
		cfg:      cfg,
		ip:       ip,
		port:     int(port),
		addr:     memberAddr(cfg.Addr),
		epoch:    time.Now(),
		packetCh: make(chan *memberlist.Packet, cfg.PacketBacklog),
		streamCh: make(chan net.Conn, cfg.StreamBacklog),
		peers:    make(map[Conn]*peer),
	}, nil
}

// memberAddr is a memberlist address as a net.Addr.
type memberAddr string

func (a memberAddr) Network() string { return "reign" }
func (a memberAddr) String() string  { return string(a) }

// Stats returns the Transport's counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	n := 0
	for _, p := range t.peers {
		n += len(p.streams)
	}
	t.mu.Unlock()
	return Stats{
		PacketsDropped: t.packetsDropped.Load(),
		StreamsRefused: t.streamsRefused.Load(),
		Streams:        n,
	}
}

// FinalAdvertiseAddr returns Config.Addr: a member's address is its reign
// listen address, whatever memberlist was told.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// PacketCh returns the channel of inbound packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of inbound streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// WriteTo sends a packet to the member at addr (by address only).
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b as one packet to the member a, over its connection,
// opening that (within Config.PacketDialTimeout) if there is none.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if len(b) == 0 || len(b) > t.cfg.MaxPacketSize {
		return time.Time{}, fmt.Errorf("%w: %d bytes (max %d)", ErrPacketTooLarge, len(b), t.cfg.MaxPacketSize)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.PacketDialTimeout)
	defer cancel()
	c, err := t.dial(ctx, a)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	return now, c.SendPacket(b)
}

// dial gets the connection to a and checks it is to the node named.
func (t *Transport) dial(ctx context.Context, a memberlist.Address) (Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	c, err := t.cfg.Dialer.DialNode(ctx, a)
	if err != nil {
		return nil, err
	}
	if a.Name != "" && c.Node() != a.Name {
		return nil, fmt.Errorf("%w: wanted %s at %s, got %s", ErrWrongNode, a.Name, a.Addr, c.Node())
	}
	return c, nil
}

// DialTimeout opens a stream to the member at addr (by address only).
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to the member a, over its connection,
// opening that within timeout if there is none. The stream is usable at
// once: the Open is not acknowledged, and a refusal shows as an error of
// the stream's first read or write.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := t.dial(ctx, a)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	p, err := t.peerLocked(c)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	if p.opened >= t.cfg.MaxStreamsPerPeer {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: %d open to %s", ErrTooManyStreams, p.opened, c.Node())
	}
	p.lastOpened++
	s := t.newStream(c, streamKey{mine: true, id: p.lastOpened})
	p.streams[s.key] = s
	p.opened++
	t.mu.Unlock()
	if err := c.SendStream(AppendStreamFrame(nil, StreamFrame{Op: OpOpen, ID: s.key.id})); err != nil {
		s.fail(ErrConnLost)
		t.retire(s)
		return nil, err
	}
	return s, nil
}

// peerLocked returns c's state, making it if c is still open. t.mu is held.
func (t *Transport) peerLocked(c Conn) (*peer, error) {
	if t.closed {
		return nil, ErrClosed
	}
	if p := t.peers[c]; p != nil {
		return p, nil
	}
	select {
	case <-c.Done():
		return nil, ErrConnLost
	default:
	}
	p := &peer{streams: make(map[streamKey]*stream)}
	t.peers[c] = p
	return p, nil
}

// HandlePacket takes the payload of a Packet frame that arrived on c, at
// time at (taken as close to its arrival as possible: memberlist measures
// round trips with it). b is not retained. The packet's sender is c's node:
// nothing in the packet can say otherwise. An error (wrapping ErrProtocol)
// means the connection should be closed; a packet that finds PacketCh full
// is dropped and counted, not an error.
func (t *Transport) HandlePacket(c Conn, b []byte, at time.Time) error {
	if len(b) == 0 {
		return malformed("empty packet")
	}
	if len(b) > t.cfg.MaxPacketSize {
		return protocolError(ErrPacketTooLarge, "%d bytes (max %d)", len(b), t.cfg.MaxPacketSize)
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil
	}
	pkt := &memberlist.Packet{Buf: append([]byte(nil), b...), From: c.RemoteAddr(), Timestamp: at}
	select {
	case t.packetCh <- pkt:
	default:
		t.packetsDropped.Add(1)
	}
	return nil
}

// HandleStream takes the payload of a Stream frame that arrived on c.
// payload is not retained. An error (wrapping ErrProtocol) means the
// connection should be closed.
func (t *Transport) HandleStream(c Conn, payload []byte) error {
	f, err := ParseStreamFrame(payload)
	if err != nil {
		return err
	}
	key := streamKey{mine: f.Acceptor, id: f.ID}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		if f.Op == OpOpen {
			t.refuse(c, f.ID, CloseShutdown)
		}
		return nil
	}
	p, err := t.peerLocked(c)
	if err != nil {
		t.mu.Unlock()
		return nil // c is closing: its frames no longer matter
	}
	if f.Op == OpOpen {
		if f.ID != p.lastAccepted+1 {
			t.mu.Unlock()
			return protocolError(ErrStreamSequence, "open of stream %d after %d", f.ID, p.lastAccepted)
		}
		p.lastAccepted = f.ID
		if p.accepted >= t.cfg.MaxStreamsPerPeer {
			t.mu.Unlock()
			t.refuse(c, f.ID, CloseRefused)
			return nil
		}
		s := t.newStream(c, key)
		select {
		case t.streamCh <- s:
		default:
			t.mu.Unlock()
			s.fail(ErrClosed)
			s.stopTimers()
			t.refuse(c, f.ID, CloseRefused)
			return nil
		}
		p.streams[key] = s
		p.accepted++
		t.mu.Unlock()
		return nil
	}
	s := p.streams[key]
	if s == nil {
		last := p.lastAccepted
		if key.mine {
			last = p.lastOpened
		}
		t.mu.Unlock()
		if f.ID > last {
			return protocolError(ErrStreamSequence, "%v for stream %d (mine %v) never opened", f.Op, f.ID, key.mine)
		}
		return nil // a stream this side has closed: frames in flight are dropped
	}
	t.mu.Unlock()
	switch f.Op {
	case OpData:
		return s.receive(f.Data)
	case OpWindow:
		return s.grant(int(f.Increment))
	default: // OpClose
		return s.remoteClose(f.Reason)
	}
}

// refuse answers an Open with a Close.
func (t *Transport) refuse(c Conn, id uint64, r CloseReason) {
	t.streamsRefused.Add(1)
	_ = c.SendStream(AppendStreamFrame(nil, StreamFrame{Op: OpClose, Acceptor: true, ID: id, Reason: r}))
}

// ConnLost tells the Transport that c is closed. Its streams fail with
// ErrConnLost, and its state is dropped. The root package calls it once per
// connection, after closing c.Done, and makes no Handle call for c after.
func (t *Transport) ConnLost(c Conn) {
	t.mu.Lock()
	p := t.peers[c]
	delete(t.peers, c)
	t.mu.Unlock()
	if p == nil {
		return
	}
	for _, s := range p.streams {
		s.fail(ErrConnLost)
		s.stopTimers()
	}
}

// retire removes s from its peer's table, so its ID is never used again,
// and stops its timers.
func (t *Transport) retire(s *stream) {
	t.mu.Lock()
	if p := t.peers[s.conn]; p != nil && p.streams[s.key] == s {
		delete(p.streams, s.key)
		if s.key.mine {
			p.opened--
		} else {
			p.accepted--
		}
	}
	t.mu.Unlock()
	s.stopTimers()
}

// Shutdown closes every stream (telling peers, best effort) and refuses
// everything after. It does not close the connections, which belong to the
// root package. It starts nothing and leaves nothing running.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	peers := t.peers
	t.peers = make(map[Conn]*peer)
	t.mu.Unlock()
	for c, p := range peers {
		for _, s := range p.streams {
			if s.fail(ErrClosed) {
				_ = c.SendStream(AppendStreamFrame(nil, StreamFrame{Op: OpClose, Acceptor: !s.key.mine, ID: s.key.id, Reason: CloseShutdown}))
			}
			s.stopTimers()
		}
	}
	return nil
}
