package store

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Pebble treats a failed write-ahead-log write as fatal (it panics and the database hangs),
// so the store must refuse new data before the disk is full, not when it is. The guard
// refuses writes that add data once the free space of the repository's filesystem falls
// below a reserve: room for a memtable flush and a compaction, so that deletions, branch
// deletes and gc, which free space, still run.
type spaceGuard struct {
	dir     string
	reserve uint64

	mu      sync.Mutex
	checked time.Time
	free    uint64
}

// spaceCheckEvery bounds how stale the free-space reading may be.
const spaceCheckEvery = 100 * time.Millisecond

// memtableSize picks Pebble's memtable size for the filesystem holding dir: defaultMemTable
// (see pebbleOptions), less on small filesystems, whose reserve it sets.
func memtableSize(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return defaultMemTable
	}
	total := st.Blocks * uint64(st.Bsize)
	return min(defaultMemTable, max(2<<20, total/32))
}

// The reserve is three memtables and 8 MiB, plus an eighth of the filesystem (at most
// 1 GiB) for what compactions and blob-file rewrites hold on disk while they copy live
// values: with three memtables and 8 MiB alone, TestENOSPC's 96 MiB filesystem filled under
// a background flush in about one run in eight, and Pebble panicked.
func newSpaceGuard(dir string, memtable uint64) *spaceGuard {
	var total uint64
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		total = st.Blocks * uint64(st.Bsize)
	}
	return &spaceGuard{dir: dir, reserve: 3*memtable + 8<<20 + min(total/8, 1<<30)}
}

// check returns an error wrapping ENOSPC when the repository's disk is nearly full.
func (g *spaceGuard) check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Near the reserve every check reads the free space again: a burst of large writes can
	// use more than the margin between two readings.
	if time.Since(g.checked) > spaceCheckEvery || g.free < 2*g.reserve {
		var st syscall.Statfs_t
		if err := syscall.Statfs(g.dir, &st); err != nil {
			return nil // cannot tell; let the write try
		}
		g.free, g.checked = st.Bavail*uint64(st.Bsize), time.Now()
	}
	if g.free < g.reserve {
		return fmt.Errorf("%w: the repository's disk (%s) is nearly full: %d MiB free, %d MiB kept in reserve; free space, or delete branches and run agentfs gc",
			syscall.ENOSPC, g.dir, g.free>>20, g.reserve>>20)
	}
	return nil
}

// CheckSpace returns an error wrapping syscall.ENOSPC when the repository's disk is nearly
// full. The store checks it before every new block; callers check it before other writes
// that add data (new files, metadata), not before deletions.
func (s *Store) CheckSpace() error { return s.space.check() }
