package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/work"
)

// seed returns the seed of a random test: $name if set (to replay a failure), else a new one.
// It is printed either way.
func seed(t *testing.T, name string) uint64 {
	t.Helper()
	s := rand.Uint64()
	if v := os.Getenv(name); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", s, name, s)
	return s
}

// lazySource pushes a branch of n files of random sizes up to maxSize plus one big file of
// bigSize bytes to url, in packs of packSize bytes, and returns the files.
func lazySource(t *testing.T, url string, rng *rand.Rand, n, maxSize, bigSize, packSize int) files {
	t.Helper()
	a := newRepo(t, remote.Options{PackSize: packSize})
	if _, err := a.Remotes.Add(ctx, "origin", url); err != nil {
		t.Fatal(err)
	}
	want := files{}
	fill := func(size int) []byte {
		d := make([]byte, size)
		for i := 0; i+8 <= len(d); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				d[i+j] = byte(v >> (8 * j))
			}
		}
		return d
	}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("d%d/f%03d.bin", i%3, i)] = fill(rng.IntN(maxSize + 1))
	}
	if bigSize > 0 {
		want["big.bin"] = fill(bigSize)
	}
	writeBranch(t, a, "main", want)
	if _, err := a.Remotes.Push(ctx, "origin", "main"); err != nil {
		t.Fatal(err)
	}
	return want
}

// readAt reads len(buf) bytes of path at off in branch main of r, through the workspace (the
// path a FUSE read takes).
func readAt(r *repo.Repo, path string, off int64, buf []byte) (int, error) {
	ws, err := r.Engine.Workspace(ctx, "main")
	if err != nil {
		return 0, err
	}
	ino, err := lookupPath(ws, path)
	if err != nil {
		return 0, err
	}
	return ws.Read(ctx, ino, off, buf)
}

// readSeq reads path whole in chunks of chunk bytes, as the kernel asks for a file read
// sequentially.
func readSeq(r *repo.Repo, path string, chunk int) ([]byte, error) {
	out := make([]byte, 0, 64<<20)
	buf := make([]byte, chunk)
	for {
		n, err := readAt(r, path, int64(len(out)), buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

type traffic struct{ gets, bytes int64 }

func trafficOf(r *repo.Repo) traffic {
	s := r.Remotes.Stats()
	return traffic{s.Gets.Load(), s.BytesDown.Load()}
}

func (a traffic) sub(b traffic) traffic { return traffic{a.gets - b.gets, a.bytes - b.bytes} }

// TestLazySequentialRead: a sequential reader of a lazy clone gets the source's bytes with
// few GETs (the read-ahead window grows, GETs are ranged over many blocks, and it carries on
// across packs), and fetches little it does not read.
func TestLazySequentialRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t, "AGENTFS_LAZY_SEED"), 1))
	for _, p := range []string{"file", "s3"} {
		t.Run(p, func(t *testing.T) {
			url := bucket(t, p)
			big := 24 << 20
			if v, _ := strconv.Atoi(os.Getenv("AGENTFS_LAZY_BIG_MB")); v > 0 {
				big = v << 20
			}
			want := lazySource(t, url, rng, 20, 300<<10, big, big/6)
			b, _ := cloneRepo(t, url, []string{"main"})
			before, start := trafficOf(b), time.Now()
			got, err := readSeq(b, "big.bin", 128<<10)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("sequential read: %v", err)
			}
			if !bytes.Equal(got, want["big.bin"]) {
				t.Fatalf("sequential read of a lazy clone differs from the source (%d bytes, want %d)", len(got), big)
			}
			tr := trafficOf(b).sub(before)
			t.Logf("read %d bytes sequentially in %v with %d GETs, %d bytes fetched", big, took, tr.gets, tr.bytes)
			if blocks := int64(big / (64 << 10)); tr.gets > blocks/8 {
				t.Errorf("%d GETs for %d blocks read in order: the read-ahead does not grow", tr.gets, blocks)
			}
			if tr.bytes > int64(big+big/2) {
				t.Errorf("fetched %d bytes to read %d", tr.bytes, big)
			}
			sameFiles(t, "whole branch", readBranch(t, b, "main"), want)
		})
	}
}

// bucket returns a fresh bucket of provider p ("file" or "s3").
func bucket(t *testing.T, p string) string {
	t.Helper()
	if p == "file" {
		return "file://" + t.TempDir()
	}
	srv := startS3(t)
	return s3URL(t, srv, srv.Endpoint, "lazy")
}

