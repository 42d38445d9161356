// Package store is the content-addressed block store: immutable blocks keyed by the hash of
// their content, kept in Pebble, compressed when that pays, verified on every read.
//
// Key schema (the store owns these prefixes in the shared Pebble DB):
//
//	'b' + 32-byte ID -> codec byte + payload (see codec.go)
//	'B' ...          -> reserved for store metadata
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var (
	ErrNotFound = errors.New("store: block not found")
	ErrCorrupt  = errors.New("store: block corrupt")
	ErrLocked   = errors.New("store: repository is in use by another process")
	// ErrRemoteCorrupt: a block or object fetched from a remote failed its check. The bucket
	// is at fault, not this repository's database (AsDamage does not report it as damage).
	ErrRemoteCorrupt = fmt.Errorf("remote: %w", ErrCorrupt)
)

const prefixBlock = 'b'

// defaultMemTable is Pebble's memtable size (see pebbleOptions).
const defaultMemTable = 32 << 20

type Options struct {
	FS        vfs.FS      // nil = vfs.Default
	Logger    *log.Logger // nil = log.Default(); corrupt blocks are logged here
	CacheSize int64       // Pebble block cache bytes; 0 = 64 MiB
	// MemTableSize overrides Pebble's memtable size (tests use a small one so that logs
	// rotate often); 0 = the default.
	MemTableSize uint64
	ReadOnly     bool
}

// Fetcher supplies a block that is missing locally (lazy fetch from a remote).
type Fetcher func(ctx context.Context, id ID) ([]byte, error)

// Store holds blocks. It is safe for concurrent use. A block is durable once a Sync that
// began after its Put returned has returned.
type Store struct {
	db       *pebble.DB
	copySkip func(k []byte) []byte // keys the metadata copy passes over (SetMetadataCopySkip)
	lock     *pebble.Lock
	procKey  string // key in procLocks, "" if none
	log      *log.Logger
	readOnly bool
	fetcher  atomic.Pointer[Fetcher]

	// gcMu orders Put/Retain (read side) against Window.Delete (write side): a Put that
	// records its id in the window and finds the block present holds gcMu until it is
	// done, so Delete either sees the record or runs entirely before the Put's check.
	gcMu   sync.RWMutex
	window *Window // guarded by gcMu

	ahead     aheadCache // blocks read ahead, verified (prefetch.go)
	aheadHits atomic.Uint64
	bgMu      sync.Mutex
	bg        sync.WaitGroup // Background work in flight
	closing   bool           // Close began: Background refuses new work

	space *spaceGuard // nil for stores not on the local filesystem (tests' MemFS)
	dir   string
	wal   *walFS // nil for read-only stores; see walfs.go
}

// procLocks catches a second Open of the same directory within this process. Pebble's own
// check compares path strings, and fcntl locks never conflict within one process, so
// "dir" and "./dir" would otherwise both open.
var procLocks sync.Map // canonical path -> struct{}

