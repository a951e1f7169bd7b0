package reign

// This file is the per-peer bounds (Config's "per-peer bounds" block):
// what one peer may make this node hold, what crossing a bound does (the
// connection is closed with CloseLimitExceeded and the crossing counted
// by kind in Stats.LimitsExceeded), and the defaults. The state each
// bound guards lives with its subsystem: watchers in link.go, names in
// registry.go, the type dictionary in conn.go, queued control frames in
// writer.go, forwarded calls in callremote.go, group memberships in
// groupsync.go (whose defaults are in groups.go). A subsystem that adds per-peer state (groups, say) appends a
// Limit here, a field to the Config block and its default below, and
// calls conn.exceeded where its handler would cross it.

import (
	"fmt"
	"sync/atomic"
)

// Limit names one kind of per-peer bound (see Config's per-peer bounds);
// Stats.LimitsExceeded counts the connections closed for crossing each.
//
// The numbers are not on the wire but index counters: ONLY APPEND, and
// give each new kind a name in limitNames.
type Limit uint8

// Kinds of per-peer bounds.
const (
	// LimitLinks: Config.MaxPeerLinks, the watchers a peer's mailboxes
	// hold on this node's mailboxes (and the links a peer may ask this
	// node to install for its own mailboxes, see OnCloseNotify).
	LimitLinks Limit = iota
	// LimitNames: Config.MaxPeerNames and MaxPeerNameBytes, the registry
	// names one peer claims.
	LimitNames
	// LimitTypes: Config.MaxPeerTypes and MaxPeerTypeBytes, the peer's
	// type dictionary on one connection.
	LimitTypes
	// LimitControl: Config.ControlBufferLimit, the control frames (links,
	// Closed, registry) queued for a peer that does not read them.
	LimitControl
	// LimitForwarded: Config.MaxPeerForwarded, the peer's Requests that
	// a server here forwarded to another node, awaiting answers.
	LimitForwarded
	// LimitGroups: Config.MaxPeerGroups, the process groups the peer's
	// mailboxes are members of.
	LimitGroups
	// LimitGroupMembers: Config.MaxPeerGroupMembers, the group
	// memberships the peer holds, all groups together.
	LimitGroupMembers

	// numLimits sizes the counters; keep it last.
	numLimits
)

var limitNames = [numLimits]string{
	LimitLinks:        "links",
	LimitNames:        "names",
	LimitTypes:        "types",
	LimitControl:      "control",
	LimitForwarded:    "forwarded",
	LimitGroups:       "groups",
	LimitGroupMembers: "group_members",
}

// String returns the kind's name, such as "links".
func (l Limit) String() string {
	if l < numLimits {
		return limitNames[l]
	}
	return "limit(" + itoa(int(l)) + ")"
}

// MarshalText returns the kind's name, so Stats encode as JSON with
// readable keys.
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Defaults of the per-peer bounds. With them, one peer can make this node
// hold about 19 MiB beyond its outgoing buffer (measured; see PROTOCOL.md,
// "Trust model and bounds", for the sum and how it was measured).
const (
	DefaultMaxPeerLinks     = 1 << 16 // ~80 bytes each: ~5 MiB
	DefaultMaxPeerNames     = 1 << 16 // ~130 bytes each beyond the name: ~8 MiB
	DefaultMaxPeerNameBytes = 4 << 20
	DefaultMaxPeerTypes     = 1 << 16 // ~40 bytes each beyond the name: ~2.5 MiB
	DefaultMaxPeerTypeBytes = 1 << 20
	DefaultMaxPeerForwarded = 1 << 16 // a call record each, ~100 bytes (estimated)
	// ControlBufferLimit's default is SendBufferLimit: see the field.
)

// limitCounts counts the connections closed for crossing each bound.
type limitCounts [numLimits]atomic.Uint64

// snapshot returns the non-zero counts, or nil if there are none.
func (lc *limitCounts) snapshot() map[Limit]uint64 {
	var m map[Limit]uint64
	for l := range lc {
		if v := lc[l].Load(); v != 0 {
			if m == nil {
				m = map[Limit]uint64{}
			}
			m[Limit(l)] = v
		}
	}
	return m
}

// LimitError says which per-peer bound a peer crossed; it wraps
// ErrLimitExceeded. It is the detail of a connection closed with
// CloseLimitExceeded (logged with the close).
type LimitError struct {
	Limit Limit  // the kind of bound
	Field string // the Config field that sets it
	Max   int    // its value
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("reign: the peer crossed a per-peer bound: %s over %d (Config.%s)", e.Limit, e.Max, e.Field)
}

// Unwrap returns ErrLimitExceeded.
func (e *LimitError) Unwrap() error { return ErrLimitExceeded }

// exceeded counts a crossing of bound l (Config field field, value max)
// by c's peer and returns the error that closes c with CloseLimitExceeded:
// a frame handler returns it.
func (c *conn) exceeded(l Limit, field string, max int) error {
	c.p.c.stats.limits[l].Add(1)
	return closeWith(CloseLimitExceeded, &LimitError{Limit: l, Field: field, Max: max})
}

// fillBoundDefaults fills in the per-peer bounds of cfg left at zero and
// checks the others; SendBufferLimit must be filled in already.
func fillBoundDefaults(cfg *Config) error {
	for _, b := range []struct {
		v    *int
		def  int
		name string
	}{
		{&cfg.MaxPeerLinks, DefaultMaxPeerLinks, "MaxPeerLinks"},
		{&cfg.MaxPeerNames, DefaultMaxPeerNames, "MaxPeerNames"},
		{&cfg.MaxPeerNameBytes, DefaultMaxPeerNameBytes, "MaxPeerNameBytes"},
		{&cfg.MaxPeerTypes, DefaultMaxPeerTypes, "MaxPeerTypes"},
		{&cfg.MaxPeerTypeBytes, DefaultMaxPeerTypeBytes, "MaxPeerTypeBytes"},
		{&cfg.ControlBufferLimit, cfg.SendBufferLimit, "ControlBufferLimit"},
		{&cfg.MaxPeerForwarded, DefaultMaxPeerForwarded, "MaxPeerForwarded"},
	} {
		switch {
		case *b.v == 0:
			*b.v = b.def
		case *b.v < 0:
			return &ConfigError{Field: "Config." + b.name, Msg: "negative"}
		}
	}
	return nil
}
