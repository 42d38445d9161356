package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/agentfs/agentfs/backends/file" // file:// remotes
	"github.com/agentfs/agentfs/remote"
)

// The kernel caches a mount's entries, negative entries and attributes for an hour (see
// package fs). TestMountSeesChangesUnderneath changes a mounted branch by every path that
// does not go through the mount (the daemon refuses a second writable mount of a branch;
// fs.TestSecondMountSeesChanges covers two mounts in one process), right after the kernel cached the old state, and checks
// that the mount shows the new state at once (no sleep): a changed file (content and size),
// a removed one, and one that did not exist (a cached negative entry), and the directory's
// listing.
func TestMountSeesChangesUnderneath(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("FUSE required (AGENTFS_REQUIRE_FUSE=1): %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	const kept, gone, added = "kept.txt", "gone.txt", "added.txt"
	oldState := map[string]string{kept: "old", gone: "bye"}
	newState := map[string]string{kept: "new content, longer", added: "hello"}

	trashed := 0
	// write makes br's files equal to state through the API (no mount involved).
	write := func(t *testing.T, l *Local, br string, state map[string]string) {
		t.Helper()
		ctx := context.Background()
		for _, p := range []string{kept, gone, added} {
			if _, ok := state[p]; !ok {
				// The API has no delete: move the file (if there) into a directory nobody
				// looks at. The checks of the mount's state below catch a failure.
				trashed++
				_ = l.MakeDir(ctx, br, "trash")
				_ = l.Move(ctx, br, p, fmt.Sprintf("trash/%d", trashed))
			}
		}
		for p, c := range state {
			if err := l.WriteFile(ctx, br, p, []byte(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkpoint := func(t *testing.T, l *Local, br string) string {
		t.Helper()
		info, err := l.Checkpoint(context.Background(), br, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}

	cases := []struct {
		name string
		// prepare runs before the mount is warmed; change runs after and must bring the
		// mounted main from oldState to newState.
		prepare func(t *testing.T, l *Local) (change func())
	}{
		{"rollback", func(t *testing.T, l *Local) func() {
			write(t, l, "main", newState)
			target := checkpoint(t, l, "main")
			write(t, l, "main", oldState)
			checkpoint(t, l, "main")
			return func() { must(t, l.Rollback(context.Background(), "main", target)) }
		}},
		{"merge", func(t *testing.T, l *Local) func() {
			write(t, l, "main", oldState)
			checkpoint(t, l, "main")
			if _, err := l.CreateBranch(context.Background(), "other", "main"); err != nil {
				t.Fatal(err)
			}
			write(t, l, "other", newState)
			checkpoint(t, l, "other")
			return func() {
				if _, err := l.Merge(context.Background(), MergeRequest{Src: "other", Into: "main"}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"revert", func(t *testing.T, l *Local) func() {
			write(t, l, "main", newState)
			checkpoint(t, l, "main")
			write(t, l, "main", oldState)
			undo := checkpoint(t, l, "main") // reverting it brings newState back
			return func() {
				if _, err := l.Revert(context.Background(), RevertRequest{Checkpoint: undo, On: "main"}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"import", func(t *testing.T, l *Local) func() {
			write(t, l, "main", oldState)
			src := t.TempDir()
			for p, c := range newState {
				must(t, os.WriteFile(filepath.Join(src, p), []byte(c), 0o644))
			}
			return func() {
				if _, err := l.Import(context.Background(), "main", src); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"pull", func(t *testing.T, l *Local) func() {
			ctx := context.Background()
			if _, err := l.RemoteAdd(ctx, "origin", "file://"+t.TempDir(), remote.Security{}); err != nil {
				t.Fatal(err)
			}
			write(t, l, "main", oldState)
			old := checkpoint(t, l, "main")
			write(t, l, "main", newState)
			checkpoint(t, l, "main")
			if _, err := l.Push(ctx, "origin", "main"); err != nil {
				t.Fatal(err)
			}
			must(t, l.Rollback(ctx, "main", old)) // behind the remote: the pull fast-forwards
			return func() {
				if _, err := l.Pull(ctx, "origin", "main", remote.PullOptions{Full: true}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"api file calls", func(t *testing.T, l *Local) func() {
			write(t, l, "main", oldState)
			return func() { write(t, l, "main", newState) }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newService(t)
			change := tc.prepare(t, l)
			dir := mountAt(t, l, "main")
			// Warm the kernel's caches: attributes, page cache, and a negative entry.
			for range 2 {
				for _, p := range []string{kept, gone, added} {
					got, err := os.ReadFile(filepath.Join(dir, p))
					if want, ok := oldState[p]; ok != (err == nil) || string(got) != want {
						t.Fatalf("before the change %s reads %q, %v; want %q", p, got, err, want)
					}
					os.Stat(filepath.Join(dir, p))
				}
				os.ReadDir(dir) // the kernel keeps listings too (fs: no OPENDIR, FOPEN_CACHE_DIR)
			}
			change()
			listed := map[string]bool{}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				listed[e.Name()] = true
			}
			for _, p := range []string{kept, gone, added} {
				if _, ok := newState[p]; ok != listed[p] {
					t.Errorf("after the change the listing has %s: %v, want %v", p, listed[p], ok)
				}
			}
			for _, p := range []string{kept, gone, added} {
				want, ok := newState[p]
				fi, err := os.Stat(filepath.Join(dir, p))
				if !ok {
					if !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s was removed, but the mount still shows it (stat: %v)", p, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: stat: %v", p, err)
					continue
				}
				if fi.Size() != int64(len(want)) {
					t.Errorf("%s: stat shows size %d, want %d", p, fi.Size(), len(want))
				}
				if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(got) != want {
					t.Errorf("%s reads %q, %v; want %q", p, got, err, want)
				}
			}
		})
	}
}

// mountAt mounts ref on a new directory through l and unmounts it at the end of the test.
func mountAt(t *testing.T, l *Local, ref string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentfs-inval-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Mount(context.Background(), ref, dir, MountOptions{}); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Unmount(context.Background(), dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}
