package fs

import (
	"context"
	"sync"

	"github.com/agentfs/agentfs/work"
)

// stBlocks computes st_blocks from what a file stores (work.StoredBytes), so that a sparse
// file reports its data, not its size. The count walks the file's block keys, so it is
// cached per inode until the file's size, mtime or ctime change.
type stBlocks struct {
	mu    sync.Mutex
	cache map[uint64]blocksEntry
}

type blocksEntry struct {
	size         uint64
	mtime, ctime int64
	blocks       uint64
}

const blocksCacheMax = 64 << 10

func (s *stBlocks) get(ctx context.Context, ws *work.Workspace, in *work.Inode) uint64 {
	sizeBased := (in.Size + 511) / 512
	if !in.IsRegular() || in.Inline {
		return sizeBased
	}
	s.mu.Lock()
	e, ok := s.cache[in.Ino]
	s.mu.Unlock()
	if ok && e.size == in.Size && e.mtime == in.Mtime && e.ctime == in.Ctime {
		return e.blocks
	}
	stored, err := ws.StoredBytes(ctx, in)
	if err != nil {
		return sizeBased // an attribute is no place to fail; the read will report it
	}
	b := (uint64(stored) + 511) / 512
	s.mu.Lock()
	if s.cache == nil || len(s.cache) >= blocksCacheMax {
		s.cache = map[uint64]blocksEntry{}
	}
	s.cache[in.Ino] = blocksEntry{in.Size, in.Mtime, in.Ctime, b}
	s.mu.Unlock()
	return b
}
