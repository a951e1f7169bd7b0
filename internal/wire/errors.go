package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package are one of these or wrap
// one with detail, so callers test with errors.Is. Besides these, a Reader
// returns io.EOF, io.ErrUnexpectedEOF and errors of the underlying reader.
var (
	// ErrFrameTooLarge: a frame's length exceeds the maximum frame size.
	ErrFrameTooLarge = errors.New("reign: frame too large")

	// ErrMalformed: a frame or a payload does not follow the protocol.
	ErrMalformed = errors.New("reign: malformed frame")

	// ErrUnknownFrame: a frame type this version does not know.
	ErrUnknownFrame = errors.New("reign: unknown frame type")

	// ErrVersion: the two sides of a handshake share no protocol version.
	ErrVersion = errors.New("reign: no common protocol version")

	// ErrBadMagic: a Hello payload does not start with the magic "REIGN";
	// the peer does not speak this protocol.
	ErrBadMagic = errors.New("reign: bad magic in hello")

	// ErrCodec: the two sides of a handshake name different codecs.
	ErrCodec = errors.New("reign: codec mismatch")
)

// malformed wraps ErrMalformed with a detail.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
