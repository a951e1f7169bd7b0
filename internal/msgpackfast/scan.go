package msgpackfast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// MaxDepth is how deep a message may nest msgpack arrays and maps (structs,
// slices, arrays, maps): a top-level struct is at depth 1, a scalar at
// depth 0. The msgpack library decodes a nested value by recursion, one
// level of Go stack per level of nesting, so a frame of 12 MiB of 0x91
// bytes (each an array holding the next) would need more stack than a
// goroutine may have: a fatal error that recover cannot catch. reign's
// MaxDecodeDepth is this value.
const MaxDepth = 256

// ErrTooDeep: a message nests arrays and maps deeper than MaxDepth.
var ErrTooDeep = errors.New("reign: message nested too deep")

// errInvalid is the error for the byte 0xc1, which msgpack never uses.
var errInvalid = errors.New("msgpack: invalid code c1")

// Scan walks the msgpack value at the start of b without building it and
// returns its length in bytes. It fails with ErrTooDeep if the value nests
// deeper than MaxDepth, and with an error wrapping io.ErrUnexpectedEOF if
// a length in it claims more than the bytes left could hold: an array or
// map claiming more elements than bytes remain (each element takes at
// least one), or a string, bin or ext longer than the bytes remain. A value
// that passes can be handed to the library, whose recursion is then bounded
// by MaxDepth and whose allocations by len(b).
//
// It is one loop, not a recursion, and allocates nothing: it keeps, for
// each open level, the count of values left to read there, in a fixed
// array on its stack (1 KiB). On a small generic message it takes about a
// third of the time of the library's Skip, which it replaces.
func Scan(b []byte) (int, error) {
	var left [MaxDepth + 1]uint32 // values still to read at each open level; [0] is the top
	left[0] = 1
	pending := 1 // values still to read at all levels: each needs a byte at least
	d, i := 0, 0
	for {
		if i >= len(b) {
			return i, short(i, len(b))
		}
		c := b[i]
		left[d]--
		pending--
		var elems uint64 // elements of an array or map (2 per map entry)
		var body uint64  // bytes of payload after the header
		var hdr int      // bytes of the header, code included
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
			hdr = 1
		case c <= 0x8f: // fixmap
			hdr, elems, container = 1, 2*uint64(c&0x0f), true
		case c <= 0x9f: // fixarray
			hdr, elems, container = 1, uint64(c&0x0f), true
		case c <= 0xbf: // fixstr
			hdr, body = 1, uint64(c&0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
				hdr = 1
			case 0xc1:
				return i, errInvalid
			case 0xc4, 0xd9: // bin8, str8
				hdr = 2
			case 0xc5, 0xda: // bin16, str16
				hdr = 3
			case 0xc6, 0xdb: // bin32, str32
				hdr = 5
			case 0xc7: // ext8: length, type
				hdr = 3
			case 0xc8: // ext16
				hdr = 4
			case 0xc9: // ext32
				hdr = 6
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				hdr, body = 1, 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				hdr, body = 1, 8
			case 0xcc, 0xd0: // uint8, int8
				hdr, body = 1, 1
			case 0xcd, 0xd1: // uint16, int16
				hdr, body = 1, 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type, data
				hdr, body = 2, 1<<(c-0xd4)
			case 0xdc, 0xde: // array16, map16
				hdr, container = 3, true
			case 0xdd, 0xdf: // array32, map32
				hdr, container = 5, true
			}
			if hdr > len(b)-i {
				return i, short(i, len(b))
			}
			switch c {
			case 0xc4, 0xd9, 0xc7:
				body = uint64(b[i+1])
			case 0xc5, 0xda, 0xc8:
				body = uint64(binary.BigEndian.Uint16(b[i+1:]))
			case 0xc6, 0xdb, 0xc9:
				body = uint64(binary.BigEndian.Uint32(b[i+1:]))
			case 0xdc:
				elems = uint64(binary.BigEndian.Uint16(b[i+1:]))
			case 0xde:
				elems = 2 * uint64(binary.BigEndian.Uint16(b[i+1:]))
			case 0xdd:
				elems = uint64(binary.BigEndian.Uint32(b[i+1:]))
			case 0xdf:
				elems = 2 * uint64(binary.BigEndian.Uint32(b[i+1:]))
			}
		}
		if uint64(hdr)+body > uint64(len(b)-i) {
			return i, short(i, len(b))
		}
		i += hdr + int(body)
		if container {
			if d == MaxDepth {
				return i, ErrTooDeep
			}
			if room := len(b) - i - pending; room < 0 || elems > uint64(room) || elems > math.MaxUint32 {
				return i, short(i, len(b))
			}
			pending += int(elems)
			if elems > 0 {
				d++
				left[d] = uint32(elems)
			}
		}
		for left[d] == 0 {
			if d == 0 {
				return i, nil
			}
			d--
		}
	}
}

// short is the error for a value cut short at offset i of n bytes.
func short(i, n int) error {
	return fmt.Errorf("msgpack: a length at byte %d claims more than the %d bytes left: %w", i, n-i, io.ErrUnexpectedEOF)
}
