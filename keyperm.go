package reign

import (
	"io/fs"
	"log/slog"
	"os"
	"runtime"
)

// warnKeyPermissions logs one warning if the node key file that spec names
// for node id can be read by the file's group or by others. It does not
// refuse such a key: Kubernetes mounts secrets 0644 unless told otherwise
// (defaultMode in the volume), and refusing would break those deployments.
// A key given inline, or on Windows (no such permission bits), is not
// checked.
func warnKeyPermissions(log *slog.Logger, spec *ClusterSpec, id NodeID) {
	if spec == nil || spec.NodeKeyPath == "" {
		return
	}
	file := spec.resolvePath(spec.NodeKeyPath, id)
	if mode, loose := looseKeyFile(file); loose {
		log.Warn("node key file can be read by group or others: restrict it with chmod 0600 (on Kubernetes, defaultMode: 0600 on the secret volume)",
			"file", file, "mode", mode.Perm().String())
	}
}

// looseKeyFile reports whether file (after symbolic links, as Kubernetes
// mounts secrets) can be read by its group or by others, and its mode.
func looseKeyFile(file string) (fs.FileMode, bool) {
	if runtime.GOOS == "windows" {
		return 0, false
	}
	fi, err := os.Stat(file)
	if err != nil {
		return 0, false // loading the key reports it
	}
	return fi.Mode(), fi.Mode().Perm()&0o044 != 0
}
