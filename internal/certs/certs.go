// Package certs mints and checks the certificates of a reign cluster: one
// certificate authority (CA) per cluster and one certificate per node,
// signed by it. reign_init, the tests and the benchmark tool all use it, so
// every certificate reign makes follows one rule.
//
// # Naming rule
//
// A node certificate names its node in exactly one DNS subject alternative
// name, NodeName(id): "reign-node-<id>" with id in decimal and no leading
// zeros (reign-node-3; node 0, as thejerf/reign numbers them, is
// reign-node-0). It may also carry the host names and IP addresses of the
// machine the node runs on (NodeOptions.Hosts, reign_init -hosts), for the
// operators' tools and for anything else served with the same certificate;
// reign itself never verifies them: a dialer sets tls.Config.ServerName to
// NodeName(peer), and a listener reads the client's node from the same SAN,
// so a node that moves to another address keeps working. The subject's
// CommonName is set to NodeName(id) for people reading the certificate, and
// is never checked.
//
// A node certificate carries both ExtKeyUsageServerAuth and
// ExtKeyUsageClientAuth, because every node both listens and dials.
//
// Certificates minted by thejerf/reign name the node in the CommonName only
// ("3"), have no SANs and no extended key usage. They are not accepted:
// Go's verifier ignores the CommonName, and such a certificate does not say
// it may authenticate a client. Their CA (reign_ca.crt/reign_ca.key) can be
// reused, though: LoadCA reads it, and reign_init mints new node
// certificates from it.
//
// Keys are ECDSA P-256.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

const namePrefix = "reign-node-"

// NodeName is the DNS name a node certificate uses to name node id, and
// the tls.Config.ServerName a dialer expects of that node.
func NodeName(id uint16) string {
	return namePrefix + strconv.FormatUint(uint64(id), 10)
}

