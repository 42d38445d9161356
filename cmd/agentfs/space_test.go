package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/internal/testenv"
	"github.com/agentfs/agentfs/store"
)

// duKiB is du -sk of dir (allocated blocks), skipping files a compaction removes meanwhile.
func duKiB(dir string) uint64 { return store.DirUsage(dir) >> 10 }

// Issue 13's done-when: import GOROOT/src/net, then 100 forks of 200 KB of random data each,
// delete them and run gc: du of the repository is at most 110% of what it was before the
// forks. gc's printed figures are du's.
func TestGCReclaimsForks(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", filepath.Join(testenv.GOROOT(), "src", "net"))
	startDaemon(t, repo)
	settled := gcStats(t, repo) // settles the repository (nothing to delete yet)
	before := duKiB(repo)
	forks := 100
	for i := range forks {
		name := fmt.Sprintf("fork%03d", i)
		ok(t, repo, "fork", "main", name)
		dir := t.TempDir()
		randomFile(t, dir, "unique", 200_000)
		ok(t, repo, "import", name, dir)
	}
	grown := duKiB(repo)
	for i := range forks {
		ok(t, repo, "branch", "delete", fmt.Sprintf("fork%03d", i))
	}
	st := gcStats(t, repo)
	after := duKiB(repo)
	t.Logf("du -sk: before the forks %d KiB, with them %d KiB, after delete and gc %d KiB (%.0f%%)",
		before, grown, after, 100*float64(after)/float64(before))
	t.Logf("gc: deleted %d blocks (%d bytes), disk %d -> %d KiB, settled %v (first gc: %d KiB)",
		st.Deleted, st.DeletedBytes, st.DiskBefore>>10, st.DiskAfter>>10, st.Settled, settled.DiskAfter>>10)
	if grown < before+uint64(forks)*200_000>>10 {
		t.Fatalf("the forks did not add their data: %d -> %d KiB", before, grown)
	}
	if st.DeletedBytes < int64(forks)*200_000 {
		t.Errorf("gc deleted %d bytes, the forks wrote %d", st.DeletedBytes, forks*200_000)
	}
	if after > before*11/10 {
		t.Errorf("du after gc %d KiB > 110%% of %d KiB before the forks", after, before)
	}
	// gc's figure is the database's du; the repository adds a few small files.
	if db := st.DiskAfter >> 10; db > after || after-db > 256 {
		t.Errorf("gc says %d KiB on disk, du of the repository says %d KiB", db, after)
	}
	ok(t, repo, "fsck")
}

// A fresh repository holding a 10 MiB tree takes at most 40 MiB; 10 forks that each change
// 256 KiB take far less than 10 copies.
func TestSmallRepositoryIsSmall(t *testing.T) {
	repo := newRepo(t)
	src := t.TempDir()
	for i := range 40 {
		randomFile(t, src, fmt.Sprintf("f%02d", i), 256<<10)
	}
	ok(t, repo, "import", "main", src)
	one := duKiB(repo)
	t.Logf("du -sk of a repository holding a 10 MiB tree: %d KiB", one)
	if one > 40<<10 {
		t.Errorf("a 10 MiB tree takes %d KiB, more than 40 MiB", one)
	}
	startDaemon(t, repo)
	for i := range 10 {
		name := fmt.Sprintf("fork%d", i)
		ok(t, repo, "fork", "main", name)
		dir := t.TempDir()
		randomFile(t, dir, "new", 256<<10)
		ok(t, repo, "import", name, dir)
	}
	forks := duKiB(repo)
	t.Logf("du -sk with 10 forks changing 256 KiB each: %d KiB", forks)
	if forks > one+10*2*256+8<<10 {
		t.Errorf("10 forks take %d KiB (one tree: %d KiB)", forks, one)
	}
}
