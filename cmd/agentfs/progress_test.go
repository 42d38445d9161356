package main

import (
	"os/exec"
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

// Progress bars are drawn when stderr is a terminal, never into a pipe, never with -q.
func TestProgressOnlyOnATerminal(t *testing.T) {
	requireTool(t, "script")
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a": "a", "b/c": "c"}))
	ok(t, repo, "fork", "main", "gone")
	ok(t, repo, "branch", "delete", "gone")

	for _, args := range [][]string{{"gc"}, {"fsck"}} {
		name := args[0]
		tty := onTerminal(t, repo, args...)
		// A bar: its phase, a count with its unit, and the carriage return that redraws it.
		phase := map[string]string{"gc": "mark", "fsck": "check"}[name]
		if !strings.Contains(tty, phase) || !strings.Contains(tty, "objects/") || !strings.Contains(tty, "\r") {
			t.Errorf("%s on a terminal drew no progress bar:\n%q", name, tty)
		}
		if q := onTerminal(t, repo, append(args, "-q")...); strings.Contains(q, phase) || strings.Contains(q, "objects/") {
			t.Errorf("%s -q on a terminal drew a bar:\n%q", name, q)
		}
		if r := agentfs(t, repo, args...); r.code != 0 || r.stderr != "" {
			t.Errorf("%s into a pipe: exit %d, stderr %q; want nothing on stderr", name, r.code, r.stderr)
		}
	}
}
