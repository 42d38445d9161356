package work

import (
	"context"
	"syscall"
	"testing"
)

// TestRemoveLeavesNoKeys: unlinking a file removes every key of its inode, whatever its
// history: blocks written and then truncated away (the file is inline again, and removal
// skips the block scan for inline files), xattrs, a file that is still large.
func TestRemoveLeavesNoKeys(t *testing.T) {
	ctx := context.Background()
	ws := newTestWorkspace(t)
	big := make([]byte, 3*BlockSize+100)
	for i := range big {
		big[i] = byte(i)
	}
	var inos []uint64
	for _, tc := range []struct {
		name     string
		truncate bool
	}{{"truncated", true}, {"large", false}} {
		n, err := ws.Create(ctx, RootIno, tc.name, Attr{Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, n.Ino)
		if _, err := ws.Write(ctx, n.Ino, 0, big); err != nil {
			t.Fatal(err)
		}
		if _, err := ws.GetXattr(ctx, n.Ino, capabilityXattr); err != syscall.ENODATA {
			t.Fatalf("new file's %s: %v, want ENODATA", capabilityXattr, err)
		}
		if err := ws.SetXattr(ctx, n.Ino, capabilityXattr, []byte("cap"), 0); err != nil {
			t.Fatal(err)
		}
		if v, err := ws.GetXattr(ctx, n.Ino, capabilityXattr); err != nil || string(v) != "cap" {
			t.Fatalf("%s after setxattr: %q, %v", capabilityXattr, v, err)
		}
		// Fold the blocks into the base, so removal must find them in the tree too.
		root, _, err := ws.fold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ws.mu.Lock()
		ws.SetBaseLocked(root, ws.base)
		ws.mu.Unlock()
		if tc.truncate {
			zero := uint64(0)
			if _, err := ws.SetAttr(ctx, n.Ino, SetAttr{Size: &zero}); err != nil {
				t.Fatal(err)
			}
			if _, err := ws.Write(ctx, n.Ino, 0, []byte("small")); err != nil {
				t.Fatal(err)
			}
		}
		if err := ws.Unlink(ctx, RootIno, tc.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, ino := range inos {
		for _, p := range [][]byte{InodeKey(ino), BlockPrefix(ino), XattrPrefix(ino), pagePrefix(ino)} {
			if err := ws.scan(ctx, p, PrefixEnd(p), func(k, v []byte) error {
				t.Errorf("inode %d: key %q left after unlink", ino, k)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
