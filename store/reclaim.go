package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Small repositories stay small (issue 13): by default Pebble preallocates every WAL file to
// 110% of the memtable (72 MiB with a 64 MiB memtable) and keeps obsolete logs around for
// reuse, so a 10 MiB tree took 282 MiB on disk. The memtable stays large (it is what makes
// ingest fast), but the log's preallocation is capped and recycling is off.

// walPreallocateCap bounds each fallocate of a WAL file.
const walPreallocateCap = 256 << 10

// smallWALFS caps the preallocation of WAL files.
type smallWALFS struct{ vfs.FS }

func (s smallWALFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || filepath.Ext(name) != ".log" {
		return f, err
	}
	return cappedFile{f}, nil
}

func (s smallWALFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := s.FS.Create(name, c)
	return s.wrap(name, f, err)
}

func (s smallWALFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := s.FS.ReuseForWrite(oldname, newname, c)
	return s.wrap(newname, f, err)
}

type cappedFile struct{ vfs.File }

func (f cappedFile) Preallocate(off, n int64) error {
	return f.File.Preallocate(off, min(n, walPreallocateCap))
}

// deleteCleaner deletes obsolete files (Pebble's DeleteCleaner, at the shallower depth, so
// its Clean wins) and turns log recycling off: Pebble recycles logs only for cleaners that
// do not need the files' contents, which the deeper ArchiveCleaner says it does.
type deleteCleaner struct {
	pebble.DeleteCleaner
	noRecycle
}

type noRecycle struct{ pebble.ArchiveCleaner }

func (deleteCleaner) String() string { return "delete" }

// CompactAll compacts the whole keyspace, so that deleted keys (blocks, overlays, refs)
// leave the sstables and the blob files lose their references to the dead values.
func (s *Store) CompactAll(ctx context.Context) error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff, 0xff}, true); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}

// garbageTarget is the share of dead values a blob file may keep before Pebble rewrites it
// (ValueSeparationPolicy.TargetGarbageRatio). WaitReclaimed waits a little above it.
const garbageTarget = 0.05

// WaitReclaimed waits until Pebble has rewritten the blob files whose values died (it does
// so in the background after a compaction) and removed the obsolete files, or until timeout.
// It reports whether the space came back in time. Zombie files (still read by an open
// iterator or snapshot) are waited for too: they are on disk.
func (s *Store) WaitReclaimed(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		m := s.db.Metrics()
		b := m.BlobFiles
		dead := b.ValueSize - min(b.ValueSize, b.ReferencedValueSize)
		settled := float64(dead) <= (garbageTarget+0.01)*float64(b.ValueSize)+64<<10 &&
			b.ObsoleteCount == 0 && b.ZombieCount == 0 &&
			m.Table.ObsoleteCount == 0 && m.Table.ZombieCount == 0
		if settled {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DirUsage returns the bytes the files under dir take on disk, counted as du counts them
// (allocated blocks, a file with several links once), so that the figures gc prints agree
// with du. Files that vanish while it walks (compactions remove them) are skipped.
func DirUsage(dir string) uint64 {
	var total uint64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			id := [2]uint64{uint64(st.Dev), st.Ino}
			if st.Nlink > 1 && seen[id] {
				return nil
			}
			seen[id] = true
			total += uint64(st.Blocks) * 512
		}
		return nil
	})
	return total
}

// Copies of what the repository cannot lose (salvage.go), beside the database directory.
func (s *Store) metadataCopyPath() string {
	return filepath.Join(filepath.Dir(s.dir), MetadataCopyName)
}
func (s *Store) checkpointPath() string { return filepath.Join(filepath.Dir(s.dir), CheckpointName) }

// Names of the copies in the repository directory.
const (
	MetadataCopyName = "metadata.copy"
	CheckpointName   = "db.checkpoint"
)

// SaveCopies refreshes the metadata copy and, when it changed or force is set, the database
// checkpoint. gc forces it, so that the checkpoint holds on to no file gc made obsolete.
func (s *Store) SaveCopies(force bool) error {
	if s.dir == "" || s.readOnly || s.space == nil {
		return nil // not a repository on the local filesystem (tests' MemFS)
	}
	changed, err := s.SaveMetadataCopy(s.metadataCopyPath())
	if err != nil {
		return fmt.Errorf("store: metadata copy: %w", err)
	}
	if changed || force {
		return s.RefreshCheckpoint(s.checkpointPath())
	}
	return nil
}

// Dir is the directory the store was opened in.
func (s *Store) Dir() string { return s.dir }
