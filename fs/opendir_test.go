package fs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestListingWithoutOpendir: the kernel stops sending OPENDIR after the first one
// (opendir.go), listings of an unchanged directory come from its cache, and every listing
// is still right: more entries than one batch, after creates and unlinks, several readers at
// once, after a listing abandoned half-way, after rewinddir, and while the reader unlinks
// what it read (two at once).
func TestListingWithoutOpendir(t *testing.T) {
	_, m := mountMain(t)
	if !m.dirs.noOpendir() {
		t.Skip("the kernel does not announce FUSE_NO_OPENDIR_SUPPORT")
	}
	d := filepath.Join(m.Dir(), "dir")
	must(t, os.Mkdir(d, 0o755))
	var want []string
	for i := range 1500 { // three batches of the directory handle, many READDIRPLUS replies
		name := fmt.Sprintf("f%04d", i)
		must(t, os.WriteFile(filepath.Join(d, name), nil, 0o644))
		want = append(want, name)
	}
	check := func(what string) {
		t.Helper()
		if got := dirNames(t, d); !slices.Equal(got, want) {
			t.Fatalf("%s: listed %d entries, want %d (first %q)", what, len(got), len(want), got[:min(3, len(got))])
		}
	}
	check("first listing")
	opendirs, opened := m.dirs.opendirs.Load(), m.dirs.opened.Load()
	for range 20 {
		check("unchanged")
	}
	if n := m.dirs.opendirs.Load() - opendirs; n != 0 {
		t.Errorf("20 listings sent %d OPENDIR requests, want 0", n)
	}
	// Usually 0 (the kernel's cache); the kernel may drop cached pages under memory
	// pressure, so this is only logged.
	t.Logf("20 listings of an unchanged directory read it %d times", m.dirs.opened.Load()-opened)

	must(t, os.WriteFile(filepath.Join(d, "new"), nil, 0o644))
	must(t, os.Remove(filepath.Join(d, "f0007")))
	want = slices.DeleteFunc(append(want, "new"), func(s string) bool { return s == "f0007" })
	slices.Sort(want)
	check("after create and unlink")

	// A listing abandoned half-way leaves its handle kept; the next one starts afresh.
	f, err := os.Open(d)
	must(t, err)
	if _, err := f.Readdirnames(10); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(d, "after-abandon"), nil, 0o644))
	want = append(want, "after-abandon")
	slices.Sort(want)
	// rewinddir on the same stream sees the new entry.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	must(t, err)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("after rewinddir: %d entries, want %d", len(names), len(want))
	}
	check("after an abandoned listing")

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("concurrent-%d", i)), nil, 0o644); err != nil {
				t.Error(err)
			}
			if _, err := os.ReadDir(d); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 4 {
		want = append(want, fmt.Sprintf("concurrent-%d", i))
	}
	slices.Sort(want)
	check("after concurrent listings")

	// Read and unlink as rm -rf does: a listing goes on with its own handle, so removing
	// what it returned makes it skip nothing. Two such listings at once, to share nothing.
	for _, sub := range []string{"rm1", "rm2"} {
		must(t, os.Mkdir(filepath.Join(d, sub), 0o755))
		for i := range 3000 {
			must(t, os.WriteFile(filepath.Join(d, sub, fmt.Sprintf("file-with-a-long-name-%05d", i)), nil, 0o644))
		}
	}
	for _, sub := range []string{"rm1", "rm2"} {
		dirNames(t, filepath.Join(d, sub)) // the kernel caches the listing
	}
	wg = sync.WaitGroup{}
	for _, sub := range []string{"rm1", "rm2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(d, sub)
			f, err := os.Open(p)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for {
				names, err := f.Readdirnames(100)
				for _, n := range names {
					if err := os.Remove(filepath.Join(p, n)); err != nil {
						t.Error(err)
					}
				}
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, sub := range []string{"rm1", "rm2"} {
		if left := dirNames(t, filepath.Join(d, sub)); len(left) != 0 {
			t.Errorf("%s: read-and-unlink left %d entries (first %q)", sub, len(left), left[0])
		}
	}

	// A listing abandoned half-way in a directory that then goes: the kernel forgets the
	// directory, and its kept handle must go with it (releasing it later would panic).
	ab := filepath.Join(d, "abandoned")
	must(t, os.Mkdir(ab, 0o755))
	for i := range 1000 {
		must(t, os.WriteFile(filepath.Join(ab, fmt.Sprintf("f%04d", i)), nil, 0o644))
	}
	f, err = os.Open(ab)
	must(t, err)
	if _, err := f.Readdirnames(10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	must(t, os.RemoveAll(ab))
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0) // evict the inode: FORGET now
	t.Logf("%d listings kept", m.dirs.kept())

	// fsync of a directory the kernel did not open.
	f, err = os.Open(d)
	must(t, err)
	must(t, f.Sync())
	f.Close()
}
