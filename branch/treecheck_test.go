package branch

import (
	"context"
	"errors"
	"testing"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// TestCheckTree: a tree built here passes; the same tree with one parent link turned into
// a loop, a bad name or a dirent that links the root fails, whether checked whole or only
// where it differs from the good tree.
func TestCheckTree(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	ws, err := e.Workspace(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	dir := Attr{Mode: 0o40755}
	a, err := ws.Mkdir(ctx, RootIno, "a", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ws.Mkdir(ctx, a.Ino, "b", dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ws.Create(ctx, b.Ino, "f", Attr{Mode: 0o100644})
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Checkpoint(ctx, "b", "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.ReadCommit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	good := c.Root
	if err := e.CheckTree(ctx, good, good); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckTree(ctx, good, store.ID{}); err != nil {
		t.Fatalf("a tree built here: %v", err)
	}
	inode := func(n *Inode) tree.Mutation { return tree.Mutation{Key: inodeKey(n.Ino), Value: encodeInode(n)} }
	loopA := *a
	loopA.Parent = b.Ino // a -> b -> a
	for name, muts := range map[string][]tree.Mutation{
		"parent loop": {inode(&loopA)},
		"self parent": {inode(&Inode{Ino: f.Ino, Mode: f.Mode, Nlink: 1, Parent: f.Ino, Name: "f"})},
		"bad name":    {{Key: direntKey(RootIno, "../x"), Value: encodeDirent(f.Ino, f.Mode)}},
		"root link":   {{Key: direntKey(b.Ino, "up"), Value: encodeDirent(RootIno, 0o40755)}},
		"bad inode":   {{Key: inodeKey(f.Ino), Value: []byte("I\x01")}},
	} {
		bad, err := e.tree.Apply(ctx, good, muts)
		if err != nil {
			t.Fatal(err)
		}
		for _, trusted := range []store.ID{good, {}} {
			if err := e.CheckTree(ctx, bad, trusted); !errors.Is(err, ErrDamaged) {
				t.Errorf("%s (incremental %v): %v, want a damaged tree", name, !trusted.IsZero(), err)
			}
		}
	}
}
