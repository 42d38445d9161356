package fs

import (
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// requireFUSE skips a test where /dev/fuse is missing, or fails it when
// AGENTFS_REQUIRE_FUSE=1 (CI).
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("FUSE required (AGENTFS_REQUIRE_FUSE=1) but /dev/fuse is missing: %v", err)
		}
		t.Skipf("no /dev/fuse (%v); set AGENTFS_REQUIRE_FUSE=1 to fail instead", err)
	}
}

// requireTool skips a test when a program is not installed, or fails it when
// AGENTFS_REQUIRE_TOOLS=1.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s required (AGENTFS_REQUIRE_TOOLS=1) but not installed: %v", name, err)
		}
		t.Skipf("%s is not installed (apt-get install %s); set AGENTFS_REQUIRE_TOOLS=1 to fail instead", name, name)
	}
	return p
}

type testRepo struct {
	dir string
	st  *store.Store
	e   *branch.Engine
}

// newRepo opens a fresh repository with a branch "main".
func newRepo(t testing.TB) *testRepo {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "repo"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Flush(context.Background()); err != nil {
			t.Errorf("flush: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if _, err := e.CreateBranch(context.Background(), "main", ""); err != nil {
		t.Fatal(err)
	}
	return &testRepo{dir: dir, st: st, e: e}
}

func (r *testRepo) workspace(t testing.TB, name string) *branch.Workspace {
	t.Helper()
	ws, err := r.e.Workspace(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// mount mounts ws on a new directory and unmounts it in t.Cleanup (also on failure).
func (r *testRepo) mount(t testing.TB, ws *branch.Workspace, o Options) *Mounted {
	t.Helper()
	requireFUSE(t)
	dir, err := os.MkdirTemp("", "agentfs-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	if o.StatfsPath == "" {
		o.StatfsPath = r.dir
	}
	if o.Logger == nil {
		o.Logger = log.New(testWriter{t}, "", 0)
	}
	m, err := Mount(ws, dir, o)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		os.Remove(dir)
	})
	return m
}

// mountMain mounts branch main of a fresh repository.
func mountMain(t testing.TB) (*testRepo, *Mounted) {
	r := newRepo(t)
	return r, r.mount(t, r.workspace(t, "main"), Options{})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
