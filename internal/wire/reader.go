package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// ReaderBufferSize is the largest size of a Reader's buffer. Frames up to
// this size, header included, are returned straight from the buffer; larger
// ones are assembled in a separate scratch slice.
//
// The buffer starts at ReaderMinBuffer and grows (doubling, up to
// ReaderBufferSize) when a frame does not fit or a read fills it (the
// stream is busy); after readerQuietFills reads in a row that each found
// it empty and brought less than ReaderMinBuffer, it shrinks back to
// ReaderMinBuffer and the scratch slice is released. So an idle connection
// holds a small buffer, and a busy one the large buffer it had before.
const ReaderBufferSize = 64 << 10

// ReaderMinBuffer is the size a Reader's buffer starts at and shrinks back
// to when its stream is quiet: see ReaderBufferSize.
const ReaderMinBuffer = 4 << 10

// readerQuietFills is how many quiet reads in a row shrink the buffer.
const readerQuietFills = 4

// Reader reads frames from a byte stream. It is not safe for concurrent use.
type Reader struct {
	rd      io.Reader
	buf     []byte // buf[r:w] is buffered
	r, w    int
	rerr    error // the underlying reader's error, returned once the buffer is drained
	minb    int   // the size buf starts at and shrinks back to
	maxb    int   // the size buf grows to at most
	grow    bool  // the last read filled buf: grow it before the next
	quiet   int   // reads in a row that found buf empty and brought little
	max     int   // largest accepted length L
	pending int   // bytes of the last frame still to discard from buf
	scratch []byte
	err     error // sticky: the first error returned

	footprint atomic.Int64 // len(buf) + cap(scratch), for Footprint
}

// NewReader returns a Reader of the frames in r that accepts frames whose
// length L (type byte plus payload) is at most maxFrame; zero or negative
// means DefaultMaxFrame. It reads r through its own buffer, of
// ReaderMinBuffer to ReaderBufferSize bytes, so it may read ahead of the
// frame it returns.
func NewReader(r io.Reader, maxFrame int) *Reader {
	return newReaderSizes(r, maxFrame, ReaderMinBuffer, ReaderBufferSize)
}

// newReaderSize lets tests use small buffers: from 16 bytes (or size, if
// smaller) up to size.
func newReaderSize(r io.Reader, maxFrame, size int) *Reader {
	return newReaderSizes(r, maxFrame, min(16, size), size)
}

func newReaderSizes(r io.Reader, maxFrame, minb, maxb int) *Reader {
	minb = max(minb, 4)
	maxb = max(maxb, minb)
	rd := &Reader{rd: r, buf: make([]byte, minb), minb: minb, maxb: maxb, max: clampMax(maxFrame)}
	rd.sized()
	return rd
}

// Footprint is how many bytes of buffers the Reader holds now.
// Safe to call from any goroutine.
func (r *Reader) Footprint() int { return int(r.footprint.Load()) }

// sized records the Reader's footprint after its buffers changed.
func (r *Reader) sized() { r.footprint.Store(int64(len(r.buf) + cap(r.scratch))) }

// buffered is how many bytes are buffered.
func (r *Reader) buffered() int { return r.w - r.r }

// resize moves the buffered bytes into a new buffer of size n.
func (r *Reader) resize(n int) {
	nb := make([]byte, n)
	r.w = copy(nb, r.buf[r.r:r.w])
	r.r = 0
	r.buf = nb
	r.sized()
}

// peek returns the next n bytes (n <= maxb) without consuming them,
// reading until they are buffered, growing the buffer if they do not fit.
// With fewer, it returns what is buffered and the error that stopped it.
func (r *Reader) peek(n int) ([]byte, error) {
	for r.buffered() < n {
		if r.rerr != nil {
			err := r.rerr
			if r.buffered() == 0 {
				r.rerr = nil // once, as bufio does
			}
			return r.buf[r.r:r.w], err
		}
		r.fill(n)
	}
	return r.buf[r.r : r.r+n], nil
}

