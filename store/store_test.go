package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/store/storetest"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var ctx = context.Background()

func openT(t *testing.T, dir string, o store.Options) *store.Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = log.New(io.Discard, "", 0) // corruption tests log on purpose
	}
	s, err := store.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformanceDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store { return openT(t, t.TempDir(), store.Options{}) })
}

func TestConformanceMem(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		return openT(t, "db", store.Options{FS: vfs.NewMem()})
	})
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Put(ctx, []byte("persist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, store.Options{})
	if got, err := s.Get(ctx, id, nil); err != nil || string(got) != "persist" {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Put(ctx, []byte("ro"))
	s.Close()
	s = openT(t, dir, store.Options{ReadOnly: true})
	if got, err := s.Get(ctx, id, nil); err != nil || string(got) != "ro" {
		t.Fatalf("read-only Get: %q, %v", got, err)
	}
	if _, err := s.Put(ctx, []byte("no")); err == nil {
		t.Fatal("Put on a read-only store succeeded")
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, store.Options{})
	// The same path, a symlink to it, and another process: all must fail while it is open.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, link} {
		s, err := store.Open(d, store.Options{})
		if !errors.Is(err, store.ErrLocked) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("second Open(%s) = %v; want ErrLocked", d, err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedChild$")
	cmd.Env = append(os.Environ(), "STORE_LOCKED_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if !bytes.Contains(out, []byte("CHILD: ErrLocked")) {
		t.Fatalf("Open from another process: %v\n%s", err, out)
	}

	fs := vfs.NewMem()
	openT(t, "db", store.Options{FS: fs})
	if _, err := store.Open("db", store.Options{FS: fs}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open on a MemFS = %v; want ErrLocked", err)
	}
}

// TestLockedChild is TestLocked's other process.
func TestLockedChild(t *testing.T) {
	dir := os.Getenv("STORE_LOCKED_DIR")
	if dir == "" {
		t.Skip("run by TestLocked only")
	}
	s, err := store.Open(dir, store.Options{})
	if errors.Is(err, store.ErrLocked) {
		fmt.Println("CHILD: ErrLocked")
		return
	}
	if err == nil {
		s.Close()
	}
	t.Fatalf("Open of a locked dir from another process = %v", err)
}

// TestCrash: every block Put before Sync survives a crash; unsynced blocks may be lost, but
// whatever survives reads back verified.
func TestCrash(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, seed))
		fs := vfs.NewCrashableMem()
		s, err := store.Open("db", store.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		// Large writes make Pebble sync its WAL in the background, which would hide a missing
		// Sync; so even seeds write only small blocks, odd seeds large ones after the Sync.
		block := func(i int) []byte {
			n := 1 + rng.IntN(512)
			if seed%2 == 1 && i >= 50 {
				n = 1 + rng.IntN(40<<10)
			}
			b := bytes.Repeat([]byte{byte(i), byte(seed)}, n)
			if i%2 == 0 {
				for j := range b {
					b[j] ^= byte(rng.Uint32())
				}
			}
			return b
		}
		synced, unsynced := map[store.ID][]byte{}, map[store.ID][]byte{}
		for i := range 50 {
			d := block(i)
			id, err := s.Put(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			synced[id] = d
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		for i := 50; i < 100; i++ {
			d := block(i)
			id, err := s.Put(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			unsynced[id] = d
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: int(seed * 12), RNG: rand.New(rand.NewPCG(seed, 1))})
		s.Close()

		s2 := openT(t, "db", store.Options{FS: crashed})
		for id, want := range synced {
			got, err := s2.Get(ctx, id, nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("seed %d: synced block %s after crash: %d bytes, %v", seed, id, len(got), err)
			}
		}
		err = s2.Blocks(ctx, func(id store.ID, _ int64) error {
			got, err := s2.Get(ctx, id, nil)
			if err != nil {
				return err
			}
			if _, ok := synced[id]; !ok && !bytes.Equal(got, unsynced[id]) {
				t.Errorf("seed %d: block %s present after crash but never put", seed, id)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func TestCorruptLogged(t *testing.T) {
	var logBuf bytes.Buffer
	s := openT(t, t.TempDir(), store.Options{Logger: log.New(&logBuf, "", 0)})
	id, _ := s.Put(ctx, []byte("will rot"))
	s.DB().Set(append([]byte{'b'}, id[:]...), []byte("\x00will rOt"), nil)
	if _, err := s.Get(ctx, id, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get = %v", err)
	}
	if n := bytes.Count(logBuf.Bytes(), []byte(id.String())); n != 1 {
		t.Fatalf("log has %d lines naming the block, want 1:\n%s", n, logBuf.String())
	}
}

func TestParseID(t *testing.T) {
	id := store.Sum([]byte("x"))
	got, err := store.ParseID(id.String())
	if err != nil || got != id || len(id.String()) != 64 {
		t.Fatalf("ParseID(String()) = %s, %v", got, err)
	}
	for _, bad := range []string{"", id.String()[:63], id.String() + "0", "zz" + id.String()[2:]} {
		if _, err := store.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
	if !(store.ID{}).IsZero() || id.IsZero() {
		t.Error("IsZero wrong")
	}
}

// BenchmarkPut: the hot path. Compressible 64 KiB blocks, new content each time.
func BenchmarkPut(b *testing.B) {
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("func (s *Store) Put(ctx context.Context, data []byte) (ID, error)\n"), 1000)[:64<<10]
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		copy(data, fmt.Appendf(nil, "%016x", i))
		if _, err := s.Put(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutDedup: content already stored (the dedup check only).
func BenchmarkPutDedup(b *testing.B) {
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("x"), 64<<10)
	s.Put(ctx, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("func (s *Store) Put(ctx context.Context, data []byte) (ID, error)\n"), 1000)[:64<<10]
	id, _ := s.Put(ctx, data)
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = s.Get(ctx, id, buf); err != nil {
			b.Fatal(err)
		}
	}
}
