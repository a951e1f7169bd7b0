package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ReaderBufferSize is the size of a Reader's buffer. Frames up to this size,
// header included, are returned straight from the buffer; larger ones are
// assembled in a separate scratch slice.
const ReaderBufferSize = 64 << 10

// Reader reads frames from a byte stream. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int    // largest accepted length L
	pending int    // bytes of the last frame still to discard from br
	scratch []byte // reused for frames larger than br's buffer
	err     error  // sticky: the first error returned
}

// NewReader returns a Reader of the frames in r that accepts frames whose
// length L (type byte plus payload) is at most maxFrame; zero or negative
// means DefaultMaxFrame. It reads r through its own buffer of
// ReaderBufferSize bytes, so it may read ahead of the frame it returns.
func NewReader(r io.Reader, maxFrame int) *Reader {
	return newReaderSize(r, maxFrame, ReaderBufferSize)
}

// newReaderSize lets tests use small buffers (bufio's minimum is 16 bytes).
func newReaderSize(r io.Reader, maxFrame, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), max: clampMax(maxFrame)}
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
		r.br.Discard(r.pending)
		r.pending = 0
	}
	hdr, err := r.br.Peek(4)
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
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
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
	r.br.Discard(4) // buffered: cannot fail
	buf := r.scratch[:0]
	for len(buf) < l {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), r.br.Size()), l)
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
			r.scratch = nb
		}
		m, err := io.ReadFull(r.br, buf[len(buf):min(cap(buf), l)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return 0, nil, unexpected(err)
		}
	}
	return Type(buf[0]), buf[1:l:l], nil
}

// unexpected maps an end of stream inside a frame to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