// randomReads reads 4 KiB at n random places of the files of want (seeded by rng) from r
// and checks each against want; it returns the reads' (path, offset) in order.
func randomReads(t *testing.T, r *repo.Repo, want files, rng *rand.Rand, n int) {
	t.Helper()
	var paths []string
	for p, d := range want {
		if len(d) > 0 {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	buf := make([]byte, 4<<10)
	for i := 0; i < n; i++ {
		p := paths[rng.IntN(len(paths))]
		off := rng.IntN(len(want[p]))
		k, err := readAt(r, p, int64(off), buf)
		if err != nil {
			t.Fatalf("read %s at %d: %v", p, off, err)
		}
		if w := want[p][off:min(off+len(buf), len(want[p]))]; !bytes.Equal(buf[:k], w) {
			t.Fatalf("read %s at %d: %d bytes differ from the source's %d", p, off, k, len(w))
		}
	}
}

// TestLazyRandomRead: a random reader of a lazy clone gets the source's bytes and costs about
// what fetching each block alone costs: no more GETs, few bytes it does not read. The same
// random reads on a clone without read-ahead are the measure.
func TestLazyRandomRead(t *testing.T) {
	sd := seed(t, "AGENTFS_LAZY_SEED")
	for _, p := range []string{"file", "s3"} {
		t.Run(p, func(t *testing.T) {
			url := bucket(t, p)
			want := lazySource(t, url, rand.New(rand.NewPCG(sd, 1)), 120, 400<<10, 16<<20, 8<<20)
			var tr [2]traffic
			for i, o := range []remote.Options{{ReadAhead: -1}, {}} {
				b, _ := cloneRepo(t, url, []string{"main"}, o)
				before := trafficOf(b)
				randomReads(t, b, want, rand.New(rand.NewPCG(sd, 2)), 200)
				tr[i] = trafficOf(b).sub(before)
			}
			t.Logf("200 random 4 KiB reads of %d bytes of files: %d GETs, %d bytes without read-ahead; %d GETs, %d bytes with it", size(want), tr[0].gets, tr[0].bytes, tr[1].gets, tr[1].bytes)
			// Random reads sometimes land on three blocks in a row of a pack (it holds many
			// small files), or on the next marker of a stream, and look sequential: that
			// fetches a window ahead (measured: 0-15% more bytes, 25% at worst).
			if tr[1].gets > tr[0].gets+tr[0].gets/10 || tr[1].bytes > tr[0].bytes+tr[0].bytes*3/10 {
				t.Errorf("a random reader costs more with read-ahead: %+v, without %+v", tr[1], tr[0])
			}
		})
	}
}

// TestLazyReadCorrupt: a corrupt block in the middle of what a sequential reader reads ahead
// fails the read that needs it, with the usual error (remote_corrupt), every time; the blocks
// around it, fetched in the same GETs, read right; and the read-ahead goes on after it.
// Plain and encrypted (each pack entry sealed alone) buckets, file:// and S3.
func TestLazyReadCorrupt(t *testing.T) {
	sd := seed(t, "AGENTFS_LAZY_SEED")
	for _, enc := range []bool{false, true} {
		for _, p := range []string{"file", "s3"} {
			t.Run(fmt.Sprintf("%s/encrypted=%v", p, enc), func(t *testing.T) {
				if enc {
					t.Setenv("AGENTFS_REMOTE_KEY", strings.Repeat("cd", 32))
				}
				url := bucket(t, p)
				const big = 4 << 20
				want := lazySource(t, url, rand.New(rand.NewPCG(sd, 3)), 0, 0, big, 16<<20)
				bk, err := backends.Open(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				defer bk.Close()
				var packs []string
				var data backends.ObjectInfo
				if err := bk.List(ctx, "packs/", func(o backends.ObjectInfo) error {
					packs = append(packs, o.Key)
					if o.Size > data.Size {
						data = o
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if len(packs) != 2 {
					t.Fatalf("%d packs, want 2 (data, then tree nodes): %v", len(packs), packs)
				}
				rc, err := bk.Get(ctx, data.Key, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				pack, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				pack[len(pack)/2] ^= 0x10 // a block near the middle of the file
				if err := bk.Put(ctx, data.Key, bytes.NewReader(pack), int64(len(pack))); err != nil {
					t.Fatal(err)
				}

				b, _ := cloneRepo(t, url, []string{"main"})
				before := trafficOf(b)
				const blk = 64 << 10
				buf := make([]byte, blk)
				bad := -1
				for i := 0; i < big/blk; i++ {
					n, err := readAt(b, "big.bin", int64(i*blk), buf)
					if err != nil {
						if !errors.Is(err, store.ErrRemoteCorrupt) {
							t.Fatalf("block %d: %v, want a remote corruption error", i, err)
						}
						if bad >= 0 {
							t.Fatalf("blocks %d and %d fail; one byte was flipped: %v", bad, i, err)
						}
						bad = i
						continue
					}
					if !bytes.Equal(buf[:n], want["big.bin"][i*blk:(i+1)*blk]) {
						t.Fatalf("block %d differs from the source", i)
					}
				}
				if bad < 0 {
					t.Fatal("no read failed after a byte of the pack was flipped")
				}
				tr := trafficOf(b).sub(before)
				t.Logf("block %d of %d corrupt; read in order with %d GETs, %d bytes", bad, big/blk, tr.gets, tr.bytes)
				if tr.gets > big/blk/4 {
					t.Errorf("%d GETs for %d blocks read in order around a corrupt one: the read-ahead stopped", tr.gets, big/blk)
				}
				for try := 0; try < 2; try++ {
					if _, err := readAt(b, "big.bin", int64(bad*blk), buf); !errors.Is(err, store.ErrRemoteCorrupt) {
						t.Fatalf("reading the corrupt block again: %v, want a remote corruption error", err)
					}
				}
			})
		}
	}
}

// TestLazyReadConcurrent: readers of the same files at once, sequential and random, all get
// the source's bytes, and a block is not fetched twice (the same file read by four readers
// at once costs about one read), also with a window so small that memory runs out. Run it
// under -race.
func TestLazyReadConcurrent(t *testing.T) {
	sd := seed(t, "AGENTFS_LAZY_SEED")
	for _, tc := range []struct {
		name, provider string
		o              remote.Options
	}{
		{"file", "file", remote.Options{}},
		{"s3", "s3", remote.Options{}},
		// A window of two blocks: 512 KiB of memory for all readers, so markers are dropped.
		{"file/small-window", "file", remote.Options{ReadAhead: 128 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := bucket(t, tc.provider)
			const big = 8 << 20
			want := lazySource(t, url, rand.New(rand.NewPCG(sd, 4)), 30, 300<<10, big, 3<<20)
			b, _ := cloneRepo(t, url, []string{"main"}, tc.o)
			before := trafficOf(b)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := 0; i < 4; i++ {
				wg.Add(2)
				go func() {
					defer wg.Done()
					got, err := readSeq(b, "big.bin", (64<<10)*(i+1))
					if err == nil && !bytes.Equal(got, want["big.bin"]) {
						err = fmt.Errorf("sequential reader %d: content differs from the source", i)
					}
					if err != nil {
						errs <- err
					}
				}()
				go func() {
					defer wg.Done()
					randomReads(t, b, want, rand.New(rand.NewPCG(sd, uint64(10+i))), 50)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			tr := trafficOf(b).sub(before)
			t.Logf("4 sequential readers of %d bytes and 4 random ones at once: %d GETs, %d bytes; %d blocks read ahead dropped unread", big, tr.gets, tr.bytes, b.Remotes.Stats().AheadDropped.Load())
			if total := size(want); tr.bytes > total+total/4 {
				t.Errorf("fetched %d bytes for %d bytes of files", tr.bytes, total)
			}
			sameFiles(t, "whole branch", readBranch(t, b, "main"), want)
		})
	}
}

// TestLazyReadAcrossPacks: a sequential reader of a file that push split across several packs
// finds, before it gets there, the next pack read ahead: the read-ahead goes on where the
// file goes on (the reader tells which block comes next), so the reader waits for no block
// after the window's first ones. Also with a reader that a FUSE handle's read-ahead knows to
// be sequential (store.Streaming: a larger first window).
func TestLazyReadAcrossPacks(t *testing.T) {
	sd := seed(t, "AGENTFS_LAZY_SEED")
	for _, tc := range []struct {
		p         string
		streaming bool
	}{{"file", false}, {"s3", false}, {"file", true}} {
		p := tc.p
		t.Run(fmt.Sprintf("%s/streaming=%v", p, tc.streaming), func(t *testing.T) {
			url := bucket(t, p)
			const big, pack = 12 << 20, 2 << 20
			want := lazySource(t, url, rand.New(rand.NewPCG(sd, 5)), 0, 0, big, pack)
			bk, err := backends.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer bk.Close()
			packs := 0
			if err := bk.List(ctx, "packs/", func(backends.ObjectInfo) error { packs++; return nil }); err != nil {
				t.Fatal(err)
			}
			packs-- // the tree nodes' pack; the others hold the file's blocks, in order
			if packs < 4 {
				t.Fatalf("the file is in %d packs; the test wants at least 4", packs)
			}
			b, _ := cloneRepo(t, url, []string{"main"})
			st := b.Remotes.Stats()
			var ra *work.ReadAhead
			if tc.streaming {
				ra = &work.ReadAhead{}
			}
			got, err := readSeqAhead(b, "big.bin", 128<<10, ra)
			if err != nil {
				t.Fatalf("sequential read: %v", err)
			}
			if !bytes.Equal(got, want["big.bin"]) {
				t.Fatal("sequential read of a lazy clone differs from the source")
			}
			t.Logf("%d packs; %d read ahead before the reader got there; the reader waited for %d blocks nothing had fetched", packs, st.AheadPacks.Load(), st.Misses.Load())
			if n := st.AheadPacks.Load(); n != int64(packs-1) {
				t.Errorf("%d of the %d packs after the first were read ahead before the reader got there", n, packs-1)
			}
			// The first three reads are fetched alone (the reader may be a random one).
			if n := st.Misses.Load(); n > 3 {
				t.Errorf("the reader asked for %d blocks that were not read ahead, want 3", n)
			}
		})
	}
}

// readSeqAhead is readSeq through read-ahead state ra (a FUSE handle's), nil for none.
func readSeqAhead(r *repo.Repo, path string, chunk int, ra *work.ReadAhead) ([]byte, error) {
	ws, err := r.Engine.Workspace(ctx, "main")
	if err != nil {
		return nil, err
	}
	ino, err := lookupPath(ws, path)
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := ws.ReadAt(ctx, ra, ino, int64(len(out)), buf)
		if err != nil || n == 0 {
			return out, err
		}
		out = append(out, buf[:n]...)
	}
}
