package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/hostile"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
)

// maxRSSKiB bounds the memory of every command run on hostile content.
const maxRSSKiB = 512 << 10

// hostileRun runs one command and checks that it ended cleanly: exit 0, or exit 1 with its
// error as the last line on stderr and only "agentfs: " lines before it (log lines naming a
// corrupt block); no panic; memory bounded. It returns the exit code and the error line.
func hostileRun(t *testing.T, repo string, args ...string) (int, string) {
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
	stderr := strings.TrimSpace(errb.String())
	what := strings.Join(args, " ")
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") || code > 1 || code < 0 {
		t.Fatalf("agentfs %s: exit %d, crashed:\n%s", what, code, firstPanic(stderr))
	}
	lines := strings.Split(stderr, "\n")
	if code == 1 {
		for _, l := range lines {
			if !strings.HasPrefix(l, "agentfs: ") {
				t.Errorf("agentfs %s: stderr line %q is not an agentfs message", what, l)
			}
		}
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSSKiB {
		t.Errorf("agentfs %s: max RSS %d MiB", what, ru.Maxrss>>10)
	}
	return code, lines[len(lines)-1]
}

// plantCases writes the objects of every case made only of well-formed objects (all but the
// transport cases: truncated packs, wrong lengths, the decompression bomb) into the store of
// repo and points branch planted-NAME at its head. It returns the planted case names.
func plantCases(t *testing.T, repo string, cases []hostile.Case) map[string]bool {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(repo, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	planted := map[string]bool{}
	for _, c := range cases {
		switch c.Name {
		case "truncated", "wrong-size", "decompression-bomb":
			continue
		}
		for _, o := range c.Objects {
			if o.Stored[0] != 0 {
				t.Fatalf("%s: object %s is not stored raw", c.Name, o.ID)
			}
			if id, err := st.Put(ctx, o.Stored[1:]); err != nil || id != o.ID {
				t.Fatalf("%s: plant %s: %v", c.Name, o.ID, err)
			}
		}
		if err := st.Sync(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateBranchAt(ctx, "planted-"+c.Name, c.Head); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		planted[c.Name] = true
	}
	return planted
}

// vmHWM returns the peak resident memory of a process in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// TestHostileBucket: crafted branches in a bucket (traversal names, parent-link and
// directory loops, oversized nodes, huge counts and sizes, key and decompression bombs,
// truncated packs, wrong index lengths, wrong node levels) go through clone (lazy and full),
// and, in a repository served by a daemon, pull, ls, cat, diff, merge, export and fsck: each
// ends cleanly with one error line, no crash (the daemon survives everything), bounded
// memory, and nothing appears outside the export target. Every crafted tree is refused by
// clone, pull, diff, merge and export (the last three on the same tree planted in the
// repository, since clone and pull no longer let it in).
//
// It runs on a plaintext remote and on an encrypted one, whose crafted objects are sealed
// with the remote's key (an attacker who holds the key: a compromised host of the fleet).
func TestHostileBucket(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { testHostileBucket(t, false) })
	t.Run("encrypted", func(t *testing.T) { testHostileBucket(t, true) })
}

func testHostileBucket(t *testing.T, encrypted bool) {
	ctx := context.Background()
	url := "file://" + t.TempDir()
	origin := newRepo(t)
	ok(t, origin, "import", "main", writeTree(t, map[string]string{"README": "hello\n", "dir/a.txt": "a\n"}))
	var keyArgs []string
	var sealer hostile.Sealer
	if encrypted {
		key := bytes.Repeat([]byte{7}, 32)
		keyFile := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		keyArgs = []string{"--key-file", keyFile}
		c, err := remote.NewCodec(key)
		if err != nil {
			t.Fatal(err)
		}
		sealer = c
	}
	ok(t, origin, append([]string{"remote", "add", "origin", url}, keyArgs...)...)
	ok(t, origin, "push", "origin", "main")
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mainHead, err := hostile.ReadRefSealed(ctx, b, sealer, "main")
	if err != nil {
		t.Fatal(err)
	}
	cases := hostile.Cases(mainHead)
	for _, c := range cases {
		if err := hostile.WritePackSealed(ctx, b, sealer, c.Objects, c.Truncate); err != nil {
			t.Fatal(err)
		}
		if err := hostile.SetRefSealed(ctx, b, sealer, "evil-"+c.Name, c.Head); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(t.TempDir(), "repo")
	ok(t, repo, append([]string{"clone", url, "--branch", "main"}, keyArgs...)...)
	// The same trees planted in the repository itself (as a damaged disk or an older
	// agentfs could leave them), so that diff, merge and export meet them even though clone
	// and pull refuse them.
	planted := plantCases(t, repo, cases)
	d := startDaemon(t, repo)

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			br := "evil-" + c.Name
			results := map[string]int{}
			run := func(key, repo string, args ...string) {
				code, msg := hostileRun(t, repo, args...)
				results[key] = code
				if strings.Contains(msg, "damaged: database") {
					t.Errorf("%s: %q blames the repository's database for the bucket's content", strings.Join(args, " "), msg)
				}
				if code != 0 {
					t.Logf("%-40s exit %d: %s", strings.Join(args, " "), code, msg)
				} else {
					t.Logf("%-40s exit 0", strings.Join(args, " "))
				}
			}
			run("clone-lazy", filepath.Join(t.TempDir(), "c1"), append([]string{"clone", url, "--branch", br}, keyArgs...)...)
			run("clone-full", filepath.Join(t.TempDir(), "c2"), append([]string{"clone", url, "--branch", br, "--full"}, keyArgs...)...)
			run("pull", repo, "pull", "origin", br)
			src := br // what ls, cat, diff, merge and export read
			if planted[c.Name] {
				src = "planted-" + c.Name
			}
			if results["pull"] == 0 || planted[c.Name] {
				run("ls", repo, "ls", src)
				for _, f := range []string{"ok.txt", "bomb", "big", "sub"} {
					run("cat "+f, repo, "cat", src+":"+f)
				}
				run("diff", repo, "diff", "main", src)
				run("merge", repo, "merge", src, "--into", "main", "--dry-run")
			}
			outer := t.TempDir()
			target := filepath.Join(outer, "export")
			run("export", repo, "export", src, target)

			// Nothing outside the export target.
			entries, _ := os.ReadDir(outer)
			for _, e := range entries {
				if e.Name() != "export" {
					t.Errorf("export wrote %s outside its target", e.Name())
				}
			}
			for _, p := range []string{"/escape", "/slash", filepath.Join(filepath.Dir(outer), "escape")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s exists after the export", p)
				}
			}
			// What must be refused, per case: every crafted tree by clone (lazy and full),
			// pull, diff, merge and export; a pack the bucket serves wrongly by clone and
			// pull; the bomb when it is read.
			var refuse []string
			switch {
			case planted[c.Name]:
				refuse = []string{"clone-lazy", "clone-full", "pull", "diff", "merge", "export"}
			case c.Name == "decompression-bomb":
				refuse = []string{"clone-full", "cat bomb"}
			default:
				refuse = []string{"clone-lazy", "clone-full", "pull"}
			}
			for _, k := range refuse {
				if code, ran := results[k]; !ran || code == 0 {
					t.Errorf("%s of %s: ran %v, exit %d; want a one-line error", k, c.Name, ran, code)
				}
			}
		})
	}
	// fsck --remote reports the broken branches; the daemon survived all of it.
	if code, msg := hostileRun(t, repo, "fsck", "--remote"); code != 1 {
		t.Errorf("fsck --remote of the hostile bucket: exit %d %s", code, msg)
	}
	select {
	case err := <-d.done:
		t.Fatalf("the daemon died: %v\n%s", err, d.log.String())
	default:
	}
	if kib := vmHWM(t, d.cmd.Process.Pid); kib > maxRSSKiB {
		t.Errorf("daemon peak RSS %d MiB", kib>>10)
	} else {
		t.Logf("daemon peak RSS %d MiB", kib>>10)
	}
	d.stop(t)
}
