package fs

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStBlocksFollowsWrites checks st_blocks through a mount, which the mount keeps up to
// date without counting after every write (fs/blocks.go), against a fresh count of what the
// workspace stores (StoredBytes), after random writes (appends, overwrites, writes past the
// end that leave holes), copy_file_range from a sparse file, truncates and punched holes. AGENTFS_BLOCKS_SEED replays a seed.
func TestStBlocksFollowsWrites(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_BLOCKS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (AGENTFS_BLOCKS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	r, m := mountMain(t)
	ws := r.workspace(t, "main")
	ctx := context.Background()
	p := filepath.Join(m.Dir(), "f")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 200<<10)
	for i := range buf {
		buf[i] = byte(1 + i%251)
	}
	// g: 1 MiB with data only in its first and ninth 64 KiB blocks, the source of copies.
	g, err := os.OpenFile(filepath.Join(m.Dir(), "g"), os.O_CREATE|os.O_RDWR, 0o644)
	must(t, err)
	defer g.Close()
	_, err = g.WriteAt(buf[:64<<10], 0)
	must(t, err)
	_, err = g.WriteAt(buf[:64<<10], 512<<10)
	must(t, err)
	must(t, g.Truncate(1<<20))
	size := int64(0)
	for step := range 200 {
		var what string
		switch k := rng.IntN(10); {
		case k < 6: // write: append, overwrite, or past the end
			off := rng.Int64N(size + 1)
			if rng.IntN(4) == 0 {
				off = size + rng.Int64N(300<<10)
			}
			n := 1 + rng.IntN(len(buf)-1)
			if rng.IntN(3) == 0 {
				n = 1 + rng.IntN(3000)
			}
			_, err = f.WriteAt(buf[:n], off)
			size = max(size, off+int64(n))
			what = "write " + strconv.Itoa(n) + " at " + strconv.FormatInt(off, 10)
		case k < 7: // copy_file_range from g (blocks shared, holes included)
			offIn, offOut := rng.Int64N(1<<20), rng.Int64N(size+1)
			n := 1 + rng.IntN(200<<10)
			var got int
			got, err = unix.CopyFileRange(int(g.Fd()), &offIn, int(f.Fd()), &offOut, n, 0)
			size = max(size, offOut)
			what = "copy " + strconv.Itoa(got) + " to " + strconv.FormatInt(offOut-int64(got), 10)
		case k < 8:
			size = rng.Int64N(size + 200<<10 + 1)
			err = f.Truncate(size)
			what = "truncate to " + strconv.FormatInt(size, 10)
		default:
			off, n := rng.Int64N(size+1), 1+rng.Int64N(200<<10)
			err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
			what = "punch " + strconv.FormatInt(n, 10) + " at " + strconv.FormatInt(off, 10)
		}
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, what, err)
		}
		var st syscall.Stat_t
		must(t, syscall.Stat(p, &st))
		in, err := ws.GetAttr(ctx, st.Ino)
		must(t, err)
		stored, err := ws.StoredBytes(ctx, in)
		must(t, err)
		want := (uint64(stored) + 511) / 512
		if in.Inline {
			want = (in.Size + 511) / 512
		}
		if st.Size != size || uint64(st.Blocks) != want {
			t.Fatalf("step %d, after %s: stat says size %d, st_blocks %d; the workspace stores size %d, %d blocks", step, what, st.Size, st.Blocks, size, want)
		}
	}
}
