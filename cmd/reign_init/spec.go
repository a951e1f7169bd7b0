package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
)

// specChange says what writeSpec did to reign_cluster.json.
type specChange struct {
	created bool              // there was none: it was written
	added   []uint16          // nodes added to an existing spec
	moved   map[uint16]string // nodes the spec keeps at another address than the one asked for: that address
	spec    *reign.ClusterSpec
}

// writeSpec creates the cluster spec at path for plans, or adds to the
// existing one the nodes it lacks, keeping everything else in it (node
// entries, paths, fields reign does not know at the top level). The spec
// is read and written through reign.ClusterSpec, the one owner of its JSON
// form, and validated as a node would before it is written.
//
// A new node's address is its first host (127.0.0.1 without one) and its
// port, or base+ID; a port an existing node of the same host takes is
// skipped.
func writeSpec(path string, plans []*nodePlan, base int) (*specChange, error) {
	old, err := os.ReadFile(path)
	ch := &specChange{moved: map[uint16]string{}}
	var spec *reign.ClusterSpec
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ch.created = true
		spec = &reign.ClusterSpec{
			NodeKeyPath:     "reign_node.%d.key",
			NodeCertPath:    "reign_node.%d.crt",
			ClusterCertPath: certs.CACertFile,
		}
	case err != nil:
		return nil, err
	default:
		if spec, err = reign.LoadClusterSpec(path); err != nil {
			return nil, fmt.Errorf("%s exists but cannot be extended (fix or remove it): %w", path, err)
		}
	}
	ch.spec = spec

	taken := map[string]bool{}
	for _, n := range spec.Nodes {
		taken[n.Address] = true
	}
	for _, p := range plans {
		want := address(p, base, taken)
		if have, ok := spec.Node(reign.NodeID(p.id)); ok {
			if len(p.hosts) > 0 && have.Address != want {
				ch.moved[p.id] = want
			}
			continue
		}
		taken[want] = true
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: reign.NodeID(p.id), Address: want})
		ch.added = append(ch.added, p.id)
	}
	if !ch.created && len(ch.added) == 0 {
		return ch, nil
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("the spec would not load: %w", err)
	}
	data, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		return nil, err
	}
	if !ch.created {
		if data, err = keepUnknown(old, data); err != nil {
			return nil, err
		}
	}
	return ch, certs.WriteFile(path, append(data, '\n'), 0o644)
}

// address is the spec address of a new node of plan p: its first host and
// its port, or base+ID moved up past ports taken on the same host.
func address(p *nodePlan, base int, taken map[string]bool) string {
	host := "127.0.0.1"
	if len(p.hosts) > 0 {
		host = p.hosts[0]
	}
	if p.port != 0 {
		return net.JoinHostPort(host, strconv.Itoa(p.port))
	}
	port := base + int(p.id)
	for ; port < 65535; port++ {
		if a := net.JoinHostPort(host, strconv.Itoa(port)); !taken[a] {
			return a
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)) // Validate says if it is bad
}

// keepUnknown adds to the newly encoded spec the top-level fields of the
// old file that reign.ClusterSpec does not know (a "comment", an option
// of a later version), so that adding a node does not lose them.
func keepUnknown(old, encoded []byte) ([]byte, error) {
	var was, now map[string]json.RawMessage
	if err := json.Unmarshal(old, &was); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(encoded, &now); err != nil {
		return nil, err
	}
	extra := false
	for k, v := range was {
		if _, ok := now[k]; ok || isEmptyJSON(v) {
			continue
		}
		now[k] = v
		extra = true
	}
	if !extra {
		return encoded, nil
	}
	return json.MarshalIndent(now, "", "    ")
}

// isEmptyJSON reports whether v is what reign.ClusterSpec leaves out
// when it writes an empty known field.
func isEmptyJSON(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case `""`, "null", "[]":
		return true
	}
	return false
}