// Open opens (creating if missing) the store in dir. If another process (or another Open in
// this process) holds it, the error wraps ErrLocked.
func Open(dir string, o Options) (*Store, error) {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = log.Default()
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	s := &Store{log: o.Logger, readOnly: o.ReadOnly, dir: dir}
	if !o.ReadOnly {
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
	}
	if fs == vfs.Default {
		key, err := filepath.Abs(dir)
		if err == nil {
			if k, err := filepath.EvalSymlinks(key); err == nil {
				key = k
			}
		}
		if _, loaded := procLocks.LoadOrStore(key, struct{}{}); loaded {
			return nil, fmt.Errorf("%w: %s is already open in this process", ErrLocked, dir)
		}
		s.procKey = key
	}
	// Take Pebble's LOCK ourselves so that a held lock is told apart from other errors.
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		s.release()
		if isLockErr(err) {
			return nil, fmt.Errorf("%w: %s: %v", ErrLocked, dir, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.lock = lock
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	pfs := fs
	if !o.ReadOnly {
		repaired, err := repairWAL(fs, dir)
		if err != nil {
			s.release()
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
		if repaired {
			o.Logger.Printf("store: %s: cut the write-ahead log after its last synced record (writes not fsynced before a power cut)", dir)
		}
		s.wal = newWALFS(fs)
		pfs = s.wal
	}
	po := pebbleOptions(pfs, cache, lock, o.ReadOnly)
	if fs == vfs.Default {
		po.MemTableSize = memtableSize(dir)
		s.space = newSpaceGuard(dir, po.MemTableSize)
	}
	if o.MemTableSize != 0 {
		po.MemTableSize = o.MemTableSize
	}
	pl := &pebbleLogger{l: o.Logger, dir: dir}
	po.Logger = pl
	// Pebble's default answer to a damaged file is Fatalf (exit): report it once instead;
	// the read that met it fails, and fsck says what is lost.
	po.EventListener = &pebble.EventListener{DataCorruption: pl.corruption}
	s.db, err = pebble.Open(dir, po)
	if err != nil {
		s.release()
		if de := AsDamage(err, dir); de != nil {
			return nil, de
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return s, nil
}

// pebbleOptions. Measured with BenchmarkPebbleIngest (pebble_bench_test.go): 1 GiB of 64 KiB
// incompressible values with random keys, NoSync, on-disk, 2 cores, two runs each:
//
//	                          MB/s      write-amp  space-amp
//	default (4 MiB memtable)  50-62     7.1-7.3    1.04-1.20
//	memtable 64 MiB           151-153   3.0-3.1    1.27-1.28
//	value separation          76-90     5.6        1.27-1.37
//	value sep + memtable 64M  217-257   3.3-3.4    1.47-1.49
//
// (An earlier 1 GiB run had 183-308 vs 154-202 MB/s for the last two: the VM is noisy.)
// The 64 MiB memtable is the big win (fewer flushes and L0 compactions). Value separation on
// top keeps the block values in blob files, so the sstables hold only keys and small handles:
// the dedup lookup in every Put and the refs/overlays of package branch, which share this DB,
// stay in small tables that fit the block cache, and compactions stop rewriting block
// contents as the store grows. Its space-amp cost is blob garbage: blob files are rewritten
// as soon as 5% of their values are dead, at any age, so that space comes back after gc
// (issue 13: with a 5-minute minimum age and 20%, 19 MiB of dead values stayed on disk).
//
// The memtable is 32 MiB, not 64, for the daemon's memory (issue 10): Pebble holds up to
// three memtables (the one being filled, one being flushed, one kept for reuse), which under
// 16 writers was 184 MB of the daemon's 300 MiB. valsep+memtable32M against 64M, same run,
// 8000 values (the machine's load was 15-29, so the MB/s are noise; write-amp is not):
//
//	memtable 64 MiB: write-amp 3.01-3.07, space-amp 1.03-1.05
//	memtable 32 MiB: write-amp 3.28-3.46, space-amp 1.17-1.32
//
// Half-size memtables make twice the L0 tables, and every flush overlaps the others (they all
// hold inode records), so compactions reached MaxBlobReferenceDepth 10 twice as often and
// rewrote the working pages' values into new blob files: 16 writers cost the daemon 2.5-2.7
// CPU-s per pass against 2.1-2.3 with 64 MiB memtables (bench -pprof-rows, same hour). With
// depth 20 it is 2.1-2.2 CPU-s again; a table then refers to up to 20 blob files, which
// costs nothing to our point reads of blocks and pages.
func pebbleOptions(fs vfs.FS, cache *pebble.Cache, lock *pebble.Lock, readOnly bool) *pebble.Options {
	o := &pebble.Options{
		FS:                 smallWALFS{fs},
		Cleaner:            deleteCleaner{},
		Cache:              cache,
		Lock:               lock,
		ReadOnly:           readOnly,
		FormatMajorVersion: pebble.FormatValueSeparation,
		MemTableSize:       defaultMemTable,
	}
	// Bloom filters on every level: every Put first asks whether its block exists (dedup),
	// and almost always it does not. Without filters that question searched every L0 table;
	// profiling a 1 GiB write put it at 40% of the write path.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		o.Levels[i].FilterType = pebble.TableFilter
	}
	// Level 0 writes 16 KiB blocks (Pebble's default is 4 KiB). Flushes write level 0, and
	// the blob files they make hold the working pages, 4 KiB values, until a checkpoint: with
	// 4 KiB blocks a cold sequential read of a file not yet checkpointed read every page with
	// its own pread and cache entry. BenchmarkColdSequentialRead (work), 128 MiB of pages,
	// cold, load 30-38 on 2 cores, two runs each: 4 KiB blocks 109-124 MB/s, 16 KiB 179-215,
	// 32 KiB 207-323. A cold random 4 KiB read then reads 16 KiB: direct reads of this disk
	// took 38 µs for 4 KiB, 47-52 µs for 16 KiB and 61 µs for 32 KiB, hence 16 KiB. Level-0
	// tables are short-lived, and the store's 64 KiB block values are a block each anyway.
	o.Levels[0].BlockSize = 16 << 10
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1 << 10, // refs and overlay entries stay inline
			MaxBlobReferenceDepth: 20,
			RewriteMinimumAge:     0,
			TargetGarbageRatio:    garbageTarget,
		}
	}
	return o
}

// isLockErr recognises a held lock: fcntl's bare EAGAIN/EACCES (a *PathError with EACCES is a
// permission problem instead), or Pebble's in-process check, which has no sentinel.
func isLockErr(err error) bool {
	if errno, ok := err.(syscall.Errno); ok {
		return errno == syscall.EAGAIN || errno == syscall.EACCES
	}
	return err.Error() == "lock held by current process"
}

func (s *Store) release() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	if s.procKey != "" {
		procLocks.Delete(s.procKey)
		s.procKey = ""
	}
}

func (s *Store) Close() error {
	s.stopBackground()
	err := s.db.Close()
	s.release()
	return err
}

// DB exposes the Pebble DB; other packages use it for keys not starting with 'b' or 'B'.
func (s *Store) DB() *pebble.DB { return s.db }

func (s *Store) SetFetcher(f Fetcher) { s.fetcher.Store(&f) }

func blockKey(id ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = prefixBlock
	copy(k[1:], id[:])
	return k
}

var valPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Put stores data (NoSync) and returns its ID; content already present is not rewritten.
func (s *Store) Put(ctx context.Context, data []byte) (ID, error) {
	return s.put(ctx, nil, data)
}

// PutBatch adds the block to b instead of writing it; the caller commits b.
func (s *Store) PutBatch(ctx context.Context, b *pebble.Batch, data []byte) (ID, error) {
	if b == nil {
		return ID{}, errors.New("store: PutBatch: nil batch")
	}
	return s.put(ctx, b, data)
}

// PutVerified stores data, which the caller has checked hashes to id (a block fetched from a
// remote, verified as it was decoded), without hashing it again, and keeps it for the next
// Get of id (a lazy reader reads it right after): that Get then neither reads it back from
// Pebble nor decodes and hashes it a third time.
func (s *Store) PutVerified(ctx context.Context, id ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.putID(nil, id, data); err != nil {
		return err
	}
	s.ahead.put(id, bytes.Clone(data)) // Get hands its copy to the caller, who may reuse it
	return nil
}

func (s *Store) put(ctx context.Context, b *pebble.Batch, data []byte) (ID, error) {
	if err := ctx.Err(); err != nil {
		return ID{}, err
	}
	id := Sum(data)
	return id, s.putID(b, id, data)
}

// putID stores data under id = Sum(data), into b if set.
func (s *Store) putID(b *pebble.Batch, id ID, data []byte) error {
	key := blockKey(id)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	s.window.record(id)
	if ok, err := s.has(key); err != nil || ok {
		return err
	}
	if err := s.space.check(); err != nil {
		return err
	}
	vp := valPool.Get().(*[]byte)
	*vp = encodeValue(*vp, data)
	var err error
	if b != nil {
		err = b.Set(key, *vp, nil) // both copy the value, so the buffer can go back
	} else {
		err = s.db.Set(key, *vp, pebble.NoSync)
	}
	valPool.Put(vp)
	if err != nil {
		return fmt.Errorf("store: put block %s: %w", id, err)
	}
	return nil
}

// has reports whether key is stored. It seeks an iterator by prefix instead of calling Get:
// a Get of a present key reads its value, which value separation keeps in a blob file, so
// every dedup hit cost a disk read; and a prefix seek consults the bloom filters, so an
// absent key (a new block) reads no data block either.
func (s *Store) has(key []byte) (bool, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	ok := it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key)
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return ok, nil
}

