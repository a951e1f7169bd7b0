package reign

// This file holds all of reign's TLS policy; it is the only one that
// builds a tls.Config.
//
// Between nodes reign speaks TLS 1.3 only, and both sides authenticate
// with a certificate signed by the cluster's CA (the CA certificate is the
// only root, for servers and clients alike). A node certificate must allow
// both server and client authentication and name exactly one node, in a DNS
// SAN of the form certs.NodeName(id), "reign-node-<id>":
//
//   - the dialer sets ServerName to NodeName(peer), so Go's verifier checks
//     that the listener is the node it meant to reach, and VerifyConnection
//     checks again that the certificate names no other node;
//   - the listener requires and verifies the client's certificate, and
//     VerifyConnection reads the client's node ID from it (peerNodeID); the
//     reign handshake that follows checks it against the ID the peer claims.
//
// Host names and IP addresses in certificates are never consulted. A node
// refuses to load a certificate of its own that breaks these rules
// (loadNodeTLS), so a misconfiguration shows at NewNode, not at the first
// connection.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// nodeTLS is one node's TLS material: its certificate and key, the
// cluster's CA pool and its own ID. It is immutable after loading and safe
// for concurrent use; the configs it returns are fresh on every call.
type nodeTLS struct {
	id    NodeID
	cert  tls.Certificate // Leaf is set
	roots *x509.CertPool
	cas   []*x509.Certificate // the CA certificates in roots, for certexpiry.go
	now   func() time.Time    // the clock certificates are checked against; tests move it
}

// pemSource is where one PEM item of a spec came from, for error messages.
type pemSource struct {
	field string // the spec's JSON field, e.g. "node_cert_path"
	where string // the file, or the field for inline PEM
	data  []byte
}

// loadNodeTLS reads node id's key and certificate and the cluster's CA
// certificate as spec says (files, with %d replaced by id, or inline PEM),
// and checks that the node certificate is one the other nodes will accept:
// signed by the CA, valid now, naming node id and allowing both usages.
// Errors are *ConfigError naming the spec field at fault; a certificate
// that fails the checks also wraps ErrBadCertificate.
func loadNodeTLS(spec *ClusterSpec, id NodeID) (*nodeTLS, error) {
	if spec == nil {
		return nil, &ConfigError{Field: "Config.Cluster", Msg: "nil cluster spec"}
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if _, ok := spec.Node(id); !ok {
		return nil, &ConfigError{Field: "Config.NodeID", Msg: fmt.Sprintf("node %d is not in the cluster spec", id)}
	}
	cert, err := spec.readPEM(id, "node_cert", spec.NodeCertPath, spec.NodeCertPEM)
	if err != nil {
		return nil, err
	}
	key, err := spec.readPEM(id, "node_key", spec.NodeKeyPath, spec.NodeKeyPEM)
	if err != nil {
		return nil, err
	}
	ca, err := spec.readPEM(id, "cluster_cert", spec.ClusterCertPath, spec.ClusterCertPEM)
	if err != nil {
		return nil, err
	}
	return newNodeTLS(id, cert, key, ca, time.Now)
}

func (s *ClusterSpec) readPEM(id NodeID, what, path, inline string) (pemSource, error) {
	switch {
	case path != "":
		file := s.resolvePath(path, id)
		data, err := os.ReadFile(file)
		if err != nil {
			return pemSource{}, &ConfigError{Field: what + "_path", Msg: fmt.Sprintf("node %d: cannot read %s", id, file), Err: err}
		}
		return pemSource{field: what + "_path", where: file, data: data}, nil
	case inline != "":
		return pemSource{field: what + "_pem", where: "the inline PEM", data: []byte(inline)}, nil
	}
	return pemSource{}, &ConfigError{Field: what + "_path", Msg: fmt.Sprintf("node %d: missing: a node that talks to others needs %s_path or %s_pem", id, what, what)}
}

// newNodeTLS builds and checks node id's TLS material from PEM; see
// loadNodeTLS.
func newNodeTLS(id NodeID, cert, key, ca pemSource, now func() time.Time) (*nodeTLS, error) {
	bad := func(src pemSource, msg string, err error) error {
		return &ConfigError{Field: src.field, Msg: fmt.Sprintf("node %d: %s %s", id, src.where, msg), Err: err}
	}
	cas, err := certs.ParseCertificates(ca.data)
	if err != nil {
		return nil, bad(ca, "holds no usable CA certificate", err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, bad(ca, "is not a CA certificate (a node certificate, perhaps?)", ErrBadCertificate)
		}
		roots.AddCert(c)
	}
	chain, err := certs.ParseCertificates(cert.data)
	if err != nil {
		return nil, bad(cert, "holds no usable certificate", err)
	}
	if _, err := certs.ParsePrivateKey(key.data); err != nil {
		return nil, bad(key, "holds no usable private key", err)
	}
	pair, err := tls.X509KeyPair(cert.data, key.data)
	if err != nil {
		return nil, bad(key, "is not the key of "+cert.where, err)
	}
	if pair.Leaf == nil {
		pair.Leaf = chain[0]
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if err := certs.VerifyNode(pair.Leaf, inter, roots, uint16(id), now()); err != nil {
		return nil, bad(cert, "is not a usable certificate for this node", fmt.Errorf("%w: %w", ErrBadCertificate, err))
	}
	return &nodeTLS{id: id, cert: pair, roots: roots, cas: cas, now: now}, nil
}

func (t *nodeTLS) baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    t.roots,
		ClientCAs:  t.roots,
		Time:       t.now,
		// No resumption: every connection verifies a full certificate
		// chain against the current clock.
		SessionTicketsDisabled: true,
	}
}

