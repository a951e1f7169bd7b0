package reign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ClusterSpec describes a cluster: its nodes, where each listens, and
// where each finds its certificate, its key and the cluster's CA
// certificate. It is usually read from a JSON file with LoadClusterSpec;
// reign_init writes a ready one (reign_cluster.json):
//
//	{
//	    "nodes": [
//	        {"id": 1, "address": "127.0.0.1:29871"},
//	        {"id": 2, "address": "127.0.0.1:29872"}
//	    ],
//	    "node_key_path": "reign_node.%d.key",
//	    "node_cert_path": "reign_node.%d.crt",
//	    "cluster_cert_path": "reign_ca.crt"
//	}
//
// The format is thejerf/reign's, and its spec files load unchanged: node
// IDs start at 0 as there, the older form of "nodes", an object keyed by
// the decimal node ID ({"1": {"address": ...}}), is read too, and fields
// this package does not use ("permitted_protocols") or does not know are
// accepted and ignored. Where thejerf/reign quietly picked one reading of
// an ambiguous spec (a path and a PEM both set, a node listed twice, a
// port given by service name), Validate refuses it and says what to
// change; README's "Differences from thejerf/reign" lists each case.
//
// MarshalJSON writes the same format, with "nodes" in the form it was
// read in (a list for a spec built in Go), so a tool can read a spec, add
// nodes and write it back: reign_init does.
//
// In the *_path fields, every "%d" is replaced by the node's ID, so one
// spec serves every node. A relative path is resolved against the folder of
// the spec file (LoadClusterSpec) or the current directory at the time of
// parsing (ParseClusterSpec, or a ClusterSpec built in Go).
//
// Each node needs its key and certificate, from a path or inline PEM, and
// the cluster's CA certificate, likewise; Validate says what is missing. As
// in thejerf/reign, a spec of a single node may have none of them.
//
// A ClusterSpec is not modified by this package after loading, and may
// then be read concurrently.
type ClusterSpec struct {
	// Nodes lists the cluster's nodes. IDs are unique; 0 is a valid ID.
	Nodes []NodeSpec `json:"nodes"`

	// NodeKeyPath is the file of the node's private key (PEM); "%d" is
	// replaced by the node ID. Set it or NodeKeyPEM.
	NodeKeyPath string `json:"node_key_path,omitempty"`
	// NodeCertPath is the file of the node's certificate (PEM, optionally
	// followed by intermediates); "%d" is replaced by the node ID. Set it
	// or NodeCertPEM.
	NodeCertPath string `json:"node_cert_path,omitempty"`
	// NodeKeyPEM is the node's private key itself, for a spec made for one
	// node (from a secret store, say).
	NodeKeyPEM string `json:"node_key_pem,omitempty"`
	// NodeCertPEM is the node's certificate itself.
	NodeCertPEM string `json:"node_cert_pem,omitempty"`

	// ClusterCertPath is the file of the cluster's CA certificate (PEM;
	// several certificates are all trusted, for a CA change-over). Set it
	// or ClusterCertPEM. The CA's private key is never needed by a node:
	// keep it away from them.
	ClusterCertPath string `json:"cluster_cert_path,omitempty"`
	// ClusterCertPEM is the cluster's CA certificate itself.
	ClusterCertPEM string `json:"cluster_cert_pem,omitempty"`

	// PermittedProtocols is read from thejerf/reign's specs (cipher suite
	// names) and ignored: reign speaks TLS 1.3 only, whose cipher suites
	// are not configurable in Go.
	PermittedProtocols []string `json:"permitted_protocols,omitempty"`

	// dir is the folder relative paths resolve against; "" means the
	// current directory at the time of use.
	dir string

	// keyed: "nodes" was read as an object keyed by node ID (the older
	// form), and MarshalJSON writes it back that way.
	keyed bool
}

// NodeSpec describes one node of a cluster.
type NodeSpec struct {
	// ID is the node's ID, 0-65535. In the list form of "nodes" it must be
	// given, even when it is 0.
	ID NodeID `json:"id"`

	// Address is the host:port the other nodes dial to reach this node.
	// It is required. An empty host means the local machine.
	Address string `json:"address"`

	// ListenAddress is the host:port the node listens on, when it differs
	// from Address (behind NAT or a proxy, or ":port" for every
	// interface). Empty means Address.
	ListenAddress string `json:"listen_address,omitempty"`

	// LocalAddress is the local address to dial the other nodes from, as
	// host:port (port 0: any). Empty lets the system choose.
	LocalAddress string `json:"local_address,omitempty"`
}

