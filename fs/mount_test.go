package fs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMountPointErrors(t *testing.T) {
	r := newRepo(t)
	ws := r.workspace(t, "main")
	base := t.TempDir()
	full := filepath.Join(base, "full")
	must(t, os.MkdirAll(filepath.Join(full, "x"), 0o755))
	file := filepath.Join(base, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	for dir, want := range map[string]string{
		full:                          "not empty",
		file:                          "not a directory",
		filepath.Join(base, "absent"): "does not exist",
	} {
		m, err := Mount(ws, dir, Options{})
		if err == nil {
			m.Unmount()
			t.Errorf("Mount(%s) succeeded", dir)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("Mount(%s): %v, want %q", dir, err, want)
		}
	}
	// A directory that is already a mount point is busy.
	m := r.mount(t, ws, Options{})
	if m2, err := Mount(ws, m.Dir(), Options{}); err == nil {
		m2.Unmount()
		t.Errorf("second Mount on %s succeeded", m.Dir())
	} else if !strings.Contains(err.Error(), "busy") {
		t.Errorf("second mount: %v", err)
	}
}

// TestUnmountBusy unmounts while a file is open: the mount is detached lazily and its data
// is kept.
func TestUnmountBusy(t *testing.T) {
	r := newRepo(t)
	ws := r.workspace(t, "main")
	m := r.mount(t, ws, Options{})
	f, err := os.Create(filepath.Join(m.Dir(), "open"))
	must(t, err)
	_, err = f.Write([]byte("data"))
	must(t, err)
	var cwdBusy = filepath.Join(m.Dir(), "sub")
	must(t, os.Mkdir(cwdBusy, 0o755))
	must(t, m.Unmount())
	f.Close()
	m.Wait()
	in, err := ws.Lookup(t.Context(), 1, "open")
	must(t, err)
	if in.Size != 4 {
		t.Fatalf("size after unmount %d", in.Size)
	}
	var st syscall.Statfs_t
	must(t, syscall.Statfs(m.Dir(), &st))
}

func TestStatfs(t *testing.T) {
	r, m := mountMain(t)
	var got, want syscall.Statfs_t
	must(t, syscall.Statfs(m.Dir(), &got))
	must(t, syscall.Statfs(r.dir, &want))
	gotFree, wantFree := got.Bavail*uint64(got.Bsize), want.Bavail*uint64(want.Bsize)
	if diff := int64(gotFree) - int64(wantFree); diff > 64<<20 || diff < -64<<20 {
		t.Fatalf("statfs free %d, repository disk free %d", gotFree, wantFree)
	}
	if got.Namelen != 255 {
		t.Fatalf("namelen %d", got.Namelen)
	}
}
