package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// jsonValue parses stdout as exactly one JSON value.
func jsonValue(t *testing.T, what, stdout string) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s --json: not a JSON object: %v\n%s", what, err, stdout)
	}
	if dec.More() {
		t.Fatalf("%s --json: more than one JSON value:\n%s", what, stdout)
	}
	return v
}

// wantOneLine checks that a command's human output is exactly one line.
func wantOneLine(t *testing.T, what, stdout string) {
	t.Helper()
	if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("%s: want one line on success, got %q", what, stdout)
	}
}

// Every mutating command takes --json and prints one JSON value; without it, one line.
func TestJSONOnMutatingCommands(t *testing.T) {
	repo := newRepo(t)
	src := writeTree(t, map[string]string{"a.txt": "a\n"})
	bucket := "file://" + t.TempDir()
	cases := []struct {
		args []string // run twice: with --json (on a first name) and without (on a second)
		key  string   // a field the JSON must have
	}{
		{[]string{"init"}, "repo"},
		{[]string{"import", "main", src}, "checkpoint"},
		{[]string{"checkpoint", "main", "-m", "x"}, "id"},
		{[]string{"fork", "main", "NAME"}, "name"},
		{[]string{"branch", "create", "NAME2", "--from", "main"}, "base"},
		{[]string{"rollback", "NAME", "main"}, "branch"},
		{[]string{"export", "main", "DIR"}, "dir"},
		{[]string{"branch", "delete", "NAME2"}, "deleted"},
		{[]string{"remote", "add", "NAME", bucket}, "url"},
		{[]string{"remote", "remove", "NAME"}, "removed"},
	}
	for _, c := range cases {
		for _, asJSON := range []bool{true, false} {
			suffix := "j"
			if !asJSON {
				suffix = "t"
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				switch a {
				case "NAME", "NAME2":
					a = strings.ToLower(a) + suffix
				case "DIR":
					a = filepath.Join(t.TempDir(), "export")
				}
				args[i] = a
			}
			what := "agentfs " + strings.Join(args, " ")
			if asJSON {
				if v := jsonValue(t, what, ok(t, repo, append(args, "--json")...)); v[c.key] == nil {
					t.Errorf("%s --json: no %q in %v", what, c.key, v)
				}
			} else {
				wantOneLine(t, what, ok(t, repo, args...))
			}
		}
	}
	if !haveFUSE(t) {
		return
	}
	// mount and unmount go through the daemon the mount starts.
	mnt := filepath.Join(t.TempDir(), "mnt") // mount creates it
	v := jsonValue(t, "mount", ok(t, repo, "mount", "main", mnt, "--json"))
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })
	if v["dir"] != mnt || v["ref"] != "main" {
		t.Fatalf("mount --json: %v", v)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "a.txt")); err != nil || string(b) != "a\n" {
		t.Fatalf("read through the mount: %q %v", b, err)
	}
	if v := jsonValue(t, "unmount", ok(t, repo, "unmount", mnt, "--json")); v["dir"] != mnt {
		t.Fatalf("unmount --json: %v", v)
	}
	wantOneLine(t, "mount", ok(t, repo, "mount", "main", mnt))
	wantOneLine(t, "unmount", ok(t, repo, "unmount", mnt))
	stopDaemonOf(t, repo)
}

// An empty list is [] in JSON, never null: through the daemon and without it.
func TestJSONEmptyListIsArray(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a": "a"}))
	check := func(how string) {
		for _, args := range [][]string{
			{"diff", "main", "main", "--json"},
			{"remote", "list", "--json"},
			{"mounts", "--json"},
			{"checkpoint", "prune", "main", "--keep-last", "100", "--json"},
		} {
			out := strings.TrimSpace(ok(t, repo, args...))
			if strings.Contains(out, "null") || !strings.Contains(out, "[]") {
				t.Errorf("%s: agentfs %s printed %s; want an empty array, no null", how, strings.Join(args, " "), out)
			}
		}
		if got := strings.TrimSpace(ok(t, repo, "diff", "main", "main", "--json")); got != "[]" {
			t.Errorf("%s: diff main main --json = %s, want []", how, got)
		}
	}
	check("no daemon")
	d := startDaemon(t, repo)
	check("through the daemon")
	d.stop(t)
	// A missing repository is an error, not an empty list.
	if r := agentfs(t, filepath.Join(t.TempDir(), "none"), "remote", "list", "--json"); r.code != 1 || r.stdout != "" {
		t.Fatalf("remote list --json on a missing repository: exit %d, stdout %q", r.code, r.stdout)
	}
}

