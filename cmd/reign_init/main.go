// Command reign_init mints what a reign cluster needs to start: a
// certificate authority, one certificate per node signed by it, and a
// ready cluster spec for nodes on this machine.
//
//	reign_init [-nodes N] [-dir DIR] [-days D] [-organization O]
//
// It writes, in DIR (default: the current directory):
//
//	reign_ca.crt, reign_ca.key          the cluster's CA (reused if present)
//	reign_node.<id>.crt, .key           for ids 1..N (existing ones kept)
//	reign_cluster.json                  a spec for nodes 1..N on 127.0.0.1
//
// Private keys are written with mode 0600. The flags and file names are
// those of thejerf/reign's reign_init, and a CA made by it is reused; its
// node certificates, which name the node only in the CommonName, are
// reported as unusable (delete them and run again to replace them).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `reign_init sets up a reign cluster's certificates and cluster spec.

usage: reign_init [-nodes N] [-dir DIR] [-days D] [-organization O]

It writes these files in DIR (default: the current directory):

  reign_ca.crt, reign_ca.key     the cluster's certificate authority (CA).
                                 reign_ca.key can mint new nodes: keep it
                                 safe, and away from the nodes.
  reign_node.<id>.crt, .key      the certificate and key of node <id>, for
                                 ids 1..N; each node needs its own pair and
                                 reign_ca.crt.
  reign_cluster.json             a cluster spec for nodes 1..N on 127.0.0.1
                                 (port 29870+id) naming the files above.

Keys are written with mode 0600. Running it again reuses the CA and keeps
existing node files, so a larger -nodes adds nodes (and adds them to
reign_cluster.json, which is otherwise left alone). To start afresh, move
those files away first.

Next, try the chat sample. In the reign source folder, run
  go run ./cmd/reign_init
then, in two terminals in that folder,
  go run ./cmd/reign_sample 1
  go run ./cmd/reign_sample 2
and type lines into either. (With -dir DIR, add -config DIR/reign_cluster.json
to reign_sample.) For nodes on other machines, edit the addresses in
reign_cluster.json and give each node its own key and certificate, the CA
certificate and the spec.

Flags:
`

// run is reign_init: it parses args, writes the files and reports on
// stdout, and returns the exit code: 0 done, 1 failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reign_init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 2, "number of node certificates to prepare: ids 1..N")
	dir := fs.String("dir", "", "the directory to write the files to (default current directory)")
	days := fs.Int("days", 365, "the number of days the certificates are valid for")
	org := fs.String("organization", "reign_user", "the organization to set on the certificates")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reign_init: unexpected arguments %q (see reign_init -h)\n", fs.Args())
		return 2
	}
	if *nodes < 1 || *nodes > certs.MaxNodes {
		fmt.Fprintf(stderr, "reign_init: -nodes must be between 1 and %d, not %d\n", certs.MaxNodes, *nodes)
		return 2
	}
	if *days < 1 {
		fmt.Fprintf(stderr, "reign_init: -days must be at least 1, not %d\n", *days)
		return 2
	}
	where := *dir
	if where == "" {
		where = "."
	}

	res, err := certs.WriteSet(where, *nodes, certs.SetOptions{
		Organization: *org,
		ValidFor:     time.Duration(*days) * 24 * time.Hour,
	})
	if err != nil {
		fmt.Fprintf(stderr, "reign_init: %v\n", err)
		return 1
	}

	if res.CACreated {
		fmt.Fprintf(stdout, "Created the cluster CA: %s, %s\n", certs.CACertFile, certs.CAKeyFile)
	} else {
		fmt.Fprintf(stdout, "Reused the cluster CA in %s, %s\n", certs.CACertFile, certs.CAKeyFile)
	}
	if len(res.Created) > 0 {
		fmt.Fprintf(stdout, "Created certificates for nodes %s\n", idList(res.Created))
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(stdout, "Kept the existing certificates of nodes %s\n", idList(res.Kept))
	}
	fmt.Fprintf(stdout, "%s %s\n", map[string]string{
		"created":  "Created",
		"extended": "Added the new nodes to",
		"kept":     "Left alone the existing",
	}[res.Spec], certs.SpecFile)

	abs, err := filepath.Abs(where)
	if err != nil {
		abs = where
	}
	config := ""
	if filepath.Clean(where) != "." {
		config = " -config " + filepath.Join(where, certs.SpecFile)
	}
	fmt.Fprintf(stdout, "\nAll in %s. Next, from the reign source folder, in two terminals run\n", abs)
	fmt.Fprintf(stdout, "  go run ./cmd/reign_sample%s 1\n", config)
	fmt.Fprintf(stdout, "  go run ./cmd/reign_sample%s 2\n", config)
	fmt.Fprintf(stdout, "and type into either. Keep %s safe: it can mint new nodes.\n", certs.CAKeyFile)

	if len(res.Unusable) > 0 {
		ids := make([]uint16, 0, len(res.Unusable))
		for id := range res.Unusable {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fmt.Fprintf(stderr, "reign_init: warning: %s is kept but reign will refuse it: %v\n", certs.NodeCertFile(id), res.Unusable[id])
		}
		fmt.Fprintf(stderr, "reign_init: to replace them, delete those certificates and their keys, and run reign_init again.\n")
		return 1
	}
	return 0
}

func idList(ids []uint16) string {
	// Compress runs: 1-3, 5.
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		} else {
			parts = append(parts, fmt.Sprint(ids[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
