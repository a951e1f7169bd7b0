package reign

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/certs"
)

// testCA mints a throwaway cluster CA valid around now.
func testCA(t testing.TB) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA("reign test", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issueTLS mints a certificate for id from issuer with opts and returns
// nodeTLS material trusting the cluster CA trust, without loadNodeTLS's
// checks, so tests can present bad certificates.
func issueTLS(t testing.TB, trust, issuer *certs.CA, id NodeID, opts certs.NodeOptions) *nodeTLS {
	t.Helper()
	certPEM, keyPEM, err := issuer.IssueNodeWith(uint16(id), opts)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(trust.Cert())
	return &nodeTLS{id: id, cert: pair, roots: roots, now: time.Now}
}

// goodTLS is node id's material, through the checks of newNodeTLS.
func goodTLS(t testing.TB, ca *certs.CA, id NodeID) *nodeTLS {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(uint16(id), time.Now().Add(-time.Hour), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := newNodeTLS(id, pemSource{"node_cert_pem", "cert", certPEM}, pemSource{"node_key_pem", "key", keyPEM},
		pemSource{"cluster_cert_pem", "ca", ca.CertPEM()}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

type side struct {
	peer NodeID
	err  error
}

// handshake runs one TLS connection over TCP loopback: srv listens, cli
// dials expecting node dial, with mod applied to the client's config. On
// success the server sends one byte that the client reads, so a refusal by
// the server (which a TLS 1.3 client only sees on reading) is the client's
// error too. Everything is bounded by a 5 s context and waited for.
func handshake(t *testing.T, srv, cli *nodeTLS, dial NodeID, mod func(*tls.Config)) (server, client side) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))

	done := make(chan side, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer raw.Close()
		c := tls.Server(raw, srv.serverConfig())
		var s side
		if s.err = handshakeTLS(ctx, c); s.err == nil {
			if s.peer, s.err = peerNodeID(c.ConnectionState()); s.err == nil {
				_, s.err = c.Write([]byte{1})
			}
		}
		done <- s
	}()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := cli.clientConfig(dial)
	if mod != nil {
		mod(cfg)
	}
	c := tls.Client(raw, cfg)
	if client.err = handshakeTLS(ctx, c); client.err == nil {
		if client.peer, client.err = peerNodeID(c.ConnectionState()); client.err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, client.err = io.ReadFull(c, make([]byte, 1))
		}
		if client.err == nil && c.ConnectionState().Version != tls.VersionTLS13 {
			t.Errorf("version %x", c.ConnectionState().Version)
		}
	}
	raw.Close()
	server = <-done
	return server, client
}

func TestTLSGoodPair(t *testing.T) {
	t.Parallel()
	ca := testCA(t)
	server, client := handshake(t, goodTLS(t, ca, 1), goodTLS(t, ca, 2), 1, nil)
	if server.err != nil || client.err != nil {
		t.Fatalf("server: %v; client: %v", server.err, client.err)
	}
	if server.peer != 2 || client.peer != 1 {
		t.Errorf("server sees node %d, client sees node %d", server.peer, client.peer)
	}
}

// refusedBy checks that a handshake failed on the side that should refuse,
// with the given sentinel (nil: any error), and failed on the other side too.
func refusedBy(t *testing.T, refuser, other side, want error) {
	t.Helper()
	if refuser.err == nil {
		t.Fatalf("not refused")
	}
	if want != nil && !errors.Is(refuser.err, want) {
		t.Errorf("refused with %v; want it to wrap %v", refuser.err, want)
	}
	if !strings.HasPrefix(refuser.err.Error(), "reign: ") {
		t.Errorf("error text %q", refuser.err)
	}
	if other.err == nil {
		t.Errorf("the other side did not notice")
	}
	t.Logf("refused: %v; other side: %v", refuser.err, other.err)
}

