package diff3

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestMergeMarkers(t *testing.T) {
	base := "one\ntwo\nthree\nfour\nfive\n"
	ours := "one\nTWO ours\nthree\nfour\nfive\n"
	theirs := "one\nTWO theirs\nthree\nfour\nFIVE\n"
	got, n := MergeMarkers([]byte(base), []byte(ours), []byte(theirs), "main", "agent")
	want := "one\n<<<<<<< main\nTWO ours\n=======\nTWO theirs\n>>>>>>> agent\nthree\nfour\nFIVE\n"
	if string(got) != want || n != 1 {
		t.Fatalf("got %d conflicts:\n%s\nwant:\n%s", n, got, want)
	}
	if !HasMarkers(got) || HasMarkers([]byte(want[:10])) || HasMarkers([]byte(base)) {
		t.Fatal("HasMarkers")
	}
	// Same as git merge-file, when git is installed.
	if _, err := exec.LookPath("git"); err != nil {
		return
	}
	dir := t.TempDir()
	for name, s := range map[string]string{"o": ours, "b": base, "t": theirs} {
		os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644)
	}
	exec.Command("git", "merge-file", "-L", "main", "-L", "base", "-L", "agent", filepath.Join(dir, "o"), filepath.Join(dir, "b"), filepath.Join(dir, "t")).Run()
	if g, _ := os.ReadFile(filepath.Join(dir, "o")); string(g) != want {
		t.Fatalf("git merge-file gives:\n%s", g)
	}
	// A side without a final newline still gets the marker on its own line.
	got, _ = MergeMarkers([]byte("x\n"), []byte("ours"), []byte("theirs"), "a", "b")
	if string(got) != "<<<<<<< a\nours\n=======\ntheirs\n>>>>>>> b\n" {
		t.Fatalf("no final newline:\n%q", got)
	}
}
