package reign

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reign-go/reign/internal/certs"
)

// thejerfFile reads a file of testdata/thejerf (see its README).
func thejerfFile(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "thejerf", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// thejerf/reign's own spec files load unchanged; its certificates, which
// name the node only in the CommonName, are refused when a node is made,
// with an error that says so.
func TestTheJerfSpecsLoad(t *testing.T) {
	t.Parallel()
	sample, err := LoadClusterSpec(filepath.Join("testdata", "thejerf", "sample_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []NodeSpec{{ID: 1, Address: "127.0.0.1:20000"}, {ID: 2, Address: "127.0.0.1:20001"}}; !reflect.DeepEqual(sample.Nodes, want) {
		t.Errorf("sample_config.json nodes %+v", sample.Nodes)
	}

	testbed, err := LoadClusterSpec(filepath.Join("testdata", "thejerf", "testbed_spec_node1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(testbed.Nodes) != 2 || testbed.Nodes[1].Address != "127.0.0.1:29877" || testbed.NodeCertPEM == "" || len(testbed.PermittedProtocols) != 1 {
		t.Errorf("testbed spec %+v", testbed)
	}
	// Its CA is an X.509 v1 certificate, which does not say it is a CA.
	_, err = NewNode(Config{NodeID: 1, Cluster: testbed})
	var ce *ConfigError
	if !errors.Is(err, ErrBadCertificate) || !errors.As(err, &ce) || ce.Field != "cluster_cert_pem" {
		t.Errorf("NewNode with thejerf/reign's certificates: %v", err)
	}

	// definition_test.go's TestJSONSpecification spec, rebuilt from the
	// PEM files as its jsonbytes did: nodes 0 and 1.
	jsonString := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	valid := `{
    "nodes": [
		{
			"id": 0,
            "address": "localhost:80"
		},
		{	"id": 1,
			"address": "10.2.8.33:90",
			"listen_address": "192.18.28.22:90"
        }
	],
	"node_cert_pem": ` + jsonString(thejerfFile(t, "node1_1.crt")) + `,
	"node_key_pem": ` + jsonString(thejerfFile(t, "node1_1.key")) + `,
	"cluster_cert_pem": ` + jsonString(thejerfFile(t, "signing1.crt")) + `
}`
	spec, err := ParseClusterSpec(strings.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeSpec{{ID: 0, Address: "localhost:80"}, {ID: 1, Address: "10.2.8.33:90", ListenAddress: "192.18.28.22:90"}}
	if !reflect.DeepEqual(spec.Nodes, want) {
		t.Errorf("nodes %+v", spec.Nodes)
	}
	for _, id := range []NodeID{0, 1} {
		if _, err := NewNode(Config{NodeID: id, Cluster: spec}); !errors.Is(err, ErrBadCertificate) {
			t.Errorf("node %d with thejerf/reign's certificate: %v", id, err)
		}
	}
}

// clusterOf starts real nodes of spec, listening on lns, as a testCluster.
func clusterOf(t *testing.T, spec *ClusterSpec, lns map[NodeID]net.Listener) *testCluster {
	t.Helper()
	for id, ln := range lns {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: id, Address: ln.Addr().String()})
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, spec: spec, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc.stopAll)
	for id, ln := range lns {
		tc.start(id, ln)
	}
	return tc
}

// exchange has node from find a name registered on node to, and send it a
// message, which must arrive.
func exchange(t *testing.T, tc *testCluster, from, to NodeID) {
	t.Helper()
	addr, inbox := newTestMailbox(t, tc.node(to))
	name := fmt.Sprintf("inbox-%d", to)
	if err := tc.node(to).Register(name, addr); err != nil {
		t.Fatal(err)
	}
	var found Address
	checkFor(t, testTimeout, func() error {
		var ok bool
		found, ok = tc.node(from).Lookup(name)
		return unless(ok, "node %d cannot find %q", from, name)
	})
	if found.NodeID() != to {
		t.Fatalf("inbox found on node %d, not %d", found.NodeID(), to)
	}
	me, _ := newTestMailbox(t, tc.node(from))
	mustSend(t, found, testMsg{Seq: 7, From: me, Text: "hello"})
	if got, ok := recv(t, inbox).(testMsg); !ok || got.Seq != 7 || got.From.String() != me.String() || got.From.NodeID() != from {
		t.Errorf("received %+v", got)
	}
}

// Node 0, as thejerf/reign numbers nodes, is a full member: a cluster of
// nodes 0 and 1 connects over mutual TLS and exchanges messages.
func TestNodeZeroOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.WriteNodes(dir, []uint16{0, 1}, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := &ClusterSpec{
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
	lns := listenLoopback(t, 1)
	ln0, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lns[0] = ln0
	tc := clusterOf(t, spec, lns)
	tc.connected()
	exchange(t, tc, 1, 0)
	exchange(t, tc, 0, 1)
}

// A CA change-over: node 1 holds a certificate from the old CA, node 2
// one from the new CA, and both trust both (the cluster's CA file lists
// the two): they connect and talk. With only the new CA trusted, node 1
// is refused.
func TestCAChangeOver(t *testing.T) {
	t.Parallel()
	oldDir, newDir := t.TempDir(), t.TempDir()
	if _, err := certs.WriteNodes(oldDir, []uint16{1}, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.WriteNodes(newDir, []uint16{2}, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	// One folder as a node would see it mid-change-over: its own pair,
	// and a CA file trusting both.
	dir := t.TempDir()
	copyFile := func(from, name string) {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(oldDir, certs.NodeCertFile(1))
	copyFile(oldDir, certs.NodeKeyFile(1))
	copyFile(newDir, certs.NodeCertFile(2))
	copyFile(newDir, certs.NodeKeyFile(2))
	oldCA, _ := os.ReadFile(filepath.Join(oldDir, certs.CACertFile))
	newCA, _ := os.ReadFile(filepath.Join(newDir, certs.CACertFile))
	if err := os.WriteFile(filepath.Join(dir, "both.crt"), append(append([]byte{}, oldCA...), newCA...), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := &ClusterSpec{
		ClusterCertPath: filepath.Join(dir, "both.crt"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}
	tc := clusterOf(t, spec, listenLoopback(t, 2))
	tc.connected()
	exchange(t, tc, 1, 2)

	// Node 2 alone, trusting the new CA only, refuses node 1's
	// certificate: the old CA is what let them talk.
	tc.kill(2)
	only := *spec
	only.ClusterCertPath, only.ClusterCertPEM = "", string(newCA)
	ln, err := net.Listen("tcp", spec.Nodes[1].Address)
	if err != nil {
		t.Skipf("node 2's port was taken meanwhile: %v", err)
	}
	tc2 := &testCluster{t: t, spec: &only, nodes: map[NodeID]*Node{}, stop: map[NodeID]func(){}}
	t.Cleanup(tc2.stopAll)
	n2 := tc2.start(2, ln)
	checkFor(t, testTimeout, func() error { return unless(n2.Stats().Refused > 0, "node 2 has refused no connection") })
	if up := n2.Stats().PeersUp; up != 0 {
		t.Errorf("node 2, trusting the new CA only, has %d peers up", up)
	}
}