func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	ca, other := testCA(t), testCA(t)
	past := certs.NodeOptions{NotBefore: time.Now().Add(-3 * time.Hour), ValidFor: time.Hour}
	serverOnly := certs.NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	clientOnly := certs.NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	anyUsage := certs.NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	twoNames := certs.NodeOptions{DNSNames: []string{certs.NodeName(2), certs.NodeName(3)}}
	noName := certs.NodeOptions{DNSNames: []string{"localhost"}}
	future := func(nt *nodeTLS) *nodeTLS {
		nt.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		return nt
	}

	cases := []struct {
		name       string
		srv, cli   *nodeTLS
		dial       NodeID
		mod        func(*tls.Config)
		byServer   bool  // the server refuses (else the client)
		want       error // nil: any error
		serverPeer NodeID
	}{
		{name: "client without certificate", srv: goodTLS(t, ca, 1), cli: goodTLS(t, ca, 2), dial: 1, byServer: true,
			mod: func(c *tls.Config) {
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
			}},
		{name: "client from another CA", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, other, 2, certs.NodeOptions{}), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "server from another CA", srv: issueTLS(t, ca, other, 1, certs.NodeOptions{}), cli: goodTLS(t, ca, 2), dial: 1,
			want: ErrBadCertificate},
		{name: "server certificate for another node", srv: issueTLS(t, ca, ca, 3, certs.NodeOptions{}), cli: goodTLS(t, ca, 2), dial: 1,
			want: ErrPeerIdentity},
		{name: "dialing the wrong node", srv: goodTLS(t, ca, 1), cli: goodTLS(t, ca, 2), dial: 3, want: ErrPeerIdentity},
		{name: "client with the server's own identity", srv: goodTLS(t, ca, 1), cli: goodTLS(t, ca, 1), dial: 1,
			byServer: true, want: ErrPeerIdentity},
		{name: "expired client certificate", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, ca, 2, past), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "expired server certificate", srv: issueTLS(t, ca, ca, 1, past), cli: goodTLS(t, ca, 2), dial: 1,
			want: ErrBadCertificate},
		{name: "server clock past the client's expiry", srv: future(goodTLS(t, ca, 1)), cli: goodTLS(t, ca, 2), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "client clock past the server's expiry", srv: goodTLS(t, ca, 1), cli: future(goodTLS(t, ca, 2)), dial: 1,
			want: ErrBadCertificate},
		{name: "client certificate without ClientAuth", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, ca, 2, serverOnly), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "server certificate without ServerAuth", srv: issueTLS(t, ca, ca, 1, clientOnly), cli: goodTLS(t, ca, 2), dial: 1,
			want: ErrBadCertificate},
		{name: "server certificate without ClientAuth", srv: issueTLS(t, ca, ca, 1, serverOnly), cli: goodTLS(t, ca, 2), dial: 1,
			want: ErrBadCertificate},
		{name: "client certificate with only the any usage", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, ca, 2, anyUsage), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "client certificate naming two nodes", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, ca, 2, twoNames), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "client certificate naming no node", srv: goodTLS(t, ca, 1), cli: issueTLS(t, ca, ca, 2, noName), dial: 1,
			byServer: true, want: ErrBadCertificate},
		{name: "TLS 1.2 client", srv: goodTLS(t, ca, 1), cli: goodTLS(t, ca, 2), dial: 1, byServer: true,
			mod: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			server, client := handshake(t, c.srv, c.cli, c.dial, c.mod)
			if c.byServer {
				refusedBy(t, server, client, c.want)
			} else {
				refusedBy(t, client, server, c.want)
			}
		})
	}
}

