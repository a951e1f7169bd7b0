package gossip

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// stream is one memberlist stream multiplexed over a reign connection: a
// net.Conn. Its data moves on the callers' goroutines (the reader's Read,
// the writer's Write, the connection's frame handler); its deadlines and
// idle timeout are timers.
type stream struct {
	t    *Transport
	conn Conn
	key  streamKey

	rdl, wdl *deadline
	idle     *time.Timer
	active   atomic.Int64 // time of the last traffic, as time.Since(t.epoch)

	readCh  chan struct{} // cap 1: data, a close or an error arrived
	writeCh chan struct{} // cap 1: window, a close or an error arrived

	mu           sync.Mutex
	rbuf         bytes.Buffer // received, not yet read; with unacked, ≤ StreamWindow
	unacked      int          // bytes read but not yet returned to the peer as window
	credit       int          // bytes this side may still send
	localClosed  bool         // Close was called
	remoteClosed bool         // the peer sent OpClose
	remoteReason CloseReason
	err          error // a terminal failure: connection lost, idle, shutdown

	wmu  sync.Mutex // serializes Writes, so their chunks do not interleave
	wbuf []byte     // a Write's frame scratch, under wmu
}

func (t *Transport) newStream(c Conn, key streamKey) *stream {
	s := &stream{
		t:       t,
		conn:    c,
		key:     key,
		rdl:     newDeadline(),
		wdl:     newDeadline(),
		readCh:  make(chan struct{}, 1),
		writeCh: make(chan struct{}, 1),
		credit:  StreamWindow,
	}
	s.touch()
	s.mu.Lock() // checkIdle reads s.idle under s.mu
	s.idle = time.AfterFunc(t.cfg.StreamIdleTimeout, s.checkIdle)
	s.mu.Unlock()
	return s
}

func (s *stream) touch() { s.active.Store(int64(time.Since(s.t.epoch))) }

// checkIdle runs when the idle timer fires: it closes the stream if it was
// idle all along, else sets the timer for the rest of the timeout. The
// timer is reset lazily here rather than on every frame.
func (s *stream) checkIdle() {
	since := time.Since(s.t.epoch) - time.Duration(s.active.Load())
	if rest := s.t.cfg.StreamIdleTimeout - since; rest > 0 {
		s.mu.Lock()
		done := s.localClosed || s.err != nil
		if !done {
			s.idle.Reset(rest)
		}
		s.mu.Unlock()
		return
	}
	if s.fail(ErrStreamIdle) {
		_ = s.conn.SendStream(s.closeFrame(CloseIdle))
	}
	s.t.retire(s)
}

func (s *stream) closeFrame(r CloseReason) []byte {
	return AppendStreamFrame(nil, StreamFrame{Op: OpClose, Acceptor: !s.key.mine, ID: s.key.id, Reason: r})
}

func (s *stream) stopTimers() {
	s.mu.Lock()
	s.idle.Stop()
	s.mu.Unlock()
	s.rdl.stop()
	s.wdl.stop()
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func expired(d *deadline) bool {
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}

// fail ends the stream with err, waking its reader and writer. It reports
// whether the peer still expects frames on it (so should be told).
func (s *stream) fail(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.localClosed {
		return false
	}
	s.err = err
	notify(s.readCh)
	notify(s.writeCh)
	return !s.remoteClosed
}

// receive takes an OpData frame's bytes.
func (s *stream) receive(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remoteClosed {
		return protocolError(ErrStreamSequence, "data on stream %d after its close", s.key.id)
	}
	if s.rbuf.Len()+s.unacked+len(b) > StreamWindow {
		return protocolError(ErrWindowExceeded, "%d bytes on stream %d with %d of %d in use",
			len(b), s.key.id, s.rbuf.Len()+s.unacked, StreamWindow)
	}
	if s.localClosed || s.err != nil {
		return nil
	}
	s.rbuf.Write(b)
	s.touch()
	notify(s.readCh)
	return nil
}

// grant takes an OpWindow frame's increment.
func (s *stream) grant(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remoteClosed {
		return protocolError(ErrStreamSequence, "window on stream %d after its close", s.key.id)
	}
	if s.credit+n > StreamWindow {
		return protocolError(ErrWindowExceeded, "window of %d on stream %d with %d unused", n, s.key.id, s.credit)
	}
	s.credit += n
	s.touch()
	notify(s.writeCh)
	return nil
}

// remoteClose takes an OpClose frame.
func (s *stream) remoteClose(r CloseReason) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remoteClosed {
		return protocolError(ErrStreamSequence, "second close of stream %d", s.key.id)
	}
	s.remoteClosed, s.remoteReason = true, r
	s.touch()
	notify(s.readCh)
	notify(s.writeCh)
	return nil
}

