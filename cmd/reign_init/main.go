// Command reign_init mints what a reign cluster needs to start: a
// certificate authority, one certificate per node signed by it, and a
// ready cluster spec.
//
//	reign_init [-nodes N | -hosts ID=HOST,... | -add-node ID[=HOST]] [-port BASE]
//	           [-dir DIR] [-days D] [-organization O]
//
// It writes, in DIR (default: the current directory):
//
//	reign_ca.crt, reign_ca.key          the cluster's CA (reused if present)
//	reign_node.<id>.crt, .key           one pair per node (existing ones kept)
//	reign_cluster.json                  the cluster spec (existing one extended)
//
// Private keys are written with mode 0600. The flags and file names are
// those of thejerf/reign's reign_init, and a CA made by it is reused; its
// node certificates, which name the node only in the CommonName, are
// reported as unusable (delete them and run again to replace them).
//
// reign_init warns when a certificate of the set expires within 30 days.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// defaultBase is the default -port: node id listens on port 29870+id.
const defaultBase = 29870

const usage = `reign_init sets up a reign cluster's certificates and cluster spec.

usage: reign_init [-nodes N | -hosts ID=HOST,... | -add-node ID[=HOST[:PORT]]]
                  [-port BASE] [-dir DIR] [-days D] [-organization O]

It writes these files in DIR (default: the current directory):

  reign_ca.crt, reign_ca.key     the cluster's certificate authority (CA).
                                 reign_ca.key can mint new nodes: keep it
                                 safe, and away from the nodes.
  reign_node.<id>.crt, .key      the certificate and key of node <id>; each
                                 node needs its own pair and reign_ca.crt.
  reign_cluster.json             the cluster spec naming the nodes' addresses
                                 and the files above; every node needs it.

Which nodes:
  -nodes N          nodes 1..N on this machine, 127.0.0.1 (the default: 2).
  -hosts LIST       nodes on real machines, as comma-separated ID=HOST
                    entries (HOST a name or an IP address, optionally
                    HOST:PORT; an IPv6 address with a port in brackets).
                    An ID given again adds a name to the same node: every
                    name goes into the node's certificate, and the first is
                    its address in the spec. Node IDs may start at 0.
                      -hosts 1=db1.example.com,1=10.0.0.1,2=db2.example.com
  -add-node ID[=HOST[:PORT]]
                    one more node for the existing CA in DIR, added to the
                    existing reign_cluster.json; more names with -hosts.
  -port BASE        node <id> listens on port BASE+id unless HOST:PORT says
                    otherwise (default 29870).

Keys are written with mode 0600. Running it again reuses the CA and keeps existing node files, so a larger
-nodes adds nodes; nodes missing from reign_cluster.json are added to it,
and the rest of it is left as it is. To start afresh, move those files away.

Next, try the chat sample. In the reign source folder, run
  go run ./cmd/reign_init
  go build -o reign_sample ./cmd/reign_sample
then, in a terminal of its own for each node,
  ./reign_sample 1
  ./reign_sample 2
and type lines into any of them. (With -dir DIR, add -config
DIR/reign_cluster.json. Prefer the built binary to "go run": a signal such
as kill -9 sent to "go run" stops go run only, and leaves the node
running.) For nodes on other machines, see docs/deploying.md.

Flags:
`

