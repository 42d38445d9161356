package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireRootFUSE(t *testing.T) {
	t.Helper()
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("mount tests run as root")
	}
}

// spawnServe starts agentfs serve without waiting for it.
func spawnServe(t *testing.T, repo string) *daemon {
	t.Helper()
	cmd := exec.Command(agentfsBin, "--repo", repo, "serve")
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1), log: &logb}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return d
}

func waitExit(t *testing.T, d *daemon) {
	t.Helper()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still runs after agentfs stop\n%s", d.log.String())
	}
}

// Issue 13's done-when: `agentfs serve &` followed at once by `agentfs mount` succeeds 10
// times out of 10; the mount serves the branch, and agentfs stop ends the daemon.
func TestServeThenMountAtOnce(t *testing.T) {
	requireRootFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "hello\n"}))
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	for i := range 10 {
		d := spawnServe(t, repo)
		if r := agentfs(t, repo, "mount", "main", mnt); r.code != 0 {
			t.Fatalf("round %d: mount right after serve: exit %d: %s\ndaemon log:\n%s", i, r.code, r.stderr, d.log.String())
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "a.txt")); err != nil || string(b) != "hello\n" {
			t.Fatalf("round %d: a.txt through the mount: %q %v", i, b, err)
		}
		ok(t, repo, "unmount", mnt)
		ok(t, repo, "stop")
		waitExit(t, d)
	}
	if d := agentfs(t, repo, "stop"); d.code == 0 || !strings.Contains(d.stderr, "no agentfs daemon") {
		t.Fatalf("stop without a daemon: exit %d %q", d.code, d.stderr)
	}
}

// Mounts come back after agentfs stop and serve, and after the daemon is killed (kill -9
// leaves stale mount points that answer ENOTCONN until the new daemon mounts over them).
func TestMountsSurviveRestart(t *testing.T) {
	requireRootFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "v1\n"}))
	cp := strings.TrimSpace(ok(t, repo, "checkpoint", "main", "--name", "v1"))
	ok(t, repo, "fork", "main", "agent")
	rw := filepath.Join(t.TempDir(), "rw")
	ro := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(rw, 0o755)
	os.Mkdir(ro, 0o755)
	d := startDaemon(t, repo)
	ok(t, repo, "mount", "agent", rw)
	ok(t, repo, "mount", "main@v1", ro, "--read-only")
	t.Cleanup(func() {
		agentfs(t, repo, "unmount", rw)
		agentfs(t, repo, "unmount", ro)
		syscall.Unmount(rw, syscall.MNT_DETACH)
		syscall.Unmount(ro, syscall.MNT_DETACH)
	})
	if err := os.WriteFile(filepath.Join(rw, "b.txt"), []byte("written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		// The first call waits for a starting daemon, which restores the mounts first.
		out := ok(t, repo, "mounts")
		if !strings.Contains(out, rw) || !strings.Contains(out, ro) {
			t.Fatalf("%s: agentfs mounts:\n%s", when, out)
		}
		if b, err := os.ReadFile(filepath.Join(rw, "b.txt")); err != nil || string(b) != "written\n" {
			t.Fatalf("%s: %s/b.txt: %q %v", when, rw, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(ro, "a.txt")); err != nil || string(b) != "v1\n" {
			t.Fatalf("%s: %s/a.txt: %q %v", when, ro, b, err)
		}
	}
	check("before the restart")
	ok(t, repo, "stop")
	waitExit(t, d)
	if _, err := os.Stat(filepath.Join(rw, "b.txt")); err == nil {
		t.Fatal("the mount is still served after agentfs stop")
	}
	d = startDaemon(t, repo)
	check("after agentfs stop and serve")

	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if _, err := os.ReadDir(rw); !errorIs(err, syscall.ENOTCONN) {
		t.Logf("after kill -9 the mount point answers %v (expected ENOTCONN)", err)
	}
	startDaemon(t, repo)
	check("after kill -9 and serve")

	// An explicit unmount leaves the saved table: the next start does not bring it back.
	ok(t, repo, "unmount", ro)
	ok(t, repo, "stop")
	d = startDaemon(t, repo)
	if out := ok(t, repo, "mounts"); strings.Contains(out, ro) || !strings.Contains(out, rw) {
		t.Fatalf("after unmount and restart: agentfs mounts:\n%s", out)
	}
	_ = cp
	_ = d
}

func errorIs(err error, target syscall.Errno) bool {
	var pe *os.PathError
	if e, ok := err.(*os.PathError); ok {
		pe = e
	}
	return pe != nil && pe.Err == target
}

// A command run while serve starts never opens the repository itself (serve would then
// fail "in use"): it waits for the daemon, and both succeed.
func TestCommandDuringServeStart(t *testing.T) {
	repo := newRepo(t)
	for i := range 5 {
		d := spawnServe(t, repo)
		name := fmt.Sprintf("b%d", i)
		ok(t, repo, "branch", "create", name)
		waitSocket(t, repo, d)
		ok(t, repo, "stop")
		waitExit(t, d)
		if !strings.Contains(d.log.String(), "serving") {
			t.Fatalf("round %d: the daemon did not serve:\n%s", i, d.log.String())
		}
	}
}

func waitSocket(t *testing.T, repo string, d *daemon) {
	t.Helper()
	for range 600 {
		if c, err := dialUnix(filepath.Join(repo, "agentfs.sock")); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v\n%s", err, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the daemon did not listen:\n%s", d.log.String())
}

// remote gc runs inside a daemon that serves the repository (it needed the daemon stopped).
func TestRemoteGCWhileServing(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "one\n"}))
	ok(t, repo, "remote", "add", "origin", "file://"+t.TempDir())
	ok(t, repo, "push", "main")
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"b.txt": "two\n"}))
	ok(t, repo, "push", "main")
	d := startDaemon(t, repo)
	out := ok(t, repo, "remote", "gc", "origin", "--grace", "0")
	if !strings.Contains(out, "live objects") {
		t.Fatalf("remote gc through the daemon: %q", out)
	}
	if got := ok(t, repo, "cat", "main:b.txt"); got != "two\n" {
		t.Fatalf("after remote gc: %q", got)
	}
	d.stop(t)
}
