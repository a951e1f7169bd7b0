//go:build race

package reign

// raceEnabled: the race detector changes allocation counts, so tests that
// count allocations only assert them without it.
const raceEnabled = true
