package wire

// Group is the payload of GroupJoin and GroupLeave frames: the sending
// node's mailbox Member joins (leaves) the process group Name. A node
// sends a GroupJoin when one of its mailboxes becomes a member (its first
// join; later joins of the same mailbox only count locally) and a
// GroupLeave when it stops being one, so the receiver keeps a set.
//
//	Name    uvarint length, bytes
//	Member  Ref (12)
type Group struct {
	Name   string
	Member Ref
}

// AppendGroup appends the payload of a GroupJoin or GroupLeave frame to
// dst.
func AppendGroup(dst []byte, g Group) []byte {
	dst = appendString(dst, g.Name)
	return AppendRef(dst, g.Member)
}

// ParseGroup decodes the payload of a GroupJoin or GroupLeave frame.
// (GroupSync carries no payload: see ParseEmpty.)
func ParseGroup(p []byte) (Group, error) {
	d := dec{b: p, ok: true}
	v := Group{Name: string(d.bytes()), Member: d.ref()}
	if err := d.done("Group"); err != nil {
		return Group{}, err
	}
	return v, nil
}
