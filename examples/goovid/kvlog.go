package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// kvLog is the kvs's append-only log: one JSON object per line,
// {"k":KEY,"v":VALUE}, each put written and fsynced before it is
// answered. Opening it replays it. A crash in the middle of an append
// leaves a torn last line, which the next open cuts off: that put was
// never answered. A bad line followed by good ones is corruption, and the
// log is refused rather than silently shortened.
type kvLog struct {
	f    *os.File
	path string
}

type kvRecord struct {
	K string `json:"k"`
	V string `json:"v"`
}

// openKVLog opens (creating it and its folder if need be) the log at
// path, calls apply for each put in it, in order, and returns the log
// ready for appends and the number of puts replayed.
func openKVLog(path string, apply func(key, value string)) (*kvLog, int, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	n, good, err := replay(f, apply)
	if err == nil {
		err = cutTail(f, good)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("kvs log %s: %w", path, err)
	}
	return &kvLog{f: f, path: path}, n, nil
}

// replay reads f from the start, applying each record; it returns the
// number of records and the offset just past the last good one.
func replay(f *os.File, apply func(key, value string)) (n int, good int64, err error) {
	r := bufio.NewReader(f)
	var torn error // a bad line: fine if it is the last, corruption if not
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return n, good, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return n, good, err
		}
		if torn != nil {
			return n, good, torn
		}
		var rec kvRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if line[len(line)-1] != '\n' || dec.Decode(&rec) != nil {
			torn = fmt.Errorf("corrupt record at offset %d, followed by more records", good)
			continue
		}
		apply(rec.K, rec.V)
		n++
		good += int64(len(line))
	}
}

// cutTail truncates f to size (dropping a torn last record) and leaves it
// positioned at its end.
func cutTail(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != size {
		if err := f.Truncate(size); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	_, err = f.Seek(size, io.SeekStart)
	return err
}

// Append writes one put and syncs it to disk.
func (l *kvLog) Append(key, value string) error {
	b, err := json.Marshal(kvRecord{K: key, V: value})
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("kvs log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("kvs log %s: %w", l.path, err)
	}
	return nil
}

// Close closes the log's file.
func (l *kvLog) Close() error { return l.f.Close() }
