package certs

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteSet(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new")
	res, err := WriteSet(dir, 3, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CACreated || len(res.Created) != 3 || len(res.Kept) != 0 || len(res.Expiring) != 0 {
		t.Fatalf("result %+v", res)
	}
	modes := map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600}
	for id := uint16(1); id <= 3; id++ {
		modes[NodeCertFile(id)] = 0o644
		modes[NodeKeyFile(id)] = 0o600
	}
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

	// Again with more nodes: the CA and existing nodes are kept.
	caBefore, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	node1Before, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(1)))
	res, err = WriteSet(dir, 5, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.CACreated || len(res.Created) != 2 || len(res.Kept) != 3 || len(res.Unusable) != 0 {
		t.Fatalf("second result %+v", res)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	node1After, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(1)))
	if string(caBefore) != string(caAfter) || string(node1Before) != string(node1After) {
		t.Error("existing files were rewritten")
	}

	// Fewer nodes: nothing to do.
	res, err = WriteSet(dir, 2, SetOptions{})
	if err != nil || len(res.Kept) != 2 || len(res.Created) != 0 {
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

// WriteNodes mints any IDs, 0 included, with the hosts asked for; adding
// a node needs the CA to be there already; a kept certificate is checked
// for the hosts.
func TestWriteNodesHostsAndAdd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := WriteNodes(dir, []uint16{4}, SetOptions{RequireCA: true}); !errors.Is(err, ErrNoCA) {
		t.Fatalf("adding without a CA: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("adding without a CA wrote %d files", len(entries))
	}
	hosts := map[uint16][]string{0: {"db0.example.com", "10.0.0.10", "::1"}, 1: {"db1.example.com"}}
	res, err := WriteNodes(dir, []uint16{1, 0, 1}, SetOptions{Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 2 || res.Created[0] != 0 || res.Created[1] != 1 {
		t.Fatalf("created %v", res.Created)
	}
	data, _ := os.ReadFile(filepath.Join(dir, NodeCertFile(0)))
	c0 := parse(t, data)
	if err := VerifyNode(c0, nil, x509Pool(res.CA), 0, time.Now()); err != nil {
		t.Errorf("node 0: %v", err)
	}
	if !slices.Equal(c0.DNSNames, []string{"reign-node-0", "db0.example.com"}) || len(c0.IPAddresses) != 2 ||
		!c0.IPAddresses[0].Equal(net.ParseIP("10.0.0.10")) || !c0.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("node 0 SANs: DNS %v, IP %v", c0.DNSNames, c0.IPAddresses)
	}

	// Add node 4 to the existing CA; node 1 is kept, and its certificate
	// lacks a host asked for now.
	hosts[1] = append(hosts[1], "10.0.0.11")
	hosts[4] = []string{"db4.example.com"}
	res, err = WriteNodes(dir, []uint16{1, 4}, SetOptions{Hosts: hosts, RequireCA: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.CACreated || !slices.Equal(res.Created, []uint16{4}) || !slices.Equal(res.Kept, []uint16{1}) {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(res.MissingHosts[1], []string{"10.0.0.11"}) || len(res.MissingHosts) != 1 {
		t.Errorf("missing hosts %v", res.MissingHosts)
	}

	for _, bad := range []string{"reign-node-2", "bad host", "-x.example.com", ""} {
		if _, err := WriteNodes(t.TempDir(), []uint16{1}, SetOptions{Hosts: map[uint16][]string{1: {bad}}}); err == nil {
			t.Errorf("host %q accepted", bad)
		}
	}
}

// With a pinned clock, a set whose certificates run out within 30 days
// says so, soonest first; a longer one does not.
func TestWriteSetExpiring(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	res, err := WriteSet(dir, 1, SetOptions{Now: now, ValidFor: 20 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Expiring) != 2 {
		t.Fatalf("expiring %v", res.Expiring)
	}
	for _, e := range res.Expiring {
		if e.Expired() || e.Left != 20*24*time.Hour || !strings.Contains(e.String(), "expires in 20 days") {
			t.Errorf("%+v: %s", e, e)
		}
	}
	// Read again 25 days later: both expired.
	res, err = WriteSet(dir, 1, SetOptions{Now: now.Add(25 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Expiring) != 2 || !res.Expiring[0].Expired() || !strings.Contains(res.Expiring[0].String(), "expired 5 days ago") {
		t.Errorf("expiring %v", res.Expiring)
	}
	if res.Unusable[1] == nil {
		t.Error("an expired certificate is not reported unusable")
	}
	res, err = WriteSet(t.TempDir(), 1, SetOptions{Now: now, ValidFor: 31 * 24 * time.Hour})
	if err != nil || len(res.Expiring) != 0 {
		t.Errorf("31 days: %v, %v", res.Expiring, err)
	}
}

func TestWriteSetBadArgs(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, 65536} {
		if _, err := WriteSet(t.TempDir(), n, SetOptions{}); err == nil {
			t.Errorf("%d nodes accepted", n)
		}
	}
}