// remoteErr is what reads (at the end of the data) and writes return after
// the peer closed the stream. s.mu is held.
func (s *stream) remoteErr(read bool) error {
	switch s.remoteReason {
	case CloseNormal:
		if read {
			return io.EOF
		}
		return ErrPeerClosed
	case CloseRefused:
		return ErrTooManyStreams
	}
	return fmt.Errorf("%w: %v", ErrStreamReset, s.remoteReason)
}

// Read reads the stream's data. At its end it returns io.EOF if the peer
// closed the stream normally, else an error saying why it ended.
func (s *stream) Read(b []byte) (int, error) {
	for {
		s.mu.Lock()
		if s.localClosed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if expired(s.rdl) {
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if s.rbuf.Len() > 0 {
			n, _ := s.rbuf.Read(b)
			if s.rbuf.Len() == 0 {
				s.rbuf.Reset()
			}
			s.unacked += n
			inc := 0
			// Return the window in halves: often enough that the writer
			// need not stall, rarely enough to cost little.
			if s.unacked >= StreamWindow/2 && !s.remoteClosed && s.err == nil {
				inc, s.unacked = s.unacked, 0
			}
			s.mu.Unlock()
			s.touch()
			if inc > 0 {
				_ = s.conn.SendStream(AppendStreamFrame(nil, StreamFrame{Op: OpWindow, Acceptor: !s.key.mine, ID: s.key.id, Increment: uint32(inc)}))
			}
			return n, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if s.remoteClosed {
			err := s.remoteErr(true)
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		select {
		case <-s.readCh:
		case <-s.rdl.wait():
		}
	}
}

// Write writes b in chunks as the peer's window allows, waiting for window
// until the write deadline.
func (s *stream) Write(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	total := 0
	for len(b) > 0 {
		s.mu.Lock()
		var err error
		switch {
		case s.localClosed:
			err = net.ErrClosed
		case expired(s.wdl):
			err = os.ErrDeadlineExceeded
		case s.err != nil:
			err = s.err
		case s.remoteClosed:
			err = s.remoteErr(false)
		}
		if err != nil {
			s.mu.Unlock()
			return total, err
		}
		if s.credit == 0 {
			s.mu.Unlock()
			select {
			case <-s.writeCh:
			case <-s.wdl.wait():
			}
			continue
		}
		n := min(len(b), s.credit, maxChunk)
		s.credit -= n
		s.mu.Unlock()
		s.wbuf = AppendStreamFrame(s.wbuf[:0], StreamFrame{Op: OpData, Acceptor: !s.key.mine, ID: s.key.id, Data: b[:n]})
		if err := s.conn.SendStream(s.wbuf); err != nil {
			s.fail(ErrConnLost)
			return total, ErrConnLost
		}
		s.touch()
		total += n
		b = b[n:]
	}
	return total, nil
}

// Close closes the stream: unread data is dropped, and the peer is told
// unless it closed first. It returns nil, also when called again.
func (s *stream) Close() error {
	s.mu.Lock()
	if s.localClosed {
		s.mu.Unlock()
		return nil
	}
	s.localClosed = true
	tell := !s.remoteClosed && s.err == nil
	s.rbuf = bytes.Buffer{}
	notify(s.readCh)
	notify(s.writeCh)
	s.mu.Unlock()
	s.t.retire(s)
	if tell {
		_ = s.conn.SendStream(s.closeFrame(CloseNormal))
	}
	return nil
}

// LocalAddr returns this node's memberlist address.
func (s *stream) LocalAddr() net.Addr { return s.t.addr }

// RemoteAddr returns the peer's address, as its Conn gives it.
func (s *stream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// SetDeadline sets both deadlines.
func (s *stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

// SetReadDeadline sets the deadline of pending and future Reads.
func (s *stream) SetReadDeadline(t time.Time) error {
	s.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Writes.
func (s *stream) SetWriteDeadline(t time.Time) error {
	s.wdl.set(t)
	return nil
}
