package branch

import (
	"context"
	"errors"
	"syscall"
	"testing"
)

// An idle workspace is evicted and opens again from its ref with its content; a mounted
// (busy) one or one with a reset hook stays; a caller that kept an evicted workspace gets
// ESTALE for a write or a checkpoint, never a write into an overlay nobody reads.
func TestEvictIdleWorkspaces(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := e.CreateBranch(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := e.Workspace(ctx, "a")
	writeFile(t, a, RootIno, "f", []byte("kept"))
	b, _ := e.Workspace(ctx, "b")
	remove := b.OnReset(func() {})
	e.Workspace(ctx, "c")
	e.SetBusy("c", "mounted at /x")
	if n := e.EvictIdle(0); n != 1 {
		t.Fatalf("evicted %d, want 1 (a; b has a hook, c is busy)", n)
	}
	if _, err := a.Create(ctx, RootIno, "g", Attr{Mode: 0o644}); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("write through an evicted workspace: %v, want ESTALE", err)
	}
	if _, err := e.Checkpoint(ctx, "a", "", ""); err != nil {
		t.Fatal(err) // through a new workspace
	}
	a2, _ := e.Workspace(ctx, "a")
	if a2 == a {
		t.Fatal("the evicted workspace was handed out again")
	}
	if n, err := a2.Lookup(ctx, RootIno, "f"); err != nil || n.Size != 4 {
		t.Errorf("after eviction: f %v, %v", n, err)
	}
	remove()
	e.SetBusy("c", "")
	if n := e.EvictIdle(0); n != 3 {
		t.Errorf("evicted %d, want a, b and c", n)
	}
	if n := e.OpenWorkspaces(); n != 0 {
		t.Errorf("%d workspaces open", n)
	}
}
