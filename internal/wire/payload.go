package wire

import "encoding/binary"

// Reasons carried by Closed frames: why the watched mailbox is gone. The
// numbers are part of the protocol. ONLY APPEND.
const (
	ReasonNormal       uint8 = 0 // the mailbox was closed
	ReasonNoConnection uint8 = 1 // its node became unreachable
	ReasonNodeShutdown uint8 = 2 // its node shut down
	ReasonNoProc       uint8 = 3 // no such mailbox (or of an earlier run)
	ReasonAbnormal     uint8 = 4 // closed with a cause, which Text carries
)

// Reasons carried by Goodbye frames. ONLY APPEND.
const (
	GoodbyeShutdown  uint8 = 0 // the sending node is shutting down
	GoodbyeDuplicate uint8 = 1 // refused: a connection between the pair is already up
	// GoodbyeDuplicateConn: with membership either side may dial; the
	// lower node ID of the pair refuses a connection the higher dialed
	// while it has one of its own (dialing, or up), in place of
	// ConnAccept.
	GoodbyeDuplicateConn uint8 = 2
	// GoodbyeIdle: with membership, the lower ID closes a quiet connection
	// both sides agreed nothing needs (see the Idle frame).
	GoodbyeIdle uint8 = 3
)

// TypeDef is the payload of a TypeDef frame: the sender defines ID, on this
// connection and in its direction, as the message type called Name.
//
//	ID    uvarint
//	Name  uvarint length, bytes
type TypeDef struct {
	ID   uint32
	Name string
}

// Message is the payload of a Message frame: a user message for the mailbox
// To of the receiving node. Body, the codec's encoding of the message, is
// the rest of the payload.
//
//	To      Ref (12)
//	TypeID  uvarint
//	Body    rest
type Message struct {
	To     Ref
	TypeID uint32
	Body   []byte
}

// Link is the payload of Link and Unlink frames: the sender's mailbox
// Watcher wants to be told (Unlink: no longer) when the receiver's mailbox
// Target closes.
//
//	Target   Ref (12)
//	Watcher  Ref (12)
type Link struct {
	Target  Ref
	Watcher Ref
}

// Closed is the payload of a Closed frame: the sender's mailbox Target closed
// (or never existed); the receiver tells its mailbox Watcher. Reason is one
// of the Reason constants. Text is the cause of an abnormal close, as text;
// the field is present only when Text is not empty (a frame without it, as
// older nodes send, parses with Text ""), and at most MaxClosedText bytes.
//
//	Target   Ref (12)
//	Watcher  Ref (12)
//	Reason   uint8
//	Text     uvarint length (1..MaxClosedText), bytes: only if not empty
type Closed struct {
	Target  Ref
	Watcher Ref
	Reason  uint8
	Text    string
}

// MaxClosedText bounds a Closed frame's Text, in bytes (the root package's
// MaxExitText).
const MaxClosedText = 1024

// Request is the payload of a Request frame: a call to the receiver's
// mailbox To, to be answered with a Reply to the sender's mailbox ReplyTo
// carrying CallRef. Body is the rest of the payload.
//
//	To       Ref (12)
//	ReplyTo  Addr (14): may be on any node, so a Request can be forwarded
//	CallRef  uint64
//	TypeID   uvarint
//	Body     rest
type Request struct {
	To      Ref
	ReplyTo Addr
	CallRef uint64
	TypeID  uint32
	Body    []byte
}

// Reply is the payload of a Reply frame: the answer to the Request CallRef,
// for the receiver's mailbox To. Body is the rest of the payload.
//
//	To       Ref (12)
//	CallRef  uint64
//	TypeID   uvarint
//	Body     rest
type Reply struct {
	To      Ref
	CallRef uint64
	TypeID  uint32
	Body    []byte
}

// Claim is the payload of RegClaim and RegRelease frames: the sending node
// claims (releases) the registry name Name for its mailbox Mailbox.
//
//	Name     uvarint length, bytes
//	Mailbox  Ref (12)
type Claim struct {
	Name    string
	Mailbox Ref
}

