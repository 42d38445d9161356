package transfer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/testenv"
)

// Eight agents fork one checkpoint of a real source tree, each edits different files, and
// their branches merge one after another into main with no conflict; the result equals the
// tree you get by applying all eight edits to a plain copy. AGENTFS_LONG=1 uses all of
// $GOROOT/src instead of $GOROOT/src/net.
func TestMergeEightAgents(t *testing.T) {
	src := filepath.Join(testenv.GOROOT(), "src", "net")
	if os.Getenv("AGENTFS_LONG") == "1" {
		src = filepath.Join(testenv.GOROOT(), "src")
	}
	if _, err := os.Stat(src); err != nil {
		t.Skip("no Go source tree")
	}
	ctx := context.Background()
	e, ws := openWorkspace(t)
	if _, err := Import(ctx, ws, src); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Checkpoint(ctx, "main", "base", ""); err != nil {
		t.Fatal(err)
	}
	// The plain copy the edits are also applied to.
	plain := filepath.Join(t.TempDir(), "plain")
	if out, err := exec.Command("cp", "-a", src, plain).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	var goFiles []string
	filepath.WalkDir(plain, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Ext(p) == ".go" {
			rel, _ := filepath.Rel(plain, p)
			goFiles = append(goFiles, rel)
		}
		return nil
	})
	sort.Strings(goFiles)
	for a := 0; a < 8; a++ {
		name := fmt.Sprint("agent", a)
		if _, err := e.CreateBranch(ctx, name, "main@base"); err != nil {
			t.Fatal(err)
		}
		aws, _ := e.Workspace(ctx, name)
		work := filepath.Join(t.TempDir(), name)
		if out, err := exec.Command("cp", "-a", src, work).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		// Agent a edits every 8th Go file starting at a, in the agent's tree and the plain one.
		for i := a; i < len(goFiles); i += 8 * 5 {
			for _, root := range []string{work, plain} {
				p := filepath.Join(root, goFiles[i])
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b = append([]byte(fmt.Sprintf("// edited by %s\n", name)), b...)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		// One new file per agent in a shared directory.
		for _, root := range []string{work, plain} {
			os.WriteFile(filepath.Join(root, name+".txt"), []byte(name), 0o644)
		}
		if _, err := Import(ctx, aws, work); err != nil {
			t.Fatal(err)
		}
	}
	for a := 0; a < 8; a++ {
		res, err := e.Merge(ctx, fmt.Sprint("agent", a), "main", branch.MergeOptions{})
		if err != nil {
			t.Fatalf("merging agent%d: %v %v", a, err, res.Conflicts)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, ws, out); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("diff", "-r", "--no-dereference", plain, out).CombinedOutput(); err != nil {
		t.Fatalf("merged tree differs from the plain copy with all edits: %v\n%.3000s", err, b)
	}
}
