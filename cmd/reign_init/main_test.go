package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign"
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
	read(certs.SpecFile, 0o644)
	spec, err := reign.LoadClusterSpec(filepath.Join(dir, certs.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Nodes) != n || spec.NodeKeyPath != "reign_node.%d.key" || spec.NodeCertPath != "reign_node.%d.crt" || spec.ClusterCertPath != "reign_ca.crt" {
		t.Errorf("spec %+v", spec)
	}
	ports := map[string]bool{}
	for i, node := range spec.Nodes {
		if node.ID != reign.NodeID(i+1) || ports[node.Address] || node.Address != fmt.Sprintf("127.0.0.1:%d", 29870+i+1) {
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
	abs, _ := filepath.Abs(dir)
	for _, want := range []string{"Created the cluster CA", "nodes 1-3", "(3 terminals)",
		"./reign_sample -config " + filepath.Join(abs, "reign_cluster.json") + " 3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "warning: the certificate of node 1 expires in 10 days") || !strings.Contains(errOut, `the certificate of CA "reign cluster CA" expires in 10 days`) {
		t.Errorf("no expiry warning for 10-day certificates:\n%s", errOut)
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
	code, out, errOut := runInit(t, "-dir", dir)
	if code != 1 || !strings.Contains(errOut, "reign_node.2.crt is kept but reign will refuse it") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(out, "Next") || strings.Contains(out, "reign_sample") {
		t.Errorf("a failed run tells what to do next:\n%s", out)
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	code, out, errOut := runInit(t, "-h")
	if code != 0 || out != "" {
		t.Errorf("-h: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"reign_ca.key", "reign_node.<id>.crt", "reign_cluster.json", "0600", "./reign_sample 1", "-organization", "-hosts", "-add-node", "-port", "kill -9", "docs/deploying.md"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("usage lacks %q:\n%s", want, errOut)
		}
	}
	for _, args := range [][]string{{"-nodes", "0"}, {"-nodes", "40000"}, {"-days", "0"}, {"-bogus"}, {"extra"},
		{"-nodes", "2", "-hosts", "1=a"}, {"-hosts", ""}, {"-hosts", "x=a"}, {"-hosts", "1=bad host"}, {"-hosts", "1=reign-node-2"},
		{"-hosts", "1=a:0"}, {"-hosts", "1=a:1,1=b:2"}, {"-hosts", "1="}, {"-add-node", "3", "-hosts", "4=a"},
		{"-port", "70000"}, {"-port", "65000", "-hosts", "900=a"}} {
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
	if !strings.Contains(out, "./reign_sample -config "+filepath.Join(dir, "reign_cluster.json")+" 1\n") || !strings.Contains(out, "(2 terminals)") {
		t.Errorf("stdout:\n%s", out)
	}
	checkSet(t, dir, 2)

	// In the reign source folder, the sample's default -config is the
	// spec just written: no -config in the hint.
	if err := os.MkdirAll(filepath.Join(dir, "cmd", "reign_sample"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut = runInit(t, "-nodes", "3"); code != 0 || !strings.Contains(out, "  ./reign_sample 3\n") {
		t.Errorf("exit %d: %s%s", code, out, errOut)
	}
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

// -hosts: names and IPs go into each node's certificate next to
// reign-node-<id>, the first host and the port into the spec; IDs may
// start at 0.
func TestRunHosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errOut := runInit(t, "-dir", dir, "-port", "5000",
		"-hosts", "0=db0.example.com, 0=10.0.0.10,1=db1.example.com:4000,2=[fd00::2]:4002,2=db2.example.com")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "node 0: reign_node.0.crt, reign_node.0.key") || strings.Contains(out, "reign_sample") {
		t.Errorf("stdout:\n%s", out)
	}
	spec, err := reign.LoadClusterSpec(filepath.Join(dir, certs.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []reign.NodeSpec{{ID: 0, Address: "db0.example.com:5000"}, {ID: 1, Address: "db1.example.com:4000"}, {ID: 2, Address: "[fd00::2]:4002"}}
	if !slices.Equal(spec.Nodes, want) {
		t.Errorf("spec nodes %+v, want %+v", spec.Nodes, want)
	}
	ca := loadCA(t, dir)
	for _, c := range []struct {
		id  uint16
		dns []string
		ips []string
	}{
		{0, []string{"reign-node-0", "db0.example.com"}, []string{"10.0.0.10"}},
		{1, []string{"reign-node-1", "db1.example.com"}, nil},
		{2, []string{"reign-node-2", "db2.example.com"}, []string{"fd00::2"}},
	} {
		cert := loadCert(t, dir, c.id)
		if err := certs.VerifyNode(cert, nil, newPool(ca), c.id, time.Now()); err != nil {
			t.Errorf("node %d: %v", c.id, err)
		}
		var ips []string
		for _, ip := range cert.IPAddresses {
			ips = append(ips, ip.String())
		}
		if !slices.Equal(cert.DNSNames, c.dns) || !slices.Equal(ips, c.ips) {
			t.Errorf("node %d: DNS %v IP %v, want %v %v", c.id, cert.DNSNames, ips, c.dns, c.ips)
		}
	}
}

// -add-node mints one node for the existing CA and adds it to the spec,
// keeping the spec's form and the fields reign does not know; without a
// CA it writes nothing.
func TestRunAddNode(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	if code, _, errOut := runInit(t, "-dir", empty, "-add-node", "3"); code != 1 || !strings.Contains(errOut, "no cluster CA") {
		t.Errorf("without a CA: exit %d, %s", code, errOut)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("without a CA: wrote %d files", len(entries))
	}

	dir := t.TempDir()
	if code, out, errOut := runInit(t, "-dir", dir); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	ca := loadCA(t, dir)
	// The older keyed form, with a field reign does not know.
	keyed := `{"comment": "ours", "nodes": {"1": {"address": "127.0.0.1:29871"}, "2": {"address": "127.0.0.1:29872"}},
		"node_key_path": "reign_node.%d.key", "node_cert_path": "reign_node.%d.crt", "cluster_cert_path": "reign_ca.crt"}`
	if err := os.WriteFile(filepath.Join(dir, certs.SpecFile), []byte(keyed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInit(t, "-dir", dir, "-add-node", "3=db3.example.com", "-hosts", "3=10.0.0.3")
	if code != 0 || !strings.Contains(out, "Reused the cluster CA") || !strings.Contains(out, "Added node 3 to reign_cluster.json") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !loadCA(t, dir).Cert().Equal(ca.Cert()) {
		t.Error("the CA was replaced")
	}
	cert := loadCert(t, dir, 3)
	if err := certs.VerifyNode(cert, nil, newPool(ca), 3, time.Now()); err != nil || !slices.Equal(cert.DNSNames, []string{"reign-node-3", "db3.example.com"}) ||
		len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.3")) {
		t.Errorf("node 3: %v; DNS %v IP %v", err, cert.DNSNames, cert.IPAddresses)
	}
	data, _ := os.ReadFile(filepath.Join(dir, certs.SpecFile))
	var raw struct {
		Comment string
		Nodes   map[string]struct{ Address string }
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Comment != "ours" || len(raw.Nodes) != 3 || raw.Nodes["3"].Address != "db3.example.com:29873" {
		t.Errorf("spec after -add-node (%v):\n%s", err, data)
	}

	// Asking for a host the kept certificate lacks says how to reissue it;
	// a node the spec has elsewhere is left there, with a warning.
	code, out, errOut = runInit(t, "-dir", dir, "-add-node", "3=db3b.example.com")
	if code != 1 || !strings.Contains(errOut, "reign_node.3.crt is kept but does not name db3b.example.com") ||
		!strings.Contains(errOut, "keeps node 3 at db3.example.com:29873, not db3b.example.com:29873") || strings.Contains(out, "Next") {
		t.Errorf("exit %d: %s%s", code, out, errOut)
	}
}

func loadCA(t testing.TB, dir string) *certs.CA {
	t.Helper()
	c, err1 := os.ReadFile(filepath.Join(dir, certs.CACertFile))
	k, err2 := os.ReadFile(filepath.Join(dir, certs.CAKeyFile))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func loadCert(t testing.TB, dir string, id uint16) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, certs.NodeCertFile(id)))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certs.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
