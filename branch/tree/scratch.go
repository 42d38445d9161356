package tree

import (
	"bytes"
	"context"
	"sync"

	"github.com/agentfs/agentfs/store"
)

// Scratch is a Blocks that keeps what is Put in memory and reads everything else from its
// base: a tree built in it (a fold of a branch for a diff) writes nothing to the repository.
type Scratch struct {
	base Blocks
	mu   sync.RWMutex
	m    map[store.ID][]byte
}

// NewScratch returns an empty Scratch over base.
func NewScratch(base Blocks) *Scratch {
	return &Scratch{base: base, m: map[store.ID][]byte{}}
}

// Put keeps data in memory and returns its ID (the ID the store would give it).
func (s *Scratch) Put(ctx context.Context, data []byte) (store.ID, error) {
	if err := ctx.Err(); err != nil {
		return store.ID{}, err
	}
	id := store.Sum(data)
	s.mu.Lock()
	if _, ok := s.m[id]; !ok {
		s.m[id] = bytes.Clone(data)
	}
	s.mu.Unlock()
	return id, nil
}

// Get returns a block put here, else the base's.
func (s *Scratch) Get(ctx context.Context, id store.ID, buf []byte) ([]byte, error) {
	s.mu.RLock()
	data, ok := s.m[id]
	s.mu.RUnlock()
	if ok {
		return append(buf[:0], data...), nil
	}
	return s.base.Get(ctx, id, buf)
}

// Add makes the blocks of other readable here too (both are immutable by ID).
func (s *Scratch) Add(other *Scratch) {
	other.mu.RLock()
	defer other.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, data := range other.m {
		s.m[id] = data
	}
}

// Len returns how many blocks were put here.
func (s *Scratch) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
