package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The files of a certificate set, as thejerf/reign's reign_init names them.
// SpecFile is the cluster spec reign_init writes next to them; this package
// never reads or writes it: the spec's JSON form belongs to
// reign.ClusterSpec alone.
const (
	CACertFile = "reign_ca.crt"
	CAKeyFile  = "reign_ca.key"
	SpecFile   = "reign_cluster.json"
)

// ErrIncompleteSet is wrapped by the error WriteSet returns when only one
// file of a certificate/key pair exists: it will not guess which is right.
var ErrIncompleteSet = errors.New("reign: incomplete certificate set")

// ErrNoCA is wrapped by the error WriteNodes returns when
// SetOptions.RequireCA is set and dir holds no CA.
var ErrNoCA = errors.New("reign: no cluster CA")

// NodeCertFile is the file name of node id's certificate: reign_node.<id>.crt.
func NodeCertFile(id uint16) string { return fmt.Sprintf("reign_node.%d.crt", id) }

// NodeKeyFile is the file name of node id's private key: reign_node.<id>.key.
func NodeKeyFile(id uint16) string { return fmt.Sprintf("reign_node.%d.key", id) }

// SetOptions configures WriteSet. The zero value matches reign_init's
// defaults.
type SetOptions struct {
	Organization string        // "": "reign_user"
	ValidFor     time.Duration // zero: 365 days, counted from now
	Now          time.Time     // zero: time.Now(); certificates start an hour before

	// Hosts lists, by node ID, the host names and IP addresses put in
	// that node's new certificate next to its node name (see
	// NodeOptions.Hosts).
	Hosts map[uint16][]string

	// RequireCA makes WriteNodes fail with ErrNoCA instead of creating a
	// CA, for adding a node to an existing cluster.
	RequireCA bool
}

// SetResult says what WriteSet did.
type SetResult struct {
	CA        *CA
	CACreated bool     // false: reign_ca.crt/.key were there and reused
	Created   []uint16 // node IDs whose certificate and key were written
	Kept      []uint16 // node IDs whose existing files were left alone

	// Unusable maps a kept node's ID to why its existing certificate is
	// not usable by reign (expired, another CA, thejerf/reign's naming...).
	// Deleting both of its files and running WriteSet again replaces it.
	Unusable map[uint16]error

	// MissingHosts maps a kept node's ID to the hosts of SetOptions.Hosts
	// its existing certificate does not name. Deleting both of its files
	// and running again reissues it with them.
	MissingHosts map[uint16][]string

	// Expiring lists the certificates of the set (the CA's and those of
	// the nodes asked for) that expire within ExpiryWindow, or have
	// expired, soonest first.
	Expiring []Expiry
}

// WriteSet makes dir a complete certificate set for nodes 1..nodes; it is
// WriteNodes with those IDs.
func WriteSet(dir string, nodes int, opts SetOptions) (*SetResult, error) {
	if nodes < 1 || nodes > 65535 {
		return nil, fmt.Errorf("reign: the number of nodes must be between 1 and 65535, not %d", nodes)
	}
	ids := make([]uint16, nodes)
	for i := range ids {
		ids[i] = uint16(i + 1)
	}
	return WriteNodes(dir, ids, opts)
}

