package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// The files of a certificate set, as thejerf/reign's reign_init names them.
const (
	CACertFile = "reign_ca.crt"
	CAKeyFile  = "reign_ca.key"
	SpecFile   = "reign_cluster.json"
)

// BasePort is the port base of the spec WriteSet writes: node id listens on
// 127.0.0.1:BasePort+id.
const BasePort = 29870

// MaxNodes is the most nodes WriteSet handles, so that every port is valid.
const MaxNodes = 65535 - BasePort

// ErrIncompleteSet is wrapped by the error WriteSet returns when only one
// file of a certificate/key pair exists: it will not guess which is right.
var ErrIncompleteSet = errors.New("reign: incomplete certificate set")

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

	// Spec is what happened to reign_cluster.json: "created", "extended"
	// (nodes were missing; existing entries kept) or "kept".
	Spec string
}

// WriteSet makes dir a complete certificate set for nodes 1..nodes, the
// way reign_init does, creating dir if needed:
//
//   - reign_ca.crt and reign_ca.key: reused if both exist, created if
//     neither does; if only one exists it fails with ErrIncompleteSet;
//   - reign_node.<id>.crt and reign_node.<id>.key for each id: existing
//     pairs are kept, missing ones are issued; half a pair is an error;
//   - reign_cluster.json: a spec for nodes 1..nodes on 127.0.0.1, port
//     BasePort+id, naming the files above relative to dir. An existing spec
//     is left alone unless it lacks some of the nodes; then the missing ones
//     are added and everything else in it is kept.
//
// Private keys are written with mode 0600, everything else 0644. Each file
// is written to a temporary name and renamed, so no half-written file is
// ever left under a real name.
func WriteSet(dir string, nodes int, opts SetOptions) (*SetResult, error) {
	if nodes < 1 || nodes > MaxNodes {
		return nil, fmt.Errorf("reign: the number of nodes must be between 1 and %d, not %d", MaxNodes, nodes)
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
	notBefore := opts.Now.Add(-time.Hour)
	validFor := opts.ValidFor + time.Hour

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &SetResult{Unusable: map[uint16]error{}}

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
	default:
		if res.CA, err = NewCA(opts.Organization, notBefore, validFor); err != nil {
			return nil, err
		}
		// Key first: a crash in between leaves a key without a
		// certificate, which the next run refuses instead of minting a
		// second CA next to a dangling certificate.
		if err := writeFile(caKey, res.CA.KeyPEM(), 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(caCrt, res.CA.CertPEM(), 0o644); err != nil {
			return nil, err
		}
		res.CACreated = true
	}

	roots := x509Pool(res.CA)
	for i := 1; i <= nodes; i++ {
		id := uint16(i)
		crt, key := filepath.Join(dir, NodeCertFile(id)), filepath.Join(dir, NodeKeyFile(id))
		haveCrt, haveKey, err := pairExists(crt, key)
		if err != nil {
			return nil, err
		}
		switch {
		case haveCrt && haveKey:
			res.Kept = append(res.Kept, id)
			if err := checkExisting(crt, roots, id, opts.Now); err != nil {
				res.Unusable[id] = err
			}
			continue
		case haveCrt || haveKey:
			return nil, halfPair(crt, key, haveCrt, fmt.Sprintf("node %d", id))
		}
		certPEM, keyPEM, err := res.CA.IssueNode(id, notBefore, validFor)
		if err != nil {
			return nil, err
		}
		if err := writeFile(key, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(crt, certPEM, 0o644); err != nil {
			return nil, err
		}
		res.Created = append(res.Created, id)
	}

	res.Spec, err = writeSpec(filepath.Join(dir, SpecFile), nodes)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func checkExisting(path string, roots *x509.CertPool, id uint16, now time.Time) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	chain, err := ParseCertificates(data)
	if err != nil {
		return err
	}
	inter := newPool(chain[1:])
	return VerifyNode(chain[0], inter, roots, id, now)
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

// writeFile writes data to path with mode perm through a temporary file in
// the same folder and a rename.
func writeFile(path string, data []byte, perm os.FileMode) error {
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

// specNode is one entry of a spec's "nodes" as WriteSet writes it.
type specNode struct {
	ID      uint16 `json:"id"`
	Address string `json:"address"`
}

// newSpec is the layout of a spec WriteSet creates, in the field order of
// thejerf/reign's sample spec.
type newSpec struct {
	Nodes           []specNode `json:"nodes"`
	NodeKeyPath     string     `json:"node_key_path"`
	NodeCertPath    string     `json:"node_cert_path"`
	ClusterCertPath string     `json:"cluster_cert_path"`
}

func nodeAddress(id uint16, taken map[string]bool) string {
	for port := BasePort + int(id); port <= 65535; port++ {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if !taken[addr] {
			taken[addr] = true
			return addr
		}
	}
	return "127.0.0.1:" + strconv.Itoa(BasePort+int(id)) // every port above is taken: let Validate say so
}

// writeSpec creates or extends the spec at path so that it has nodes
// 1..nodes. It returns "created", "extended" or "kept".
func writeSpec(path string, nodes int) (string, error) {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		spec := newSpec{
			NodeKeyPath:     "reign_node.%d.key",
			NodeCertPath:    "reign_node.%d.crt",
			ClusterCertPath: CACertFile,
		}
		taken := map[string]bool{}
		for i := 1; i <= nodes; i++ {
			spec.Nodes = append(spec.Nodes, specNode{ID: uint16(i), Address: nodeAddress(uint16(i), taken)})
		}
		data, err := json.MarshalIndent(spec, "", "    ")
		if err != nil {
			return "", err
		}
		return "created", writeFile(path, append(data, '\n'), 0o644)
	}
	if err != nil {
		return "", err
	}
	data, changed, err := extendSpec(old, nodes)
	if err != nil {
		return "", fmt.Errorf("reign: %s exists but cannot be extended (fix or remove it): %w", path, err)
	}
	if !changed {
		return "kept", nil
	}
	return "extended", writeFile(path, data, 0o644)
}

// extendSpec adds the missing nodes of 1..nodes to the spec old, keeping
// every other field and existing node entry as it is. It understands both
// forms of "nodes" thejerf/reign has used: a list of objects with "id", and
// an object keyed by the decimal ID.
func extendSpec(old []byte, nodes int) ([]byte, bool, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(old, &top); err != nil {
		return nil, false, err
	}
	if top == nil {
		return nil, false, errors.New("the spec is not a JSON object")
	}
	type entry struct {
		ID      *uint16 `json:"id"`
		Address string  `json:"address"`
	}
	have := map[uint16]bool{}
	taken := map[string]bool{}
	raw := bytes.TrimSpace(top["nodes"])
	var changed bool
	if len(raw) > 0 && raw[0] == '{' {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, false, err
		}
		for k, v := range m {
			id, err := strconv.ParseUint(k, 10, 16)
			if err != nil {
				return nil, false, fmt.Errorf("node key %q is not a node ID", k)
			}
			var e entry
			if err := json.Unmarshal(v, &e); err != nil {
				return nil, false, err
			}
			have[uint16(id)] = true
			taken[e.Address] = true
		}
		for i := 1; i <= nodes; i++ {
			if id := uint16(i); !have[id] {
				v, _ := json.Marshal(struct {
					Address string `json:"address"`
				}{nodeAddress(id, taken)})
				m[strconv.Itoa(i)] = v
				changed = true
			}
		}
		if changed {
			var err error
			if top["nodes"], err = json.Marshal(m); err != nil {
				return nil, false, err
			}
		}
	} else {
		var list []json.RawMessage
		if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, false, err
			}
		}
		for _, v := range list {
			var e entry
			if err := json.Unmarshal(v, &e); err != nil {
				return nil, false, err
			}
			if e.ID != nil {
				have[*e.ID] = true
			}
			taken[e.Address] = true
		}
		var added []uint16
		for i := 1; i <= nodes; i++ {
			if id := uint16(i); !have[id] {
				added = append(added, id)
			}
		}
		slices.Sort(added)
		for _, id := range added {
			v, err := json.Marshal(specNode{ID: id, Address: nodeAddress(id, taken)})
			if err != nil {
				return nil, false, err
			}
			list = append(list, v)
			changed = true
		}
		if changed {
			var err error
			if top["nodes"], err = json.Marshal(list); err != nil {
				return nil, false, err
			}
		}
	}
	if !changed {
		return old, false, nil
	}
	data, err := json.MarshalIndent(top, "", "    ")
	if err != nil {
		return nil, false, err
	}
	return append(data, '\n'), true, nil
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
