package fs

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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

// A copy inside a branch (cp: copy_file_range) shares the source's blocks: measured after
// checkpoints, the repository grows by less than 1 MiB. AGENTFS_CLONE_MIB sets the size
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
	if _, err := io.CopyN(f, rand.Reader, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkpoint := func() {
		if _, err := r.e.Checkpoint(ctx, "main", "", ""); err != nil {
			t.Fatal(err)
		}
		// Settle Pebble (flush the memtable, drop the logs it replaces) so du compares
		// stored data, not write-ahead logs.
		if err := r.st.CompactAll(ctx); err != nil {
			t.Fatal(err)
		}
		r.st.WaitReclaimed(ctx, 30*time.Second)
	}
	checkpoint()
	before := duBytes(t, r.dir)
	if out, err := exec.Command("cp", src, filepath.Join(m.Dir(), "copy")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	checkpoint()
	after := duBytes(t, r.dir)
	t.Logf("cp of %d MiB inside a branch: repository %d -> %d bytes (+%d)", mib, before, after, after-before)
	if after-before >= 1<<20 {
		t.Errorf("the copy grew the repository by %d bytes, want < 1 MiB", after-before)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(filepath.Join(m.Dir(), "copy"))
	if string(a) != string(b) {
		t.Fatal("the copy differs")
	}
}
