package fs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	diffOps  = flag.Int("agentfs.diffops", envInt("AGENTFS_DIFF_OPS", 5000), "operations per differential run (env AGENTFS_DIFF_OPS)")
	diffSeed = flag.Uint64("agentfs.diffseed", uint64(envInt("AGENTFS_DIFF_SEED", 0)), "seed of the differential run; 0 = random (env AGENTFS_DIFF_SEED)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestDifferential applies one random sequence of file operations to an agentfs mount and to
// a directory of the host's filesystem, compares the errno of every operation, and compares
// the two trees after every batch.
func TestDifferential(t *testing.T) {
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -agentfs.diffseed=%d or AGENTFS_DIFF_SEED=%d)", seed, seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	_, m := mountMain(t)
	// The roots are two levels down, so that a relative symlink target with ".." that climbs
	// out of the root resolves to the same (missing) names on both sides.
	roots := []string{filepath.Join(m.Dir(), "r", "w"), filepath.Join(t.TempDir(), "r", "w")}
	for _, r := range roots {
		if err := os.MkdirAll(r, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dirs := []string{"", "a", "b", "a/c", "b/c/d"}
	names := []string{"a", "b", "c", "x", "y", "z"}
	path := func() string { return filepath.Join(dirs[rng.IntN(len(dirs))], names[rng.IntN(len(names))]) }
	targets := []string{"a", "x", "../a", "../x/y", "nonexistent", "c/d"}
	offset := func() int64 {
		switch rng.IntN(3) {
		case 0:
			return int64(rng.IntN(4096))
		case 1: // around a 64 KiB block boundary
			return int64(rng.IntN(4))*65536 + int64(rng.IntN(200))
		}
		return int64(rng.IntN(300 << 10))
	}
	payload := func() []byte {
		b := make([]byte, []int{1, 100, 3000, 70000}[rng.IntN(4)]+rng.IntN(50))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	const batch = 100
	for i := 0; i < *diffOps; i++ {
		var desc string
		var op func(root string) error
		p, q := path(), path()
		switch k := rng.IntN(15); k {
		case 0, 1:
			off, data := offset(), payload()
			desc = fmt.Sprintf("pwrite %s off %d len %d", p, off, len(data))
			op = func(r string) error {
				fd, err := syscall.Open(filepath.Join(r, p), syscall.O_WRONLY|syscall.O_CREAT, 0o644)
				if err != nil {
					return err
				}
				defer syscall.Close(fd)
				_, err = syscall.Pwrite(fd, data, off)
				return err
			}
		case 2:
			data := payload()
			desc = fmt.Sprintf("append %s len %d", p, len(data))
			op = func(r string) error {
				fd, err := syscall.Open(filepath.Join(r, p), syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT, 0o644)
				if err != nil {
					return err
				}
				defer syscall.Close(fd)
				_, err = syscall.Write(fd, data)
				return err
			}
		case 3:
			size := offset()
			desc = fmt.Sprintf("truncate %s %d", p, size)
			op = func(r string) error { return syscall.Truncate(filepath.Join(r, p), size) }
		case 4, 5:
			desc = fmt.Sprintf("rename %s %s", p, q)
			op = func(r string) error { return syscall.Rename(filepath.Join(r, p), filepath.Join(r, q)) }
		case 6:
			desc = fmt.Sprintf("link %s %s", p, q)
			op = func(r string) error { return syscall.Link(filepath.Join(r, p), filepath.Join(r, q)) }
		case 7:
			tg := targets[rng.IntN(len(targets))]
			desc = fmt.Sprintf("symlink %s -> %s", p, tg)
			op = func(r string) error { return syscall.Symlink(tg, filepath.Join(r, p)) }
		case 8:
			desc = "unlink " + p
			op = func(r string) error { return syscall.Unlink(filepath.Join(r, p)) }
		case 9, 10:
			d := dirs[1+rng.IntN(len(dirs)-1)]
			if rng.IntN(2) == 0 {
				d = p
			}
			desc = "mkdir " + d
			op = func(r string) error { return syscall.Mkdir(filepath.Join(r, d), 0o755) }
		case 11:
			desc = "rmdir " + p
			op = func(r string) error { return syscall.Rmdir(filepath.Join(r, p)) }
		case 12:
			mode := uint32([]int{0o644, 0o600, 0o755, 0o4755, 0o2775, 0o1777}[rng.IntN(6)])
			desc = fmt.Sprintf("chmod %s %o", p, mode)
			op = func(r string) error { return syscall.Chmod(filepath.Join(r, p), mode) }
		case 13:
			ts := []unix.Timespec{unix.NsecToTimespec(rng.Int64N(1e18)), unix.NsecToTimespec(rng.Int64N(1e18))}
			desc = "utimes " + p
			op = func(r string) error { return unix.UtimesNano(filepath.Join(r, p), ts) }
		case 14:
			pl := payload()
			name, val := "user."+names[rng.IntN(3)], pl[:rng.IntN(min(40, len(pl)))]
			flags := []int{0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[rng.IntN(3)]
			desc = fmt.Sprintf("setxattr %s %s flags %d", p, name, flags)
			op = func(r string) error { return unix.Setxattr(filepath.Join(r, p), name, val, flags) }
		}
		e0, e1 := errnoOf(op(roots[0])), errnoOf(op(roots[1]))
		if e0 != e1 {
			t.Fatalf("op %d: %s: agentfs %v (%d), host %v (%d)", i, desc, e0, int(e0), e1, int(e1))
		}
		if (i+1)%batch == 0 || i == *diffOps-1 {
			compareTrees(t, roots[0], roots[1], i)
		}
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(0xffff)
}

// compareTrees fails the test at the first difference between two directory trees.
func compareTrees(t *testing.T, a, b string, op int) {
	t.Helper()
	var walk func(rel string)
	walk = func(rel string) {
		pa, pb := filepath.Join(a, rel), filepath.Join(b, rel)
		var sa, sb syscall.Stat_t
		ea, eb := syscall.Lstat(pa, &sa), syscall.Lstat(pb, &sb)
		if ea != nil || eb != nil {
			t.Fatalf("after op %d: lstat %q: agentfs %v, host %v", op, rel, ea, eb)
		}
		if sa.Mode != sb.Mode {
			t.Fatalf("after op %d: %q mode agentfs %o, host %o", op, rel, sa.Mode, sb.Mode)
		}
		if sa.Nlink != sb.Nlink {
			t.Fatalf("after op %d: %q nlink agentfs %d, host %d", op, rel, sa.Nlink, sb.Nlink)
		}
		switch sa.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			if sa.Size != sb.Size {
				t.Fatalf("after op %d: %q size agentfs %d, host %d", op, rel, sa.Size, sb.Size)
			}
			ca, err := os.ReadFile(pa)
			if err != nil {
				t.Fatalf("after op %d: read %q: %v", op, rel, err)
			}
			cb, _ := os.ReadFile(pb)
			if !bytes.Equal(ca, cb) {
				t.Fatalf("after op %d: %q content differs (len %d vs %d)", op, rel, len(ca), len(cb))
			}
		case syscall.S_IFLNK:
			la, _ := os.Readlink(pa)
			lb, _ := os.Readlink(pb)
			if la != lb {
				t.Fatalf("after op %d: %q symlink agentfs %q, host %q", op, rel, la, lb)
			}
		case syscall.S_IFDIR:
			na, nb := dirNames(t, pa), dirNames(t, pb)
			if fmt.Sprint(na) != fmt.Sprint(nb) {
				t.Fatalf("after op %d: %q listing agentfs %v, host %v", op, rel, na, nb)
			}
			for _, n := range na {
				walk(filepath.Join(rel, n))
			}
		}
	}
	walk("")
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}
