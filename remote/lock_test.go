package remote_test

import (
	"errors"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/remote"
)

// A collection steps back while a push is announced, and a push while a collection runs.
func TestPushAndGCExcludeEachOther(t *testing.T) {
	url := "file://" + t.TempDir()
	a := newRepo(t)
	if _, err := a.Remotes.Add(ctx, "origin", url); err != nil {
		t.Fatal(err)
	}
	writeBranch(t, a, "main", randomFiles(1, 4, 10<<10))
	if _, err := a.Remotes.Push(ctx, "origin", "main"); err != nil {
		t.Fatal(err)
	}
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Another host's push in progress: gc refuses and changes nothing.
	if _, err := b.PutIf(ctx, "locks/push-1-other", []byte("push\n"), ""); err != nil {
		t.Fatal(err)
	}
	before := listing(t, b)
	if _, err := a.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1}); !errors.Is(err, remote.ErrBusy) {
		t.Fatalf("gc during a push: %v, want ErrBusy", err)
	}
	sameListing(t, "after a refused gc", listing(t, b), before)
	b.Delete(ctx, "locks/push-1-other")

	// Another host's collection in progress: push refuses.
	if _, err := b.PutIf(ctx, "locks/gc", []byte("gc\n"), ""); err != nil {
		t.Fatal(err)
	}
	writeBranch(t, a, "main", randomFiles(2, 4, 10<<10))
	if _, err := a.Remotes.Push(ctx, "origin", "main"); !errors.Is(err, remote.ErrBusy) {
		t.Fatalf("push during a gc: %v, want ErrBusy", err)
	}
	b.Delete(ctx, "locks/gc")
	if _, err := a.Remotes.Push(ctx, "origin", "main"); err != nil {
		t.Fatalf("push after the gc ended: %v", err)
	}
	// Neither leaves its lock behind.
	var left []string
	b.List(ctx, "locks/", func(oi backends.ObjectInfo) error { left = append(left, oi.Key); return nil })
	if len(left) != 0 {
		t.Fatalf("locks left behind: %v", left)
	}
}

// A host whose index cache still lists packs another host's collection deleted re-uploads
// what it needs instead of pointing a ref at objects that are gone.
func TestStaleCacheAfterRemoteGC(t *testing.T) {
	url := "file://" + t.TempDir()
	a := newRepo(t)
	a.Remotes.Add(ctx, "origin", url)
	old := randomFiles(5, 6, 120<<10)
	writeBranch(t, a, "main", randomFiles(6, 3, 10<<10))
	writeBranch(t, a, "old", old)
	for _, br := range []string{"main", "old"} {
		if _, err := a.Remotes.Push(ctx, "origin", br); err != nil {
			t.Fatal(err)
		}
	}
	// Host B has everything, fully, and its cache lists every pack.
	hostB := newRepo(t)
	if _, err := hostB.Remotes.Clone(ctx, url, nil, remote.PullOptions{Full: true}); err != nil {
		t.Fatal(err)
	}
	// Host A drops branch old from the bucket and collects.
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Delete(ctx, "refs/heads/old")
	res, err := a.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted+res.Rewritten == 0 {
		t.Fatalf("gc reclaimed nothing: %+v", res)
	}
	// Host B pushes a fork of old: the objects must be uploaded again.
	if _, err := hostB.Engine.CreateBranch(ctx, "revived", "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := hostB.Remotes.Push(ctx, "origin", "revived"); err != nil {
		t.Fatal(err)
	}
	c, _ := cloneRepo(t, url, []string{"revived"})
	sameFiles(t, "clone of a branch pushed from a stale cache", readBranch(t, c, "revived"), old)
	// (Its history before the head is gone with the collected branch: a clone has only the
	// commits it pulled, so fsck of this clone would rightly report the missing parent.)
}
