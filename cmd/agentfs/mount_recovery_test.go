package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The daemon of a mount dies (kill -9): agentfs unmount detaches the dead mount, and the
// directory can be mounted again.
func TestUnmountStaleMount(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a": "a"}))
	d := startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	ok(t, repo, "mount", "main", mnt)
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if _, err := os.ReadDir(mnt); err == nil {
		t.Fatal("the mount still answers after its daemon was killed")
	}
	r := agentfs(t, repo, "unmount", mnt)
	if r.code != 0 || !strings.Contains(r.stdout, "stale") {
		t.Fatalf("unmount of a stale mount: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if agentfsMountAt(mnt) {
		t.Fatal("the stale mount is still in the kernel's mount table")
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "mounts.json")); strings.Contains(string(b), mnt) {
		t.Fatalf("the stale mount is still in the saved mount table, and would come back:\n%s", b)
	}
	// Again: nothing is mounted there now, so it is an error, not a second detach.
	if r := agentfs(t, repo, "unmount", mnt); r.code != 1 {
		t.Fatalf("second unmount: exit %d %q", r.code, r.stdout)
	}
	ok(t, repo, "mount", "main", mnt) // starts a new daemon
	if b, err := os.ReadFile(filepath.Join(mnt, "a")); err != nil || string(b) != "a" {
		t.Fatalf("remount: %q %v", b, err)
	}
	ok(t, repo, "unmount", mnt)
	stopDaemonOf(t, repo)
}

// agentfs mount starts a daemon when none runs; when the mount then fails, that daemon is
// stopped again, and the error is the mount's, on one line. A daemon that was running
// before keeps running.
func TestFailedMountStopsTheDaemonItStarted(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "x"), nil, 0o644)
	r := agentfs(t, repo, "mount", "main", busy)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("mount on a non-empty directory: exit %d, stderr %q", r.code, r.stderr)
	}
	if daemonAnswers(repo) || daemonProcess(repo) != 0 {
		stopDaemonOf(t, repo)
		t.Fatal("the daemon the failed mount started is still running")
	}
	d := startDaemon(t, repo)
	if r := agentfs(t, repo, "mount", "main", busy); r.code != 1 {
		t.Fatalf("second failed mount: exit %d", r.code)
	}
	if !daemonAnswers(repo) {
		t.Fatal("a failed mount stopped a daemon it had not started")
	}
	d.stop(t)
}
