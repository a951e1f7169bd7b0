package reign

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestKeyPermissions: NewNode logs one warning naming a node key file that
// group or others can read, and the fix, and still starts; a 0600 key, a
// symbolic link to one, and an inline key log nothing.
func TestKeyPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	t.Parallel()
	key := readPEM(t, "reign_node.1.key")
	for _, c := range []struct {
		name    string
		mode    os.FileMode
		link    bool
		inline  bool
		warning bool
	}{
		{"0644", 0o644, false, false, true},
		{"0640", 0o640, false, false, true},
		{"0604", 0o604, false, false, true},
		{"0600", 0o600, false, false, false},
		{"0400", 0o400, false, false, false},
		{"0644 through a link", 0o644, true, false, true},
		{"0600 through a link", 0o600, true, false, false},
		{"inline", 0, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			spec := testSpec(t)
			spec.Nodes = []NodeSpec{{ID: 1, Address: "127.0.0.1:1"}}
			dir := t.TempDir()
			file := filepath.Join(dir, "node.1.key")
			switch {
			case c.inline:
				spec.NodeKeyPath, spec.NodeKeyPEM = "", string(key)
			default:
				if err := os.WriteFile(file, key, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(file, c.mode); err != nil { // not masked by the umask
					t.Fatal(err)
				}
				spec.NodeKeyPath = filepath.Join(dir, "node.%d.key")
				if c.link {
					// as Kubernetes mounts a secret: a link into a hidden folder
					if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil {
						t.Fatal(err)
					}
					target := filepath.Join(dir, "..data", "node.1.key")
					if err := os.Rename(file, target); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(target, file); err != nil {
						t.Fatal(err)
					}
				}
			}
			var logs bytes.Buffer
			_, err := NewNode(Config{NodeID: 1, Cluster: spec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("NewNode: %v", err)
			}
			warnings := strings.Count(logs.String(), "level=WARN")
			switch {
			case c.warning && warnings != 1:
				t.Fatalf("%d warnings, want 1:\n%s", warnings, logs.String())
			case c.warning && (!strings.Contains(logs.String(), file) || !strings.Contains(logs.String(), "chmod 0600")):
				t.Fatalf("the warning does not name the file %s and the fix:\n%s", file, logs.String())
			case !c.warning && warnings != 0:
				t.Fatalf("warned:\n%s", logs.String())
			}
		})
	}
}