// LoadClusterSpec reads and validates the cluster spec in the JSON file at
// path. Relative paths in it resolve against the file's folder. Errors are
// *ConfigError.
func LoadClusterSpec(path string) (*ClusterSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Field: "ClusterSpec", Msg: "cannot read the cluster spec", Err: err}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{Field: "ClusterSpec", Msg: "cannot resolve the folder of " + path, Err: err}
	}
	return parseClusterSpec(data, filepath.Dir(abs), path)
}

// ParseClusterSpec reads and validates a cluster spec in JSON from r.
// Relative paths in it resolve against the current directory as it is
// now. Errors are *ConfigError.
func ParseClusterSpec(r io.Reader) (*ClusterSpec, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &ConfigError{Field: "ClusterSpec", Msg: "cannot read the cluster spec", Err: err}
	}
	dir, _ := os.Getwd() // on failure "", which means the same at the time of use
	return parseClusterSpec(data, dir, "")
}

func parseClusterSpec(data []byte, dir, name string) (*ClusterSpec, error) {
	s := &ClusterSpec{}
	if err := json.Unmarshal(data, s); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return nil, ce
		}
		msg := "the cluster spec is not valid JSON of the right shape"
		if name != "" {
			msg = name + " is not valid JSON of the right shape"
		}
		return nil, &ConfigError{Field: "ClusterSpec", Msg: msg, Err: err}
	}
	s.dir = dir
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalJSON reads a spec in either of thejerf/reign's forms of
// "nodes": a list of nodes with "id", or an object keyed by the decimal
// node ID (its older form). Nodes read from an object are sorted by ID.
func (s *ClusterSpec) UnmarshalJSON(data []byte) error {
	type plain ClusterSpec // without this method
	aux := struct {
		*plain
		Nodes json.RawMessage `json:"nodes"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	raw := bytes.TrimSpace(aux.Nodes)
	s.Nodes, s.keyed = nil, false
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '{':
		var m map[string]NodeSpec
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for key, n := range m {
			id, err := strconv.ParseUint(key, 10, 16)
			if err != nil {
				return &ConfigError{Field: fmt.Sprintf("nodes[%q]", key), Msg: "the key of a node is its ID, a number 0-65535", Err: err}
			}
			if n.ID != 0 && n.ID != NodeID(id) {
				return &ConfigError{Field: fmt.Sprintf("nodes[%q].id", key), Msg: fmt.Sprintf("node %s: the entry says id %d", key, n.ID)}
			}
			n.ID = NodeID(id)
			s.Nodes = append(s.Nodes, n)
		}
		slices.SortFunc(s.Nodes, func(a, b NodeSpec) int { return int(a.ID) - int(b.ID) })
		s.keyed = true
	default:
		// Each entry must say its "id": 0 is a valid ID, so a missing one
		// cannot be told from node 0 once decoded.
		var entries []struct {
			ID *NodeID `json:"id"`
		}
		if err := json.Unmarshal(raw, &entries); err != nil {
			return err
		}
		for i, e := range entries {
			if e.ID == nil {
				return &ConfigError{Field: fmt.Sprintf("nodes[%d].id", i), Msg: `missing ID: every node in the list says its "id" (thejerf/reign would have taken it as node 0; write "id": 0 if that is meant)`}
			}
		}
		if err := json.Unmarshal(raw, &s.Nodes); err != nil {
			return err
		}
	}
	return nil
}

// keyedNode is a node in the keyed form of "nodes": its ID is the key.
type keyedNode struct {
	Address       string `json:"address"`
	ListenAddress string `json:"listen_address,omitempty"`
	LocalAddress  string `json:"local_address,omitempty"`
}

// MarshalJSON writes the spec in the format UnmarshalJSON reads, with
// "nodes" in the form it was read in: an object keyed by node ID if the
// spec was read that way, a list otherwise. Empty fields are left out.
// The folder relative paths resolve against is not written: the file's
// own folder is used when it is loaded again.
func (s ClusterSpec) MarshalJSON() ([]byte, error) {
	type plain ClusterSpec // without this method
	if !s.keyed {
		return json.Marshal(plain(s))
	}
	m := make(map[string]keyedNode, len(s.Nodes))
	for _, n := range s.Nodes {
		m[strconv.FormatUint(uint64(n.ID), 10)] = keyedNode{n.Address, n.ListenAddress, n.LocalAddress}
	}
	return json.Marshal(struct {
		Nodes map[string]keyedNode `json:"nodes"`
		plain
	}{m, plain(s)})
}

// Validate checks the spec without touching the network or the files it
// names, and returns a *ConfigError naming the first wrong field, as in
// Field "nodes[2].address", Msg "node 3: missing address". The loaders call
// it; call it yourself on a ClusterSpec built in Go. Whether the files
// exist and the certificates are good is checked when a Node is made.
func (s *ClusterSpec) Validate() error {
	if s == nil {
		return &ConfigError{Field: "ClusterSpec", Msg: "nil cluster spec"}
	}
	if len(s.Nodes) == 0 {
		return &ConfigError{Field: "nodes", Msg: "no nodes: a cluster spec lists at least one node"}
	}
	seen := make(map[NodeID]int, len(s.Nodes))
	for i, n := range s.Nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		if j, dup := seen[n.ID]; dup {
			return &ConfigError{Field: field + ".id", Msg: fmt.Sprintf("node %d: listed twice, as nodes[%d] and nodes[%d]; remove one (thejerf/reign used the last silently)", n.ID, j, i)}
		}
		seen[n.ID] = i
		if n.Address == "" {
			return &ConfigError{Field: field + ".address", Msg: fmt.Sprintf("node %d: missing address", n.ID)}
		}
		for _, a := range []struct {
			name, value string
			zeroPort    bool
		}{
			{"address", n.Address, false},
			{"listen_address", n.ListenAddress, false},
			{"local_address", n.LocalAddress, true},
		} {
			if a.value == "" {
				continue
			}
			if err := checkHostPort(a.value, a.zeroPort); err != nil {
				return &ConfigError{Field: field + "." + a.name, Msg: fmt.Sprintf("node %d: bad %s %q: want host:port", n.ID, a.name, a.value), Err: err}
			}
		}
	}

	if len(s.Nodes) == 1 && s.NodeKeyPath == "" && s.NodeKeyPEM == "" && s.NodeCertPath == "" &&
		s.NodeCertPEM == "" && s.ClusterCertPath == "" && s.ClusterCertPEM == "" {
		return nil // as in thejerf/reign: a single node talks to no one
	}
	for _, src := range []struct{ what, path, pem, hint string }{
		{"node_key", s.NodeKeyPath, s.NodeKeyPEM, "the node's private key"},
		{"node_cert", s.NodeCertPath, s.NodeCertPEM, "the node's certificate"},
		{"cluster_cert", s.ClusterCertPath, s.ClusterCertPEM, "the cluster's CA certificate"},
	} {
		switch {
		case src.path == "" && src.pem == "":
			return &ConfigError{Field: src.what + "_path", Msg: fmt.Sprintf("missing: set %s_path (a file; %%d stands for the node ID) or %s_pem to %s", src.what, src.what, src.hint)}
		case src.path != "" && src.pem != "":
			return &ConfigError{Field: src.what + "_pem", Msg: fmt.Sprintf("both %s_path and %s_pem are set; remove one (thejerf/reign used the path and ignored the PEM)", src.what, src.what)}
		}
	}
	return nil
}

// checkHostPort checks that s is host:port with a numeric port and a host
// that is empty, an IP address or a host name.
func checkHostPort(s string, zeroPort bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		if port != "" && strings.Trim(port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == "" {
			// thejerf/reign looked service names up in the machine's
			// services table, which may differ from machine to machine.
			return fmt.Errorf("port %q is a service name: write its number instead (the one /etc/services gives it, e.g. 80 for http)", port)
		}
		return fmt.Errorf("port %q is not a number 0-65535", port)
	}
	if p == 0 && !zeroPort {
		return errors.New("port 0 cannot be dialed or advertised")
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostName(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Node returns the spec of node id, if the cluster has it.
func (s *ClusterSpec) Node(id NodeID) (NodeSpec, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeSpec{}, false
}

// resolvePath returns the file a *_path field names for node id: "%d"
// replaced by the ID, and a relative path joined to the spec's folder.
func (s *ClusterSpec) resolvePath(p string, id NodeID) string {
	p = strings.ReplaceAll(p, "%d", strconv.FormatUint(uint64(id), 10))
	if !filepath.IsAbs(p) && s.dir != "" {
		p = filepath.Join(s.dir, p)
	}
	return p
}
