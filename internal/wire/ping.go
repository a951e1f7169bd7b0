package wire

import "encoding/binary"

// PingSize is the length of a Ping or Pong payload: an 8-byte value the
// sender of the Ping chose, which the Pong echoes.
const PingSize = 8

// AppendPing appends a Ping (or Pong) payload carrying v.
func AppendPing(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// ParsePing reads a Ping (or Pong) payload.
func ParsePing(p []byte) (uint64, error) {
	if len(p) != PingSize {
		return 0, malformed("ping payload of %d bytes, want %d", len(p), PingSize)
	}
	return binary.BigEndian.Uint64(p), nil
}
