package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/internal/hostile"
	"github.com/agentfs/agentfs/store"
)

// treeFromBytes builds a crafted tree from fuzz input: each record is a name (up to a 0
// byte), then a parent, a child inode and a type byte. Names may hold "..", "/" or nothing;
// children may be the root or a directory above (loops).
func treeFromBytes(data []byte) hostile.Tree {
	t := hostile.Tree{}
	t.Inode(1, 1, "", 0o40755, 0, nil)
	for len(data) > 0 {
		end := 0
		for end < len(data) && data[end] != 0 {
			end++
		}
		name := string(data[:end])
		data = data[min(end+1, len(data)):]
		if len(data) < 3 {
			break
		}
		parent, child, typ := uint64(data[0]%6+1), uint64(data[1]%6+1), data[2]
		data = data[3:]
		modes := []uint32{0o40755, 0o100644, 0o120777, 0o20644, 0o104755, 0o10644}
		mode := modes[int(typ)%len(modes)]
		if child != 1 {
			t.Inode(child, parent, name, mode, 5, []byte("data\n"))
		}
		t.Dirent(parent, name, child, mode)
	}
	return t
}

// FuzzExport: whatever tree a bucket holds, export writes only inside its target.
func FuzzExport(f *testing.F) {
	f.Add([]byte("../../escape\x00\x00\x02\x01"))
	f.Add([]byte("a/b\x00\x00\x02\x01"))
	f.Add([]byte("sub\x00\x00\x02\x00back\x00\x02\x00\x00"))
	f.Add([]byte("..\x00\x00\x02\x00x\x00\x02\x03\x01"))
	f.Add([]byte("dev\x00\x00\x02\x03suid\x00\x00\x03\x04"))
	f.Add([]byte("l\x00\x00\x02\x02l/x\x00\x00\x03\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		e, _ := openWorkspace(t)
		st := e.Store()
		root, err := st.Put(ctx, treeFromBytes(data).Leaf())
		if err != nil {
			t.Fatal(err)
		}
		commit, err := st.Put(ctx, hostile.Commit(root, nil, "fuzz"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateBranchAt(ctx, "fuzz", commit); err != nil {
			return // refused before any export
		}
		ws, _, err := e.Open(ctx, "fuzz")
		if err != nil {
			return
		}
		outer := t.TempDir()
		ExportWith(ctx, ws, filepath.Join(outer, "out"), ExportOptions{})
		entries, _ := os.ReadDir(outer)
		for _, x := range entries {
			if x.Name() != "out" {
				t.Fatalf("export wrote %q next to its target", x.Name())
			}
		}
		filepath.Walk(filepath.Join(outer, "out"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode()&(os.ModeDevice|os.ModeSetuid|os.ModeSetgid) != 0 && !fi.IsDir() {
				t.Fatalf("export created %s with mode %v", p, fi.Mode())
			}
			return nil
		})
	})
}

var _ = store.ID{}
