package work

import (
	"context"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// BenchmarkColdSequentialRead reads a file written through the working layer after the
// store is reopened and the kernel's caches are dropped (root only): the daemon side of the
// cold sequential read row, without FUSE, in 128 KiB reads (AGENTFS_COLD_CHUNK_KIB) of a
// 256 MiB file (AGENTFS_COLD_MIB). AGENTFS_COLD_FOLDED=1 folds the file into blocks first (a
// checkpointed file); otherwise it is read from working pages. AGENTFS_COLD_NOAHEAD=1 reads
// without read-ahead, for an A/B comparison.
func BenchmarkColdSequentialRead(b *testing.B) {
	if unix.Geteuid() != 0 {
		b.Skip("dropping the kernel caches needs root")
	}
	ctx := context.Background()
	size := int64(256 << 20)
	if s, err := strconv.ParseInt(os.Getenv("AGENTFS_COLD_MIB"), 10, 64); err == nil {
		size = s << 20
	}
	chunk := 128 << 10
	if s, err := strconv.Atoi(os.Getenv("AGENTFS_COLD_CHUNK_KIB")); err == nil {
		chunk = s << 10
	}
	dir := b.TempDir()
	open := func() (*store.Store, *Env) {
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var ino atomic.Uint64
		ino.Store(RootIno + 100)
		return st, &Env{
			Store: st, Tree: tree.New(st, 1024), Now: time.Now, Log: log.Default(),
			AllocIno: func() (uint64, error) { return ino.Add(1), nil },
			Op:       func() func() { return func() {} },
		}
	}
	st, env := open()
	root := &Inode{Ino: RootIno, Mode: 0o40755, Nlink: 2, Parent: RootIno}
	rootID, err := env.Tree.Apply(ctx, store.ID{}, []tree.Mutation{{Key: InodeKey(RootIno), Value: EncodeInode(root)}})
	if err != nil {
		b.Fatal(err)
	}
	ws := New(env, "main", 1, rootID, store.ID{})
	n, err := ws.Create(ctx, RootIno, "f", Attr{Mode: 0o644})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	r := rand.NewChaCha8([32]byte{1})
	for off := int64(0); off < size; off += int64(len(buf)) {
		r.Read(buf)
		if _, err := ws.Write(ctx, n.Ino, off, buf); err != nil {
			b.Fatal(err)
		}
	}
	overlay := uint64(1)
	if os.Getenv("AGENTFS_COLD_FOLDED") == "1" {
		ws.mu.Lock()
		rootID, _, err = ws.fold(ctx)
		ws.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		overlay = 2
	}
	if err := st.Sync(); err != nil {
		b.Fatal(err)
	}
	st.Close()
	b.SetBytes(size)
	dest := make([]byte, chunk)
	for b.Loop() {
		b.StopTimer()
		unix.Sync()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			b.Fatal(err)
		}
		st, env := open()
		ws := New(env, "main", overlay, rootID, store.ID{})
		var ra *ReadAhead
		if os.Getenv("AGENTFS_COLD_NOAHEAD") != "1" {
			ra = &ReadAhead{}
		}
		b.StartTimer()
		if rn, _ := strconv.Atoi(os.Getenv("AGENTFS_COLD_RANDOM")); rn > 0 {
			// rn random 4 KiB reads instead; reports their median.
			rng := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, rn)
			for i := range lat {
				t := time.Now()
				if _, err := ws.Read(ctx, n.Ino, rng.Int64N(size/PageSize)*PageSize, dest[:PageSize]); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[rn/2].Microseconds()), "p50-µs")
		}
		for off := int64(0); off < size && os.Getenv("AGENTFS_COLD_RANDOM") == ""; off += int64(chunk) {
			if _, err := ws.ReadAt(ctx, ra, n.Ino, off, dest); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
}
