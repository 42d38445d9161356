package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// As a user other than root, mounts go through fusermount3; when it refuses, the CLI's one
// line carries its reason (not "fusermount exited with code 256"), and the daemon the
// mount started is stopped again.
func TestMountErrorSaysWhy(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "fusermount3")
	if os.Geteuid() != 0 {
		t.Skip("needs root to run agentfs as another user")
	}
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // nobody must reach the binary and the repository
	}
	bin := filepath.Join(base, "agentfs")
	if b, err := os.ReadFile(agentfsBin); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatal("copy the binary:", err)
	}
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, 65534, 65534)
	repo := filepath.Join(home, "repo")
	mnt := filepath.Join(base, "mnt") // owned by root: fusermount3 refuses nobody there
	os.Mkdir(mnt, 0o755)
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--repo", repo}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stderr.String(), code
	}
	if out, code := asNobody("init"); code != 0 {
		t.Fatalf("init as nobody: %s", out)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH); stopStartedDaemon(repo) })
	stderr, code := asNobody("mount", "main", mnt)
	if code != 1 || strings.Contains(stderr, "exited with code") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("mount refused by fusermount3: exit %d, stderr %q; want one line with the reason", code, stderr)
	}
	// The reason is fusermount3's own message from the daemon's log (it refuses nobody
	// here: /dev/fuse is not open to it, or the mount point is not writable), without the
	// path fusermount3 was run as.
	log, _ := os.ReadFile(filepath.Join(repo, "agentfs.log"))
	said := regexp.MustCompile(`(?m)^\S*fusermount3: (.*)$`).FindSubmatch(log)
	if said == nil || !strings.Contains(stderr, "fusermount3: "+string(said[1])) {
		t.Fatalf("the CLI said %q; want fusermount3's message from the daemon's log:\n%s", stderr, log)
	}
	t.Logf("the CLI said: %s", strings.TrimSpace(stderr))
	if daemonAnswers(repo) {
		t.Fatal("the daemon the failed mount started is still running")
	}
}