// A client that is not speaking TLS makes the server's handshake fail
// promptly; one that says nothing is cut off by the context.
func TestTLSNonTLSClients(t *testing.T) {
	t.Parallel()
	srv := goodTLS(t, testCA(t), 1)
	for _, c := range []struct {
		name    string
		send    string
		timeout time.Duration
		ctxErr  bool
	}{
		{"garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5 * time.Second, false},
		{"half a record", "\x16\x03\x01\x02\x00\x01", 300 * time.Millisecond, true},
		{"silent", "", 300 * time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := io.WriteString(client, c.send); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			start := time.Now()
			err = handshakeTLS(ctx, tls.Server(raw, srv.serverConfig()))
			took := time.Since(start)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != c.ctxErr {
				t.Errorf("wraps DeadlineExceeded: %v, want %v: %v", got, c.ctxErr, err)
			}
			if took > c.timeout+time.Second {
				t.Errorf("took %v", took)
			}
			t.Logf("%v (after %v)", err, took.Round(time.Millisecond))
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	t.Parallel()
	nt := goodTLS(t, testCA(t), 4)
	s, c := nt.serverConfig(), nt.clientConfig(7)
	for _, cfg := range []*tls.Config{s, c} {
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 || cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
			t.Errorf("config %+v", cfg)
		}
	}
	if s.ClientAuth != tls.RequireAndVerifyClientCert || s.ClientCAs != nt.roots || len(s.Certificates) != 1 {
		t.Error("server config does not verify clients")
	}
	if c.ServerName != "reign-node-7" || c.RootCAs != nt.roots {
		t.Errorf("client config: ServerName %q", c.ServerName)
	}
	if _, err := peerNodeID(tls.ConnectionState{}); !errors.Is(err, ErrBadCertificate) {
		t.Errorf("peerNodeID without certificates: %v", err)
	}
}

// The set reign_init writes (certs.WriteSet) loads through a spec naming
// its files, and every node's TLS material loads from it and connects.
// (reign_init's own spec is tested in cmd/reign_init.)
func TestLoadNodeTLSFromWrittenSet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, 3, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	specJSON := `{"nodes": [{"id": 1, "address": "127.0.0.1:1"}, {"id": 2, "address": "127.0.0.1:2"}, {"id": 3, "address": "127.0.0.1:3"}],
		"node_key_path": "reign_node.%d.key", "node_cert_path": "reign_node.%d.crt", "cluster_cert_path": "reign_ca.crt"}`
	if err := os.WriteFile(filepath.Join(dir, certs.SpecFile), []byte(specJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadClusterSpec(filepath.Join(dir, certs.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Nodes) != 3 {
		t.Fatalf("nodes %+v", spec.Nodes)
	}
	nodes := map[NodeID]*nodeTLS{}
	for _, n := range spec.Nodes {
		nt, err := loadNodeTLS(spec, n.ID)
		if err != nil {
			t.Fatalf("node %d: %v", n.ID, err)
		}
		nodes[n.ID] = nt
	}
	server, client := handshake(t, nodes[3], nodes[1], 3, nil)
	if server.err != nil || client.err != nil || server.peer != 1 || client.peer != 3 {
		t.Errorf("server %+v, client %+v", server, client)
	}
}

func TestLoadNodeTLSErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, other := testCA(t), testCA(t)
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(issuer *certs.CA, id uint16, opts certs.NodeOptions) (cert, key string) {
		t.Helper()
		c, k, err := issuer.IssueNodeWith(id, opts)
		if err != nil {
			t.Fatal(err)
		}
		return string(c), string(k)
	}
	write("ca.crt", ca.CertPEM())
	for id := uint16(1); id <= 2; id++ {
		c, k := issue(ca, id, certs.NodeOptions{})
		write(certs.NodeCertFile(id), []byte(c))
		write(certs.NodeKeyFile(id), []byte(k))
	}
	nodes := []NodeSpec{{ID: 1, Address: "127.0.0.1:1"}, {ID: 2, Address: "127.0.0.1:2"}}
	paths := func() *ClusterSpec {
		return &ClusterSpec{Nodes: nodes, NodeCertPath: filepath.Join(dir, "reign_node.%d.crt"),
			NodeKeyPath: filepath.Join(dir, "reign_node.%d.key"), ClusterCertPath: filepath.Join(dir, "ca.crt")}
	}
	inline := func(cert, key string) *ClusterSpec {
		return &ClusterSpec{Nodes: nodes, NodeCertPEM: cert, NodeKeyPEM: key, ClusterCertPEM: string(ca.CertPEM())}
	}
	if _, err := loadNodeTLS(paths(), 2); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	c1, k1 := issue(ca, 1, certs.NodeOptions{})
	if _, err := loadNodeTLS(inline(c1, k1), 1); err != nil {
		t.Fatalf("good inline spec: %v", err)
	}

	expired, expiredKey := issue(ca, 1, certs.NodeOptions{NotBefore: time.Now().Add(-3 * time.Hour), ValidFor: time.Hour})
	foreign, foreignKey := issue(other, 1, certs.NodeOptions{})
	serverOnly, serverOnlyKey := issue(ca, 1, certs.NodeOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	_, otherKey := issue(ca, 1, certs.NodeOptions{})

	missingFile := paths()
	missingFile.NodeKeyPath = filepath.Join(dir, "nope.%d.key")
	nodeAsCA := paths()
	nodeAsCA.ClusterCertPath = filepath.Join(dir, "reign_node.1.crt")
	wrongNode := paths()
	wrongNode.NodeCertPath, wrongNode.NodeKeyPath = filepath.Join(dir, "reign_node.2.crt"), filepath.Join(dir, "reign_node.2.key")

	cases := []struct {
		name  string
		spec  *ClusterSpec
		id    NodeID
		field string
		is    error
	}{
		{"nil spec", nil, 1, "Config.Cluster", nil},
		{"invalid spec", &ClusterSpec{}, 1, "nodes", nil},
		{"node not in spec", paths(), 9, "Config.NodeID", nil},
		{"single node without certificates", &ClusterSpec{Nodes: nodes[:1]}, 1, "node_cert_path", nil},
		{"missing key file", missingFile, 1, "node_key_path", fs.ErrNotExist},
		{"CA file holds a node certificate", nodeAsCA, 1, "cluster_cert_path", ErrBadCertificate},
		{"certificate of another node", wrongNode, 1, "node_cert_path", ErrBadCertificate},
		{"expired", inline(expired, expiredKey), 1, "node_cert_pem", ErrBadCertificate},
		{"another CA", inline(foreign, foreignKey), 1, "node_cert_pem", ErrBadCertificate},
		{"no ClientAuth", inline(serverOnly, serverOnlyKey), 1, "node_cert_pem", ErrBadCertificate},
		{"key of another certificate", inline(c1, otherKey), 1, "node_key_pem", nil},
		{"junk certificate", inline("junk", k1), 1, "node_cert_pem", nil},
		{"junk key", inline(c1, "junk"), 1, "node_key_pem", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			nt, err := loadNodeTLS(c.spec, c.id)
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("got %v, %v; want a *ConfigError", nt, err)
			}
			if ce.Field != c.field {
				t.Errorf("field %q, want %q (%v)", ce.Field, c.field, err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v does not wrap %v", err, c.is)
			}
			t.Log(err)
		})
	}
}
