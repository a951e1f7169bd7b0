package certs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readSpec(t testing.TB, dir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteSet(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new")
	res, err := WriteSet(dir, 3, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CACreated || len(res.Created) != 3 || len(res.Kept) != 0 || res.Spec != "created" {
		t.Fatalf("result %+v", res)
	}
	modes := map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600}
	for id := uint16(1); id <= 3; id++ {
		modes[NodeCertFile(id)] = 0o644
		modes[NodeKeyFile(id)] = 0o600
	}
	modes[SpecFile] = 0o644
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(modes) {
		t.Errorf("%d files in %s, want %d (no temporary files left)", len(entries), dir, len(modes))
	}
	for id := uint16(1); id <= 3; id++ {
		data, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(id)))
		if err := VerifyNode(parse(t, data), nil, x509Pool(res.CA), id, time.Now()); err != nil {
			t.Errorf("node %d: %v", id, err)
		}
	}
	spec := readSpec(t, dir)
	nodes := spec["nodes"].([]any)
	if len(nodes) != 3 || nodes[2].(map[string]any)["address"] != "127.0.0.1:29873" {
		t.Errorf("nodes %v", nodes)
	}
	if spec["node_cert_path"] != "reign_node.%d.crt" || spec["cluster_cert_path"] != "reign_ca.crt" {
		t.Errorf("spec %v", spec)
	}

	// Again with more nodes: the CA and existing nodes are kept.
	caBefore, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	node1Before, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(1)))
	res, err = WriteSet(dir, 5, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.CACreated || len(res.Created) != 2 || len(res.Kept) != 3 || len(res.Unusable) != 0 || res.Spec != "extended" {
		t.Fatalf("second result %+v", res)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	node1After, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(1)))
	if string(caBefore) != string(caAfter) || string(node1Before) != string(node1After) {
		t.Error("existing files were rewritten")
	}
	if n := len(readSpec(t, dir)["nodes"].([]any)); n != 5 {
		t.Errorf("spec has %d nodes, want 5", n)
	}

	// Fewer nodes: nothing to do.
	res, err = WriteSet(dir, 2, SetOptions{})
	if err != nil || res.Spec != "kept" || len(res.Created) != 0 {
		t.Fatalf("third result %+v, %v", res, err)
	}
}

func TestWriteSetHalfPairs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{CACertFile, CAKeyFile} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := WriteSet(dir, 2, SetOptions{})
		if !errors.Is(err, ErrIncompleteSet) || !strings.Contains(err.Error(), name+" exists") {
			t.Errorf("only %s: %v", name, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("only %s: wrote %d files", name, len(entries)-1)
		}
	}
	dir := t.TempDir()
	if _, err := WriteSet(dir, 1, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, NodeKeyFile(2)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSet(dir, 2, SetOptions{}); !errors.Is(err, ErrIncompleteSet) {
		t.Errorf("half a node pair: %v", err)
	}
}

func TestWriteSetReportsUnusable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := mustCA(t)
	c, k, err := other.IssueNode(2, time.Now().Add(-time.Hour), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, NodeCertFile(2)), c, 0o644)
	os.WriteFile(filepath.Join(dir, NodeKeyFile(2)), k, 0o600)
	res, err := WriteSet(dir, 2, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unusable[2] == nil || res.Unusable[1] != nil {
		t.Errorf("unusable: %v", res.Unusable)
	}
}

func TestWriteSetExtendsExistingSpecs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, spec string
		check      func(t *testing.T, m map[string]any)
	}{
		{"list", `{"nodes": [{"id": 1, "address": "10.0.0.1:29872", "extra": true}], "node_key_path": "k.%d", "custom": 1}`,
			func(t *testing.T, m map[string]any) {
				nodes := m["nodes"].([]any)
				if len(nodes) != 3 {
					t.Fatalf("nodes %v", nodes)
				}
				first := nodes[0].(map[string]any)
				if first["address"] != "10.0.0.1:29872" || first["extra"] != true {
					t.Errorf("existing entry changed: %v", first)
				}
				if m["node_key_path"] != "k.%d" || m["custom"] != float64(1) {
					t.Errorf("other fields changed: %v", m)
				}
			}},
		{"map", `{"nodes": {"1": {"address": "127.0.0.1:29872"}}, "cluster_cert_path": "ca.pem"}`,
			func(t *testing.T, m map[string]any) {
				nodes := m["nodes"].(map[string]any)
				if len(nodes) != 3 || nodes["1"].(map[string]any)["address"] != "127.0.0.1:29872" {
					t.Fatalf("nodes %v", nodes)
				}
				if a := nodes["2"].(map[string]any)["address"]; a != "127.0.0.1:29873" {
					t.Errorf("node 2 address %v: should skip the port node 1 took", a)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, SpecFile), []byte(c.spec), 0o644)
			res, err := WriteSet(dir, 3, SetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Spec != "extended" {
				t.Errorf("spec: %s", res.Spec)
			}
			c.check(t, readSpec(t, dir))
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, SpecFile), []byte(`{"nodes": [`), 0o644)
	if _, err := WriteSet(dir, 1, SetOptions{}); err == nil || !strings.Contains(err.Error(), "fix or remove") {
		t.Errorf("broken spec: %v", err)
	}
}

func TestWriteSetBadArgs(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, MaxNodes + 1} {
		if _, err := WriteSet(t.TempDir(), n, SetOptions{}); err == nil {
			t.Errorf("%d nodes accepted", n)
		}
	}
}
