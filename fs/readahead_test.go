package fs

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/store"
)

// TestReadAheadThroughMount reads a checkpointed file front to back through the mount in
// 128 KiB reads (FADV_RANDOM, so that the kernel sends exactly those READs): most blocks
// must come from the daemon's read-ahead (work.ReadAhead, one per file handle), every byte
// must be right, and a block corrupted on disk afterwards must fail the read that needs it
// with EIO, and only that read, although the read-ahead reads it first.
func TestReadAheadThroughMount(t *testing.T) {
	ctx := context.Background()
	r, m := mountMain(t)
	const blocks, chunk, bad = 64, 128 << 10, 37
	data := make([]byte, blocks*64<<10)
	rand.NewChaCha8([32]byte{17}).Read(data)
	path := filepath.Join(m.Dir(), "big.bin")
	must(t, os.WriteFile(path, data, 0o644))
	if _, err := r.e.Checkpoint(ctx, "main", "cp", ""); err != nil {
		t.Fatal(err)
	}
	readAll := func() (failed []int) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		must(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)) // the daemon serves every read
		must(t, unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM))
		buf := make([]byte, chunk)
		for off := 0; off < len(data); off += chunk {
			n, err := unix.Pread(fd, buf, int64(off))
			r.st.WaitBackground()
			if err == nil && n > 0 && n < chunk && bytes.Equal(buf[:n], data[off:off+n]) {
				// A short read stops before the bad block; the rest must fail.
				_, err = unix.Pread(fd, buf[n:], int64(off+n))
				if err == nil {
					t.Fatalf("read at %d: short (%d bytes) and the rest reads", off, n)
				}
			}
			if err != nil {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("read at %d: %v, want EIO or nothing", off, err)
				}
				failed = append(failed, off)
				continue
			}
			if n != chunk || !bytes.Equal(buf, data[off:off+chunk]) {
				t.Fatalf("read at %d: %d bytes, content differs from what was written", off, n)
			}
		}
		return failed
	}
	if failed := readAll(); len(failed) != 0 {
		t.Fatalf("reads at %v failed", failed)
	}
	hits := r.st.ReadAheadHits()
	t.Logf("%d of %d blocks came from the read-ahead", hits, blocks)
	if hits < blocks/2 {
		t.Fatalf("only %d of %d blocks came from the read-ahead", hits, blocks)
	}

	id := store.Sum(data[bad*64<<10 : (bad+1)*64<<10])
	key := append([]byte{'b'}, id[:]...)
	v, c, err := r.st.DB().Get(key)
	if err != nil {
		t.Fatal(err)
	}
	rotten := bytes.Clone(v)
	c.Close()
	rotten[1+100] ^= 1
	must(t, r.st.DB().Set(key, rotten, nil))
	if r.st.Prefetched(id) {
		t.Fatal("the corrupt block is still kept from the first read")
	}
	failed := readAll()
	if want := bad * 64 << 10 / chunk * chunk; len(failed) != 1 || failed[0] != want {
		t.Fatalf("failed reads at %v, want only the one at %d", failed, want)
	}
	if r.st.ReadAheadHits() <= hits {
		t.Fatal("the second read took nothing from the read-ahead")
	}
}
