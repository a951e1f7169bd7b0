package reign

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: mailboxes
// are passive, so every goroutine a test starts must be gone at the end.
// It also removes the throwaway certificates the cluster tests minted.
func TestMain(m *testing.M) {
	code := m.Run()
	if certDirMade.Load() {
		if dir, err := certDir(); err == nil && dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
