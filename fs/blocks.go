package fs

import (
	"context"
	"sync"

	"github.com/agentfs/agentfs/work"
)

// stBlocks computes st_blocks from what a file stores (work.StoredBytes), so that a sparse
// file reports its data, not its size. Counting walks the file's block and page keys (two
// Pebble iterators: a sixth of the daemon's CPU while tar -x wrote 20k files, when every
// attribute reply after a write counted again), so the count is cached per inode and kept
// up to date by the mount:
//
//   - a write through the mount that leaves no gap (it starts at or before the end) keeps a
//     dense file dense: its count follows from the new size, nothing is walked;
//   - any other change of content through the mount (a write past the end, truncate,
//     fallocate) drops the inode's entry, and the next attribute reply counts again;
//   - a change underneath (rollback, merge, another mount...) drops entries with the
//     kernel's caches (invalidateAll, invalidate).
//
// An entry also holds the size it was counted at; a different size counts again.
type stBlocks struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every change, so a count that raced with one is not stored
	cache map[uint64]blocksEntry
}

type blocksEntry struct {
	size   uint64
	blocks uint64
	dense  bool // no holes: blocks is the size rounded up to 4 KiB
}

const blocksCacheMax = 64 << 10

// denseBlocks is st_blocks of a file of size bytes without holes (work.StoredBytes caps the
// stored bytes at the size rounded up to 4 KiB).
func denseBlocks(size uint64) uint64 { return (size + 4095) / 4096 * 8 }

func (s *stBlocks) get(ctx context.Context, ws *work.Workspace, in *work.Inode) uint64 {
	sizeBased := (in.Size + 511) / 512
	if !in.IsRegular() {
		return sizeBased
	}
	s.mu.Lock()
	e, ok := s.cache[in.Ino]
	gen := s.gen
	s.mu.Unlock()
	if in.Inline {
		// Inline content has no holes; remember that for the write that moves it out.
		if !ok || e.size != in.Size || !e.dense {
			s.store(gen, in.Ino, blocksEntry{in.Size, denseBlocks(in.Size), true})
		}
		return sizeBased
	}
	if ok && e.size == in.Size {
		return e.blocks
	}
	stored, err := ws.StoredBytes(ctx, in)
	if err != nil {
		return sizeBased // an attribute is no place to fail; the read will report it
	}
	b := (uint64(stored) + 511) / 512
	s.store(gen, in.Ino, blocksEntry{in.Size, b, b == denseBlocks(in.Size)})
	return b
}

// store records e unless something changed since gen was read.
func (s *stBlocks) store(gen, ino uint64, e blocksEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if s.cache == nil || len(s.cache) >= blocksCacheMax {
		s.cache = map[uint64]blocksEntry{}
	}
	s.cache[ino] = e
}

// wrote records a write of [off, end) to ino through the mount.
func (s *stBlocks) wrote(ino, off, end uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	e, ok := s.cache[ino]
	if ok && e.dense && off <= e.size {
		size := max(e.size, end)
		s.cache[ino] = blocksEntry{size, denseBlocks(size), true}
		return
	}
	delete(s.cache, ino)
}

// forget drops what is known of the inodes (nothing given: of every inode).
func (s *stBlocks) forget(inos ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if len(inos) == 0 {
		s.cache = nil
	}
	for _, ino := range inos {
		delete(s.cache, ino)
	}
}
