package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// snapshot records a tree as path -> description (type, mode, size, content hash or target).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		d := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			d += fmt.Sprintf(" %x", sha256.Sum256(b))
		case fi.Mode()&os.ModeSymlink != 0:
			tg, err := os.Readlink(p)
			if err != nil {
				return err
			}
			d += " -> " + tg
		case fi.IsDir():
			d = fmt.Sprintf("%v", fi.Mode())
		}
		out[rel] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stats returns "mode size" of each path (missing ones as "missing"), by lstat only: no
// directory listing (READDIRPLUS refreshes attributes) and no read, so the kernel answers
// from its caches where it has them.
func stats(t *testing.T, root string, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		fi, err := os.Lstat(filepath.Join(root, p))
		switch {
		case errors.Is(err, os.ErrNotExist):
			out[p] = "missing"
		case err != nil:
			t.Fatal(err)
		case fi.IsDir():
			out[p] = fi.Mode().String()
		default:
			out[p] = fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		}
	}
	return out
}

func keys(ms ...map[string]string) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			out = append(out, k)
		}
	}
	return out
}

func diffSnapshots(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s missing (want %s)", what, p, w)
		} else if g != w {
			t.Errorf("%s: %s is %s, want %s", what, p, g, w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s should not exist (is %s)", what, p, g)
		}
	}
}

func writeTree(t *testing.T, root string, tag string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(root, "d/e"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "small.txt"), []byte("small "+tag), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "d/e/big.bin"), bytes.Repeat([]byte(tag), 300<<10/len(tag)), 0o600))
	must(t, os.WriteFile(filepath.Join(root, "d/"+tag), []byte(tag), 0o644))
	_ = os.Symlink("d/e/big.bin", filepath.Join(root, "link"))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRollbackWhileMounted: write, checkpoint, write more, roll back with files still open;
// the mount must show exactly the checkpoint at once, through cached paths and open files.
func TestRollbackWhileMounted(t *testing.T) {
	ctx := context.Background()
	r, m := mountMain(t)
	dir := m.Dir()
	writeTree(t, dir, "one")
	want := snapshot(t, dir)
	if _, err := r.e.Checkpoint(ctx, "main", "cp1", ""); err != nil {
		t.Fatal(err)
	}

	// Change everything, and keep the kernel's caches warm.
	writeTree(t, dir, "two")
	must(t, os.WriteFile(filepath.Join(dir, "small.txt"), []byte("changed after the checkpoint, longer"), 0o644))
	must(t, os.Chmod(filepath.Join(dir, "d/e/big.bin"), 0o755))
	must(t, os.Remove(filepath.Join(dir, "d/one")))
	must(t, os.Mkdir(filepath.Join(dir, "new"), 0o700))
	changed := snapshot(t, dir)
	paths := keys(want, changed)
	wantStats := map[string]string{}
	for _, p := range paths {
		wantStats[p] = "missing"
		if w, ok := want[p]; ok {
			f := strings.Fields(w)
			wantStats[p] = strings.Join(f[:min(2, len(f))], " ")
		}
	}
	open, err := os.OpenFile(filepath.Join(dir, "small.txt"), os.O_RDWR, 0)
	must(t, err)
	defer open.Close()
	buf := make([]byte, 100)
	if n, _ := open.ReadAt(buf, 0); string(buf[:n]) != "changed after the checkpoint, longer" {
		t.Fatalf("before rollback read %q", buf[:n])
	}
	gone, err := os.Open(filepath.Join(dir, "d/two")) // does not exist in the checkpoint
	must(t, err)
	defer gone.Close()
	// A negative entry the kernel caches: "d/one" exists again after the rollback.
	if _, err := os.Stat(filepath.Join(dir, "d/one")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("d/one: %v", err)
	}

	// Warm the attribute cache: nothing below reads a file before the rollback.
	stats(t, dir, paths)
	stats(t, dir, paths)

	if err := r.e.Rollback(ctx, "main", "main@cp1"); err != nil {
		t.Fatal(err)
	}
	diffSnapshots(t, "attributes after rollback", stats(t, dir, paths), wantStats)
	diffSnapshots(t, "after rollback", snapshot(t, dir), want)
	if n, err := open.ReadAt(buf, 0); string(buf[:n]) != "small one" {
		t.Errorf("open file after rollback reads %q, %v; want %q", buf[:n], err, "small one")
	}
	var st syscall.Stat_t
	must(t, syscall.Fstat(int(open.Fd()), &st))
	if st.Size != int64(len("small one")) {
		t.Errorf("fstat of open file after rollback: size %d", st.Size)
	}
	if _, err := gone.Read(buf); err == nil {
		t.Errorf("read of a file that the rollback removed succeeded")
	}
	// A descriptor from before the rollback cannot change the restored tree (ESTALE); the
	// mount keeps working through a new one.
	if _, err := open.WriteAt([]byte("SMALL"), 0); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("write through a descriptor opened before the rollback: %v, want ESTALE", err)
	}
	if err := open.Truncate(0); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("ftruncate through a descriptor opened before the rollback: %v, want ESTALE", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "small.txt")); string(b) != "small one" {
		t.Errorf("the restored file changed through an old descriptor: %q", b)
	}
	fresh, err := os.OpenFile(filepath.Join(dir, "small.txt"), os.O_WRONLY, 0)
	must(t, err)
	if _, err := fresh.WriteAt([]byte("SMALL"), 0); err != nil {
		t.Fatal(err)
	}
	must(t, fresh.Close())
	if b, _ := os.ReadFile(filepath.Join(dir, "small.txt")); string(b) != "SMALL one" {
		t.Errorf("after write through a new descriptor: %q", b)
	}
	// A second rollback to the same point is clean again.
	must(t, r.e.Rollback(ctx, "main", "main@cp1"))
	diffSnapshots(t, "after second rollback", snapshot(t, dir), want)
}

