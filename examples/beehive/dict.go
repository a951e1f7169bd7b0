package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A dict is Beehive's dictionary "hello" of the hello-world application,
// kept on this node's disk in an embedded bbolt file: key -> count, one
// entry (a Beehive "cell") per name this node's bees own. Each write is
// one bbolt transaction, synced before it returns, so a count that was
// answered survives kill -9. Safe for concurrent use.
type dict struct {
	db     *bolt.DB
	bucket []byte
}

// openDict opens (or creates) the node's file and its bucket for app's
// dictionary name.
func openDict(path, app, name string) (*dict, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &dict{db: db, bucket: []byte(app + "/" + name)}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(d.bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return d, nil
}

// Put stores count for key.
func (d *dict) Put(key string, count uint64) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(d.bucket).Put([]byte(key), binary.BigEndian.AppendUint64(nil, count))
	})
}

// Delete drops key (its bee handed the cell to another node).
func (d *dict) Delete(key string) error {
	return d.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(d.bucket).Delete([]byte(key)) })
}

// ForEach calls fn for every stored key and count.
func (d *dict) ForEach(fn func(key string, count uint64)) error {
	return d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(d.bucket).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return errors.New("corrupt entry " + string(k))
			}
			fn(string(k), binary.BigEndian.Uint64(v))
			return nil
		})
	})
}

// Close closes the file.
func (d *dict) Close() error { return d.db.Close() }
