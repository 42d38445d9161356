package gitdiff

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"strconv"
	"time"
)

// randomText makes a text from a small alphabet of lines, so that edits find matches.
func randomText(r *rand.Rand) []byte {
	var b bytes.Buffer
	n := r.IntN(40)
	for i := 0; i < n; i++ {
		b.WriteString([]string{"alpha", "beta", "gamma", "", "delta x", "}"}[r.IntN(6)])
		b.WriteByte('\n')
	}
	if r.IntN(4) == 0 && b.Len() > 0 {
		b.Truncate(b.Len() - 1) // no newline at the end
	}
	return b.Bytes()
}

// edit changes a few lines of text at random.
func edit(r *rand.Rand, text []byte) []byte {
	lines := Lines(text)
	for k := r.IntN(5); k >= 0; k-- {
		switch i := r.IntN(len(lines) + 1); r.IntN(3) {
		case 0:
			lines = append(lines[:i], append([]string{"new line\n"}, lines[i:]...)...)
		case 1:
			if i < len(lines) {
				lines = append(lines[:i], lines[i+1:]...)
			}
		case 2:
			if i < len(lines) {
				lines[i] = "changed\n"
			}
		}
	}
	out := []byte(strings.Join(lines, ""))
	if r.IntN(6) == 0 && len(out) > 0 && out[len(out)-1] == '\n' {
		out = out[:len(out)-1]
	}
	return out
}

// TestPatchDifferential renders random edits and applies them with GNU patch (and git
// apply when git is installed): the result must be the new text.
func TestPatchDifferential(t *testing.T) {
	tools := []string{"patch"}
	if _, err := exec.LookPath("git"); err == nil {
		tools = append(tools, "git")
	}
	if _, err := exec.LookPath("patch"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatal("patch is not installed")
		}
		t.Skip("patch is not installed")
	}
	r := seeded(t, "AGENTFS_GITDIFF_SEED")
	cases := 60
	if testing.Short() {
		cases = 20
	}
	for c := 0; c < cases; c++ {
		old := randomText(r)
		neu := edit(r, old)
		if bytes.Equal(old, neu) {
			continue
		}
		var sb strings.Builder
		Write(&sb, File{OldPath: "f.txt", NewPath: "f.txt", OldMode: 0o100644, NewMode: 0o100644, Old: old, New: neu}, 3)
		for _, tool := range tools {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f.txt"), old, 0o644); err != nil {
				t.Fatal(err)
			}
			var cmd *exec.Cmd
			if tool == "patch" {
				cmd = exec.Command("patch", "-p1", "--quiet", "--batch")
			} else {
				cmd = exec.Command("git", "apply", "--unsafe-paths", "-")
			}
			cmd.Dir, cmd.Stdin = dir, strings.NewReader(sb.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("case %d: %s failed: %v\n%s\npatch:\n%s\nold:\n%q\nnew:\n%q", c, tool, err, out, sb.String(), old, neu)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "f.txt"))
			if !bytes.Equal(got, neu) {
				t.Fatalf("case %d: %s gave %q, want %q\npatch:\n%s", c, tool, got, neu, sb.String())
			}
		}
	}
}

func TestQuoteAndModes(t *testing.T) {
	if got := quote("a b/c"); got != "a b/c" {
		t.Errorf("quote plain: %q", got)
	}
	if got := quote("a\"b\n"); got != `"a\"b\n"` {
		t.Errorf("quote special: %q", got)
	}
	if Mode(0o100700) != 0o100755 || Mode(0o100600) != 0o100644 || Mode(0o120777) != 0o120000 {
		t.Error("git modes")
	}
	if BlobID(nil) != "e69de29" {
		t.Errorf("empty blob id %s", BlobID(nil))
	}
}

// seeded returns a random source whose seed is logged and replayed from env.
func seeded(t *testing.T, env string) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(env); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q is not a number", env, v)
		}
		seed = n
	}
	t.Logf("seed %d (replay with %s=%d)", seed, env, seed)
	return rand.New(rand.NewPCG(seed, seed))
}