// TestForkWhileMounted forks a mounted branch with unsaved changes; both branches then
// diverge independently.
func TestForkWhileMounted(t *testing.T) {
	ctx := context.Background()
	r, m := mountMain(t)
	writeTree(t, m.Dir(), "base")
	want := snapshot(t, m.Dir())
	if _, err := r.e.CreateBranch(ctx, "b2", "main"); err != nil {
		t.Fatal(err)
	}
	m2 := r.mount(t, r.workspace(t, "b2"), Options{})
	diffSnapshots(t, "fork", snapshot(t, m2.Dir()), want)
	must(t, os.WriteFile(filepath.Join(m2.Dir(), "only-b2"), []byte("b2"), 0o644))
	must(t, os.WriteFile(filepath.Join(m.Dir(), "small.txt"), []byte("main changed"), 0o644))
	if _, err := os.Stat(filepath.Join(m.Dir(), "only-b2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b2's file visible in main: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(m2.Dir(), "small.txt")); string(b) != "small base" {
		t.Errorf("main's change visible in b2: %q", b)
	}
}

// TestReadOnlyCheckpointMount mounts a checkpoint; every write fails with EROFS.
func TestReadOnlyCheckpointMount(t *testing.T) {
	ctx := context.Background()
	r, m := mountMain(t)
	writeTree(t, m.Dir(), "ro")
	want := snapshot(t, m.Dir())
	id, err := r.e.Checkpoint(ctx, "main", "v1", "")
	must(t, err)
	view, err := r.e.View(ctx, id)
	must(t, err)
	ro := r.mount(t, view, Options{})
	diffSnapshots(t, "view", snapshot(t, ro.Dir()), want)
	d := ro.Dir()
	checks := map[string]error{
		"create":   func() error { _, err := os.Create(filepath.Join(d, "new")); return err }(),
		"write":    func() error { _, err := os.OpenFile(filepath.Join(d, "small.txt"), os.O_WRONLY, 0); return err }(),
		"truncate": os.Truncate(filepath.Join(d, "small.txt"), 0),
		"mkdir":    os.Mkdir(filepath.Join(d, "x"), 0o755),
		"remove":   os.Remove(filepath.Join(d, "small.txt")),
		"rename":   os.Rename(filepath.Join(d, "small.txt"), filepath.Join(d, "s2")),
		"chmod":    os.Chmod(filepath.Join(d, "small.txt"), 0o600),
		"symlink":  os.Symlink("x", filepath.Join(d, "l2")),
		"setxattr": syscall.Setxattr(filepath.Join(d, "small.txt"), "user.x", []byte("1"), 0),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a read-only mount: %v, want EROFS", op, err)
		}
	}
}

// TestManyBranchesConcurrent mounts 16 branches at once with a writer on each; run with
// -race.
func TestManyBranchesConcurrent(t *testing.T) {
	ctx := context.Background()
	r, m := mountMain(t)
	writeTree(t, m.Dir(), "base")
	const branches = 16
	mounts := make([]*Mounted, branches)
	for i := range mounts {
		name := fmt.Sprintf("agent%d", i)
		if _, err := r.e.CreateBranch(ctx, name, "main"); err != nil {
			t.Fatal(err)
		}
		mounts[i] = r.mount(t, r.workspace(t, name), Options{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, branches)
	for i, bm := range mounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- agentWork(bm.Dir(), i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, bm := range mounts {
		for j := 0; j < 20; j++ {
			b, err := os.ReadFile(filepath.Join(bm.Dir(), "work", fmt.Sprintf("f%d", j)))
			if err != nil || !bytes.Equal(b, agentData(i, j)) {
				t.Errorf("branch %d file %d: %v (len %d)", i, j, err, len(b))
			}
		}
		if b, _ := os.ReadFile(filepath.Join(bm.Dir(), "small.txt")); string(b) != fmt.Sprintf("agent %d", i) {
			t.Errorf("branch %d small.txt = %q", i, b)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "work")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agents' work leaked into main: %v", err)
	}
}

func agentData(i, j int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("agent %d file %d;", i, j)), 1+j*997)
}

func agentWork(dir string, i int) error {
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		return err
	}
	for j := 0; j < 20; j++ {
		tmp := filepath.Join(dir, "work", fmt.Sprintf(".tmp%d", j))
		if err := os.WriteFile(tmp, agentData(i, j), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "work", fmt.Sprintf("f%d", j))); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "small.txt"), []byte(fmt.Sprintf("agent %d", i)), 0o644)
}
