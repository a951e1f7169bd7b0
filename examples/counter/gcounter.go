package main

import (
	"maps"
	"math"
	"slices"

	"github.com/reign-go/reign"
)

// A GCounter is the talk's G-Counter: one count per node, each node
// incrementing only its own; merging takes the maximum per node, so merges
// are associative, commutative and idempotent (retry one as often as you
// like); the value is the sum. The zero value is an empty counter.
type GCounter map[reign.NodeID]uint64

// Inc adds amount to node's own entry. It reports false (and changes
// nothing) if the entry would overflow.
func (g GCounter) Inc(node reign.NodeID, amount uint64) bool {
	if g[node] > math.MaxUint64-amount {
		return false
	}
	g[node] += amount
	return true
}

// Merge takes the maximum of each entry of g and o, and returns the nodes
// whose entries grew (nil if none did).
func (g GCounter) Merge(o GCounter) (grew []reign.NodeID) {
	for node, v := range o {
		if v > g[node] {
			g[node] = v
			grew = append(grew, node)
		}
	}
	return grew
}

// Value is the counter's value: the sum of the entries (saturating at
// math.MaxUint64).
func (g GCounter) Value() uint64 {
	var sum uint64
	for _, v := range g {
		if sum > math.MaxUint64-v {
			return math.MaxUint64
		}
		sum += v
	}
	return sum
}

// Clone returns a copy of g, for a message that leaves the actor owning g.
func (g GCounter) Clone() GCounter { return maps.Clone(g) }

// Nodes returns the nodes with an entry, in order.
func (g GCounter) Nodes() []reign.NodeID { return slices.Sorted(maps.Keys(g)) }

// The messages between the counter actors (the types cross nodes, so every
// node registers them). Inc and Get come from the node's own HTTP handlers
// only.
type (
	// PushPull is the body of the periodic state exchange, a reign.Call
	// to another node's actor: the caller's full state; the reply is a
	// State, the other's full state after merging it.
	PushPull struct{ Counts GCounter }
	// State is a full counter state: PushPull's reply, and what Get
	// returns.
	State struct{ Counts GCounter }
	// Update is the state a node broadcasts to the group "counter" after
	// its own entry grew.
	Update struct{ Counts GCounter }
	// Inc asks the local actor to add Amount to its own entry; the reply
	// is the State after, once it is on disk.
	Inc struct{ Amount uint64 }
	// Get asks the local actor for its State.
	Get struct{}
)

var messageTypes = []any{PushPull{}, State{}, Update{}}
