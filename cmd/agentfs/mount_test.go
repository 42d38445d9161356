package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The daemon serves mounts; versions of a mounted branch show at once; bad mount requests
// get one clear line each and change nothing; SIGTERM unmounts and exits cleanly.
func TestMountLifecycle(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("mount tests run as root")
	}
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "v1\n"}))
	ok(t, repo, "fork", "main", "agent")
	d := startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	ok(t, repo, "mount", "agent", mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })

	// Write, checkpoint, write more, roll back: the mount shows the checkpoint at once.
	os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("v2\n"), 0o644)
	cp := strings.TrimSpace(ok(t, repo, "checkpoint", "agent"))
	os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("v3 longer\n"), 0o644)
	os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("discard me"), 0o644)
	ok(t, repo, "rollback", "agent", cp)
	if b, _ := os.ReadFile(filepath.Join(mnt, "a.txt")); string(b) != "v2\n" {
		t.Fatalf("after rollback a.txt = %q", b)
	}
	if _, err := os.Stat(filepath.Join(mnt, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("new.txt survived the rollback: %v", err)
	}
	// Fork while mounted, and merge into the mounted branch.
	ok(t, repo, "fork", "agent", "agent2")
	if got := ok(t, repo, "cat", "agent2:a.txt"); got != "v2\n" {
		t.Fatalf("fork of a mounted branch: %q", got)
	}
	src := writeTree(t, map[string]string{"a.txt": "v2\n", "from-main.txt": "m"})
	ok(t, repo, "import", "main", src)
	ok(t, repo, "merge", "main", "--into", "agent")
	if b, err := os.ReadFile(filepath.Join(mnt, "from-main.txt")); err != nil || string(b) != "m" {
		t.Fatalf("merge into a mounted branch is not visible: %q %v", b, err)
	}
	// A merge that changes a file a reader holds open: the reader sees the merged content.
	reader, err := os.Open(filepath.Join(mnt, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("v2\nmerged line\n"), 0o644)
	ok(t, repo, "import", "main", src)
	ok(t, repo, "merge", "main", "--into", "agent")
	buf := make([]byte, 100)
	n, _ := reader.ReadAt(buf, 0)
	if got := string(buf[:n]); got != "v2\nmerged line\n" {
		t.Fatalf("an open reader sees %q after the merge", got)
	}

	busy := filepath.Join(t.TempDir(), "busy")
	os.Mkdir(busy, 0o755)
	os.WriteFile(filepath.Join(busy, "x"), nil, 0o644)
	other := filepath.Join(t.TempDir(), "other")
	os.Mkdir(other, 0o755)
	before := ok(t, repo, "mounts")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "agent2", busy}, "not empty"},
		{[]string{"mount", "agent2", mnt}, "already"},
		{[]string{"mount", "nosuch", other}, "neither a branch nor a checkpoint"},
		{[]string{"mount", "agent", other}, "already mounted read-write"},
		{[]string{"branch", "delete", "agent"}, "mounted"},
		{[]string{"unmount", other}, "not an agentfs mount"},
	} {
		r := agentfs(t, repo, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("agentfs %v: exit %d, stderr %q; want exit 1 and one line mentioning %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if after := ok(t, repo, "mounts"); after != before {
		t.Fatalf("bad mounts changed the mount table:\n%s\n%s", before, after)
	}
	// A checkpoint mounts read-only.
	ok(t, repo, "mount", cp, other)
	if err := os.WriteFile(filepath.Join(other, "a.txt"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote into a read-only checkpoint mount")
	}
	d.stop(t)
	for _, m := range []string{mnt, other} {
		if data, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(data), m) {
			t.Fatalf("%s still mounted after SIGTERM", m)
		}
	}
}