// Unknown commands and subcommands exit 2 with cobra's suggestion, on one line; no help on
// stdout, and no Go package names in errors.
func TestUnknownCommandSuggests(t *testing.T) {
	repo := newRepo(t)
	cases := []struct {
		args    []string
		suggest string
	}{
		{[]string{"brnch", "list"}, `did you mean "branch"`},
		{[]string{"branch", "lst"}, `did you mean "list"`},
		{[]string{"remote", "lis"}, `did you mean "list"`},
		{[]string{"frobnicate"}, ""},
	}
	for _, c := range cases {
		r := agentfs(t, repo, c.args...)
		first := strings.SplitN(r.stderr, "\n", 2)[0]
		if r.code != 2 || !strings.Contains(first, "unknown command") || !strings.Contains(first, c.suggest) || r.stdout != "" {
			t.Errorf("agentfs %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), r.code, r.stdout, r.stderr, c.suggest)
		}
	}
	// A group without a subcommand shows its help.
	if r := agentfs(t, repo, "branch"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("agentfs branch: exit %d %q", r.code, r.stdout)
	}
	// A bad URL scheme: what to do, not which Go package to import.
	r := agentfs(t, repo, "remote", "add", "x", "bogus://bucket")
	if r.code != 1 || strings.Contains(r.stderr, "github.com") || strings.Contains(r.stderr, "backends") || !strings.Contains(r.stderr, "s3://") {
		t.Errorf("remote add with a bad scheme: exit %d %q", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	out := ok(t, t.TempDir(), "version")
	wantOneLine(t, "version", out)
	v := jsonValue(t, "version", ok(t, t.TempDir(), "version", "--json"))
	// The test binary is built by go build in a git checkout, which stamps the commit.
	commit, _ := v["commit"].(string)
	if len(commit) != 40 || v["version"] == "" || !strings.HasPrefix(v["go"].(string), "go1.") {
		t.Fatalf("version --json: %v", v)
	}
	if !strings.Contains(out, commit[:12]) {
		t.Fatalf("version: %q does not name commit %s", out, commit)
	}
	if got := ok(t, t.TempDir(), "--version"); got != out {
		t.Fatalf("--version %q differs from version %q", got, out)
	}
}

// stopDaemonOf stops the daemon that agentfs mount started in the background for repo
// (found by its exact command line, so only this test's daemon) and waits for it to exit.
func stopDaemonOf(t *testing.T, repo string) {
	t.Helper()
	pid := daemonProcess(repo)
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 600 && daemonProcess(repo) == pid; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if daemonProcess(repo) == pid {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the daemon of %s did not stop on SIGTERM", repo)
	}
}

// daemonProcess returns the pid of a running "agentfs --repo REPO serve [...]" started by this test
// binary's agentfs, or 0.
func daemonProcess(repo string) int {
	want := strings.Join([]string{agentfsBin, "--repo", repo, "serve"}, "\x00") + "\x00"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(b), want) { // serve, or serve --auto
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie is gone already
		}
		return pid
	}
	return 0
}

// Every command takes --json, except those whose output is not a result: file contents
// (cat), a foreground server (serve), cobra's help and completion, and any command that
// says so with the annotation "nojson" (and why, in its code).
func TestEveryCommandTakesJSON(t *testing.T) {
	exempt := map[string]bool{"agentfs cat": true, "agentfs serve": true, "agentfs help": true,
		// servers in the foreground (their protocol is their output)
		"agentfs csi": true, "agentfs docker-plugin": true, "agentfs mcp": true,
		// runs a command: its output is the command's own
		"agentfs run": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := c.CommandPath()
		if c.HasSubCommands() && c.RunE == nil || !c.HasParent() || exempt[path] ||
			strings.HasPrefix(path, "agentfs completion") || c.Annotations["nojson"] != "" {
			return
		}
		if c.HasSubCommands() && c.Flags().Lookup("json") == nil && c.Args != nil && c.Args(c, []string{"x"}) != nil {
			return // a group: it only runs its help
		}
		if c.Flags().Lookup("json") == nil {
			t.Errorf("%s has no --json", path)
		}
	}
	root := newRootCmd()
	root.InitDefaultCompletionCmd()
	walk(root)
}