// Goodbye is the payload of a Goodbye frame: the sender is closing the
// connection cleanly. Reason is one of the Goodbye constants.
//
//	Reason  uint8
type Goodbye struct {
	Reason uint8
}

// AppendTypeDef appends the payload of a TypeDef frame to dst.
func AppendTypeDef(dst []byte, d TypeDef) []byte {
	dst = binary.AppendUvarint(dst, uint64(d.ID))
	return appendString(dst, d.Name)
}

// ParseTypeDef decodes the payload of a TypeDef frame.
func ParseTypeDef(p []byte) (TypeDef, error) {
	d := dec{b: p, ok: true}
	v := TypeDef{ID: d.uv32(), Name: string(d.bytes())}
	if err := d.done("TypeDef"); err != nil {
		return TypeDef{}, err
	}
	return v, nil
}

// AppendMessage appends the payload of a Message frame to dst. Since Body is
// the rest of the payload, a caller may pass a nil Body and append the body
// itself afterwards, for example straight from a codec.
func AppendMessage(dst []byte, m Message) []byte {
	dst = AppendRef(dst, m.To)
	dst = binary.AppendUvarint(dst, uint64(m.TypeID))
	return append(dst, m.Body...)
}

// ParseMessage decodes the payload of a Message frame. Body aliases p.
func ParseMessage(p []byte) (Message, error) {
	d := dec{b: p, ok: true}
	v := Message{To: d.ref(), TypeID: d.uv32(), Body: d.rest()}
	if err := d.done("Message"); err != nil {
		return Message{}, err
	}
	return v, nil
}

// AppendLink appends the payload of a Link or Unlink frame to dst.
func AppendLink(dst []byte, l Link) []byte {
	dst = AppendRef(dst, l.Target)
	return AppendRef(dst, l.Watcher)
}

// ParseLink decodes the payload of a Link or Unlink frame.
func ParseLink(p []byte) (Link, error) {
	d := dec{b: p, ok: true}
	v := Link{Target: d.ref(), Watcher: d.ref()}
	if err := d.done("Link"); err != nil {
		return Link{}, err
	}
	return v, nil
}

// AppendClosed appends the payload of a Closed frame to dst.
func AppendClosed(dst []byte, c Closed) []byte {
	dst = AppendRef(dst, c.Target)
	dst = AppendRef(dst, c.Watcher)
	dst = append(dst, c.Reason)
	if c.Text != "" {
		dst = appendString(dst, c.Text)
	}
	return dst
}

// ParseClosed decodes the payload of a Closed frame. Reasons this version
// does not know are returned as they are; the caller decides. A Text field
// that is present but empty, or longer than MaxClosedText, is malformed
// (so every Closed has one encoding).
func ParseClosed(p []byte) (Closed, error) {
	d := dec{b: p, ok: true}
	v := Closed{Target: d.ref(), Watcher: d.ref(), Reason: d.u8()}
	if d.ok && len(d.b) > 0 {
		t := d.bytes()
		if len(t) == 0 || len(t) > MaxClosedText {
			d.ok = false
		}
		v.Text = string(t)
	}
	if err := d.done("Closed"); err != nil {
		return Closed{}, err
	}
	return v, nil
}

// AppendRequest appends the payload of a Request frame to dst. As with
// AppendMessage, the body may be appended afterwards instead.
func AppendRequest(dst []byte, r Request) []byte {
	dst = AppendRef(dst, r.To)
	dst = AppendAddr(dst, r.ReplyTo)
	dst = binary.BigEndian.AppendUint64(dst, r.CallRef)
	dst = binary.AppendUvarint(dst, uint64(r.TypeID))
	return append(dst, r.Body...)
}

// ParseRequest decodes the payload of a Request frame. Body aliases p.
func ParseRequest(p []byte) (Request, error) {
	d := dec{b: p, ok: true}
	v := Request{To: d.ref(), ReplyTo: d.addr(), CallRef: d.u64(), TypeID: d.uv32(), Body: d.rest()}
	if err := d.done("Request"); err != nil {
		return Request{}, err
	}
	return v, nil
}

