package main

import (
	"path/filepath"
	"slices"
	"testing"
)

// clone --branch X makes X and nothing else: no empty main unrelated to the remote's.
func TestCloneOneBranch(t *testing.T) {
	a := newRepo(t)
	url := "file://" + t.TempDir()
	ok(t, a, "import", "main", writeTree(t, map[string]string{"m": "main"}))
	ok(t, a, "fork", "main", "feature")
	ok(t, a, "import", "feature", writeTree(t, map[string]string{"f": "feature"}))
	ok(t, a, "remote", "add", "origin", url)
	ok(t, a, "push", "origin", "main")
	ok(t, a, "push", "origin", "feature")

	b := filepath.Join(t.TempDir(), "b")
	ok(t, b, "clone", url, "--branch", "feature")
	if got := branchNames(t, b); !slices.Equal(got, []string{"feature"}) {
		t.Fatalf("clone --branch feature made branches %v, want [feature]", got)
	}
	if got := ok(t, b, "cat", "feature:f"); got != "feature" {
		t.Fatalf("feature:f = %q", got)
	}
	// Without --branch: all of the remote's branches, main the remote's.
	c := filepath.Join(t.TempDir(), "c")
	ok(t, c, "clone", url)
	if got := branchNames(t, c); !slices.Equal(got, []string{"feature", "main"}) {
		t.Fatalf("clone made branches %v, want [feature main]", got)
	}
	if got := ok(t, c, "cat", "main:m"); got != "main" {
		t.Fatalf("main:m = %q", got)
	}
}
