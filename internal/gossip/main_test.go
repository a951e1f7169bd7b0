package gossip

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: the
// Transport starts none, and every test shuts its memberlists and carriers
// down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
