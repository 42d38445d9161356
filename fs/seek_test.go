package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSeekDataHoleKeys: SEEK_DATA and SEEK_HOLE over committed blocks, holes between
// blocks, a punched page inside a committed block and working pages, before and after a
// checkpoint, agree with the file's layout (they read keys, not content).
func TestSeekDataHoleKeys(t *testing.T) {
	r, m := mountMain(t)
	p := filepath.Join(m.Dir(), "f")
	const blk = 64 << 10
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Data in blocks 0 and 3, a hole in blocks 1-2, data in block 5 up to the end.
	for _, at := range []int64{0, 3 * blk, 5 * blk} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{'d'}, blk), at); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want [][3]int64) {
		t.Helper()
		for _, w := range want {
			whence := unix.SEEK_DATA
			if w[1] == 1 {
				whence = unix.SEEK_HOLE
			}
			got, err := unix.Seek(int(f.Fd()), w[0], whence)
			if w[2] < 0 {
				if !errors.Is(err, unix.ENXIO) {
					t.Errorf("%s: seek(%d, %d) = %d %v, want ENXIO", when, w[0], whence, got, err)
				}
				continue
			}
			if err != nil || got != w[2] {
				t.Errorf("%s: seek(%d, %d) = %d %v, want %d", when, w[0], whence, got, err, w[2])
			}
		}
	}
	const data, hole = 0, 1
	layout := [][3]int64{
		{0, hole, blk}, {0, data, 0}, {blk + 5, data, 3 * blk}, {3*blk + 7, hole, 4 * blk},
		{4 * blk, data, 5 * blk}, {5 * blk, hole, 6 * blk}, {6 * blk, data, -1},
	}
	check("working pages", layout)
	if _, err := r.e.Checkpoint(context.Background(), "main", "", ""); err != nil {
		t.Fatal(err)
	}
	check("committed blocks", layout)
	// A punched page inside committed block 3 is a hole; the rest of the block is data.
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 3*blk+8192, 4096); err != nil {
		t.Fatal(err)
	}
	check("a punched page", [][3]int64{{3 * blk, hole, 3*blk + 8192}, {3*blk + 8192, data, 3*blk + 12288}})
}
