package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// duBytes is what a directory takes on disk (du), in bytes.
func duBytes(t testing.TB, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i, c := range out {
		if c < '0' || c > '9' {
			n, _ = strconv.ParseInt(string(out[:i]), 10, 64)
			break
		}
	}
	return n
}

// A copy inside a branch (cp: copy_file_range) shares the source's blocks: the write-ahead
// log takes a few bytes per 64 KiB block instead of the data (the old path wrote every byte
// as working pages, then folded and deduplicated them at the checkpoint), and after
// checkpoints the repository grows by less than 1 MiB. AGENTFS_CLONE_MIB sets the size
// (default 64; the figure is 1024).
func TestCopyFileRangeSharesBlocks(t *testing.T) {
	mib := 64
	if v, err := strconv.Atoi(os.Getenv("AGENTFS_CLONE_MIB")); err == nil && v > 0 {
		mib = v
	}
	r, m := mountMain(t)
	ctx := context.Background()
	src := filepath.Join(m.Dir(), "big")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, int64(mib)<<20+12345); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkpoint := func() time.Duration {
		start := time.Now()
		if _, err := r.e.Checkpoint(ctx, "main", "", ""); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		// Settle Pebble (flush the memtable, drop the logs it replaces) so du compares
		// stored data, not write-ahead logs.
		if err := r.st.CompactAll(ctx); err != nil {
			t.Fatal(err)
		}
		r.st.WaitReclaimed(ctx, 30*time.Second)
		return took
	}
	checkpoint()
	before := duBytes(t, r.dir)
	wal := r.st.DB().Metrics().WAL.BytesIn
	start := time.Now()
	if out, err := exec.Command("cp", src, filepath.Join(m.Dir(), "copy")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cpTook := time.Since(start)
	logged := r.st.DB().Metrics().WAL.BytesIn - wal
	ckTook := checkpoint()
	after := duBytes(t, r.dir)
	t.Logf("cp of %d MiB inside a branch: %v, %d bytes into the write-ahead log; checkpoint %v; repository %d -> %d bytes (+%d)",
		mib, cpTook.Round(time.Millisecond), logged, ckTook.Round(time.Millisecond), before, after, after-before)
	if logged > uint64(mib)<<20/8 {
		t.Errorf("the copy wrote %d bytes to the write-ahead log for %d MiB: its blocks were copied, not shared", logged, mib)
	}
	if after-before >= 1<<20 {
		t.Errorf("the copy grew the repository by %d bytes, want < 1 MiB", after-before)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(filepath.Join(m.Dir(), "copy"))
	if string(a) != string(b) {
		t.Fatal("the copy differs")
	}
}

// TestCopyFileRangeDifferential: copy_file_range between and within files of a mount, at
// aligned and unaligned offsets, over committed blocks and working pages, past the source's
// end and over the middle of a longer file, gives the same files and counts as on a plain
// directory.
func TestCopyFileRangeDifferential(t *testing.T) {
	r, m := mountMain(t)
	plain := t.TempDir()
	data := make([]byte, 5*64<<10+777)
	rand.Read(data)
	for _, dir := range []string{m.Dir(), plain} {
		if err := os.WriteFile(filepath.Join(dir, "src"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "long"), bytes.Repeat([]byte{'x'}, 9*64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "small"), bytes.Repeat([]byte{'s'}, 100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Half the source committed (blocks), then pages over part of it.
	if _, err := r.e.Checkpoint(context.Background(), "main", "", ""); err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte{'p'}, 10000)
	for _, dir := range []string{m.Dir(), plain} {
		f, err := os.OpenFile(filepath.Join(dir, "src"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(patch, 70000)
		f.Close()
	}
	cases := []struct {
		dst           string
		offIn, offOut int64
		n             int
	}{
		{"all", 0, 0, len(data) + 100},           // whole blocks and the source's tail
		{"shifted", 64 << 10, 192 << 10, 200000}, // aligned, other blocks
		{"same-misalign", 100, 65636, 200000},    // shares after a byte head
		{"unaligned", 1, 2, 150000},              // bytes only
		{"long", 65536, 65536, 131072},           // over the middle of a longer file
		{"long", 3, 5*64<<10 + 3, 64 << 10},      // unaligned into it
		{"src", 0, 6 * 64 << 10, 2 * 64 << 10},   // within the source, past its end
		{"small", 0, 0, 2 * 64 << 10},            // over a small file kept in its inode
	}
	for i, c := range cases {
		var got [2]int
		for k, dir := range []string{m.Dir(), plain} {
			in, err := os.Open(filepath.Join(dir, "src"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.OpenFile(filepath.Join(dir, c.dst), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			offIn, offOut := c.offIn, c.offOut
			got[k], err = unix.CopyFileRange(int(in.Fd()), &offIn, int(out.Fd()), &offOut, c.n, 0)
			if err != nil {
				t.Fatalf("case %d on %s: %v", i, dir, err)
			}
			in.Close()
			out.Close()
		}
		if got[0] != got[1] {
			t.Errorf("case %d: copied %d on the mount, %d on a plain directory", i, got[0], got[1])
		}
		for _, name := range []string{"src", c.dst} {
			a, errA := os.ReadFile(filepath.Join(m.Dir(), name))
			b, errB := os.ReadFile(filepath.Join(plain, name))
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Fatalf("case %d: %s differs (%d bytes on the mount, %d on a plain directory; %v %v)", i, name, len(a), len(b), errA, errB)
			}
		}
	}
	// And after a checkpoint (the shared blocks fold like any other).
	if _, err := r.e.Checkpoint(context.Background(), "main", "", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"src", "all", "shifted", "same-misalign", "unaligned", "long", "small"} {
		a, _ := os.ReadFile(filepath.Join(m.Dir(), name))
		b, _ := os.ReadFile(filepath.Join(plain, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after a checkpoint", name)
		}
	}
}
