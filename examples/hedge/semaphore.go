package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrNotHeld is Release's error when the Semaphore holds no slot.
var ErrNotHeld = errors.New("hedge: semaphore slot not held")

// A Semaphore is a cluster-wide counting semaphore served by the leader:
// at most limit slots of name are held at once, across all members. A
// slot is held by this member: when its process dies (or its node is
// lost to the leader), the leader frees it. Safe for concurrent use.
type Semaphore struct {
	h      *Hedge
	name   string
	limit  int
	mu     sync.Mutex
	tokens []uint64 // the slots this value holds
}

// NewSemaphore returns the semaphore name with limit slots. Every member
// must use the same limit: the leader refuses an acquire with another.
func (h *Hedge) NewSemaphore(name string, limit int) (*Semaphore, error) {
	if name == "" || limit < 1 {
		return nil, fmt.Errorf("hedge: semaphore %q: limit %d (want a name and a limit of at least 1)", name, limit)
	}
	return &Semaphore{h: h, name: name, limit: limit}, nil
}

// Acquire waits for a slot until ctx ends. If ctx ends first it returns
// ctx's error and holds no slot (the queued request is withdrawn).
func (s *Semaphore) Acquire(ctx context.Context) error {
	ok, err := s.acquire(ctx, true)
	if err == nil && !ok {
		err = fmt.Errorf("hedge: semaphore %q: not granted", s.name)
	}
	return err
}

// TryAcquire takes a slot if one is free now, and says whether it did.
func (s *Semaphore) TryAcquire(ctx context.Context) (bool, error) {
	return s.acquire(ctx, false)
}

func (s *Semaphore) acquire(ctx context.Context, wait bool) (bool, error) {
	slot := Slot{Name: s.name, Limit: s.limit, Token: rand.Uint64() | 1, Holder: s.h.self}
	v, err := s.h.callLeader(ctx, AcquireMsg{Slot: slot, Wait: wait})
	if err != nil {
		// the leader may have queued or granted it: withdraw it
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = s.h.callLeader(rctx, ReleaseMsg{Name: s.name, Token: slot.Token})
		cancel()
		return false, err
	}
	if !v.(Granted).OK {
		return false, nil
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, slot.Token)
	s.mu.Unlock()
	s.h.mu.Lock()
	s.h.held[slot.Token] = slot
	s.h.mu.Unlock()
	return true, nil
}

// Release gives back a slot this Semaphore holds.
func (s *Semaphore) Release(ctx context.Context) error {
	s.mu.Lock()
	if len(s.tokens) == 0 {
		s.mu.Unlock()
		return ErrNotHeld
	}
	tok := s.tokens[len(s.tokens)-1]
	s.tokens = s.tokens[:len(s.tokens)-1]
	s.mu.Unlock()
	s.h.mu.Lock()
	delete(s.h.held, tok)
	s.h.mu.Unlock()
	_, err := s.h.callLeader(ctx, ReleaseMsg{Name: s.name, Token: tok})
	return err
}

// Held says how many slots this Semaphore holds.
func (s *Semaphore) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}