// Has reports local presence only; it never fetches.
func (s *Store) Has(ctx context.Context, id ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.has(blockKey(id))
}

// Get appends the block's content to buf[:0], or returns a block read ahead (Prefetch), which
// the caller then owns. The content is verified against id on every read from disk; a
// mismatch returns ErrCorrupt and is logged, never wrong bytes. A missing block comes from
// the Fetcher if one is set, else ErrNotFound.
func (s *Store) Get(ctx context.Context, id ID, buf []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// fsck and gc (LocalOnly) look at the disk itself, never at a copy read ahead earlier.
	if ctx.Value(localOnlyKey{}) == nil {
		s.ahead.wait(ctx, id)
		if data, ok := s.ahead.take(id); ok {
			s.aheadHits.Add(1)
			return data, nil // verified when read ahead; now the caller's
		}
	}
	v, c, err := s.db.Get(blockKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return s.fetch(ctx, id, buf)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get block %s: %w", id, err)
	}
	out, err := decodeValue(buf, v)
	c.Close()
	if err != nil {
		return nil, s.corrupt(id, "local", err.Error())
	}
	if Sum(out) != id {
		return nil, s.corrupt(id, "local", "content hash mismatch")
	}
	return out, nil
}

func (s *Store) corrupt(id ID, where, why string) error {
	s.log.Printf("store: %s block %s corrupt: %s", where, id, why)
	return fmt.Errorf("%w: block %s (%s): %s", ErrCorrupt, id, where, why)
}

