package remote_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
)

func TestGCFile(t *testing.T) { testGC(t, "file://"+t.TempDir()) }

func TestGCS3(t *testing.T) {
	srv := startS3(t) // skips without versitygw unless AGENTFS_REQUIRE_BACKENDS=1
	testGC(t, s3URL(t, srv, srv.Endpoint, "gcbucket"))
}

func bytesOf(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// listing returns the bucket's keys with their sizes.
func listing(t *testing.T, b backends.Backend) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	if err := b.List(ctx, "", func(oi backends.ObjectInfo) error {
		out[oi.Key] = oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func keysUnder(l map[string]int64, dir string) []string {
	var out []string
	for k := range l {
		if strings.HasPrefix(k, dir) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sameListing(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s changed the bucket:\n got %v\nwant %v", what, keysUnder(got, ""), keysUnder(want, ""))
	}
}

// testGC: host A pushes four branches: main; mix (small files S and big files B); keep (only
// S, a history of its own whose data blocks the push finds in mix's pack); gone (files of its
// own). The refs of mix and gone are deleted in the bucket. A collection with the default
// grace deletes nothing; a dry run (on a host that reads everything from the bucket) changes
// nothing and finds the same objects live; a collection with no grace deletes gone's
// pack and rewrites mix's (mostly dead: B) into a pack holding S. Fresh clones of main and
// keep read back identically and fsck clean (with the bucket's copies verified); A's index
// cache forgot the deleted packs, so pushing gone again uploads it whole.
func testGC(t *testing.T, url string) {
	a := newRepo(t)
	if _, err := a.Remotes.Add(ctx, "origin", url); err != nil {
		t.Fatal(err)
	}
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	mainFiles := randomFiles(21, 12, 100<<10)
	small, mix := files{}, files{}
	for i := 0; i < 6; i++ {
		small[fmt.Sprintf("s/f%d.txt", i)] = bytesOf(uint64(100+i), 5000+i*1000)
	}
	for k, v := range small {
		mix[k] = v
	}
	for i := 0; i < 5; i++ {
		mix[fmt.Sprintf("big/b%d.bin", i)] = bytesOf(uint64(200+i), 200<<10)
	}
	goneFiles := randomFiles(23, 10, 150<<10)
	for _, br := range []struct {
		name string
		fs   files
	}{{"main", mainFiles}, {"mix", mix}, {"keep", small}, {"gone", goneFiles}} {
		writeBranch(t, a, br.name, br.fs)
		if _, err := a.Remotes.Push(ctx, "origin", br.name); err != nil {
			t.Fatalf("push %s: %v", br.name, err)
		}
	}
	for _, br := range []string{"mix", "gone"} {
		if err := b.Delete(ctx, "refs/heads/"+br); err != nil {
			t.Fatal(err)
		}
	}
	before := listing(t, b)
	packsBefore := keysUnder(before, "packs/")
	t.Logf("before: %d packs", len(packsBefore))

	// Default grace: everything is young.
	res, err := a.Remotes.GC(ctx, "origin", remote.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default grace: %+v", res)
	if res.Deleted != 0 || res.Rewritten != 0 || res.Young != len(packsBefore) || res.Refs != 2 {
		t.Errorf("with the default grace: %+v; want nothing done, %d young packs, 2 refs", res, len(packsBefore))
	}
	sameListing(t, "gc with the default grace", listing(t, b), before)

	// Dry run with no grace, from a host that has none of the objects (everything is read
	// from the bucket): reports, changes nothing.
	g := newRepo(t)
	if _, err := g.Remotes.Add(ctx, "origin", url); err != nil {
		t.Fatal(err)
	}
	dry, err := g.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run: %+v", dry)
	if down := g.Remotes.Stats().BytesDown.Load(); down == 0 {
		t.Errorf("a mark from an empty repository read nothing from the bucket")
	}
	if dry.Deleted < 1 || dry.Rewritten < 1 || dry.Reclaimed <= 0 || dry.LiveObjects != res.LiveObjects {
		t.Errorf("dry run found nothing to do: %+v", dry)
	}
	sameListing(t, "dry run", listing(t, b), before)

	// The real thing.
	res, err = a.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc: %+v", res)
	if res.Deleted != dry.Deleted || res.Rewritten != dry.Rewritten || res.Written < 1 || res.Copied != dry.Copied {
		t.Errorf("gc = %+v; dry run said %+v", res, dry)
	}
	after := listing(t, b)
	var bytesBefore, bytesAfter int64
	for _, k := range packsBefore {
		bytesBefore += before[k]
	}
	for _, k := range keysUnder(after, "packs/") {
		bytesAfter += after[k]
	}
	t.Logf("pack bytes %d -> %d", bytesBefore, bytesAfter)
	if bytesBefore-bytesAfter < int64(size(goneFiles)+4*(200<<10))*9/10 {
		t.Errorf("reclaimed %d bytes, want at least gone's files and most of mix's big files", bytesBefore-bytesAfter)
	}
	// Every pack has its index and vice versa.
	for _, k := range keysUnder(after, "packs/") {
		if _, ok := after["index/"+strings.TrimPrefix(k, "packs/")]; !ok {
			t.Errorf("%s has no index", k)
		}
	}
	for _, k := range keysUnder(after, "index/") {
		if _, ok := after["packs/"+strings.TrimPrefix(k, "index/")]; !ok {
			t.Errorf("%s has no pack", k)
		}
	}
	removed := 0
	for _, k := range packsBefore {
		if _, ok := after[k]; !ok {
			removed++
		}
	}
	if removed != res.Deleted+res.Rewritten {
		t.Errorf("%d packs removed; gc says %d deleted + %d rewritten", removed, res.Deleted, res.Rewritten)
	}

	// A second collection finds nothing.
	again, err := a.Remotes.GC(ctx, "origin", remote.GCOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if again.Deleted != 0 || again.Rewritten != 0 || again.Orphans != 0 {
		t.Errorf("second gc: %+v; want nothing", again)
	}

	// Fresh clones read the remaining branches back, and fsck (verifying the bucket's copies
	// of every block) is clean.
	c, _ := cloneRepo(t, url, nil)
	sameFiles(t, "main after gc", readBranch(t, c, "main"), mainFiles)
	sameFiles(t, "keep after gc", readBranch(t, c, "keep"), small)
	fsckClean(t, c)
	c2, _ := cloneRepo(t, url, []string{"keep"})
	fsckClean(t, c2)
	sameFiles(t, "keep after gc (second clone)", readBranch(t, c2, "keep"), small)

	// A forgot the deleted packs: pushing gone again uploads all of it.
	pr, err := a.Remotes.Push(ctx, "origin", "gone")
	if err != nil {
		t.Fatal(err)
	}
	if pr.Bytes < size(goneFiles)*9/10 {
		t.Errorf("push of gone after gc sent %d bytes; its %d bytes of files were deleted from the bucket", pr.Bytes, size(goneFiles))
	}
	c3, _ := cloneRepo(t, url, []string{"gone"})
	sameFiles(t, "gone pushed again", readBranch(t, c3, "gone"), goneFiles)
	fsckClean(t, c3)
}

func fsckClean(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := gc.Check(ctx, r.Engine, gc.CheckOptions{Remote: r.Remotes, VerifyRemote: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %v", p)
	}
	if rep.Objects == 0 {
		t.Errorf("fsck checked nothing")
	}
}
