package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Window is an open GC safety window: every id passed through Put, PutBatch or Retain while
// it is open is recorded and Delete will not remove it.
type Window struct {
	s    *Store
	mu   sync.Mutex // guards seen; Puts record under gcMu.RLock, concurrently
	seen map[ID]struct{}
}

// record is called with s.gcMu held (either side); nil-safe when no window is open.
func (w *Window) record(id ID) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.seen[id] = struct{}{}
	w.mu.Unlock()
}

// BeginGC opens the GC safety window. Only one may be open at a time.
func (s *Store) BeginGC() (*Window, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.window != nil {
		return nil, errors.New("store: a GC window is already open")
	}
	s.window = &Window{s: s, seen: map[ID]struct{}{}}
	return s.window, nil
}

// End closes the window; it is safe to call more than once.
func (w *Window) End() {
	w.s.gcMu.Lock()
	defer w.s.gcMu.Unlock()
	if w.s.window == w {
		w.s.window = nil
	}
}

// deleteChunk bounds how long Delete holds gcMu exclusively (Puts wait meanwhile).
const deleteChunk = 1024

// Delete removes the given blocks except those recorded in the window; absent ids are
// skipped. It returns how many blocks it deleted and their stored bytes.
func (w *Window) Delete(ctx context.Context, ids []ID) (n int, bytes int64, err error) {
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return n, bytes, err
		}
		chunk := ids[:min(len(ids), deleteChunk)]
		ids = ids[len(chunk):]
		cn, cb, err := w.deleteLocked(chunk)
		n, bytes = n+cn, bytes+cb
		if err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, nil
}

func (w *Window) deleteLocked(ids []ID) (n int, total int64, err error) {
	s := w.s
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.window != w {
		return 0, 0, errors.New("store: Delete on a GC window that has ended")
	}
	// Sizes come from the keys' value handles (LazyValue.Len): a Get would read each dead
	// value from its blob file while every Put waits on gcMu.
	it, err := s.db.NewIter(nil)
	if err != nil {
		return 0, 0, fmt.Errorf("store: delete: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		if _, ok := w.seen[id]; ok {
			continue
		}
		key := blockKey(id)
		if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
			if err := it.Error(); err != nil {
				return 0, 0, fmt.Errorf("store: delete block %s: %w", id, err)
			}
			continue
		}
		lv := it.LazyValue()
		sz := lv.Len()
		if err := b.DeleteSized(key, uint32(sz), nil); err != nil {
			return 0, 0, err
		}
		n, total = n+1, total+int64(sz)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, 0, fmt.Errorf("store: delete: %w", err)
	}
	return n, total, nil
}

// Retain records id in the open GC window (if any) and checks that the block exists,
// fetching it if a Fetcher is set; else it returns ErrNotFound.
func (s *Store) Retain(ctx context.Context, id ID) error {
	s.gcMu.RLock()
	s.window.record(id)
	ok, err := s.has(blockKey(id))
	s.gcMu.RUnlock()
	if err != nil || ok {
		return err
	}
	_, err = s.fetch(ctx, id, nil)
	return err
}

// Blocks calls fn for every stored block with its stored (compressed) size.
func (s *Store) Blocks(ctx context.Context, fn func(id ID, storedSize int64) error) error {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: []byte{prefixBlock},
		UpperBound: []byte{prefixBlock + 1},
	})
	if err != nil {
		return fmt.Errorf("store: blocks: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := it.Key()
		if len(k) != 1+len(ID{}) {
			continue // not a block key; never written by this package
		}
		lv := it.LazyValue() // Len does not read a separated value from its blob file
		if err := fn(ID(k[1:]), int64(lv.Len())); err != nil {
			return err
		}
	}
	return it.Error()
}
