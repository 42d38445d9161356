package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
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

var _ = errors.Is
var _ = store.ErrRemoteCorrupt