// serverConfig is the listener side: it requires a client certificate
// that chains to the cluster CA, allows client authentication and names a
// node other than this one; peerNodeID then says which.
func (t *nodeTLS) serverConfig() *tls.Config {
	cfg := t.baseConfig()
	cfg.Certificates = []tls.Certificate{t.cert}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := checkPeer(cs)
		if err != nil {
			return err
		}
		if id == t.id {
			return fmt.Errorf("%w: the client presents a certificate for node %d, which is this node", ErrPeerIdentity, id)
		}
		return nil
	}
	return cfg
}

// clientConfig is the side dialing peer: it accepts only a server whose
// certificate chains to the cluster CA, allows server authentication and
// names peer and no other node.
func (t *nodeTLS) clientConfig(peer NodeID) *tls.Config {
	cfg := t.baseConfig()
	cfg.ServerName = certs.NodeName(uint16(peer))
	// Always present our certificate, even when the server's list of
	// acceptable CAs does not name its issuer: the server then refuses it
	// with a reason ("unknown authority") instead of "no certificate".
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &t.cert, nil
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := checkPeer(cs)
		if err != nil {
			return err
		}
		if id != peer {
			return fmt.Errorf("%w: dialed node %d, but its certificate is for node %d", ErrPeerIdentity, peer, id)
		}
		return nil
	}
	return cfg
}

// joinConfig is the side dialing an address whose node is not known yet
// (a membership join through a seed): Go's verifier is given no server
// name to check, so VerifyConnection verifies the chain against the
// cluster CA itself, then reads the node ID from the certificate (into
// *id) and refuses this node's own.
func (t *nodeTLS) joinConfig(id *NodeID) *tls.Config {
	cfg := t.baseConfig()
	cfg.InsecureSkipVerify = true // the chain is verified below, without a server name
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &t.cert, nil
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: the peer sent no certificate", ErrBadCertificate)
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         t.roots,
			Intermediates: inter,
			CurrentTime:   t.now(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadCertificate, err)
		}
		cs.VerifiedChains = chains
		got, err := checkPeer(cs)
		if err != nil {
			return err
		}
		if got == t.id {
			return fmt.Errorf("%w: the node at this address is this node (%d)", ErrPeerIdentity, got)
		}
		*id = got
		return nil
	}
	return cfg
}

// checkPeer applies the checks Go's verifier does not: the verified peer
// certificate allows both usages and names exactly one node.
func checkPeer(cs tls.ConnectionState) (NodeID, error) {
	id, err := peerNodeID(cs)
	if err != nil {
		return 0, err
	}
	leaf := cs.VerifiedChains[0][0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return 0, fmt.Errorf("%w: the certificate of node %d does not list both server and client authentication usage", ErrBadCertificate, id)
	}
	return id, nil
}

// peerNodeID returns the node ID that the verified peer certificate of a
// connection names. It fails, wrapping ErrBadCertificate, if there is no
// verified certificate or it does not name exactly one node.
func peerNodeID(cs tls.ConnectionState) (NodeID, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return 0, fmt.Errorf("%w: the peer has no verified certificate", ErrBadCertificate)
	}
	ids := certs.NodeIDs(cs.VerifiedChains[0][0])
	switch {
	case len(ids) == 0:
		return 0, fmt.Errorf("%w: the peer's certificate names no node (no DNS name like %s)", ErrBadCertificate, certs.NodeName(1))
	case len(ids) > 1:
		return 0, fmt.Errorf("%w: the peer's certificate names several nodes %v", ErrBadCertificate, ids)
	}
	return NodeID(ids[0]), nil
}

// handshakeTLS runs c's handshake, bounded by ctx: when ctx is done first
// the handshake is abandoned, c's connection closed, and the error wraps
// ctx's error. A certificate refused by this side wraps ErrBadCertificate,
// or ErrPeerIdentity when it is good but names the wrong node. The caller
// closes c on error.
//
// With TLS 1.3, a client's handshake completes before the server has
// checked the client's certificate; a refusal reaches the client as an
// error ("remote error: tls: ...") on its first read, which the reign
// handshake that follows surfaces.
func handshakeTLS(ctx context.Context, c *tls.Conn) error {
	err := c.HandshakeContext(ctx)
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case refusedCertificate(err):
		return fmt.Errorf("%w: the peer refused this node's certificate: %w (TLS handshake with %s)", ErrBadCertificate, err, c.RemoteAddr())
	case errors.Is(err, ErrBadCertificate) || errors.Is(err, ErrPeerIdentity):
		return fmt.Errorf("%w (TLS handshake with %s)", err, c.RemoteAddr())
	case errors.As(err, &hostErr):
		return fmt.Errorf("%w: %w (TLS handshake with %s)", ErrPeerIdentity, err, c.RemoteAddr())
	case errors.As(err, &verifyErr):
		return fmt.Errorf("%w: %w (TLS handshake with %s)", ErrBadCertificate, err, c.RemoteAddr())
	}
	return fmt.Errorf("reign: TLS handshake with %s: %w", c.RemoteAddr(), err)
}

// refusedCertificate reports whether err is a TLS alert from the peer
// saying it refused this node's certificate (bad, unknown CA, expired,
// missing...): the peer's classification, which this side counts as
// ErrBadCertificate too. crypto/tls reports a received alert as a
// *net.OpError with Op "remote error" whose Err is the alert number.
func refusedCertificate(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 {
		return false
	}
	switch v.Uint() {
	case 42, // bad_certificate
		43,  // unsupported_certificate
		44,  // certificate_revoked
		45,  // certificate_expired
		46,  // certificate_unknown
		48,  // unknown_ca
		116: // certificate_required
		return true
	}
	return false
}
