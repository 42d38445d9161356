package posixsuite

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/fs"
	"github.com/agentfs/agentfs/store"
)

// requireFUSE skips where /dev/fuse is missing, or fails when AGENTFS_REQUIRE_FUSE=1.
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("FUSE required (AGENTFS_REQUIRE_FUSE=1) but /dev/fuse is missing: %v", err)
		}
		t.Skipf("no /dev/fuse (%v); set AGENTFS_REQUIRE_FUSE=1 to fail instead", err)
	}
}

// reachableDir makes a directory that another user can reach (t.TempDir is 0700).
func reachableDir(t testing.TB, pattern string) string {
	t.Helper()
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// mountBranch mounts branch main of a fresh repository with o, unmounted at cleanup.
func mountBranch(t testing.TB, o fs.Options) (string, *branch.Engine) {
	t.Helper()
	requireFUSE(t)
	repo := t.TempDir()
	st, err := store.Open(filepath.Join(repo, "repo"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := e.CreateBranch(context.Background(), "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, err := e.Workspace(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	dir := reachableDir(t, "agentfs-posix-mnt-")
	o.StatfsPath, o.Logger = repo, log.New(logWriter{t}, "", 0)
	m, err := fs.Mount(ws, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return m.Dir(), e
}

// TestMount runs the suite on an agentfs mount that other users may reach.
func TestMount(t *testing.T) {
	dir, _ := mountBranch(t, fs.Options{AllowOther: true})
	Run(t, dir)
}

// TestHostDir runs the suite on a plain directory of the host, to check the cases
// themselves: every case must pass there.
func TestHostDir(t *testing.T) {
	Run(t, reachableDir(t, "agentfs-posix-host-"))
}

// TestDir runs the suite on any directory: AGENTFS_POSIX_DIR=/path go test -run TestDir.
func TestDir(t *testing.T) {
	dir := os.Getenv("AGENTFS_POSIX_DIR")
	if dir == "" {
		t.Skip("set AGENTFS_POSIX_DIR to a directory to run the suite there")
	}
	sub, err := os.MkdirTemp(dir, "posixsuite-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sub, 0o755)
	t.Cleanup(func() { os.RemoveAll(sub) })
	Run(t, sub)
}
