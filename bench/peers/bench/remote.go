package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A RemoteLib measures figures 4 and 5 between two OS processes over the
// library's recommended remote layer with mutual TLS on 127.0.0.1.
type RemoteLib interface {
	// Child runs node 2 at self: a sink named "sink" that counts the
	// messages after a pb.Begin and answers with a pb.Report, and an echo
	// named "echo" that sends every pb.Small back to its sender. It
	// returns once the node is ready; the process then lives until its
	// parent closes standard input.
	Child(self string, cfg *tls.Config) error
	// Parent starts node 1 at self, talking to node 2 at child.
	Parent(self, child string, cfg *tls.Config) error
	// RemoteOneWay sends a pb.Begin{N: n} and n pb.Small to the sink and
	// returns the sink's Report: the time from its first message to its last.
	RemoteOneWay(ctx context.Context, n int) (time.Duration, error)
	// RemotePingPong runs warm+rounds round trips with the echo.
	RemotePingPong(ctx context.Context, warm, rounds int) ([]time.Duration, error)
}

const (
	calibrateRemote = 50_000
	remoteRounds    = 10_000
)

// remoteFigures runs figures 4 and 5 into vals.
func remoteFigures(ctx context.Context, l Lib, only string, runs int, dur time.Duration, vals map[string][]float64) error {
	rl, ok := l.(RemoteLib)
	if !ok {
		return errors.New("no remote figures for this library")
	}
	dir, err := os.MkdirTemp("", "peers-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := mintCerts(dir); err != nil {
		return err
	}
	cfg, err := loadTLS(dir)
	if err != nil {
		return err
	}
	self, child, err := freeAddr(), freeAddr(), error(nil)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-child", child, "-certs", dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("child node: %q, %v", line, err)
	}
	if err := rl.Parent(self, child, cfg); err != nil {
		return err
	}
	if strings.Contains(only, "4") {
		for range runs {
			d, err := rl.RemoteOneWay(ctx, calibrateRemote)
			if err != nil {
				return err
			}
			n := int(min(max(float64(calibrateRemote)/d.Seconds()*dur.Seconds(), 1000), maxRunCount))
			if d, err = rl.RemoteOneWay(ctx, n); err != nil {
				return err
			}
			vals["remote_msgs_per_sec"] = append(vals["remote_msgs_per_sec"], float64(n-1)/d.Seconds())
		}
	}
	if strings.Contains(only, "5") {
		for range runs {
			s, err := rl.RemotePingPong(ctx, remoteRounds/10, remoteRounds)
			if err != nil {
				return err
			}
			sortDurations(s)
			vals["remote_pingpong_p50_us"] = append(vals["remote_pingpong_p50_us"], us(percentile(s, 50)))
			vals["remote_pingpong_p99_us"] = append(vals["remote_pingpong_p99_us"], us(percentile(s, 99)))
		}
	}
	return nil
}

// runChild is the child process of the remote figures.
func runChild(l Lib, self, dir string) error {
	rl, ok := l.(RemoteLib)
	if !ok {
		return errors.New("no remote figures for this library")
	}
	cfg, err := loadTLS(dir)
	if err != nil {
		return err
	}
	if err := rl.Child(self, cfg); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// mintCerts writes a throwaway CA and one node certificate for 127.0.0.1
// (both nodes use it, as client and as server) into dir.
func mintCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "peers bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"node.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"node.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// loadTLS is the mutual TLS 1.3 configuration of both nodes.
func loadTLS(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "node.pem"), filepath.Join(dir, "node.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("bad CA certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		ServerName:   "127.0.0.1",
	}, nil
}
