package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The agent workloads run on a plain directory at small sizes: the tarball has the files it
// claims and every step of the node workload (tar, git, find, grep) gives a figure; with
// AGENTFS_BENCH_GO=1, TestGoWorkloadRuns builds and tests the generated Go module offline
// with its cache in the tree.
func TestNodeWorkloadRuns(t *testing.T) {
	for _, tool := range []string{"tar", "git", "find", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	tree, err := MakeNodeTarball(filepath.Join(dir, "node.tar"), 300)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-tf", tree.Tarball).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(splitLines(string(out))); tree.Files < 300 || n != tree.Files {
		t.Fatalf("tarball lists %d files, MakeNodeTarball says %d (want >= 300)", n, tree.Files)
	}
	w, err := RunNodeWorkload(dir, tree.Tarball, 1)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]Value{"install": w.Install, "find": w.Find, "grep": w.Grep, "git status": w.GitStatus} {
		if v.Err != "" || v.cost() != v.cost() {
			t.Errorf("%s: no figure (%+v)", name, v)
		}
	}
}

func TestGoWorkloadRuns(t *testing.T) {
	if os.Getenv("AGENTFS_BENCH_GO") != "1" {
		t.Skip("set AGENTFS_BENCH_GO=1 to build and test the generated Go module (seeds a build cache: ~10 s of CPU)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not installed")
	}
	dir := t.TempDir()
	m := GoModule{Pkgs: 2, Files: 2}
	tr := filepath.Join(dir, "mod")
	if err := SeedGoTree(tr, m); err != nil {
		t.Fatal(err)
	}
	if _, err := RunGoBuild(tr, m, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := RunParallelBuilds([]string{tr}, m); err != nil {
		t.Fatal(err)
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
