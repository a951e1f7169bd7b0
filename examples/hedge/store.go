package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// An Entry is one Put in the append-only log: its position, the key and
// value, the node that led when it was written, and when (Unix ns).
type Entry struct {
	Index  uint64
	Key    string
	Value  string
	Leader uint16
	Time   int64
}

var (
	logBucket = []byte("log") // big-endian index -> Entry (JSON)
	kvBucket  = []byte("kv")  // key -> the value of its latest Entry
)

// Store is one member's copy of the log, in a bbolt file of its own. It
// is safe for concurrent use (bbolt serializes the writers).
type Store struct {
	db *bolt.DB
}

// OpenStore opens (or creates) the bbolt file at path.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("hedge: store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(logBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(kvBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("hedge: store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func lastIndex(tx *bolt.Tx) uint64 {
	k, _ := tx.Bucket(logBucket).Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// Last returns the index of the last entry (0: the log is empty).
func (s *Store) Last() (last uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { last = lastIndex(tx); return nil })
	return last, err
}

// Append adds the entries that extend the log in order, in one
// transaction: an entry at or below the last index is already here and is
// skipped; one past a gap is not taken (the leader then sends what is
// missing). It returns the last index afterwards. An entry whose index
// holds another leader's entry here fails with ErrConflict, so a leader
// never counts this member as a copy of an entry it does not hold.
func (s *Store) Append(entries []Entry) (last uint64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		last = lastIndex(tx)
		lb, kb := tx.Bucket(logBucket), tx.Bucket(kvBucket)
		for _, e := range entries {
			if e.Index > last+1 {
				break
			}
			if e.Index <= last {
				if err := sameEntry(lb, e); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := lb.Put(binary.BigEndian.AppendUint64(nil, e.Index), v); err != nil {
				return err
			}
			if err := kb.Put([]byte(e.Key), []byte(e.Value)); err != nil {
				return err
			}
			last = e.Index
		}
		return nil
	})
	return last, err
}

// ErrConflict is Append's error when the log holds, at an entry's index,
// an entry written by another leader (or at another time).
var ErrConflict = errors.New("hedge: log conflict")

func sameEntry(lb *bolt.Bucket, e Entry) error {
	var have Entry
	if err := json.Unmarshal(lb.Get(binary.BigEndian.AppendUint64(nil, e.Index)), &have); err != nil {
		return fmt.Errorf("hedge: entry %d: %w", e.Index, err)
	}
	if have.Leader != e.Leader || have.Time != e.Time {
		return fmt.Errorf("%w: entry %d is node %d's of %d here, not node %d's of %d",
			ErrConflict, e.Index, have.Leader, have.Time, e.Leader, e.Time)
	}
	return nil
}

// Since returns up to max entries from index from on.
func (s *Store) Since(from uint64, max int) (out []Entry, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(logBucket).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from)); k != nil && len(out) < max; k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("hedge: entry %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Get returns the value of key's latest entry.
func (s *Store) Get(key string) (value string, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(kvBucket).Get([]byte(key))
		value, ok = string(v), v != nil
		return nil
	})
	return value, ok, err
}