// ParseNodeName returns the node ID that name names, if it is of the form
// NodeName produces (ASCII case is ignored, as DNS does).
func ParseNodeName(name string) (uint16, bool) {
	if len(name) < len(namePrefix) || !strings.EqualFold(name[:len(namePrefix)], namePrefix) {
		return 0, false
	}
	digits := name[len(namePrefix):]
	if digits == "" || len(digits) > 5 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// NodeIDs returns the distinct node IDs that cert names in its DNS SANs, in
// the order they appear. A valid node certificate names exactly one.
func NodeIDs(cert *x509.Certificate) []uint16 {
	var ids []uint16
	for _, name := range cert.DNSNames {
		id, ok := ParseNodeName(name)
		if !ok {
			continue
		}
		dup := false
		for _, seen := range ids {
			dup = dup || seen == id
		}
		if !dup {
			ids = append(ids, id)
		}
	}
	return ids
}

// CA is a cluster's certificate authority: its certificate and private
// key. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// NewCA makes a self-signed CA for a cluster, valid from notBefore for
// validFor. org becomes the Organization of the CA's subject and of every
// node certificate it issues; "" means "reign_user" (reign_init's default).
func NewCA(org string, notBefore time.Time, validFor time.Duration) (*CA, error) {
	if validFor <= 0 {
		return nil, errors.New("reign: certs: CA validity must be positive")
	}
	if org == "" {
		org = "reign_user"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "reign cluster CA"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // node certificates only, no intermediates
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return LoadCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// LoadCA reads a CA from PEM: the first CERTIFICATE block of certPEM, and a
// private key in keyPEM as "EC PRIVATE KEY" (what reign_init writes, here
// and in thejerf/reign), "PRIVATE KEY" (PKCS #8) or "RSA PRIVATE KEY". The
// certificate must be a CA certificate and the key must match it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("reign: certs: the CA certificate is not a CA certificate (basic constraints)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("reign: certs: the CA certificate may not sign certificates (key usage)")
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("reign: certs: the CA key does not match the CA certificate")
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyPEM:  bytes.Clone(keyPEM),
	}, nil
}

// Cert returns the CA's certificate. Do not modify it.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// CertPEM returns the CA's certificate in PEM: the content of reign_ca.crt,
// which every node needs.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// KeyPEM returns the CA's private key in PEM: the content of reign_ca.key,
// which no node needs; keep it away from them.
func (ca *CA) KeyPEM() []byte { return bytes.Clone(ca.keyPEM) }

// NodeOptions says how to issue a node certificate. The zero value issues a
// good one, valid from an hour ago (for clock skew) for 365 days.
//
// ExtKeyUsage and DNSNames exist to mint deliberately bad certificates for
// tests; leave them nil otherwise.
type NodeOptions struct {
	NotBefore time.Time     // zero: an hour ago
	ValidFor  time.Duration // zero: 365 days

	// ExtKeyUsage nil means ServerAuth and ClientAuth; an empty non-nil
	// slice means none.
	ExtKeyUsage []x509.ExtKeyUsage

	// DNSNames nil means []string{NodeName(id)}.
	DNSNames []string

	// Hosts are the host names and IP addresses of the node's machine, put
	// in the certificate next to NodeName(id): each that parses as an IP
	// address becomes an IP SAN, any other a DNS SAN. None may itself be a
	// node name ("reign-node-2"), which would make the certificate name two
	// nodes.
	Hosts []string
}

// IssueNode mints a key and a certificate for node id, valid from notBefore
// for validFor (but never beyond the CA's own expiry), and returns both in
// PEM.
func (ca *CA) IssueNode(id uint16, notBefore time.Time, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	return ca.IssueNodeWith(id, NodeOptions{NotBefore: notBefore, ValidFor: validFor})
}

// IssueNodeWith is IssueNode with every option; see NodeOptions.
func (ca *CA) IssueNodeWith(id uint16, opts NodeOptions) (certPEM, keyPEM []byte, err error) {
	if opts.NotBefore.IsZero() {
		opts.NotBefore = time.Now().Add(-time.Hour)
	}
	if opts.ValidFor == 0 {
		opts.ValidFor = 365 * 24 * time.Hour
	}
	if opts.ValidFor < 0 {
		return nil, nil, errors.New("reign: certs: node certificate validity must be positive")
	}
	usage := opts.ExtKeyUsage
	if usage == nil {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	names := opts.DNSNames
	if names == nil {
		names = []string{NodeName(id)}
	}
	names = slices.Clone(names)
	var ips []net.IP
	for _, h := range opts.Hosts {
		if err := CheckHost(h); err != nil {
			return nil, nil, err
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			ips = append(ips, net.IP(ip.Unmap().AsSlice()))
		} else if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	notAfter := opts.NotBefore.Add(opts.ValidFor)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: ca.cert.Subject.Organization, CommonName: NodeName(id)},
		NotBefore:             opts.NotBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// VerifyNode reports whether cert is a good certificate for node id at
// time now: it chains to one of roots (through intermediates, which may be
// nil), is valid at now, allows both server and client authentication, and
// names exactly node id as the naming rule says. The error says which of
// these fails.
func VerifyNode(cert *x509.Certificate, intermediates, roots *x509.CertPool, id uint16, now time.Time) error {
	ids := NodeIDs(cert)
	switch {
	case len(ids) == 0:
		return fmt.Errorf("the certificate names no node (it needs the DNS name %s; certificates from thejerf/reign's tools name the node only in the CommonName and are not accepted)", NodeName(id))
	case len(ids) > 1:
		return fmt.Errorf("the certificate names several nodes %v; a node certificate names exactly one", ids)
	case ids[0] != id:
		return fmt.Errorf("the certificate is for node %d, not node %d", ids[0], id)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := cert.Verify(x509.VerifyOptions{
			DNSName:       NodeName(id),
			Intermediates: intermediates,
			Roots:         roots,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return err
		}
	}
	if !hasUsage(cert, x509.ExtKeyUsageServerAuth) || !hasUsage(cert, x509.ExtKeyUsageClientAuth) {
		// A certificate without any extended key usage passes the checks
		// above (Go treats it as "any"), but reign asks for both explicitly.
		return errors.New("the certificate does not list both server and client authentication in its extended key usage")
	}
	return nil
}

// CheckHost checks that h can go into a node certificate as a host: an IP
// address or a host name (letters, digits, '-', '_' and dots; at most 253
// characters), and not a node name, which would make the certificate name a
// second node.
func CheckHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if _, ok := ParseNodeName(h); ok {
		return fmt.Errorf("reign: certs: host %q is a node name; a certificate names exactly one node", h)
	}
	name := strings.TrimSuffix(h, ".")
	ok := name != "" && len(name) <= 253
	for _, label := range strings.Split(name, ".") {
		ok = ok && label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for i := 0; ok && i < len(label); i++ {
			c := label[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		}
	}
	if !ok {
		return fmt.Errorf("reign: certs: host %q is neither an IP address nor a host name", h)
	}
	return nil
}

func hasUsage(cert *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, have := range cert.ExtKeyUsage {
		if have == u {
			return true
		}
	}
	return false
}

// ParseCertificate parses the first CERTIFICATE block of pemBytes.
func ParseCertificate(pemBytes []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(pemBytes)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificates parses every CERTIFICATE block of pemBytes, skipping
// other blocks; it fails if there is none or one does not parse.
func ParseCertificates(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	return out, nil
}

// ParsePrivateKey parses the first private key block of pemBytes: "EC
// PRIVATE KEY", "PRIVATE KEY" (PKCS #8) or "RSA PRIVATE KEY".
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no private key block in the PEM data")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return signer, nil
	}
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