// AppendReply appends the payload of a Reply frame to dst. As with
// AppendMessage, the body may be appended afterwards instead.
func AppendReply(dst []byte, r Reply) []byte {
	dst = AppendRef(dst, r.To)
	dst = binary.BigEndian.AppendUint64(dst, r.CallRef)
	dst = binary.AppendUvarint(dst, uint64(r.TypeID))
	return append(dst, r.Body...)
}

// ParseReply decodes the payload of a Reply frame. Body aliases p.
func ParseReply(p []byte) (Reply, error) {
	d := dec{b: p, ok: true}
	v := Reply{To: d.ref(), CallRef: d.u64(), TypeID: d.uv32(), Body: d.rest()}
	if err := d.done("Reply"); err != nil {
		return Reply{}, err
	}
	return v, nil
}

// AppendClaim appends the payload of a RegClaim or RegRelease frame to dst.
func AppendClaim(dst []byte, c Claim) []byte {
	dst = appendString(dst, c.Name)
	return AppendRef(dst, c.Mailbox)
}

// ParseClaim decodes the payload of a RegClaim or RegRelease frame.
func ParseClaim(p []byte) (Claim, error) {
	d := dec{b: p, ok: true}
	v := Claim{Name: string(d.bytes()), Mailbox: d.ref()}
	if err := d.done("Claim"); err != nil {
		return Claim{}, err
	}
	return v, nil
}

// AppendGoodbye appends the payload of a Goodbye frame to dst.
func AppendGoodbye(dst []byte, g Goodbye) []byte {
	return append(dst, g.Reason)
}

// ParseGoodbye decodes the payload of a Goodbye frame. Reasons this version
// does not know are returned as they are.
func ParseGoodbye(p []byte) (Goodbye, error) {
	d := dec{b: p, ok: true}
	v := Goodbye{Reason: d.u8()}
	if err := d.done("Goodbye"); err != nil {
		return Goodbye{}, err
	}
	return v, nil
}

// ParseEmpty checks the payload of a frame that carries none (Heartbeat,
// RegSyncDone).
func ParseEmpty(p []byte) error {
	if len(p) != 0 {
		return malformed("%d bytes in an empty payload", len(p))
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// dec reads a payload field by field. The first short or invalid field
// clears ok; later fields then read as zero values, and done reports it.
type dec struct {
	b  []byte
	ok bool
}

func (d *dec) take(n int) []byte {
	if !d.ok || len(d.b) < n {
		d.ok = false
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *dec) addr() Addr {
	if !d.ok {
		return Addr{}
	}
	a, rest, err := ParseAddr(d.b)
	d.b, d.ok = rest, err == nil
	return a
}

func (d *dec) ref() Ref {
	if !d.ok {
		return Ref{}
	}
	r, rest, ok := getRef(d.b)
	d.b, d.ok = rest, ok
	return r
}

// uvarint reads a minimally encoded uvarint: binary.Uvarint also accepts
// padded forms such as 0x80 0x00, which would give a value two encodings.
func (d *dec) uvarint() uint64 {
	if !d.ok {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.ok = false
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) uv32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.ok = false
		return 0
	}
	return uint32(v)
}

// bytes reads a uvarint length and that many bytes.
func (d *dec) bytes() []byte {
	n := d.uvarint()
	if !d.ok || n > uint64(len(d.b)) {
		d.ok = false
		return nil
	}
	return d.take(int(n))
}

// rest takes the remaining bytes.
func (d *dec) rest() []byte {
	if !d.ok {
		return nil
	}
	v := d.b[:len(d.b):len(d.b)]
	d.b = d.b[len(d.b):]
	return v
}

// done reports the first failure, or trailing bytes.
func (d *dec) done(what string) error {
	if !d.ok {
		return malformed("short or invalid %s payload", what)
	}
	if len(d.b) != 0 {
		return malformed("%d trailing bytes in %s payload", len(d.b), what)
	}
	return nil
}
