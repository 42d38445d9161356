package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) {
			out = append(out, f[1])
		}
	}
	return out
}

// The check, without a daemon (run serves the mount itself) and with one: the
// command runs in the forked branch, its exit code is agentfs's, and the checkpoint records
// the command line and exit code; nothing stays mounted.
func TestRun(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"in.txt": "input\n"}))
	if r := agentfs(t, repo, "run", "--fork", "main", "--name", "job1", "--", "sh", "-c", "echo hi > out.txt"); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	if got := ok(t, repo, "cat", "job1:out.txt"); got != "hi\n" {
		t.Fatalf("cat job1:out.txt = %q", got)
	}
	if got := ok(t, repo, "cat", "main:in.txt"); got != "input\n" {
		t.Fatal("main changed")
	}
	if r := agentfs(t, repo, "cat", "main:out.txt"); r.code == 0 {
		t.Fatal("the fork's file is in main")
	}
	// Exit codes pass through; the checkpoint says what ran and how it ended.
	r := agentfs(t, repo, "run", "--branch", "job1", "--tool-call", "tc-9", "--", "sh", "-c", `cat in.txt; echo "$AGENTFS_BRANCH" > branch.txt; exit 3`)
	if r.code != 3 || r.stdout != "input\n" {
		t.Fatalf("run exit 3: got %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	var log []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "log", "job1", "--json")), &log)
	labels, _ := log[0]["labels"].(map[string]any)
	if log[0]["message"] != `sh -c 'cat in.txt; echo "$AGENTFS_BRANCH" > branch.txt; exit 3'` || labels["exit"] != "3" || log[0]["via"] != "run" || log[0]["tool_call"] != "tc-9" {
		t.Fatalf("checkpoint: %v", log[0])
	}
	if got := ok(t, repo, "cat", "job1:branch.txt"); got != "job1\n" {
		t.Fatalf("AGENTFS_BRANCH: %q", got)
	}
	// The command can use agentfs itself: run serves the repository's socket meanwhile.
	inner := agentfsBin + " --repo " + repo + " checkpoint job1 -m inner"
	if r := agentfs(t, repo, "run", "--branch", "job1", "--", "sh", "-c", "echo x > x.txt && "+inner); r.code != 0 {
		t.Fatalf("agentfs inside run: %d %s", r.code, r.stderr)
	}
	// Nothing changed after the inner checkpoint, but run's own checkpoint records the exit
	// code (a labelled checkpoint is made even without changes), on top of the inner one.
	log = nil
	json.Unmarshal([]byte(ok(t, repo, "log", "job1", "--json")), &log)
	if labels, _ := log[0]["labels"].(map[string]any); len(log) < 2 || labels["exit"] != "0" || log[1]["message"] != "inner" {
		t.Fatalf("run's checkpoint over the inner one: %v", log[:min(2, len(log))])
	}
	if r := agentfs(t, repo, "run", "--branch", "job1", "--", "/no/such/command"); r.code != 127 {
		t.Fatalf("missing command: exit %d %s", r.code, r.stderr)
	}
	for _, bad := range [][]string{{"run", "--", "true"}, {"run", "--fork", "main", "--", "true"}, {"run", "--branch", "job1"}, {"run", "--branch", "nope", "--", "true"}} {
		if r := agentfs(t, repo, bad...); r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("%v: exit %d %q", bad, r.code, r.stderr)
		}
	}
	// With a daemon, in a given directory, with a token in the environment (revoked after).
	startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "m")
	os.Mkdir(mnt, 0o755)
	if r := agentfs(t, repo, "run", "--fork", "job1", "--name", "job2", "--dir", mnt, "--token", "--", "sh", "-c", `echo "$AGENTFS_TOKEN" > tok.txt; pwd > pwd.txt`); r.code != 0 {
		t.Fatalf("run with daemon: %d %s", r.code, r.stderr)
	}
	if got := ok(t, repo, "cat", "job2:pwd.txt"); got != mnt+"\n" {
		t.Fatalf("pwd = %q, want %s", got, mnt)
	}
	if got := ok(t, repo, "cat", "job2:tok.txt"); !strings.HasPrefix(got, "agentfs_") {
		t.Fatalf("AGENTFS_TOKEN = %q", got)
	}
	if !strings.Contains(ok(t, repo, "token", "list"), "revoked") {
		t.Fatal("run's token was not revoked")
	}
	if m := mountsUnder(t, mnt); len(m) != 0 {
		t.Fatalf("still mounted: %v", m)
	}
}