// run is reign_init: it parses args, writes the files and reports on
// stdout, and returns the exit code: 0 done, 1 failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reign_init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 2, "number of nodes to prepare: ids 1..N on 127.0.0.1")
	hostList := fs.String("hosts", "", "the nodes and their hosts, as `ID=HOST[:PORT],...`")
	addNode := fs.String("add-node", "", "mint one more node, `ID[=HOST[:PORT]]`, for the existing CA and add it to the spec")
	base := fs.Int("port", defaultBase, "node <id> listens on port `BASE`+id")
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "reign_init: "+format+" (see reign_init -h)\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if *days < 1 {
		return bad("-days must be at least 1, not %d", *days)
	}
	if *base < 0 || *base > 65534 {
		return bad("-port must be between 0 and 65534, not %d", *base)
	}
	if set["nodes"] && (set["hosts"] || set["add-node"]) {
		return bad("-nodes says nodes 1..N on this machine; with -hosts or -add-node, the nodes are the IDs they name")
	}

	// The nodes to make, with their hosts and ports.
	plans := map[uint16]*nodePlan{}
	if set["add-node"] {
		if _, err := addHost(plans, strings.TrimSpace(*addNode)); err != nil {
			return bad("-add-node: %v", err)
		}
	}
	if set["hosts"] {
		if err := parseHosts(plans, *hostList); err != nil {
			return bad("-hosts: %v", err)
		}
	}
	if set["add-node"] && len(plans) > 1 {
		return bad("-add-node adds one node; -hosts may name only that one too")
	}
	if !set["hosts"] && !set["add-node"] {
		if *nodes < 1 || *nodes > 65535-*base {
			return bad("-nodes must be between 1 and %d (so that port %d+N is valid), not %d", 65535-*base, *base, *nodes)
		}
		for id := 1; id <= *nodes; id++ {
			plans[uint16(id)] = &nodePlan{id: uint16(id)}
		}
	}
	ordered := sortedPlans(plans)
	ids := make([]uint16, len(ordered))
	hosts := map[uint16][]string{}
	for i, p := range ordered {
		ids[i] = p.id
		if len(p.hosts) > 0 {
			hosts[p.id] = p.hosts
		}
		if p.port == 0 && *base+int(p.id) > 65535 {
			return bad("node %d: port %d+%d is past 65535; give it HOST:PORT or a lower -port", p.id, *base, p.id)
		}
	}

	where := *dir
	if where == "" {
		where = "."
	}
	res, err := certs.WriteNodes(where, ids, certs.SetOptions{
		Organization: *org,
		ValidFor:     time.Duration(*days) * 24 * time.Hour,
		Hosts:        hosts,
		RequireCA:    set["add-node"],
	})
	if err != nil {
		fmt.Fprintf(stderr, "reign_init: %v\n", err)
		if errors.Is(err, certs.ErrNoCA) {
			fmt.Fprintf(stderr, "reign_init: -add-node needs the cluster's %s and %s in -dir; run reign_init without it to start a cluster\n", certs.CACertFile, certs.CAKeyFile)
		}
		return 1
	}
	specPath := filepath.Join(where, certs.SpecFile)
	ch, err := writeSpec(specPath, ordered, *base)
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
		fmt.Fprintf(stdout, "Created certificates for %s\n", nodeList(res.Created))
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(stdout, "Kept the existing certificates of %s\n", nodeList(res.Kept))
	}
	switch {
	case ch.created:
		fmt.Fprintf(stdout, "Created %s\n", certs.SpecFile)
	case len(ch.added) > 0:
		fmt.Fprintf(stdout, "Added %s to %s\n", nodeList(ch.added), certs.SpecFile)
	default:
		fmt.Fprintf(stdout, "Left alone the existing %s: it has every node\n", certs.SpecFile)
	}

	// Warnings; any but expiry makes the run a failure.
	code := 0
	for _, id := range slices.Sorted(maps.Keys(ch.moved)) {
		have, _ := ch.spec.Node(reign.NodeID(id))
		fmt.Fprintf(stderr, "reign_init: warning: %s keeps node %d at %s, not %s: edit it if the node moved\n", certs.SpecFile, id, have.Address, ch.moved[id])
	}
	for _, id := range slices.Sorted(maps.Keys(res.MissingHosts)) {
		fmt.Fprintf(stderr, "reign_init: warning: %s is kept but does not name %s; to reissue it, delete it and %s, and run reign_init again\n",
			certs.NodeCertFile(id), strings.Join(res.MissingHosts[id], ", "), certs.NodeKeyFile(id))
		code = 1
	}
	for _, id := range slices.Sorted(maps.Keys(res.Unusable)) {
		fmt.Fprintf(stderr, "reign_init: warning: %s is kept but reign will refuse it: %v\n", certs.NodeCertFile(id), res.Unusable[id])
		code = 1
	}
	if len(res.Unusable) > 0 {
		fmt.Fprintf(stderr, "reign_init: to replace them, delete those certificates and their keys, and run reign_init again.\n")
	}
	for _, e := range res.Expiring {
		if !e.Expired() {
			fmt.Fprintf(stderr, "reign_init: warning: %s; see docs/deploying.md, \"Rotating certificates\"\n", e)
		}
	}
	if code != 0 {
		return code
	}

	abs, err := filepath.Abs(where)
	if err != nil {
		abs = where
	}
	fmt.Fprintf(stdout, "\nAll in %s. Keep %s safe: it can mint new nodes.\n", abs, certs.CAKeyFile)
	if len(hosts) > 0 {
		fmt.Fprintf(stdout, "Next, give each machine %s, %s and its own node's pair, never %s:\n", certs.CACertFile, certs.SpecFile, certs.CAKeyFile)
		for _, p := range ordered {
			fmt.Fprintf(stdout, "  node %d: %s, %s\n", p.id, certs.NodeCertFile(p.id), certs.NodeKeyFile(p.id))
		}
		fmt.Fprintf(stdout, "and start each node with its ID; docs/deploying.md says how (ports, firewall, systemd, Kubernetes).\n")
		return 0
	}
	// The sample is built in the reign source folder and run from there:
	// name the spec by its absolute path, unless it is that folder's own.
	config := " -config " + filepath.Join(abs, certs.SpecFile)
	if _, err := os.Stat(filepath.Join("cmd", "reign_sample")); err == nil && filepath.Clean(where) == "." {
		config = ""
	}
	n := len(ch.spec.Nodes)
	terminals := fmt.Sprintf("%d terminals", n)
	if n == 1 {
		terminals = "1 terminal"
	}
	fmt.Fprintf(stdout, "Next, try the chat sample. From the reign source folder, build it once,\n")
	fmt.Fprintf(stdout, "  go build -o reign_sample ./cmd/reign_sample\n")
	fmt.Fprintf(stdout, "then start each node in a terminal of its own (%s), from that folder:\n", terminals)
	for _, node := range ch.spec.Nodes {
		fmt.Fprintf(stdout, "  ./reign_sample%s %d\n", config, node.ID)
	}
	fmt.Fprintf(stdout, "and type into any of them.\n")
	return 0
}

// nodeList says "node 3" or "nodes 1-3, 5".
func nodeList(ids []uint16) string {
	if len(ids) == 1 {
		return fmt.Sprintf("node %d", ids[0])
	}
	return "nodes " + idList(ids)
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
