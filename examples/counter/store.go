package main

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/reign-go/reign"
	bolt "go.etcd.io/bbolt"
)

// A store keeps a node's counter state on its disk, in an embedded bbolt
// file: one key per node (its ID, 2 bytes big-endian), the entry as 8
// bytes big-endian. Each Save is one transaction, synced before it
// returns, so an entry that was saved survives kill -9. The node's own
// entry is the one that matters (no other node can give it back larger
// than it was saved: see the actor); the others are kept so a restarted
// node answers with the merged value before its first exchange.
type store struct {
	db *bolt.DB
}

var bucket = []byte("gcounter")

// openStore opens (or creates) the file at path.
func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &store{db: db}, nil
}

// Load returns the saved state.
func (s *store) Load() (GCounter, error) {
	g := GCounter{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			if len(k) != 2 || len(v) != 8 {
				return fmt.Errorf("corrupt entry %x=%x", k, v)
			}
			g[reign.NodeID(binary.BigEndian.Uint16(k))] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return g, err
}

// Save writes the entries of g for nodes, in one transaction.
func (s *store) Save(g GCounter, nodes []reign.NodeID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, n := range nodes {
			if err := b.Put(binary.BigEndian.AppendUint16(nil, uint16(n)), binary.BigEndian.AppendUint64(nil, g[n])); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the file.
func (s *store) Close() error { return s.db.Close() }
