package remote_test

import (
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
)

// A lazy clone whose cached index still names a pack that another host's remote gc rewrote
// reads its files anyway: the 404 refreshes the index and the read goes to the new pack.
func TestLazyCloneAfterRemoteGC(t *testing.T) {
	url := "file://" + t.TempDir()
	a := newRepo(t)
	a.Remotes.Add(ctx, "origin", url)
	keep := randomFiles(21, 4, 100<<10)
	all := files{}
	for p, d := range keep {
		all[p] = d
	}
	for p, d := range randomFiles(22, 8, 400<<10) {
		all["junk/"+p] = d
	}
	writeBranch(t, a, "old", all)
	if _, err := a.Remotes.Push(ctx, "origin", "old"); err != nil {
		t.Fatal(err)
	}
	writeBranch(t, a, "keep", keep)
	if _, err := a.Remotes.Push(ctx, "origin", "keep"); err != nil {
		t.Fatal(err)
	}
	b, _ := cloneRepo(t, url, []string{"keep"}) // lazy: no file data yet

	bk, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	bk.Delete(ctx, "refs/heads/old")
	res, err := a.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewritten == 0 {
		t.Fatalf("gc rewrote no pack: %+v", res)
	}
	sameFiles(t, "lazy read after another host's gc", readBranch(t, b, "keep"), keep)
}

// The fetch order is kept in Pebble: after a restart the cache limit still bounds what
// lazily fetched data the repository keeps.
func TestCacheLimitAcrossRestart(t *testing.T) {
	url := "file://" + t.TempDir()
	a := newRepo(t)
	a.Remotes.Add(ctx, "origin", url)
	first, second := randomFiles(31, 12, 300<<10), randomFiles(32, 12, 300<<10)
	writeBranch(t, a, "one", first)
	writeBranch(t, a, "two", second)
	for _, br := range []string{"one", "two"} {
		if _, err := a.Remotes.Push(ctx, "origin", br); err != nil {
			t.Fatal(err)
		}
	}
	const limit = 1 << 20
	b, err := repo.Init(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	b.Remotes.Close()
	b.Remotes = remote.New(b.Engine, remote.Options{CacheLimit: limit})
	if _, err := b.Remotes.Clone(ctx, url, nil, remote.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	local := func(r *repo.Repo) int64 {
		var n int64
		r.Store.Blocks(ctx, func(id store.ID, size int64) error { n += size; return nil })
		return n
	}
	nodes := local(b)
	sameFiles(t, "first branch", readBranch(t, b, "one"), first)
	dir := b.Dir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := repo.Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	b2.Remotes.Close()
	b2.Remotes = remote.New(b2.Engine, remote.Options{CacheLimit: limit})
	sameFiles(t, "second branch after a restart", readBranch(t, b2, "two"), second)
	got := local(b2) - nodes
	t.Logf("%d bytes of fetched data kept with a %d byte limit (read %d + %d)", got, limit, size(first), size(second))
	if got > limit+limit/2 {
		t.Errorf("%d bytes of fetched data kept across a restart with a %d byte limit", got, limit)
	}
}
