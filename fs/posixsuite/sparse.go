package posixsuite

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	Cases["PunchHoleAndSeekHole"] = punchHoleAndSeekHole
	Cases["ZeroRange"] = zeroRange
	Cases["SeekDataHoleSparse"] = seekDataHoleSparse
	Cases["FallocateExtends"] = fallocateExtends
	Cases["StBlocksSparse"] = stBlocksSparse
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251) + 1
	}
	return b
}

func openRW(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func seek(t *testing.T, f *os.File, off int64, whence int) (int64, error) {
	t.Helper()
	return unix.Seek(int(f.Fd()), off, whence)
}

// fallocate --punch-hole succeeds, the range reads as zeros, the size stays, and SEEK_HOLE
// finds the hole and SEEK_DATA the data after it.
func punchHoleAndSeekHole(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	data := pattern(1<<20, 7)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := openRW(t, p)
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 256<<10, 512<<10); err != nil {
		t.Fatalf("punch hole: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 1<<20 {
		t.Errorf("size after punch: %d", fi.Size())
	}
	got, _ := os.ReadFile(p)
	want := append([]byte(nil), data...)
	clear(want[256<<10 : 768<<10])
	if !bytes.Equal(got, want) {
		t.Error("content after punch differs")
	}
	if h, err := seek(t, f, 0, unix.SEEK_HOLE); err != nil || h != 256<<10 {
		t.Errorf("SEEK_HOLE from 0 = %d %v, want %d", h, err, 256<<10)
	}
	if d, err := seek(t, f, 300<<10, unix.SEEK_DATA); err != nil || d != 768<<10 {
		t.Errorf("SEEK_DATA from 300K = %d %v, want %d", d, err, 768<<10)
	}
	if h, err := seek(t, f, 800<<10, unix.SEEK_HOLE); err != nil || h != 1<<20 {
		t.Errorf("SEEK_HOLE in the last data = %d %v, want the end %d", h, err, 1<<20)
	}
	if _, err := seek(t, f, 1<<20, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
		t.Errorf("SEEK_DATA at the end: %v, want ENXIO", err)
	}
	// Unaligned punch: the partial pages are zeroed.
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 100, 50); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(p)
	clear(want[100:150])
	if !bytes.Equal(got, want) {
		t.Error("content after an unaligned punch differs")
	}
}

// ZERO_RANGE zeroes; without KEEP_SIZE it extends the file, with it it does not.
func zeroRange(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	data := pattern(100<<10, 3)
	os.WriteFile(p, data, 0o644)
	f := openRW(t, p)
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_ZERO_RANGE, 90<<10, 30<<10); err != nil {
		t.Fatalf("zero range: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 120<<10 {
		t.Errorf("size after zero-range past the end: %d, want %d", fi.Size(), 120<<10)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 10<<10, 200<<10); err != nil {
		t.Fatalf("zero range keep size: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 120<<10 {
		t.Errorf("size after zero-range with KEEP_SIZE: %d", fi.Size())
	}
	got, _ := os.ReadFile(p)
	want := make([]byte, 120<<10)
	copy(want, data[:10<<10])
	if !bytes.Equal(got, want) {
		t.Error("content after zero-range differs")
	}
}

// A file extended by truncate and written far out has a hole at its start.
func seekDataHoleSparse(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f := openRW(t, p)
	if _, err := f.WriteAt(pattern(4096, 1), 8<<20); err != nil {
		t.Fatal(err)
	}
	if d, err := seek(t, f, 0, unix.SEEK_DATA); err != nil || d != 8<<20 {
		t.Errorf("SEEK_DATA = %d %v, want %d", d, err, 8<<20)
	}
	if h, err := seek(t, f, 0, unix.SEEK_HOLE); err != nil || h != 0 {
		t.Errorf("SEEK_HOLE = %d %v, want 0", h, err)
	}
	if _, err := seek(t, f, 9<<20, unix.SEEK_HOLE); !errors.Is(err, unix.ENXIO) {
		t.Errorf("SEEK_HOLE past the end: %v, want ENXIO", err)
	}
}

// fallocate without flags extends the size; KEEP_SIZE does not.
func fallocateExtends(t *testing.T, dir string) {
	f := openRW(t, filepath.Join(dir, "f"))
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 1<<20 {
		t.Errorf("size %d", fi.Size())
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 4<<20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 1<<20 {
		t.Errorf("size after KEEP_SIZE %d", fi.Size())
	}
}

// st_blocks of a sparse file counts what is stored, not its size.
func stBlocksSparse(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f := openRW(t, p)
	if _, err := f.WriteAt(pattern(4096, 9), 64<<20); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 || st.Blocks == 0 {
		t.Errorf("a 64 MiB file holding 4 KiB has st_blocks %d (%d bytes)", st.Blocks, st.Blocks*512)
	}
}
