// Package wire is reign's wire format: frames, frame types, the payload of
// each frame type, and the handshake. It knows frames and bytes only; it
// imports nothing of the root package, so the format can change freely behind
// it. PROTOCOL.md, at the root of the module, documents every frame.
//
// # Framing
//
// Every frame is a 4-byte big-endian length L, then L bytes: one byte of frame
// Type, then the payload (L-1 bytes). L is at least 1 and at most the
// receiver's maximum frame size, which is checked before anything is
// allocated. See AppendFrame, BeginFrame/EndFrame and Reader.
//
// # Payloads
//
// Each frame type has a payload struct with an AppendX function that appends
// the payload only (not the frame header) and a ParseX function that decodes
// a payload. Fixed-size integers are big-endian; variable-length data is
// preceded by its length as a minimal uvarint. Parsers reject short payloads,
// lengths that exceed the payload, non-minimal uvarints and trailing bytes
// with an error wrapping ErrMalformed, so every payload has exactly one
// encoding. Byte-slice fields of parsed structs alias the payload; strings
// are copied.
//
// # Performance and safety
//
// Appending a frame into a reused buffer and reading frames with a Reader
// allocate nothing in steady state. No function of this package panics on any
// input read from the network.
//
// # Concurrency
//
// The Append and Parse functions are pure and safe for concurrent use. A
// Reader is not: one goroutine reads a connection.
package wire
