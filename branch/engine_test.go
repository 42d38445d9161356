package branch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// blockStats counts the stored blocks and their bytes.
func blockStats(t *testing.T, e *Engine) (n int, bytes int64) {
	t.Helper()
	if err := e.Store().Blocks(context.Background(), func(id store.ID, size int64) error {
		n++
		bytes += size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, bytes
}

func writeFile(t *testing.T, ws *Workspace, parent uint64, name string, data []byte) uint64 {
	t.Helper()
	ctx := context.Background()
	n, err := ws.Lookup(ctx, parent, name)
	if errors.Is(err, syscall.ENOENT) {
		n, err = ws.Create(ctx, parent, name, Attr{Mode: 0o644})
	}
	if err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	if _, err := ws.SetAttr(ctx, n.Ino, SetAttr{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Write(ctx, n.Ino, 0, data); err != nil {
		t.Fatal(err)
	}
	return n.Ino
}

// Fork writes no tree nodes and no data, whatever the size of the tree.
func TestForkWritesNothing(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "main")
	for i := 0; i < 2000; i++ {
		writeFile(t, ws, RootIno, fmt.Sprintf("f%05d", i), []byte(fmt.Sprint("content ", i)))
	}
	cp, err := e.Checkpoint(ctx, "main", "base", "")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := blockStats(t, e)
	for i, from := range []string{cp.String(), "main", "main@base", cp.String()[:8]} {
		if _, err := e.CreateBranch(ctx, fmt.Sprint("fork", i), from); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := blockStats(t, e); after != before {
		t.Fatalf("forks wrote %d blocks", after-before)
	}
	// The fork sees the tree, and writes to it do not show in the source.
	f, _ := e.Workspace(ctx, "fork0")
	sourceBefore := dump(t, ws)
	writeFile(t, f, RootIno, "f00001", []byte("changed in fork"))
	if got := dump(t, ws); got != sourceBefore {
		t.Fatal("a write in a fork changed the source's tree")
	}
	src, _ := ws.Lookup(ctx, RootIno, "f00001")
	if src.Size != uint64(len("content 1")) {
		t.Fatalf("write in a fork changed the source: size %d", src.Size)
	}
}

// A checkpoint after one change in a directory of 100,000 entries writes a handful of tree
// nodes, not the directory.
func TestCheckpointCostFollowsChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100k-entry directory")
	}
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	ws, _ := e.Workspace(ctx, "main")
	dir, err := ws.Mkdir(ctx, RootIno, "big", Attr{Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100000; i++ {
		if _, err := ws.Create(ctx, dir.Ino, fmt.Sprintf("entry-%06d.txt", i), Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	n0, b0 := blockStats(t, e)
	if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
		t.Fatal(err)
	}
	n1, b1 := blockStats(t, e)
	writeFile(t, ws, dir.Ino, "entry-050000.txt", []byte("one change"))
	if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
		t.Fatal(err)
	}
	n2, b2 := blockStats(t, e)
	first, second := b1-b0, b2-b1
	t.Logf("first checkpoint: %d blocks, %d bytes; after one change: %d blocks, %d bytes", n1-n0, first, n2-n1, second)
	if second*100 > first {
		t.Fatalf("checkpoint of one change stored %d bytes, the full one %d: not 100x cheaper", second, first)
	}
}

// Two forks that change one file each grow the repository by about those two files.
func TestForksShareStorage(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	ws, _ := e.Workspace(ctx, "main")
	for i := 0; i < 50; i++ {
		data := make([]byte, 90_000) // incompressible, so sizes mean something
		randFill(data, uint64(i))
		writeFile(t, ws, RootIno, fmt.Sprintf("f%02d", i), data)
	}
	e.Checkpoint(ctx, "main", "", "")
	_, before := blockStats(t, e)
	for _, name := range []string{"a", "b"} {
		e.CreateBranch(ctx, name, "main")
		f, _ := e.Workspace(ctx, name)
		data := make([]byte, 90_000)
		randFill(data, uint64(name[0])<<32)
		writeFile(t, f, RootIno, "f07", data)
		if _, err := e.Checkpoint(ctx, name, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	_, after := blockStats(t, e)
	t.Logf("tree %d bytes stored; two forks added %d bytes", before, after-before)
	if after-before > before/10 {
		t.Fatalf("two one-file forks added %d bytes to a %d-byte repository", after-before, before)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	for _, name := range []string{"", "a/b", "..", "a..b", "x@y", "tab\there", "nl\n", "sp ace", "-flag", strings.Repeat("x", 200), "c:d"} {
		if _, err := e.CreateBranch(ctx, name, "main"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("branch name %q: got %v, want ErrInvalidName", name, err)
		}
		if name != "" {
			if _, err := e.Checkpoint(ctx, "main", name, ""); !errors.Is(err, ErrInvalidName) {
				t.Errorf("checkpoint name %q: got %v", name, err)
			}
		}
	}
	if _, err := e.CreateBranch(ctx, "main", ""); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate branch: %v", err)
	}
	for _, ref := range []string{"nope", "main@nope", "nope@x", "deadbeef", "@", "main@"} {
		if _, err := e.Resolve(ctx, ref); err == nil {
			t.Errorf("ref %q resolved", ref)
		}
	}
	if err := e.Rollback(ctx, "nope", "main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rollback of unknown branch: %v", err)
	}
	if err := e.DeleteBranch(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of unknown branch: %v", err)
	}
	e.SetBusy("main", "mounted at /x")
	if err := e.DeleteBranch(ctx, "main"); !errors.Is(err, ErrBusy) {
		t.Errorf("delete of a mounted branch: %v", err)
	}
	e.SetBusy("main", "")
	// Ambiguous prefixes: make checkpoints until two share their first 4 hex digits.
	seen := map[string]bool{}
	for i := 0; ; i++ {
		id, err := e.Checkpoint(ctx, "main", "", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		p := id.String()[:4]
		if seen[p] {
			if _, err := e.Resolve(ctx, p); !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("ambiguous prefix %s: %v", p, err)
			}
			if r, err := e.Resolve(ctx, id.String()[:16]); err != nil || r.Commit != id {
				t.Fatalf("longer prefix: %v %v", r, err)
			}
			break
		}
		seen[p] = true
	}
	// Names and ids resolve; a duplicate checkpoint name is refused.
	id, err := e.Checkpoint(ctx, "main", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.Resolve(ctx, "main@v1"); err != nil || r.Commit != id {
		t.Fatalf("main@v1: %v %v", r, err)
	}
	if _, err := e.Checkpoint(ctx, "main", "v1", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate checkpoint name: %v", err)
	}
}

func TestDiffPaths(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	ws, _ := e.Workspace(ctx, "main")
	d, _ := ws.Mkdir(ctx, RootIno, "dir", Attr{Mode: 0o755})
	writeFile(t, ws, d.Ino, "keep", []byte("same"))
	writeFile(t, ws, d.Ino, "edit", []byte("before"))
	writeFile(t, ws, RootIno, "gone", []byte("x"))
	big := make([]byte, 3*BlockSize)
	writeFile(t, ws, RootIno, "big", big)
	if _, err := e.Checkpoint(ctx, "main", "a", ""); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ws, d.Ino, "edit", []byte("after"))
	ws.Unlink(ctx, RootIno, "gone")
	writeFile(t, ws, d.Ino, "new", []byte("n"))
	bigIno, _ := ws.Lookup(ctx, RootIno, "big")
	ws.Write(ctx, bigIno.Ino, BlockSize+5, []byte("x")) // a block change only
	ws.Mkdir(ctx, RootIno, "newdir", Attr{Mode: 0o755})
	changes, err := e.Diff(ctx, "main@a", "main")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind+" "+c.Path)
	}
	want := "modified big,modified dir/edit,added dir/new,deleted gone,added newdir"
	if strings.Join(got, ",") != want {
		t.Fatalf("diff = %v\nwant %s", got, want)
	}
	if changes, _ := e.Diff(ctx, "main", "main"); len(changes) != 0 {
		t.Fatalf("diff of a ref with itself: %v", changes)
	}
}

func randFill(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}
