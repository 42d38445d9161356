package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "remote", "add", "origin", "file://"+t.TempDir())
	v := jsonValue(t, "status", ok(t, repo, "status", "--json"))
	if d := v["daemon"].(map[string]any); d["running"] != false {
		t.Fatalf("status without a daemon: %v", v)
	}
	if s := ok(t, repo, "status"); !strings.Contains(s, "not running") || !strings.Contains(s, "origin") {
		t.Fatalf("status:\n%s", s)
	}
	if !haveFUSE(t) {
		return
	}
	d := startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	ok(t, repo, "mount", "main", mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })
	os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644)
	v = jsonValue(t, "status", ok(t, repo, "status", "--json"))
	dm := v["daemon"].(map[string]any)
	if dm["running"] != true || int(dm["pid"].(float64)) != d.cmd.Process.Pid {
		t.Fatalf("daemon: %v, want running with pid %d", dm, d.cmd.Process.Pid)
	}
	if ch := v["changed_branches"].([]any); len(ch) != 1 || ch[0] != "main" {
		t.Fatalf("changed branches: %v", v["changed_branches"])
	}
	if ms := v["mounts"].([]any); len(ms) != 1 || ms[0].(map[string]any)["dir"] != mnt {
		t.Fatalf("mounts: %v", v["mounts"])
	}
	ok(t, repo, "unmount", mnt)
	d.stop(t)
}
