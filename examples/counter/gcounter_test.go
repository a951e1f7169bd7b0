package main

import (
	"maps"
	"math"
	"path/filepath"
	"testing"

	"github.com/reign-go/reign"
)

// Merge is commutative, associative and idempotent, takes the maximum per
// node, and reports the entries that grew.
func TestGCounterMerge(t *testing.T) {
	a := GCounter{1: 5, 2: 1}
	b := GCounter{2: 3, 3: 4}
	c := GCounter{1: 2, 3: 9}
	merged := func(gs ...GCounter) GCounter {
		m := GCounter{}
		for _, g := range gs {
			m.Merge(g)
		}
		return m
	}
	want := GCounter{1: 5, 2: 3, 3: 9}
	for _, got := range []GCounter{merged(a, b, c), merged(c, b, a), merged(b, a, c, a, b), merged(merged(a, b), c), merged(a, merged(b, c))} {
		if !maps.Equal(got, want) {
			t.Errorf("merged %v, want %v", got, want)
		}
	}
	if got := want.Value(); got != 17 {
		t.Errorf("value %d, want 17", got)
	}
	g := a.Clone()
	if grew := g.Merge(b); len(grew) != 2 || g[2] != 3 || g[3] != 4 {
		t.Errorf("merge grew %v to %v", grew, g)
	}
	if grew := g.Merge(b); grew != nil {
		t.Errorf("merging again grew %v", grew)
	}
	if a[2] != 1 {
		t.Errorf("Clone shares its map: a is %v", a)
	}
	if !g.Inc(1, 2) || g[1] != 7 || g.Inc(1, math.MaxUint64) || g[1] != 7 {
		t.Errorf("Inc: %v", g)
	}
	if v := (GCounter{1: math.MaxUint64, 2: 1}).Value(); v != math.MaxUint64 {
		t.Errorf("value %d, want saturated", v)
	}
}

// What is saved is what a reopened store loads.
func TestStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	g := GCounter{1: 10, 2: 20, 300: math.MaxUint64}
	if err := s.Save(g, []reign.NodeID{1, 2, 300}); err != nil {
		t.Fatal(err)
	}
	g[1] = 11
	if err := s.Save(g, []reign.NodeID{1}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = openStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Load()
	if err != nil || !maps.Equal(got, g) {
		t.Fatalf("loaded %v, %v; want %v", got, err, g)
	}
}
