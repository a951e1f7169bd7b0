package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNodeName(t *testing.T) {
	t.Parallel()
	for _, id := range []uint16{0, 1, 9, 10, 255, 65535} {
		got, ok := ParseNodeName(NodeName(id))
		if !ok || got != id {
			t.Errorf("ParseNodeName(NodeName(%d)) = %d, %v", id, got, ok)
		}
	}
	if NodeName(3) != "reign-node-3" {
		t.Errorf("NodeName(3) = %q", NodeName(3))
	}
	if id, ok := ParseNodeName("REIGN-NODE-12"); !ok || id != 12 {
		t.Errorf("upper case: %d, %v", id, ok)
	}
	for _, bad := range []string{"", "reign-node-", "reign-node-03", "reign-node-65536", "reign-node-1a",
		"reign-node--1", "reign-node-+1", "node-1", "3", "reign-node-1.example.com", "xreign-node-1"} {
		if id, ok := ParseNodeName(bad); ok {
			t.Errorf("ParseNodeName(%q) = %d, true", bad, id)
		}
	}
}

func mustCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("test", t0.Add(-time.Hour), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func parse(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueAndVerify(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	other := mustCA(t)
	roots := newPool([]*x509.Certificate{ca.Cert()})

	good, key, err := ca.IssueNode(7, t0.Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrivateKey(key); err != nil {
		t.Fatal(err)
	}
	cert := parse(t, good)
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "reign-node-7" || len(cert.IPAddresses) != 0 {
		t.Errorf("SANs: %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if err := VerifyNode(cert, nil, roots, 7, t0); err != nil {
		t.Errorf("good certificate: %v", err)
	}

	issue := func(ca *CA, id uint16, o NodeOptions) *x509.Certificate {
		t.Helper()
		if o.NotBefore.IsZero() {
			o.NotBefore = t0.Add(-time.Minute)
		}
		c, _, err := ca.IssueNodeWith(id, o)
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, c)
	}
	cases := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want string
	}{
		{"wrong node", cert, t0, "for node 7, not node 8"},
		{"expired", issue(ca, 8, NodeOptions{NotBefore: t0.Add(-2 * time.Hour), ValidFor: time.Hour}), t0, "expired"},
		{"not yet valid", issue(ca, 8, NodeOptions{NotBefore: t0.Add(time.Hour)}), t0, "expired or is not yet valid"},
		{"other CA", issue(other, 8, NodeOptions{}), t0, "unknown authority"},
		{"server only", issue(ca, 8, NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), t0, "incompatible key usage"},
		{"client only", issue(ca, 8, NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), t0, "incompatible key usage"},
		{"no usage", issue(ca, 8, NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{}}), t0, "extended key usage"},
		{"no name", issue(ca, 8, NodeOptions{DNSNames: []string{"localhost"}}), t0, "names no node"},
		{"two names", issue(ca, 8, NodeOptions{DNSNames: []string{NodeName(8), NodeName(9)}}), t0, "several nodes"},
	}
	for _, c := range cases {
		err := VerifyNode(c.cert, nil, roots, 8, c.now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestIssueCappedAtCAExpiry(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	c, _, err := ca.IssueNode(1, t0, 1000*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := parse(t, c).NotAfter; !got.Equal(ca.Cert().NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", got, ca.Cert().NotAfter)
	}
}

func TestLoadCA(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	again, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert().Equal(ca.Cert()) {
		t.Error("reloaded CA differs")
	}
	other := mustCA(t)
	if _, err := LoadCA(ca.CertPEM(), other.KeyPEM()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	node, nodeKey, err := ca.IssueNode(1, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(node, nodeKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("node certificate as CA: %v", err)
	}
	if _, err := LoadCA([]byte("junk"), ca.KeyPEM()); err == nil {
		t.Error("junk certificate accepted")
	}
	if _, err := LoadCA(ca.CertPEM(), []byte("junk")); err == nil {
		t.Error("junk key accepted")
	}
}

// A CA shaped like the one thejerf/reign's reign_init makes (P-521, "EC
// PRIVATE KEY", KeyUsageCertSign only) can be reused to issue our node
// certificates.
func TestLoadReignStyleCA(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"reign_user"}, CommonName: "Reign Signing Certificate"},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.Add(365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	ca, err := LoadCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := ca.IssueNode(2, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyNode(parse(t, c), nil, x509Pool(ca), 2, t0.Add(time.Minute)); err != nil {
		t.Error(err)
	}

	// A node certificate in reign's style (CommonName "2", no SANs, no
	// extended key usage) is refused, with a message that says why.
	legacy := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "2"},
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     t0.Add(time.Hour),
	}
	nkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err = x509.CreateCertificate(rand.Reader, legacy, ca.Cert(), nkey.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := VerifyNode(cert, nil, x509Pool(ca), 2, t0); err == nil || !strings.Contains(err.Error(), "CommonName") {
		t.Errorf("reign-style node certificate: %v", err)
	}
}
