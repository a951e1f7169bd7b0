package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runInit(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// checkSet checks that dir holds a good set for nodes 1..n.
func checkSet(t testing.TB, dir string, n int) *certs.CA {
	t.Helper()
	read := func(name string, mode os.FileMode) []byte {
		t.Helper()
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	ca, err := certs.LoadCA(read(certs.CACertFile, 0o644), read(certs.CAKeyFile, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	for id := uint16(1); id <= uint16(n); id++ {
		cert, err := certs.ParseCertificate(read(certs.NodeCertFile(id), 0o644))
		if err != nil {
			t.Fatal(err)
		}
		read(certs.NodeKeyFile(id), 0o600)
		roots := newPool(ca)
		if err := certs.VerifyNode(cert, nil, roots, id, time.Now()); err != nil {
			t.Errorf("node %d: %v", id, err)
		}
	}
	var spec struct {
		Nodes []struct {
			ID      uint16 `json:"id"`
			Address string `json:"address"`
		} `json:"nodes"`
		NodeKeyPath     string `json:"node_key_path"`
		NodeCertPath    string `json:"node_cert_path"`
		ClusterCertPath string `json:"cluster_cert_path"`
	}
	if err := json.Unmarshal(read(certs.SpecFile, 0o644), &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Nodes) != n || spec.NodeKeyPath != "reign_node.%d.key" || spec.NodeCertPath != "reign_node.%d.crt" || spec.ClusterCertPath != "reign_ca.crt" {
		t.Errorf("spec %+v", spec)
	}
	ports := map[string]bool{}
	for i, node := range spec.Nodes {
		if node.ID != uint16(i+1) || ports[node.Address] || !strings.HasPrefix(node.Address, "127.0.0.1:") {
			t.Errorf("spec node %+v", node)
		}
		ports[node.Address] = true
	}
	return ca
}

func TestRunWritesAndExtends(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cluster")
	code, out, errOut := runInit(t, "-nodes", "3", "-dir", dir, "-days", "10", "-organization", "Acme")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Created the cluster CA") || !strings.Contains(out, "nodes 1-3") || !strings.Contains(out, "reign_sample -config") {
		t.Errorf("stdout:\n%s", out)
	}
	ca := checkSet(t, dir, 3)
	if ca.Cert().Subject.Organization[0] != "Acme" {
		t.Errorf("organization %v", ca.Cert().Subject.Organization)
	}
	if left := time.Until(ca.Cert().NotAfter); left < 9*24*time.Hour || left > 11*24*time.Hour {
		t.Errorf("CA valid for %v more", left)
	}

	code, out, errOut = runInit(t, "-nodes", "5", "-dir", dir)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Reused the cluster CA") || !strings.Contains(out, "nodes 4-5") || !strings.Contains(out, "Kept the existing certificates of nodes 1-3") {
		t.Errorf("stdout:\n%s", out)
	}
	if again := checkSet(t, dir, 5); !again.Cert().Equal(ca.Cert()) {
		t.Error("the CA was replaced")
	}
}

func TestRunRefusesHalfCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, out, errOut := runInit(t, "-dir", dir); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if err := os.Remove(filepath.Join(dir, certs.CACertFile)); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runInit(t, "-dir", dir, "-nodes", "3")
	if code != 1 || !strings.Contains(errOut, "reign_ca.key exists but") || !strings.Contains(errOut, "reign_ca.crt does not") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, certs.NodeCertFile(3))); !errors.Is(err, os.ErrNotExist) {
		t.Error("wrote node 3 anyway")
	}
}

func TestRunWarnsAboutUnusableCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other, err := certs.NewCA("", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := other.IssueNode(2, time.Now().Add(-time.Hour), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, certs.NodeCertFile(2)), c, 0o644)
	os.WriteFile(filepath.Join(dir, certs.NodeKeyFile(2)), k, 0o600)
	code, _, errOut := runInit(t, "-dir", dir)
	if code != 1 || !strings.Contains(errOut, "reign_node.2.crt is kept but reign will refuse it") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	code, out, errOut := runInit(t, "-h")
	if code != 0 || out != "" {
		t.Errorf("-h: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"reign_ca.key", "reign_node.<id>.crt", "reign_cluster.json", "0600", "go run ./cmd/reign_sample 1", "-organization"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("usage lacks %q:\n%s", want, errOut)
		}
	}
	for _, args := range [][]string{{"-nodes", "0"}, {"-nodes", "40000"}, {"-days", "0"}, {"-bogus"}, {"extra"}} {
		dir := t.TempDir()
		if code, _, errOut := runInit(t, append(args, "-dir", dir)...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v: wrote files", args)
		}
	}
}

// Without -dir, reign_init writes in the current directory. (Not
// parallel: it changes directory.)
func TestRunDefaultDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, errOut := runInit(t)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "go run ./cmd/reign_sample 1") {
		t.Errorf("stdout:\n%s", out)
	}
	checkSet(t, dir, 2)
}

// The real binary, as a user runs it.
func TestBinary(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "reign_init")
	if out, err := exec.CommandContext(ctx, gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "-nodes", "2")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkSet(t, dir, 2)

	cmd = exec.CommandContext(ctx, bin, "-nodes", "0")
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "-nodes must be") {
		t.Errorf("-nodes 0: %v\n%s", err, out)
	}
}

func newPool(ca *certs.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert())
	return p
}
