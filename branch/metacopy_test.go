package branch

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/work"
)

// The metadata copy keeps what a damaged database cannot lose (refs, names, overlays'
// inodes and dirents), not uncommitted file data: a large uncommitted file once made the
// copy as large as the file and the daemon buffered it in memory every minute.
func TestMetadataCopyLeavesOutWorkingPages(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, err := e.Workspace(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	ino := writeFile(t, ws, work.RootIno, "big", data)
	path := filepath.Join(t.TempDir(), "metadata.copy")
	if _, err := e.Store().SaveMetadataCopy(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1<<20 {
		t.Fatalf("metadata copy is %d bytes with 8 MiB of uncommitted data: it holds the pages", st.Size())
	}
	var pages, inode int
	if _, err := store.ReadMetadataCopy(path, func(k, _ []byte) error {
		switch {
		case len(k) >= 10 && k[0] == work.PfxOverlay && k[9] == work.KindPage:
			pages++
		case len(k) == 18 && k[0] == work.PfxOverlay && string(k[9:]) == string(work.InodeKey(ino)):
			inode++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if pages != 0 || inode != 1 {
		t.Fatalf("copy holds %d working pages and %d records of the file's inode; want 0 and 1", pages, inode)
	}
	// An unchanged keyspace is not rewritten; a change is.
	if written, err := e.Store().SaveMetadataCopy(path); err != nil || written {
		t.Fatalf("second copy of an unchanged keyspace: written %v, err %v", written, err)
	}
	writeFile(t, ws, work.RootIno, "small", []byte("x"))
	if written, err := e.Store().SaveMetadataCopy(path); err != nil || !written {
		t.Fatalf("copy after a new file: written %v, err %v", written, err)
	}
}
