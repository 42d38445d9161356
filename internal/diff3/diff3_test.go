package diff3

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func lines(s ...string) []byte { return []byte(strings.Join(s, "\n") + "\n") }

func TestMergeCases(t *testing.T) {
	base := lines("a", "b", "c", "d", "e", "f", "g")
	cases := []struct {
		name         string
		ours, theirs []byte
		want         []byte // nil: conflict
	}{
		{"one side", lines("a", "B", "c", "d", "e", "f", "g"), base, lines("a", "B", "c", "d", "e", "f", "g")},
		{"both apart", lines("A", "b", "c", "d", "e", "f", "g"), lines("a", "b", "c", "d", "e", "f", "G"), lines("A", "b", "c", "d", "e", "f", "G")},
		{"same change", lines("a", "X", "c", "d", "e", "f", "g"), lines("a", "X", "c", "d", "e", "f", "g"), lines("a", "X", "c", "d", "e", "f", "g")},
		{"same line", lines("a", "X", "c", "d", "e", "f", "g"), lines("a", "Y", "c", "d", "e", "f", "g"), nil},
		{"adjacent", lines("a", "X", "c", "d", "e", "f", "g"), lines("a", "b", "Y", "d", "e", "f", "g"), nil},
		{"insert and delete apart", lines("a", "b", "new", "c", "d", "e", "f", "g"), lines("a", "b", "c", "d", "e", "g"), lines("a", "b", "new", "c", "d", "e", "g")},
		{"empty base", nil, lines("x"), lines("x")},
	}
	for _, c := range cases {
		got, ok := Merge(base, c.ours, c.theirs)
		if c.name == "empty base" {
			got, ok = Merge(nil, c.ours, c.theirs)
		}
		if c.want == nil {
			if ok {
				t.Errorf("%s: merged %q, want a conflict", c.name, got)
			}
			continue
		}
		if !ok || !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %q ok=%v, want %q", c.name, got, ok, c.want)
		}
	}
}

// The merge agrees with git merge-file on random edits of real-looking text.
func TestAgainstGitMergeFile(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatal("git is not installed")
		}
		t.Skip("git is not installed")
	}
	rng := rand.New(rand.NewPCG(7, 7))
	dir := t.TempDir()
	clean, conflicts := 0, 0
	for i := 0; i < 300; i++ {
		var base []string
		for j := 0; j < 30+rng.IntN(40); j++ {
			base = append(base, fmt.Sprintf("line %d of the base text", j))
		}
		edit := func(tag string) []string {
			out := append([]string(nil), base...)
			for e := 0; e < 1+rng.IntN(3); e++ {
				p := rng.IntN(len(out))
				switch rng.IntN(3) {
				case 0:
					out[p] = fmt.Sprintf("%s changed %d", tag, e)
				case 1:
					out = append(out[:p], out[p+1:]...)
				default:
					out = append(out[:p], append([]string{fmt.Sprintf("%s inserted %d", tag, e)}, out[p:]...)...)
				}
			}
			return out
		}
		o, a, b := lines(base...), lines(edit("ours")...), lines(edit("theirs")...)
		files := map[string][]byte{"o": o, "a": a, "b": b}
		for n, c := range files {
			os.WriteFile(filepath.Join(dir, n), c, 0o644)
		}
		cmd := exec.Command("git", "merge-file", "-p", filepath.Join(dir, "a"), filepath.Join(dir, "o"), filepath.Join(dir, "b"))
		want, err := cmd.Output()
		gitClean := err == nil
		got, ok := Merge(o, a, b)
		if ok != gitClean {
			t.Fatalf("case %d: clean=%v, git clean=%v\nbase:\n%s\nours:\n%s\ntheirs:\n%s", i, ok, gitClean, o, a, b)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("case %d: merge differs from git\ngot:\n%s\ngit:\n%s", i, got, want)
		}
		if ok {
			clean++
		} else {
			conflicts++
		}
	}
	t.Logf("%d clean merges and %d conflicts agreed with git merge-file", clean, conflicts)
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte("a\nb\n"), []byte("a\nc\n"), []byte("x\nb\n"))
	f.Fuzz(func(t *testing.T, o, a, b []byte) {
		got, ok := Merge(o, a, b)
		if ok && bytes.Equal(a, b) && !bytes.Equal(got, a) {
			t.Fatalf("identical sides merged to something else")
		}
		if m, ok2 := Merge(o, a, o); !ok2 || !bytes.Equal(m, a) {
			t.Fatalf("one-sided change must merge to that side: %q %v", m, ok2)
		}
		_ = ok
	})
}
