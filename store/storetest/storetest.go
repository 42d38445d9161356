// Package storetest is a conformance suite for store.Store. Any test that opens a store in a
// new way (on-disk, in-memory vfs, with a fetcher) runs Run against it.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// Run runs every check; open must return a new, empty store (closed by the caller's cleanup).
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	tests := map[string]func(*testing.T, *store.Store){
		"RoundTrip":        testRoundTrip,
		"Dedup":            testDedup,
		"PutBatch":         testPutBatch,
		"NotFound":         testNotFound,
		"Concurrent":       testConcurrent,
		"Corrupt":          testCorrupt,
		"GCWindow":         testGCWindow,
		"GCWindowSingle":   testGCWindowSingle,
		"RetainMissing":    testRetainMissing,
		"Fetcher":          testFetcher,
		"FetcherCorrupt":   testFetcherCorrupt,
		"BlocksStoredSize": testBlocksStoredSize,
		"SyncKeepsBlocksReadable": func(t *testing.T, s *store.Store) {
			id := put(t, s, []byte("synced"))
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			get(t, s, id, []byte("synced"))
		},
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}

var ctx = context.Background()

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func compressible(n int) []byte {
	return bytes.Repeat([]byte("func (s *Store) Put(ctx context.Context, data []byte) (ID, error)\n"), n/66+1)[:n]
}

func put(t *testing.T, s *store.Store, data []byte) store.ID {
	t.Helper()
	id, err := s.Put(ctx, data)
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(data), err)
	}
	if id != store.Sum(data) {
		t.Fatalf("Put returned %s, want Sum %s", id, store.Sum(data))
	}
	return id
}

func get(t *testing.T, s *store.Store, id store.ID, want []byte) {
	t.Helper()
	got, err := s.Get(ctx, id, nil)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s): got %d bytes, want %d (content differs)", id, len(got), len(want))
	}
}

