package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/store"
)

func gcStats(t *testing.T, repo string, args ...string) gc.Stats {
	t.Helper()
	var s gc.Stats
	out := ok(t, repo, append([]string{"gc", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("gc --json: %v\n%s", err, out)
	}
	return s
}

func randomFile(t *testing.T, dir, name string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A flipped byte in a data block: cat fails, fsck names branch and path, exit code 1.
func TestFsckCorruptCLI(t *testing.T) {
	repo := newRepo(t)
	src := t.TempDir()
	randomFile(t, src, "victim", 200<<10)
	randomFile(t, src, "ok", 100)
	ok(t, repo, "import", "main", src)
	if out := ok(t, repo, "fsck"); !strings.HasPrefix(out, "clean") {
		t.Fatalf("fsck of a fresh repository: %q", out)
	}
	data, _ := os.ReadFile(filepath.Join(src, "victim"))
	id := store.Sum(data[64<<10 : 128<<10])
	st, err := store.Open(filepath.Join(repo, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte{'b'}, id[:]...)
	v, c, err := st.DB().Get(key)
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	c.Close()
	v[1+7] ^= 0x80
	if err := st.DB().Set(key, v, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if r := agentfs(t, repo, "cat", "main:victim"); r.code != 1 || len(r.stdout) > 64<<10 {
		t.Fatalf("cat of a corrupt file: exit %d, %d bytes", r.code, len(r.stdout))
	}
	r := agentfs(t, repo, "fsck")
	want := "branch main: /victim (bytes from 65536): data block " + id.String() + " corrupt"
	if r.code != 1 || !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("fsck: exit %d\nstdout %q\nstderr %q\nwant %q", r.code, r.stdout, r.stderr, want)
	}
	var rep gc.Report
	r = agentfs(t, repo, "fsck", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 || len(rep.Problems) != 1 {
		t.Fatalf("fsck --json: exit %d %v %q", r.code, err, r.stdout)
	}
}

// A repository on a small filesystem: filling it fails with a clear error and loses
// nothing; after deleting a branch and gc, or after growing the filesystem, everything
// works and fsck is clean.
func TestENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	repo := filepath.Join(mnt, "repo")
	ok(t, repo, "init")
	src := t.TempDir()
	randomFile(t, src, "keep", 4<<20)
	ok(t, repo, "import", "main", src)
	d := startDaemon(t, repo)
	var failed result
	for i := 0; i < 40; i++ {
		name := fmt.Sprintf("filler%d", i)
		ok(t, repo, "fork", "main", name)
		dir := t.TempDir()
		randomFile(t, dir, "big", 8<<20)
		r := agentfs(t, repo, "import", name, dir)
		if r.code != 0 {
			failed = r
			break
		}
	}
	if failed.code == 0 {
		t.Fatal("filled 320 MiB into a 96 MiB filesystem without an error")
	}
	t.Logf("full: exit %d: %s\ndaemon log:\n%s", failed.code, strings.TrimSpace(failed.stderr), firstPanic(d.log.String()))
	if !strings.Contains(failed.stderr, "no space left on device") {
		t.Errorf("the error does not say the disk is full: %q", failed.stderr)
	}
	if strings.Contains(failed.stderr, "panic") || strings.Contains(d.log.String(), "panic") {
		// Pebble panics when a WAL write fails; net/http recovers the handler's panic but
		// the DB is left wedged (later commits hang). The daemon must refuse writes before
		// the disk is full instead. Restart it to check that nothing was lost.
		t.Errorf("the daemon panicked on the full disk (the client saw %q)", strings.TrimSpace(failed.stderr))
		d.cmd.Process.Signal(syscall.SIGKILL)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=512m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	select {
	case err := <-d.done:
		t.Logf("the daemon stopped on the full disk: %v", err)
		d = startDaemon(t, repo)
	case <-time.After(time.Second):
	}
	if out := ok(t, repo, "cat", "main:keep"); len(out) != 4<<20 {
		t.Fatalf("main:keep has %d bytes", len(out))
	}
	for _, b := range branchNames(t, repo) {
		if strings.HasPrefix(b, "filler") {
			ok(t, repo, "branch", "delete", b)
		}
	}
	ok(t, repo, "gc")
	ok(t, repo, "fsck")
	ok(t, repo, "fork", "main", "after")
	dir := t.TempDir()
	randomFile(t, dir, "new", 8<<20)
	ok(t, repo, "import", "after", dir)
	ok(t, repo, "fsck")
	d.stop(t)
	ok(t, repo, "fsck")
}

func branchNames(t *testing.T, repo string) []string {
	var bs []struct{ Name string }
	if err := json.Unmarshal([]byte(ok(t, repo, "branch", "list", "--json")), &bs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func firstPanic(s string) string {
	i := strings.Index(s, "panic")
	if i < 0 {
		return lastLines(s, 10)
	}
	return s[max(0, i-300):min(len(s), i+1500)]
}