// WriteNodes makes dir a certificate set for the nodes ids, the way
// reign_init does, creating dir if needed:
//
//   - reign_ca.crt and reign_ca.key: reused if both exist, created if
//     neither does (unless opts.RequireCA); if only one exists it fails
//     with ErrIncompleteSet;
//   - reign_node.<id>.crt and reign_node.<id>.key for each id: existing
//     pairs are kept, missing ones are issued; half a pair is an error.
//
// It writes no cluster spec: that is reign_init's, through
// reign.ClusterSpec. Private keys are written with mode 0600, everything
// else 0644. Each file is written to a temporary name and renamed, so no
// half-written file is ever left under a real name.
func WriteNodes(dir string, ids []uint16, opts SetOptions) (*SetResult, error) {
	if len(ids) == 0 {
		return nil, errors.New("reign: no nodes to write certificates for")
	}
	if opts.ValidFor == 0 {
		opts.ValidFor = 365 * 24 * time.Hour
	}
	if opts.ValidFor < 0 {
		return nil, errors.New("reign: certificate validity must be positive")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	for id, hosts := range opts.Hosts {
		for _, h := range hosts {
			if err := CheckHost(h); err != nil {
				return nil, fmt.Errorf("node %d: %w", id, err)
			}
		}
	}
	notBefore := opts.Now.Add(-time.Hour)
	validFor := opts.ValidFor + time.Hour

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &SetResult{Unusable: map[uint16]error{}, MissingHosts: map[uint16][]string{}}

	caCrt, caKey := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	haveCrt, haveKey, err := pairExists(caCrt, caKey)
	if err != nil {
		return nil, err
	}
	switch {
	case haveCrt && haveKey:
		certPEM, err := os.ReadFile(caCrt)
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(caKey)
		if err != nil {
			return nil, err
		}
		if res.CA, err = LoadCA(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("reign: reusing %s and %s: %w", caCrt, caKey, err)
		}
	case haveCrt || haveKey:
		return nil, halfPair(caCrt, caKey, haveCrt, "the cluster CA")
	case opts.RequireCA:
		return nil, fmt.Errorf("%w in %s (%s and %s): a node can only be added to an existing cluster", ErrNoCA, dir, CACertFile, CAKeyFile)
	default:
		if res.CA, err = NewCA(opts.Organization, notBefore, validFor); err != nil {
			return nil, err
		}
		// Key first: a crash in between leaves a key without a
		// certificate, which the next run refuses instead of minting a
		// second CA next to a dangling certificate.
		if err := WriteFile(caKey, res.CA.KeyPEM(), 0o600); err != nil {
			return nil, err
		}
		if err := WriteFile(caCrt, res.CA.CertPEM(), 0o644); err != nil {
			return nil, err
		}
		res.CACreated = true
	}

	roots := x509Pool(res.CA)
	expiring := []*x509.Certificate{res.CA.Cert()}
	for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
		crt, key := filepath.Join(dir, NodeCertFile(id)), filepath.Join(dir, NodeKeyFile(id))
		haveCrt, haveKey, err := pairExists(crt, key)
		if err != nil {
			return nil, err
		}
		switch {
		case haveCrt && haveKey:
			res.Kept = append(res.Kept, id)
			cert, err := checkExisting(crt, roots, id, opts.Now)
			if err != nil {
				res.Unusable[id] = err
			}
			if cert != nil {
				expiring = append(expiring, cert)
				if missing := missingHosts(cert, opts.Hosts[id]); len(missing) > 0 {
					res.MissingHosts[id] = missing
				}
			}
			continue
		case haveCrt || haveKey:
			return nil, halfPair(crt, key, haveCrt, fmt.Sprintf("node %d", id))
		}
		certPEM, keyPEM, err := res.CA.IssueNodeWith(id, NodeOptions{NotBefore: notBefore, ValidFor: validFor, Hosts: opts.Hosts[id]})
		if err != nil {
			return nil, err
		}
		if err := WriteFile(key, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := WriteFile(crt, certPEM, 0o644); err != nil {
			return nil, err
		}
		res.Created = append(res.Created, id)
		if cert, err := ParseCertificate(certPEM); err == nil {
			expiring = append(expiring, cert)
		}
	}
	res.Expiring = Expiring(opts.Now, ExpiryWindow, expiring...)
	return res, nil
}

// missingHosts returns the hosts cert does not name in its SANs.
func missingHosts(cert *x509.Certificate, hosts []string) []string {
	var missing []string
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			if !slices.ContainsFunc(cert.IPAddresses, func(have net.IP) bool { return have.Equal(net.IP(ip.Unmap().AsSlice())) }) {
				missing = append(missing, h)
			}
			continue
		}
		if !slices.ContainsFunc(cert.DNSNames, func(have string) bool {
			return strings.EqualFold(have, strings.TrimSuffix(h, ".")) || strings.EqualFold(have, h)
		}) {
			missing = append(missing, h)
		}
	}
	return missing
}

// checkExisting reads the certificate at path and checks it is good for
// node id; it returns the certificate if it parses, even when not good.
func checkExisting(path string, roots *x509.CertPool, id uint16, now time.Time) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain, err := ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	inter := newPool(chain[1:])
	return chain[0], VerifyNode(chain[0], inter, roots, id, now)
}

func pairExists(a, b string) (bool, bool, error) {
	ea, err := exists(a)
	if err != nil {
		return false, false, err
	}
	eb, err := exists(b)
	return ea, eb, err
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func halfPair(crt, key string, haveCrt bool, what string) error {
	have, missing := crt, key
	if !haveCrt {
		have, missing = key, crt
	}
	return fmt.Errorf("%w: %s exists but %s does not, so %s is incomplete; restore %s, or move %s away to start %s afresh",
		ErrIncompleteSet, have, missing, what, filepath.Base(missing), filepath.Base(have), what)
}

// WriteFile writes data to path with mode perm through a temporary file in
// the same folder and a rename, so that no half-written file is ever left
// under path. reign_init writes the cluster spec with it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func x509Pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func newPool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