func (s *Store) fetch(ctx context.Context, id ID, buf []byte) ([]byte, error) {
	f := s.fetcher.Load()
	if f == nil || *f == nil || ctx.Value(localOnlyKey{}) != nil {
		return nil, fmt.Errorf("%w: block %s", ErrNotFound, id)
	}
	data, err := (*f)(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("store: fetch block %s: %w", id, err)
	}
	if Sum(data) != id {
		s.log.Printf("store: fetched block %s corrupt: content hash mismatch", id)
		return nil, fmt.Errorf("%w: block %s (fetched): content hash mismatch", ErrRemoteCorrupt, id)
	}
	if !s.readOnly {
		// A full disk only stops the caching: the verified block is still returned.
		if _, err := s.put(ctx, nil, data); err != nil && !errors.Is(err, syscall.ENOSPC) {
			return nil, err
		}
	}
	return append(buf[:0], data...), nil
}

// Sync makes every write made before it durable.
func (s *Store) Sync() error {
	if err := s.Durable(func() error { return s.db.LogData(nil, pebble.Sync) }); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// DiskUsage returns the bytes Pebble uses on disk.
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }

var _ io.Closer = (*Store)(nil)

type localOnlyKey struct{}

// LocalOnly returns a context under which Get never fetches a missing block from a remote:
// fsck and gc use it to look at what this repository holds, not what it could download.
func LocalOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, localOnlyKey{}, true)
}

// Discard deletes one block, so that the next Get fetches a good copy from a remote: fsck
// --repair uses it on blocks that fail their hash. Deleting a referenced block is only safe
// when a remote holds it; the caller checks.
func (s *Store) Discard(id ID) error {
	s.ahead.drop(id)
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	return s.Durable(func() error { return s.db.Delete(blockKey(id), pebble.Sync) })
}
