package wire

import "encoding/binary"

// Phases of an Idle frame (membership's idle close; see PROTOCOL.md). ONLY
// APPEND.
const (
	IdleAsk    uint8 = 0 // the lower ID proposes closing the quiet connection
	IdleAgree  uint8 = 1 // the higher ID agrees: nothing depends on it on its side
	IdleRefuse uint8 = 2 // the higher ID refuses: something still depends on it
)

// IdleSize is the length of an Idle payload.
const IdleSize = 17

// Idle is the payload of an Idle frame: a phase, and the sender's counts
// of the bytes of traffic (every frame but Heartbeat, Ping, Pong and Idle)
// it has received (In) and sent (Out) on this connection, so each side can
// tell that nothing is in flight.
type Idle struct {
	Phase   uint8
	In, Out uint64
}

// AppendIdle appends an Idle payload to b.
func AppendIdle(b []byte, v Idle) []byte {
	b = append(b, v.Phase)
	b = binary.BigEndian.AppendUint64(b, v.In)
	return binary.BigEndian.AppendUint64(b, v.Out)
}

// ParseIdle reads an Idle payload.
func ParseIdle(p []byte) (Idle, error) {
	if len(p) != IdleSize {
		return Idle{}, malformed("idle payload of %d bytes, want %d", len(p), IdleSize)
	}
	v := Idle{Phase: p[0], In: binary.BigEndian.Uint64(p[1:]), Out: binary.BigEndian.Uint64(p[9:])}
	if v.Phase > IdleRefuse {
		return Idle{}, malformed("idle phase %d", v.Phase)
	}
	return v, nil
}
