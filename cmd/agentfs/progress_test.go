package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// onTerminal runs agentfs with a pseudo-terminal for stdin, stdout and stderr (script from
// util-linux) and returns everything it wrote there.
func onTerminal(t *testing.T, repo string, args ...string) string {
	t.Helper()
	cmd := agentfsBin + " --repo " + repo + " " + strings.Join(args, " ")
	out, err := exec.Command("script", "-q", "-e", "-c", cmd, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("script -c %q: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// progressCase is a command that draws a bar, the phase its bar names, and the unit of
// its count.
type progressCase struct {
	args  func() []string // fresh arguments for each run (export needs a new directory)
	phase string
	unit  string
}

func progressCases(t *testing.T) []progressCase {
	src := writeTree(t, map[string]string{"big": strings.Repeat("x", 3<<20), "d/e": "e"})
	fixed := func(a ...string) func() []string { return func() []string { return a } }
	return []progressCase{
		{fixed("gc"), "mark", "objects/"},
		{fixed("fsck"), "check", "objects/"},
		{fixed("import", "imported", src), "import", "MiB"},
		{func() []string { return []string{"export", "main", filepath.Join(t.TempDir(), "out")} }, "export", "MiB"},
	}
}

// checkBars runs each case on a terminal (a bar: its phase, its unit and the carriage
// return that redraws it), on a terminal with -q or --json (no bar) and into a pipe
// (nothing on stderr).
func checkBars(t *testing.T, repo string, cases []progressCase) {
	t.Helper()
	for _, c := range cases {
		name := c.args()[0]
		tty := onTerminal(t, repo, c.args()...)
		if !strings.Contains(tty, c.phase) || !strings.Contains(tty, c.unit) || !strings.Contains(tty, "\r") {
			t.Errorf("%s on a terminal drew no progress bar:\n%q", name, tty)
		}
		if q := onTerminal(t, repo, append(c.args(), "-q")...); strings.Contains(q, "%|") || strings.Contains(q, c.unit) || strings.Contains(q, "\r"+c.phase) {
			t.Errorf("%s -q on a terminal drew a bar:\n%q", name, q)
		}
		// With --json, the terminal shows the JSON value alone (an agent's pty mixes stdout
		// and stderr).
		j := strings.TrimSpace(strings.ReplaceAll(onTerminal(t, repo, append(c.args(), "--json")...), "\r\n", "\n"))
		if strings.Contains(j, "\r") || !json.Valid([]byte(j)) {
			t.Errorf("%s --json on a terminal: %q; want one JSON value and no bar", name, j)
		}
		if r := agentfs(t, repo, c.args()...); r.code != 0 || r.stderr != "" {
			t.Errorf("%s into a pipe: exit %d, stderr %q; want nothing on stderr", name, r.code, r.stderr)
		}
	}
}

// Progress bars are drawn when stderr is a terminal, never into a pipe, never with -q; the
// same when the repository is open in the command's process and when a daemon runs the
// call (the daemon sends the progress as events, api/events.go).
func TestProgressOnlyOnATerminal(t *testing.T) {
	requireTool(t, "script")
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a": strings.Repeat("a", 2<<20), "b/c": "c"}))
	ok(t, repo, "fork", "main", "gone")
	ok(t, repo, "branch", "delete", "gone")
	cases := progressCases(t)
	t.Run("no daemon", func(t *testing.T) { checkBars(t, repo, cases) })
	t.Run("through the daemon", func(t *testing.T) {
		d := startDaemon(t, repo)
		checkBars(t, repo, cases)
		d.stop(t)
		if strings.Contains(d.log.String(), "status=102") {
			t.Errorf("the daemon logged an informational status as a call's result:\n%s", d.log)
		}
	})
}

// export's warnings (what it left out) reach the user who ran it, also through the daemon,
// and not the daemon's log; with --json, stdout is still one JSON value.
func TestExportWarningsReachTheCaller(t *testing.T) {
	repo := newRepo(t)
	src := writeTree(t, map[string]string{"tool": "#!/bin/sh\n"})
	if err := os.Chmod(filepath.Join(src, "tool"), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	ok(t, repo, "import", "main", src)
	const warning = "setuid/setgid bits left out"
	check := func(t *testing.T, args ...string) {
		out := filepath.Join(t.TempDir(), "out")
		r := agentfs(t, repo, append([]string{"export", "main", out}, args...)...)
		if r.code != 0 || strings.Count(r.stderr, warning) != 1 || !strings.Contains(r.stderr, filepath.Join(out, "tool")) {
			t.Fatalf("export %v: exit %d, stderr %q; want one warning naming %s", args, r.code, r.stderr, filepath.Join(out, "tool"))
		}
		if len(args) > 0 { // --json
			dec := json.NewDecoder(bytes.NewReader([]byte(r.stdout)))
			var v map[string]string
			if err := dec.Decode(&v); err != nil || v["dir"] != out || dec.More() {
				t.Fatalf("export --json: stdout %q is not one JSON value naming %s", r.stdout, out)
			}
		}
	}
	t.Run("no daemon", func(t *testing.T) { check(t); check(t, "--json") })
	t.Run("through the daemon", func(t *testing.T) {
		d := startDaemon(t, repo)
		check(t)
		check(t, "--json")
		d.stop(t)
		if strings.Contains(d.log.String(), warning) {
			t.Errorf("the warning went to the daemon's log too:\n%s", d.log)
		}
	})
}
