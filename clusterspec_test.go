package reign

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func loadSpecFile(t testing.TB, name string) *ClusterSpec {
	t.Helper()
	s, err := LoadClusterSpec(filepath.Join("testdata", "specs", name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// A spec shaped like thejerf/reign's cmd/reign_sample/sample_config.json.
func TestClusterSpecReignSample(t *testing.T) {
	t.Parallel()
	s := loadSpecFile(t, "reign_sample.json")
	want := []NodeSpec{{ID: 1, Address: "127.0.0.1:20000"}, {ID: 2, Address: "127.0.0.1:20001"}}
	if !reflect.DeepEqual(s.Nodes, want) {
		t.Errorf("nodes %+v", s.Nodes)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "specs"))
	if got, want := s.resolvePath(s.NodeKeyPath, 2), filepath.Join(dir, "reign_node.2.key"); got != want {
		t.Errorf("key path %q, want %q", got, want)
	}
	if got, want := s.resolvePath(s.ClusterCertPath, 2), filepath.Join(dir, "reign_ca.crt"); got != want {
		t.Errorf("CA path %q, want %q", got, want)
	}
	if n, ok := s.Node(2); !ok || n.Address != "127.0.0.1:20001" {
		t.Errorf("Node(2) = %+v, %v", n, ok)
	}
	if _, ok := s.Node(3); ok {
		t.Error("Node(3) found")
	}
}

// thejerf/reign's older layout: nodes keyed by ID, permitted_protocols.
func TestClusterSpecReignLegacyMap(t *testing.T) {
	t.Parallel()
	s := loadSpecFile(t, "reign_legacy_map.json")
	want := []NodeSpec{
		{ID: 1, Address: "10.0.0.1:4000"},
		{ID: 2, Address: "10.0.0.2:4000", ListenAddress: ":4000"},
	}
	if !reflect.DeepEqual(s.Nodes, want) {
		t.Errorf("nodes %+v", s.Nodes)
	}
	if len(s.PermittedProtocols) != 1 {
		t.Errorf("permitted_protocols %v", s.PermittedProtocols)
	}
	if got := s.resolvePath(s.NodeCertPath, 1); got != "/etc/reign/node.1.crt" {
		t.Errorf("absolute path changed: %q", got)
	}
	// Written back, "nodes" keeps its keyed form and the spec reads the same.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct{ Nodes map[string]json.RawMessage }
	if err := json.Unmarshal(data, &raw); err != nil || len(raw.Nodes) != 2 || strings.Contains(string(raw.Nodes["1"]), `"id"`) {
		t.Errorf("keyed form not kept: %s (%v)", data, err)
	}
	again, err := ParseClusterSpec(strings.NewReader(string(data)))
	if err != nil || !reflect.DeepEqual(again.Nodes, s.Nodes) || again.NodeCertPath != s.NodeCertPath || len(again.PermittedProtocols) != 1 {
		t.Errorf("round trip of %s: %+v, %v", data, again, err)
	}
}

func TestClusterSpecFull(t *testing.T) {
	t.Parallel()
	s := loadSpecFile(t, "full.json")
	if len(s.Nodes) != 3 || s.Nodes[0].LocalAddress != "10.1.0.3:0" || s.Nodes[2].ID != 65535 {
		t.Errorf("nodes %+v", s.Nodes)
	}
	// What we write, we read back the same.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseClusterSpec(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Nodes, s.Nodes) || again.NodeCertPath != s.NodeCertPath {
		t.Errorf("round trip: %s", data)
	}
	if !strings.HasPrefix(string(data), `{"nodes":[{"id":3,`) || strings.Contains(string(data), "pem") {
		t.Errorf("list form, in order, empty fields left out: %s", data)
	}
	for _, name := range []string{"pem_inline.json", "single_node_no_certs.json"} {
		loadSpecFile(t, name)
	}
}

// thejerf/reign numbers nodes from 0: node 0 is an ordinary member.
func TestClusterSpecNodeZero(t *testing.T) {
	t.Parallel()
	s := loadSpecFile(t, "node0.json")
	if n, ok := s.Node(0); !ok || n.Address != "b:1" || len(s.Nodes) != 2 {
		t.Errorf("Node(0) = %+v, %v; nodes %+v", n, ok, s.Nodes)
	}
	built := &ClusterSpec{Nodes: []NodeSpec{{ID: 0, Address: "127.0.0.1:1"}, {ID: 1, Address: "127.0.0.1:2"}}, NodeKeyPath: "k", NodeCertPath: "c", ClusterCertPath: "ca"}
	if err := built.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseClusterSpecResolvesAgainstCwd(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "specs", "reign_sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseClusterSpec(f)
	if err != nil {
		t.Fatal(err)
	}
	cwd, _ := os.Getwd()
	if got, want := s.resolvePath(s.NodeCertPath, 1), filepath.Join(cwd, "reign_node.1.crt"); got != want {
		t.Errorf("%q, want %q", got, want)
	}
	// A spec built in Go resolves against the current directory at use.
	built := &ClusterSpec{NodeKeyPath: "k.%d.%d"}
	if got := built.resolvePath(built.NodeKeyPath, 12); got != "k.12.12" {
		t.Errorf("%q", got)
	}
}

func TestClusterSpecBad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file, field, msg string
		cause            string // in the error's text, if set
	}{
		{"no_nodes", "nodes", "no nodes", ""},
		{"nodes_missing", "nodes", "no nodes", ""},
		{"missing_id", "nodes[0].id", `missing ID: every node in the list says its "id"`, ""},
		{"dup_id", "nodes[2].id", "node 1: listed twice, as nodes[0] and nodes[2]; remove one", ""},
		{"dup_zero", "nodes[2].id", "node 0: listed twice", ""},
		{"missing_address", "nodes[2].address", "node 3: missing address", ""},
		{"no_port", "nodes[0].address", `node 1: bad address "127.0.0.1"`, ""},
		{"bad_port", "nodes[0].address", "node 1: bad address", ""},
		{"named_port", "nodes[0].address", "node 1: bad address", `port "http" is a service name: write its number instead`},
		{"port_zero", "nodes[0].address", "node 1: bad address", ""},
		{"bad_host", "nodes[1].address", "node 2: bad address", ""},
		{"bad_listen", "nodes[0].listen_address", "node 1: bad listen_address", ""},
		{"bad_local", "nodes[1].local_address", "node 2: bad local_address", ""},
		{"both_key", "node_key_pem", "both node_key_path and node_key_pem are set; remove one", ""},
		{"both_cluster_cert", "cluster_cert_pem", "both cluster_cert_path and cluster_cert_pem are set; remove one", ""},
		{"missing_key", "node_key_path", "missing: set node_key_path", ""},
		{"missing_cert", "node_cert_path", "missing: set node_cert_path", ""},
		{"missing_cluster_cert", "cluster_cert_path", "missing: set cluster_cert_path", ""},
		{"single_node_half_certs", "node_cert_path", "missing", ""},
		{"map_bad_key", `nodes["one"]`, "the key of a node is its ID", ""},
		{"map_id_mismatch", `nodes["1"].id`, "the entry says id 2", ""},
		{"id_too_big", "ClusterSpec", "not valid JSON", ""},
		{"id_string", "ClusterSpec", "not valid JSON", ""},
		{"not_json", "ClusterSpec", "not valid JSON", ""},
		{"trailing_garbage", "ClusterSpec", "not valid JSON", ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			s, err := LoadClusterSpec(filepath.Join("testdata", "specs", "bad", c.file+".json"))
			if err == nil {
				t.Fatalf("loaded: %+v", s)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("%T %v: not a *ConfigError wrapping ErrBadConfig", err, err)
			}
			if ce.Field != c.field || !strings.Contains(ce.Msg, c.msg) {
				t.Errorf("got Field %q Msg %q, want Field %q Msg containing %q", ce.Field, ce.Msg, c.field, c.msg)
			}
			if !strings.Contains(err.Error(), c.cause) {
				t.Errorf("error %q does not say %q", err, c.cause)
			}
			if !strings.HasPrefix(err.Error(), "reign: ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestClusterSpecMissingFile(t *testing.T) {
	t.Parallel()
	_, err := LoadClusterSpec(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, ErrBadConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%v", err)
	}
	var nilSpec *ClusterSpec
	if err := nilSpec.Validate(); !errors.Is(err, ErrBadConfig) {
		t.Errorf("nil spec: %v", err)
	}
}