// fill does one read into the buffer, which must hold fewer than n bytes,
// first making room for n bytes, and more if the stream is busy.
func (r *Reader) fill(n int) {
	empty := r.buffered() == 0
	if empty {
		r.r, r.w = 0, 0
	}
	switch size := len(r.buf); {
	case n > size:
		r.resize(min(max(2*size, n), r.maxb))
		r.quiet = 0
	case r.grow && size < r.maxb:
		r.resize(min(2*size, r.maxb))
	case empty && r.quiet >= readerQuietFills && size > r.minb:
		r.buf = make([]byte, r.minb)
		r.scratch = nil
		r.sized()
	case len(r.buf)-r.r < n || r.w == len(r.buf):
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	r.grow = false
	for range 100 {
		m, err := r.rd.Read(r.buf[r.w:])
		if m < 0 {
			panic("wire: the underlying reader returned a negative count")
		}
		r.w += m
		if err != nil {
			r.rerr = err
			return
		}
		if m > 0 {
			r.grow = r.w == len(r.buf)
			if empty && m < r.minb && n <= r.minb {
				r.quiet++
			} else {
				r.quiet = 0
			}
			return
		}
	}
	r.rerr = io.ErrNoProgress
}

// discard drops n buffered bytes.
func (r *Reader) discard(n int) { r.r += n }

// read reads into p from the buffer, or straight from the underlying
// reader if nothing is buffered.
func (r *Reader) read(p []byte) (int, error) {
	if r.buffered() > 0 {
		m := copy(p, r.buf[r.r:r.w])
		r.r += m
		return m, nil
	}
	if r.rerr != nil {
		err := r.rerr
		r.rerr = nil
		return 0, err
	}
	return r.rd.Read(p)
}

// Ready reports whether the next frame is already buffered whole, so that
// Next will return it without reading from the underlying reader (or
// return an error, without reading, for a header it refuses). A caller
// that holds back work until the next frame, as the node's reader batches
// messages for one mailbox, uses it to never make a frame it holds wait
// for bytes that have not arrived.
func (r *Reader) Ready() bool {
	if r.err != nil {
		return false
	}
	start := r.r + r.pending
	if r.w-start < 4 {
		return false
	}
	l := binary.BigEndian.Uint32(r.buf[start:])
	return l == 0 || uint64(l) > uint64(r.max) || uint64(4+l) <= uint64(r.w-start)
}

// Next reads the next frame and returns its type and payload.
//
// The payload aliases the Reader's buffers: it is valid only until the next
// call to Next, and must not be modified. Frames of unknown types are
// returned, not refused: the caller decides (see CheckType).
//
// A frame's length is checked against the maximum before anything is read or
// allocated for it: an oversized frame gives an error wrapping
// ErrFrameTooLarge, a zero length one wrapping ErrMalformed. The end of the
// stream exactly between two frames gives io.EOF; inside a frame,
// io.ErrUnexpectedEOF. Errors of the underlying reader are returned as they
// are. After any error the stream is out of step, so the Reader keeps
// returning that same error.
//
// Memory for a frame larger than the buffer grows with the bytes actually
// received, so a peer that announces a large frame and does not send it
// costs little; the scratch slice is kept for reuse.
func (r *Reader) Next() (Type, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	t, p, err := r.next()
	if err != nil {
		r.err = err
		return 0, nil, err
	}
	return t, p, nil
}

func (r *Reader) next() (Type, []byte, error) {
	if r.pending > 0 {
		// The previous frame is still in the buffer, so this cannot fail.
		// It was kept until now because the payload returned by the last
		// Peek is only guaranteed until the next read call.
		r.discard(r.pending)
		r.pending = 0
	}
	hdr, err := r.peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) == 0 {
			return 0, nil, io.EOF
		}
		return 0, nil, unexpected(err)
	}
	l := binary.BigEndian.Uint32(hdr)
	if l == 0 {
		return 0, nil, malformed("zero frame length")
	}
	if uint64(l) > uint64(r.max) {
		return 0, nil, fmt.Errorf("%w: length %d exceeds maximum %d", ErrFrameTooLarge, l, r.max)
	}
	n := 4 + int(l)
	if n <= r.maxb {
		b, err := r.peek(n)
		if err != nil {
			return 0, nil, unexpected(err)
		}
		r.pending = n
		return Type(b[4]), b[HeaderSize:n:n], nil
	}
	return r.readLarge(int(l))
}

// readLarge reads a frame of length l, whose 4-byte length is still in the
// buffer, into the scratch slice, growing it only as bytes arrive.
func (r *Reader) readLarge(l int) (Type, []byte, error) {
	r.discard(4) // buffered
	buf := r.scratch[:0]
	for len(buf) < l {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), r.maxb), l)
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
			r.scratch = nb
			r.sized()
		}
		m, err := io.ReadFull((*bufReader)(r), buf[len(buf):min(cap(buf), l)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return 0, nil, unexpected(err)
		}
	}
	return Type(buf[0]), buf[1:l:l], nil
}

// bufReader is a Reader as the io.Reader of its buffered bytes.
type bufReader Reader

func (b *bufReader) Read(p []byte) (int, error) { return (*Reader)(b).read(p) }

// unexpected maps an end of stream inside a frame to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
