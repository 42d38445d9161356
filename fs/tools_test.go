package fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// run runs a command in dir and fails the test with its output if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestToolGit(t *testing.T) {
	requireTool(t, "git")
	_, m := mountMain(t)
	d := m.Dir()
	env := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "HOME=" + t.TempDir()}
	run(t, d, env, "git", "init", "-q", "-b", "main")
	for i := range 50 {
		must(t, os.MkdirAll(filepath.Join(d, "pkg", fmt.Sprint(i%5)), 0o755))
		must(t, os.WriteFile(filepath.Join(d, "pkg", fmt.Sprint(i%5), fmt.Sprintf("f%d.txt", i)), []byte(strings.Repeat("line\n", i+1)), 0o644))
	}
	run(t, d, env, "git", "add", "-A")
	run(t, d, env, "git", "commit", "-q", "-m", "first")
	run(t, d, env, "git", "checkout", "-q", "-b", "feature")
	must(t, os.WriteFile(filepath.Join(d, "pkg/0/f0.txt"), []byte("changed\n"), 0o644))
	must(t, os.Remove(filepath.Join(d, "pkg/1/f1.txt")))
	if st := run(t, d, env, "git", "status", "--porcelain"); !strings.Contains(st, " M pkg/0/f0.txt") || !strings.Contains(st, " D pkg/1/f1.txt") {
		t.Fatalf("git status:\n%s", st)
	}
	run(t, d, env, "git", "commit", "-qam", "second")
	run(t, d, env, "git", "checkout", "-q", "main")
	if b, _ := os.ReadFile(filepath.Join(d, "pkg/0/f0.txt")); string(b) != "line\n" {
		t.Fatalf("after checkout main: %q", b)
	}
	if st := run(t, d, env, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("git status after checkout:\n%s", st)
	}
	if log := run(t, d, env, "git", "log", "--oneline", "--all"); strings.Count(log, "\n") != 2 {
		t.Fatalf("git log:\n%s", log)
	}
	run(t, d, env, "git", "fsck", "--strict")
}

func TestToolTarGoroot(t *testing.T) {
	requireTool(t, "tar")
	requireTool(t, "diff")
	goroot := strings.TrimSpace(run(t, ".", nil, "go", "env", "GOROOT"))
	archive := filepath.Join(t.TempDir(), "src.tar")
	run(t, goroot, nil, "tar", "-cf", archive, "src")
	_, m := mountMain(t)
	start := time.Now()
	run(t, m.Dir(), nil, "tar", "-xf", archive)
	extracted := time.Since(start)
	start = time.Now()
	run(t, m.Dir(), nil, "diff", "-r", "--no-dereference", filepath.Join(goroot, "src"), filepath.Join(m.Dir(), "src"))
	t.Logf("tar -x of GOROOT/src: %v; diff -r: %v", extracted, time.Since(start))
}

func TestToolGoBuild(t *testing.T) {
	goBin := requireTool(t, "go")
	_, m := mountMain(t)
	d := m.Dir()
	must(t, os.WriteFile(filepath.Join(d, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(d, "greet"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "greet/greet.go"), []byte("package greet\n\nfunc Hello() string { return \"hello from agentfs\" }\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/hello/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n"), 0o644))
	env := []string{"GOCACHE=" + filepath.Join(d, ".cache"), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local"}
	run(t, d, env, goBin, "build", "-o", "hello", ".")
	if out := run(t, d, nil, filepath.Join(d, "hello")); out != "hello from agentfs\n" {
		t.Fatalf("output %q", out)
	}
}

func TestToolSQLiteWAL(t *testing.T) {
	requireTool(t, "sqlite3")
	_, m := mountMain(t)
	db := filepath.Join(m.Dir(), "test.db")
	run(t, m.Dir(), nil, "sqlite3", db, "PRAGMA journal_mode=WAL; CREATE TABLE t(w INTEGER, i INTEGER, pad TEXT);")
	const writers, rows = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sql strings.Builder
			sql.WriteString(".timeout 20000\n")
			for i := range rows {
				fmt.Fprintf(&sql, "INSERT INTO t VALUES(%d, %d, hex(randomblob(500)));\n", w, i)
			}
			cmd := exec.Command("sqlite3", db)
			cmd.Stdin = strings.NewReader(sql.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %d: %v: %s", w, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out := run(t, m.Dir(), nil, "sqlite3", db, "PRAGMA integrity_check; SELECT count(*), count(DISTINCT w*1000+i) FROM t;")
	if out != fmt.Sprintf("ok\n%d|%d\n", writers*rows, writers*rows) {
		t.Fatalf("result %q", out)
	}
}

func TestToolRsync(t *testing.T) {
	requireTool(t, "rsync")
	requireTool(t, "diff")
	_, m := mountMain(t)
	src := t.TempDir()
	writeTree(t, src, "rsync")
	must(t, os.Link(filepath.Join(src, "small.txt"), filepath.Join(src, "hard.txt")))
	must(t, os.Chmod(filepath.Join(src, "d"), 0o750))
	dst := filepath.Join(m.Dir(), "copy")
	run(t, ".", nil, "rsync", "-aHX", src+"/", dst+"/")
	run(t, ".", nil, "diff", "-r", "--no-dereference", src, dst)
	diffSnapshots(t, "rsync copy", snapshot(t, dst), snapshot(t, src))
	// A second run transfers nothing and leaves the tree alone.
	if out := run(t, ".", nil, "rsync", "-aHXi", src+"/", dst+"/"); strings.TrimSpace(out) != "" {
		t.Errorf("second rsync changed: %s", out)
	}
}
