package branch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// changedFiles writes n files (every tenth one larger than a page, so folding has pages to
// turn into blocks) into ws without a checkpoint.
func changedFiles(t *testing.T, ws *Workspace, n int, tag string) {
	t.Helper()
	for i := range n {
		data := []byte(fmt.Sprintf("%s file %d\n", tag, i))
		if i%10 == 0 {
			data = bytes.Repeat(data, 2*PageSize/len(data)+1)
		}
		writeFile(t, ws, RootIno, fmt.Sprintf("f%05d", i), data)
	}
}

// Forking a branch with uncommitted changes twice folds them once: the second fork reuses
// the first fork's commit, until the branch changes again.
func TestForkFoldsOnce(t *testing.T) {
	ctx := context.Background()
	n := 10000
	if s := os.Getenv("AGENTFS_FOLDONCE_FILES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "main")
	changedFiles(t, ws, n, "a")
	folds := ws.FoldCount()
	f1, err := e.CreateBranch(ctx, "fork1", "main")
	if err != nil {
		t.Fatal(err)
	}
	if got := ws.FoldCount() - folds; got != 1 {
		t.Fatalf("the first fork folded %d times, want 1", got)
	}
	blocks, _ := blockStats(t, e)
	f2, err := e.CreateBranch(ctx, "fork2", "main")
	if err != nil {
		t.Fatal(err)
	}
	if got := ws.FoldCount() - folds; got != 1 {
		t.Fatalf("the second fork folded again (%d folds in all)", got)
	}
	if after, _ := blockStats(t, e); after != blocks {
		t.Fatalf("the second fork wrote %d blocks", after-blocks)
	}
	if f1.Base != f2.Base {
		t.Fatalf("the forks start from different commits %s and %s", f1.Base, f2.Base)
	}
	w2, _ := e.Workspace(ctx, "fork2")
	if dump(t, w2) != dump(t, ws) {
		t.Fatal("the second fork does not show the source's state")
	}
	// A diff reuses the fork's fold too.
	if _, err := e.Diff(ctx, "fork1", "main"); err != nil {
		t.Fatal(err)
	}
	if got := ws.FoldCount() - folds; got != 1 {
		t.Fatalf("a diff after the forks folded again (%d folds in all)", got)
	}

	// A change makes the next fork fold again, and it sees the change.
	writeFile(t, ws, RootIno, "f00001", []byte("changed"))
	f3, err := e.CreateBranch(ctx, "fork3", "main")
	if err != nil {
		t.Fatal(err)
	}
	if got := ws.FoldCount() - folds; got != 2 {
		t.Fatalf("a fork after a change folded %d times in all, want 2", got)
	}
	if f3.Base == f1.Base {
		t.Fatal("a fork after a change reused the old fold")
	}
	w3, _ := e.Workspace(ctx, "fork3")
	if got := readAll(t, w3, "f00001"); got != "changed" {
		t.Fatalf("fork3 reads %q", got)
	}

	// A garbage collection may sweep a fold no branch references: the next fork folds anew.
	e.CreateBranch(ctx, "fork4", "main")
	folds4 := ws.FoldCount()
	w, snap, err := e.BeginGC()
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	e.EndGC(w)
	if _, err := e.CreateBranch(ctx, "fork5", "main"); err != nil {
		t.Fatal(err)
	}
	if ws.FoldCount() == folds4 {
		t.Fatal("a fork after a garbage collection reused a fold that may have been swept")
	}
}

func readAll(t *testing.T, ws *Workspace, name string) string {
	t.Helper()
	ctx := context.Background()
	n, err := ws.Lookup(ctx, RootIno, name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, n.Size)
	if _, err := ws.Read(ctx, n.Ino, 0, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

// repoDigest hashes every key and value in the repository's Pebble (blocks included).
func repoDigest(t *testing.T, e *Engine) (string, int) {
	t.Helper()
	it, err := e.Store().DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		fmt.Fprintf(h, "%x=%x\n", it.Key(), it.Value())
		n++
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

// A diff of a branch with uncommitted changes writes nothing to the repository, and lists
// the same changes and content as a diff after a checkpoint.
func TestDiffWritesNothing(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "main")
	changedFiles(t, ws, 300, "a")
	if _, err := e.Checkpoint(ctx, "main", "base", ""); err != nil {
		t.Fatal(err)
	}
	// Uncommitted: new files, overwrites (pages over stored blocks), a partial page write,
	// a removal, a rename, a directory.
	changedFiles(t, ws, 50, "b")
	big, _ := ws.Lookup(ctx, RootIno, "f00100")
	if _, err := ws.Write(ctx, big.Ino, PageSize+7, []byte("PATCHED")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Unlink(ctx, RootIno, "f00200"); err != nil {
		t.Fatal(err)
	}
	if err := ws.Rename(ctx, RootIno, "f00210", RootIno, "renamed", 0); err != nil {
		t.Fatal(err)
	}
	dir, err := ws.Mkdir(ctx, RootIno, "newdir", Attr{Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ws, dir.Ino, "inner", bytes.Repeat([]byte("x"), 3*PageSize))
	if err := e.Store().Sync(); err != nil {
		t.Fatal(err)
	}

	before, keys := repoDigest(t, e)
	blocks, _ := blockStats(t, e)
	folds := ws.FoldCount()
	var changes []Change
	var files []FileDiff
	for i := range 3 {
		c, err := e.Diff(ctx, "main@base", "main")
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.DiffFiles(ctx, "main@base", "main", DiffOptions{Patch: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.DiffFiles(ctx, "main", "main@base", DiffOptions{Patch: true}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			changes, files = c, f
		}
	}
	after, keysAfter := repoDigest(t, e)
	if blocksAfter, _ := blockStats(t, e); blocksAfter != blocks {
		t.Fatalf("diff stored %d blocks", blocksAfter-blocks)
	}
	if after != before {
		t.Fatalf("diff changed the repository (%d keys before, %d after)", keys, keysAfter)
	}
	if got := ws.FoldCount() - folds; got != 1 {
		t.Fatalf("three diffs of an unchanged branch folded %d times, want 1", got)
	}

	// The same answer as a diff after a checkpoint (the stored fold).
	if _, err := e.Checkpoint(ctx, "main", "after", ""); err != nil {
		t.Fatal(err)
	}
	want, err := e.Diff(ctx, "main@base", "main@after")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("diff of uncommitted changes:\n%v\nafter a checkpoint:\n%v", changes, want)
	}
	wantFiles, err := e.DiffFiles(ctx, "main@base", "main@after", DiffOptions{Patch: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", files) != fmt.Sprintf("%+v", wantFiles) {
		t.Fatalf("content diff of uncommitted changes differs from the one after a checkpoint:\n%+v\n%+v", files, wantFiles)
	}
	if !bytes.Contains([]byte(fmt.Sprint(files)), []byte("PATCHED")) {
		t.Fatal("the content diff misses a write held in a working page")
	}
}