func countBlocks(t *testing.T, s *store.Store) map[store.ID]int64 {
	t.Helper()
	m := map[store.ID]int64{}
	err := s.Blocks(ctx, func(id store.ID, size int64) error {
		if _, dup := m[id]; dup {
			t.Errorf("Blocks reported %s twice", id)
		}
		m[id] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testRoundTrip(t *testing.T, s *store.Store) {
	cases := map[string][]byte{
		"empty":              {},
		"small":              []byte("hello"),
		"64KiB-random":       random(64 << 10),
		"64KiB-compressible": compressible(64 << 10),
		"1MiB-random":        random(1 << 20),
		"1MiB-compressible":  compressible(1 << 20),
		"1MiB-zeros":         make([]byte, 1<<20),
	}
	ids := map[string]store.ID{}
	for name, data := range cases {
		ids[name] = put(t, s, data)
	}
	buf := make([]byte, 0, 10) // too small: Get must grow it, not truncate
	for name, data := range cases {
		got, err := s.Get(ctx, ids[name], buf)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: Get = %d bytes, %v; want %d bytes", name, len(got), err, len(data))
		}
		if ok, err := s.Has(ctx, ids[name]); !ok || err != nil {
			t.Errorf("%s: Has = %v, %v", name, ok, err)
		}
	}
	blocks := countBlocks(t, s)
	if len(blocks) != len(cases) {
		t.Errorf("Blocks: %d blocks, want %d", len(blocks), len(cases))
	}
	// Compression must have paid for the compressible MiB and not inflated the random one.
	if sz := blocks[ids["1MiB-compressible"]]; sz >= 1<<19 {
		t.Errorf("compressible 1 MiB stored as %d bytes; want compression", sz)
	}
	if sz := blocks[ids["1MiB-random"]]; sz > 1<<20+16 {
		t.Errorf("random 1 MiB stored as %d bytes; want at most a few bytes overhead", sz)
	}
}

func testDedup(t *testing.T, s *store.Store) {
	data := compressible(100 << 10)
	a := put(t, s, data)
	b := put(t, s, bytes.Clone(data))
	if a != b {
		t.Fatalf("same content, different ids %s %s", a, b)
	}
	put(t, s, []byte("other"))
	if n := len(countBlocks(t, s)); n != 2 {
		t.Fatalf("Blocks: %d blocks after 2 distinct contents (one twice), want 2", n)
	}
}

func testPutBatch(t *testing.T, s *store.Store) {
	existing := put(t, s, []byte("already there"))
	b := s.DB().NewBatch()
	defer b.Close()
	id, err := s.PutBatch(ctx, b, []byte("in batch"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, b, []byte("already there")); err != nil {
		t.Fatal(err)
	}
	if b.Count() != 1 {
		t.Errorf("batch holds %d ops, want 1 (the existing block must not be rewritten)", b.Count())
	}
	if ok, _ := s.Has(ctx, id); ok {
		t.Fatal("block visible before the batch was committed")
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	get(t, s, id, []byte("in batch"))
	get(t, s, existing, []byte("already there"))
}

func testNotFound(t *testing.T, s *store.Store) {
	id := store.Sum([]byte("never stored"))
	_, err := s.Get(ctx, id, nil)
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), id.String()) {
		t.Fatalf("Get(missing) = %v; want ErrNotFound naming %s", err, id)
	}
	if ok, err := s.Has(ctx, id); ok || err != nil {
		t.Fatalf("Has(missing) = %v, %v", ok, err)
	}
}

func testConcurrent(t *testing.T, s *store.Store) {
	const workers, per = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range per {
				// Half the content is shared between workers, to race dedup too.
				data := fmt.Appendf(nil, "block %d from %d", i, w%2)
				data = append(data, compressible(4096)...)
				id, err := s.Put(ctx, data)
				if err == nil {
					buf, err = s.Get(ctx, id, buf)
				}
				if err == nil && !bytes.Equal(buf, data) {
					err = fmt.Errorf("worker %d block %d: wrong content", w, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(countBlocks(t, s)); n != 2*per {
		t.Errorf("Blocks: %d, want %d distinct", n, 2*per)
	}
}

// blockKey mirrors the store's documented key schema: 'b' + id.
func blockKey(id store.ID) []byte { return append([]byte{'b'}, id[:]...) }

func testCorrupt(t *testing.T, s *store.Store) {
	for name, data := range map[string][]byte{
		"raw":        random(4096),
		"compressed": compressible(64 << 10),
	} {
		t.Run(name, func(t *testing.T) {
			id := put(t, s, data)
			v, c, err := s.DB().Get(blockKey(id))
			if err != nil {
				t.Fatal(err)
			}
			v = bytes.Clone(v)
			c.Close()
			for _, off := range []int{len(v) - 1, len(v) / 2, 1, 0} {
				bad := bytes.Clone(v)
				bad[off] ^= 0x20
				if err := s.DB().Set(blockKey(id), bad, nil); err != nil {
					t.Fatal(err)
				}
				got, err := s.Get(ctx, id, nil)
				if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), id.String()) {
					t.Errorf("flip at %d/%d: Get = %d bytes, %v; want ErrCorrupt naming %s", off, len(v), len(got), err, id)
				}
				if got != nil {
					t.Errorf("flip at %d: Get returned %d bytes with the error", off, len(got))
				}
			}
		})
	}
}

func testGCWindow(t *testing.T, s *store.Store) {
	old := put(t, s, []byte("old, unreferenced"))
	reput := put(t, s, []byte("old, put again during GC"))
	retained := put(t, s, []byte("old, retained during GC"))
	batched := put(t, s, []byte("old, put by batch during GC"))
	w, err := s.BeginGC()
	if err != nil {
		t.Fatal(err)
	}
	defer w.End()
	put(t, s, []byte("old, put again during GC"))
	if err := s.Retain(ctx, retained); err != nil {
		t.Fatal(err)
	}
	b := s.DB().NewBatch()
	if _, err := s.PutBatch(ctx, b, []byte("old, put by batch during GC")); err != nil {
		t.Fatal(err)
	}
	b.Close() // dedup hit: nothing to commit, but the id must be protected
	fresh := put(t, s, []byte("new during GC"))
	missing := store.Sum([]byte("not stored"))
	before := countBlocks(t, s)
	n, size, err := w.Delete(ctx, []store.ID{old, reput, retained, batched, fresh, missing})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || size != before[old] {
		t.Errorf("Delete = %d blocks, %d bytes; want 1, %d", n, size, before[old])
	}
	if ok, _ := s.Has(ctx, old); ok {
		t.Error("unprotected block survived Delete")
	}
	for _, id := range []store.ID{reput, retained, batched, fresh} {
		if ok, _ := s.Has(ctx, id); !ok {
			t.Errorf("block %s recorded during the window was deleted", id)
		}
	}
	w.End()
	if _, _, err := w.Delete(ctx, []store.ID{reput}); err == nil {
		t.Error("Delete after End succeeded")
	}
	// A new window forgets the old records.
	w2, err := s.BeginGC()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.End()
	if n, _, err := w2.Delete(ctx, []store.ID{reput}); n != 1 || err != nil {
		t.Errorf("Delete in a new window = %d, %v; want 1", n, err)
	}
}

func testGCWindowSingle(t *testing.T, s *store.Store) {
	w, err := s.BeginGC()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginGC(); err == nil {
		t.Fatal("second BeginGC while one is open succeeded")
	}
	w.End()
	w2, err := s.BeginGC()
	if err != nil {
		t.Fatalf("BeginGC after End: %v", err)
	}
	w2.End()
}

func testRetainMissing(t *testing.T, s *store.Store) {
	id := store.Sum([]byte("missing"))
	if err := s.Retain(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Retain(missing) = %v; want ErrNotFound", err)
	}
	if err := s.Retain(ctx, put(t, s, []byte("present"))); err != nil {
		t.Fatalf("Retain(present) = %v", err)
	}
}

func testFetcher(t *testing.T, s *store.Store) {
	remote := map[store.ID][]byte{}
	data := compressible(70 << 10)
	remote[store.Sum(data)] = data
	var calls int
	s.SetFetcher(func(_ context.Context, id store.ID) ([]byte, error) {
		calls++
		if d, ok := remote[id]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("remote: %w", store.ErrNotFound)
	})
	id := store.Sum(data)
	get(t, s, id, data)
	get(t, s, id, data)
	if calls != 1 {
		t.Errorf("fetcher called %d times; want 1 (the block must be kept locally)", calls)
	}
	if ok, _ := s.Has(ctx, id); !ok {
		t.Error("fetched block not stored locally")
	}
	if _, err := s.Get(ctx, store.Sum([]byte("nowhere")), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing everywhere) = %v; want ErrNotFound", err)
	}
	other := []byte("retain fetches")
	remote[store.Sum(other)] = other
	if err := s.Retain(ctx, store.Sum(other)); err != nil {
		t.Errorf("Retain with fetcher = %v", err)
	}
	if ok, _ := s.Has(ctx, store.Sum(other)); !ok {
		t.Error("Retain did not store the fetched block")
	}
}

func testFetcherCorrupt(t *testing.T, s *store.Store) {
	id := store.Sum([]byte("genuine"))
	s.SetFetcher(func(context.Context, store.ID) ([]byte, error) { return []byte("forged"), nil })
	got, err := s.Get(ctx, id, nil)
	if !errors.Is(err, store.ErrCorrupt) || got != nil {
		t.Fatalf("Get with lying fetcher = %q, %v; want ErrCorrupt", got, err)
	}
	if ok, _ := s.Has(ctx, id); ok {
		t.Fatal("forged block was stored")
	}
	if n := len(countBlocks(t, s)); n != 0 {
		t.Fatalf("%d blocks stored after a forged fetch", n)
	}
}

func testBlocksStoredSize(t *testing.T, s *store.Store) {
	id := put(t, s, random(5000))
	if sz := countBlocks(t, s)[id]; sz < 5000 || sz > 5016 {
		t.Fatalf("stored size of 5000 random bytes = %d", sz)
	}
}
