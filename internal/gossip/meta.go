package gossip

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Meta is what a member says about itself in memberlist's node metadata
// (Delegate.NodeMeta), gossiped with its alive messages. memberlist relays
// it, so a receiver checks it against the member's name (CheckNode), and a
// connection to the member checks the name against its certificate.
type Meta struct {
	ID          uint16 // the member's node ID; its name is NodeName(ID)
	Incarnation uint32 // the member's reign incarnation, new at each start
	DataAddr    string // where to dial it for data: its reign listen address, host:port
}

// metaVersion is the first byte of an encoded Meta. A later layout takes a
// new version; receivers refuse versions they do not know.
const metaVersion = 1

// AppendMeta appends m's encoding to b:
//
//	Version      uint8 (1)
//	ID           uint16
//	Incarnation  uint32
//	DataAddr     uvarint length, bytes
//
// It fails if the encoding would exceed memberlist.MetaMaxSize.
func AppendMeta(b []byte, m Meta) ([]byte, error) {
	n := len(b)
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint16(b, m.ID)
	b = binary.BigEndian.AppendUint32(b, m.Incarnation)
	b = binary.AppendUvarint(b, uint64(len(m.DataAddr)))
	b = append(b, m.DataAddr...)
	if len(b)-n > memberlist.MetaMaxSize {
		return b[:n], fmt.Errorf("reign: node metadata of %d bytes exceeds %d", len(b)-n, memberlist.MetaMaxSize)
	}
	return b, nil
}

// ParseMeta parses a Meta. Errors wrap ErrMalformed.
func ParseMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > memberlist.MetaMaxSize {
		return m, malformed("node metadata of %d bytes", len(b))
	}
	if len(b) < 7 || b[0] != metaVersion {
		return m, malformed("node metadata: short or unknown version")
	}
	m.ID = binary.BigEndian.Uint16(b[1:])
	m.Incarnation = binary.BigEndian.Uint32(b[3:])
	n, rest, ok := uvarint(b[7:])
	if !ok || n != uint64(len(rest)) || n == 0 {
		return m, malformed("node metadata: bad data address")
	}
	m.DataAddr = string(rest)
	return m, nil
}

// CheckNode checks a member memberlist reports (an AliveDelegate's
// NotifyAlive, a MergeDelegate's NotifyMerge, an EventDelegate's
// NotifyJoin): its name must be a node name and its metadata must parse
// and name the same node. It returns the metadata. A member that fails is
// to be refused (NotifyAlive returns the error), never admitted.
func CheckNode(n *memberlist.Node) (Meta, error) {
	id, ok := ParseNodeName(n.Name)
	if !ok {
		return Meta{}, fmt.Errorf("reign: member name %q is not a node name", n.Name)
	}
	m, err := ParseMeta(n.Meta)
	if err != nil {
		return Meta{}, fmt.Errorf("reign: member %s: %w", n.Name, err)
	}
	if m.ID != id {
		return Meta{}, fmt.Errorf("reign: member %s claims node ID %d", n.Name, m.ID)
	}
	return m, nil
}
