package fs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecondMountSeesChanges mounts one workspace twice in one process (the daemon refuses
// that, a program using package fs may not). The kernel caches each mount's entries and
// attributes for an hour, so each change made through one mount must reach the other's
// kernel at once: new, changed, renamed and removed names, a cached negative entry,
// attributes and content.
func TestSecondMountSeesChanges(t *testing.T) {
	r := newRepo(t)
	ws := r.workspace(t, "main")
	a := r.mount(t, ws, Options{}).Dir()
	b := r.mount(t, ws, Options{}).Dir()
	must(t, os.WriteFile(filepath.Join(a, "kept"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(a, "gone"), []byte("bye"), 0o644))
	must(t, os.WriteFile(filepath.Join(a, "moved"), []byte("moving"), 0o644))
	must(t, os.Mkdir(filepath.Join(a, "dir"), 0o755))
	// Warm b's caches, including negative entries.
	for range 2 {
		for _, p := range []string{"kept", "gone", "moved", "dir", "added", "dir/there"} {
			os.ReadFile(filepath.Join(b, p))
			os.Stat(filepath.Join(b, p))
		}
	}
	if _, err := os.Stat(filepath.Join(b, "added")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("added exists before it was created: %v", err)
	}

	must(t, os.WriteFile(filepath.Join(a, "kept"), []byte("new content, longer"), 0o644))
	must(t, os.Chmod(filepath.Join(a, "kept"), 0o600))
	must(t, os.Remove(filepath.Join(a, "gone")))
	must(t, os.WriteFile(filepath.Join(a, "added"), []byte("hello"), 0o644))
	must(t, os.Rename(filepath.Join(a, "moved"), filepath.Join(a, "dir/there")))
	must(t, os.Chmod(filepath.Join(a, "dir"), 0o700))

	// b's kernel is told asynchronously (never from inside a FUSE request); the daemon
	// sends the notifications right after each reply, well before the next stat can look.
	// Poll briefly instead of sleeping a fixed time: a missed invalidation stays wrong for
	// the hour-long timeout, far beyond this loop.
	want := map[string]string{"kept": "new content, longer", "added": "hello", "dir/there": "moving"}
	var errs []string
	for try := 0; try < 100; try++ {
		errs = nil
		for p, w := range want {
			if got, err := os.ReadFile(filepath.Join(b, p)); err != nil || string(got) != w {
				errs = append(errs, p+": "+string(got))
			}
			if fi, err := os.Stat(filepath.Join(b, p)); err != nil || fi.Size() != int64(len(w)) {
				errs = append(errs, p+": stale size")
			}
		}
		for _, p := range []string{"gone", "moved"} {
			if _, err := os.Stat(filepath.Join(b, p)); !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, p+" still shown")
			}
		}
		if fi, err := os.Stat(filepath.Join(b, "kept")); err != nil || fi.Mode().Perm() != 0o600 {
			errs = append(errs, "kept: stale mode")
		}
		if fi, err := os.Stat(filepath.Join(b, "dir")); err != nil || fi.Mode().Perm() != 0o700 {
			errs = append(errs, "dir: stale mode")
		}
		if len(errs) == 0 {
			return
		}
		sleepMs(10)
	}
	t.Errorf("the second mount still shows the old state after 1 s: %v", errs)
}

func sleepMs(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }
