package wire

// LinkFor is the payload of a LinkFor frame: the sender asks the receiver
// to make the receiver's own mailbox Watcher watch the mailbox Target,
// which may be on any node (the receiver's, the sender's or a third one),
// or, with Remove, to stop watching it. A node sends it for an
// OnCloseNotify whose watcher lives on the receiver: the watcher's node
// then installs the link itself, so notifications only ever travel from a
// watched mailbox's node to its watcher's node.
type LinkFor struct {
	Target  Addr // the mailbox to watch, on any node
	Watcher Ref  // the receiver's mailbox that wants to know
	Remove  bool // stop watching instead
}

// AppendLinkFor appends the payload of a LinkFor frame to dst: Target
// (14 bytes), Watcher (12 bytes), then one byte, 1 to remove, 0 to link.
func AppendLinkFor(dst []byte, l LinkFor) []byte {
	dst = AppendAddr(dst, l.Target)
	dst = AppendRef(dst, l.Watcher)
	var op byte
	if l.Remove {
		op = 1
	}
	return append(dst, op)
}

// ParseLinkFor decodes the payload of a LinkFor frame. An operation byte
// other than 0 or 1 is malformed.
func ParseLinkFor(p []byte) (LinkFor, error) {
	d := dec{b: p, ok: true}
	v := LinkFor{Target: d.addr(), Watcher: d.ref()}
	op := d.u8()
	if err := d.done("LinkFor"); err != nil {
		return LinkFor{}, err
	}
	if op > 1 {
		return LinkFor{}, malformed("LinkFor operation %d", op)
	}
	v.Remove = op == 1
	return v, nil
}
