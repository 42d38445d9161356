package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run the real binary, as users do.
var agentfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentfs-bin")
	if err != nil {
		panic(err)
	}
	agentfsBin = filepath.Join(dir, "agentfs")
	if out, err := exec.Command("go", "build", "-o", agentfsBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building agentfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func agentfs(t *testing.T, repo string, args ...string) result {
	t.Helper()
	cmd := exec.Command(agentfsBin, append([]string{"--repo", repo}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, repo string, args ...string) string {
	t.Helper()
	r := agentfs(t, repo, args...)
	if r.code != 0 {
		t.Fatalf("agentfs %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func newRepo(t *testing.T) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	ok(t, repo, "init")
	return repo
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCLIWorkflow(t *testing.T) {
	repo := newRepo(t)
	src := writeTree(t, map[string]string{"a.txt": "alpha\n", "dir/b.txt": "beta\n"})
	id := strings.TrimSpace(ok(t, repo, "import", "main", src))
	if len(id) != 64 {
		t.Fatalf("import printed %q, want a checkpoint id", id)
	}
	if got := ok(t, repo, "cat", "main:dir/b.txt"); got != "beta\n" {
		t.Fatalf("cat = %q", got)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(ok(t, repo, "ls", "main", "--json")), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("ls --json: %v %v", entries, err)
	}
	// Fork, change the fork, checkpoint it with a name, diff.
	ok(t, repo, "fork", id[:10], "agent1")
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("changed by agent1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new\n"), 0o644)
	ok(t, repo, "import", "agent1", src)
	cp := strings.TrimSpace(ok(t, repo, "checkpoint", "agent1", "--name", "done", "-m", "agent finished"))
	diff := ok(t, repo, "diff", "main", "agent1@done")
	if diff != "M a.txt\nA new.txt\n" {
		t.Fatalf("diff:\n%s", diff)
	}
	var changes []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "diff", "main", "agent1", "--json")), &changes)
	if len(changes) != 2 || changes[0]["kind"] != "modified" || changes[0]["path"] != "a.txt" {
		t.Fatalf("diff --json: %v", changes)
	}
	var log []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "log", "agent1", "--json")), &log)
	if len(log) < 3 || log[0]["id"] != cp || log[0]["name"] != "done" {
		t.Fatalf("log --json: %v", log)
	}
	// Rollback discards the fork's changes.
	ok(t, repo, "rollback", "agent1", id)
	if got := ok(t, repo, "cat", "agent1:a.txt"); got != "alpha\n" {
		t.Fatalf("after rollback: %q", got)
	}
	var branches []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "branch", "list", "--json")), &branches)
	if len(branches) != 2 || branches[1]["name"] != "main" && branches[0]["name"] != "agent1" {
		t.Fatalf("branch list: %v", branches)
	}
	ok(t, repo, "branch", "create", "empty")
	ok(t, repo, "branch", "create", "b2", "--from", "agent1@done")
	if got := ok(t, repo, "cat", "b2:new.txt"); got != "new\n" {
		t.Fatalf("branch from a named checkpoint: %q", got)
	}
	ok(t, repo, "branch", "delete", "b2")
	out := filepath.Join(t.TempDir(), "out")
	ok(t, repo, "export", "agent1@done", out)
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "changed by agent1\n" {
		t.Fatalf("export: %q", b)
	}
}

// Every bad input: exit code 1 (2 for usage), one line on stderr, repository unchanged.
func TestCLIBadInput(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"f": "x"}))
	state := func() string {
		return ok(t, repo, "branch", "list", "--json") + ok(t, repo, "log", "main", "--json")
	}
	before := state()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"branch", "create", "a/b"}, 1, "slash"},
		{[]string{"branch", "create", "x@y"}, 1, "'@'"},
		{[]string{"branch", "create", ".."}, 1, ".."},
		{[]string{"branch", "create", "bad\x01name"}, 1, "control"},
		{[]string{"branch", "create", strings.Repeat("n", 300)}, 1, "limit"},
		{[]string{"branch", "create", "main"}, 1, "already exists"},
		{[]string{"fork", "nosuch", "x"}, 1, "neither a branch nor a checkpoint"},
		{[]string{"checkpoint", "nosuch"}, 1, "not found"},
		{[]string{"checkpoint", "main", "--name", "a@b"}, 1, "'@'"},
		{[]string{"rollback", "main", "main@nosuch"}, 1, "not found"},
		{[]string{"diff", "main", "ffffffff"}, 1, "neither"},
		{[]string{"cat", "main:nosuch"}, 1, "not found"},
		{[]string{"cat", "main:../etc/passwd"}, 1, "'..'"},
		{[]string{"ls", "main:a/../../x"}, 1, "'..'"},
		{[]string{"import", "main", "/does/not/exist"}, 1, "does not exist"},
		{[]string{"branch", "delete", "nosuch"}, 1, "not found"},
		{[]string{"branch", "create"}, 2, "takes NAME"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"log", "main", "--bogus"}, 2, "unknown flag"},
	}
	for _, c := range cases {
		r := agentfs(t, repo, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != c.code || !strings.Contains(lines[0], c.want) {
			t.Errorf("agentfs %q: exit %d, stderr %q; want exit %d mentioning %q", c.args, r.code, r.stderr, c.code, c.want)
		}
		if c.code == 1 && len(lines) != 1 {
			t.Errorf("agentfs %q: %d lines on stderr, want 1: %q", c.args, len(lines), r.stderr)
		}
	}
	if after := state(); after != before {
		t.Fatalf("bad input changed the repository:\n%s\n---\n%s", before, after)
	}
	// No repository, and a repository of an unknown format.
	if r := agentfs(t, filepath.Join(t.TempDir(), "none"), "branch", "list"); r.code != 1 || !strings.Contains(r.stderr, "agentfs init") {
		t.Errorf("missing repository: %d %q", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(repo, "FORMAT"), []byte("agentfs repository format 99\n"), 0o644)
	if r := agentfs(t, repo, "branch", "list"); r.code != 1 || !strings.Contains(r.stderr, "format 99") {
		t.Errorf("unknown format: %d %q", r.code, r.stderr)
	}
}

// A second process cannot open a repository a daemon holds; commands go through the daemon.
func TestDaemonOwnsRepository(t *testing.T) {
	repo := newRepo(t)
	d := startDaemon(t, repo)
	ok(t, repo, "branch", "create", "viadaemon")
	if r := agentfs(t, repo, "serve"); r.code != 1 || !strings.Contains(r.stderr, "already serves") {
		t.Fatalf("second daemon: exit %d %q", r.code, r.stderr)
	}
	d.stop(t)
	// After a clean stop the CLI opens the repository itself and sees the daemon's work.
	if !strings.Contains(ok(t, repo, "branch", "list"), "viadaemon") {
		t.Fatal("branch created through the daemon is missing")
	}
}

type daemon struct {
	cmd  *exec.Cmd
	done chan error
	log  *bytes.Buffer
}

func startDaemon(t *testing.T, repo string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(agentfsBin, append([]string{"--repo", repo, "serve"}, args...)...)
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1), log: &logb}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	sock := filepath.Join(repo, "agentfs.sock")
	for i := 0; i < 200; i++ {
		if c, err := dialUnix(sock); err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v\n%s", err, logb.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("daemon did not start:\n%s", logb.String())
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop on SIGTERM\n%s", d.log.String())
	}
}
