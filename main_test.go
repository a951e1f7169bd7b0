package reign

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: mailboxes
// are passive, so every goroutine a test starts must be gone at the end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
