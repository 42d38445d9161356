package store

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Two kinds of durability (docs/architecture.md, "The write path"):
//
//   - written: the change is in the operating system (a write(2) of the WAL returned). It
//     survives the death of the daemon, not a power cut. Every FUSE operation that changes a
//     branch waits for this before it replies.
//   - durable: the change is on stable storage (the WAL was fsynced). fsync, checkpoints,
//     ref changes wait for this.
//
// Pebble only waits for its log writer to write(2) a commit when the commit asks for a sync,
// and then it fsyncs too. walFS lets a "written" commit ask for a sync without paying for the
// fsync: while no durable commit is waiting, it turns the WAL's fsyncs into no-ops. Pebble
// then writes "synced up to" offsets into later log chunks that are not true, so a power cut
// that keeps a random part of the unsynced pages can leave a log that Pebble refuses to
// replay; repairWALs (walrepair.go) cuts such a log at its first damaged record before Pebble
// opens it. That cut only drops what no real fsync covered, which is exactly what a power cut
// may drop.

// walFS wraps the filesystem Pebble runs on and skips the fsyncs of WAL files unless a
// durable commit is in flight. Closing a WAL always fsyncs it for real: Pebble closes the
// old log (EOF trailer, sync) before it creates the next, and an older log that ends
// uncleanly is corruption to Pebble, so only the newest log can ever have an unsynced tail.
type walFS struct {
	vfs.FS
	durable atomic.Int64 // durable commits in flight
}

func newWALFS(fs vfs.FS) *walFS { return &walFS{FS: fs} }

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (w *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &walFile{File: f, fs: w}, nil
}

func (w *walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, c)
	return w.wrap(name, f, err)
}

func (w *walFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.ReuseForWrite(oldname, newname, c)
	return w.wrap(newname, f, err)
}

func (w *walFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := w.FS.OpenReadWrite(name, c, opts...)
	return w.wrap(name, f, err)
}

type walFile struct {
	vfs.File
	fs      *walFS
	skipped atomic.Bool // an fsync was skipped since the last real one
}

func (f *walFile) Sync() error     { return f.sync(f.File.Sync) }
func (f *walFile) SyncData() error { return f.sync(f.File.SyncData) }
func (f *walFile) SyncTo(int64) (bool, error) {
	return true, f.sync(f.File.SyncData)
}

// sync is a real fsync while a durable commit waits, otherwise nothing: Pebble has already
// written the data, which is all a written commit needs.
func (f *walFile) sync(real func() error) error {
	if f.fs.durable.Load() == 0 {
		f.skipped.Store(true)
		return nil
	}
	f.skipped.Store(false)
	if err := real(); err != nil {
		f.skipped.Store(true)
		return err
	}
	return nil
}

func (f *walFile) Close() error {
	var err error
	if f.skipped.Load() {
		err = f.File.Sync()
	}
	return errors.Join(err, f.File.Close())
}

// Durable runs fn, which commits with pebble.Sync, so that its sync is a real fsync of the
// WAL (and of every older WAL file not yet synced). Concurrent callers share fsyncs: Pebble
// groups the sync requests its log writer finds waiting.
func (s *Store) Durable(fn func() error) error {
	if s.wal == nil {
		return fn()
	}
	s.wal.durable.Add(1)
	defer s.wal.durable.Add(-1)
	return fn()
}

// CommitDurable commits b durably (survives a power cut once it returns).
func (s *Store) CommitDurable(b *pebble.Batch) error {
	return s.Durable(func() error { return b.Commit(pebble.Sync) })
}

// CommitWritten commits b and returns once its WAL record is written to the operating
// system: it survives the death of this process, not a power cut. Every change a FUSE
// operation makes is committed this way before the reply.
func (s *Store) CommitWritten(b *pebble.Batch) error { return b.Commit(pebble.Sync) }
