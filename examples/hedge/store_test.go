package main

import (
	"errors"
	"path/filepath"
	"testing"
)

// Append takes entries in order, skips what it has, stops at a gap, and
// refuses an entry that differs from the one it holds at that index; the
// log survives closing and reopening the file.
func TestStoreAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hedge.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	e1 := Entry{Index: 1, Key: "a", Value: "1", Leader: 1, Time: 10}
	e2 := Entry{Index: 2, Key: "a", Value: "2", Leader: 1, Time: 20}
	e4 := Entry{Index: 4, Key: "b", Value: "4", Leader: 1, Time: 40}
	if last, err := s.Append([]Entry{e1, e2, e4}); err != nil || last != 2 {
		t.Fatalf("append 1, 2, 4: last %d, %v; want 2 (4 is past a gap)", last, err)
	}
	if last, err := s.Append([]Entry{e1, e2}); err != nil || last != 2 {
		t.Fatalf("append 1, 2 again: last %d, %v; want 2", last, err)
	}
	other := e2
	other.Leader, other.Value = 2, "two"
	if _, err := s.Append([]Entry{other}); !errors.Is(err, ErrConflict) {
		t.Fatalf("another leader's entry 2: %v, want ErrConflict", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok, err := s.Get("a"); v != "2" || !ok || err != nil {
		t.Fatalf("get a: %q %v %v, want 2", v, ok, err)
	}
	if _, ok, _ := s.Get("b"); ok {
		t.Fatal("b is there, past a gap")
	}
	if es, err := s.Since(2, 10); err != nil || len(es) != 1 || es[0] != e2 {
		t.Fatalf("since 2: %v, %v", es, err)
	}
}
