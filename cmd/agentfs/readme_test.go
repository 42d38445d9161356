package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeTour returns the shell block under "## A tour" in README.md.
func readmeTour(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, found := strings.Cut(string(b), "## A tour")
	if !found {
		t.Fatal(`README.md has no "## A tour"`)
	}
	_, block, found := strings.Cut(after, "```sh\n")
	block, _, closed := strings.Cut(block, "```")
	if !found || !closed || !strings.Contains(block, "agentfs init") {
		t.Fatalf("README.md: no sh block in the tour:\n%s", after)
	}
	return block
}

// The README's tour runs as written, on a fresh machine (a new HOME), in its own order:
// on its own, and next to the daemon `make run` starts. Only the bucket URL is replaced, by a
// file:// remote.
func TestReadmeTour(t *testing.T) {
	requireFUSE(t)
	tour := readmeTour(t)
	const bucket = `'s3://bucket/team?region=eu-west-1'`
	if !strings.Contains(tour, bucket) {
		t.Fatalf("the tour no longer uses %s; update this test", bucket)
	}
	for _, beside := range []bool{false, true} {
		name := "alone"
		if beside {
			name = "beside make run"
		}
		t.Run(name, func(t *testing.T) {
			home := t.TempDir() // a fresh user: no repository, no ~/agent1
			checkout := t.TempDir()
			script := strings.ReplaceAll(tour, bucket, "'file://"+t.TempDir()+"/bucket'")
			env := append(os.Environ(), "HOME="+home, "AGENTFS_REPO=",
				"PATH="+filepath.Dir(agentfsBin)+":"+os.Getenv("PATH"))
			repo := filepath.Join(home, ".agentfs")
			t.Cleanup(func() {
				syscall.Unmount(filepath.Join(home, "agent1"), syscall.MNT_DETACH)
				stopDaemonOf(t, repo)
			})
			if beside {
				// What make run does: mkdir -p ./mnt; agentfs serve --init --mount main:./mnt.
				mnt := filepath.Join(checkout, "mnt")
				os.Mkdir(mnt, 0o755)
				run := exec.Command(agentfsBin, "--repo", repo, "serve", "--init", "--mount", "main:"+mnt)
				var log bytes.Buffer
				run.Stdout, run.Stderr, run.Env = &log, &log, env
				if err := run.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { run.Process.Signal(syscall.SIGTERM); run.Wait() })
				for i := 0; !daemonAnswers(repo) || !agentfsMountAt(mnt); i++ {
					if i > 400 {
						t.Fatalf("make run's daemon did not start:\n%s", log.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
				// Work in ./mnt (uncommitted) that the tour must leave alone.
				if err := os.WriteFile(filepath.Join(mnt, "mine.txt"), []byte("uncommitted"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sh := exec.Command("bash", "-e", "-x", "-c", script)
			sh.Dir, sh.Env = checkout, env
			out, err := sh.CombinedOutput()
			if err != nil {
				t.Fatalf("the tour failed: %v\n%s", err, out)
			}
			for _, want := range []string{"created branch agent1", "mounted agent1 at " + filepath.Join(home, "agent1"),
				"A NOTES.md", "rolled back agent1 to agent1@try1", "clean:", "pushed project to origin"} {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("the tour's output lacks %q:\n%s", want, out)
				}
			}
			if got := ok(t, repo, "cat", "project:NOTES.md"); got != "first attempt\n" {
				t.Errorf("project:NOTES.md after the merge = %q", got)
			}
			if beside {
				if b, err := os.ReadFile(filepath.Join(checkout, "mnt", "mine.txt")); err != nil || string(b) != "uncommitted" {
					t.Errorf("the tour changed the work in ./mnt: %q %v", b, err)
				}
			}
		})
	}
}
