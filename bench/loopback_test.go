package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// The loopback column's server: built from the go-fuse module, it serves the original
// directory at the mount point, and Stop unmounts it.
func TestLoopbackServesTheOriginal(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("AGENTFS_REQUIRE_FUSE=1 but /dev/fuse is missing: %v", err)
		}
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "loopback")
	if err := BuildLoopback(bin); err != nil {
		t.Fatal(err)
	}
	cl := &Cleanup{}
	defer cl.Run()
	orig, mnt := filepath.Join(dir, "orig"), filepath.Join(dir, "mnt")
	l, err := StartLoopback(bin, orig, mnt, filepath.Join(dir, "log"), "", cl)
	if err != nil {
		t.Fatal(err)
	}
	if FsType(mnt) != "fuse.loopback ("+orig+")" {
		t.Errorf("%s is on %q, want the loopback of %s", mnt, FsType(mnt), orig)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("through FUSE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(orig, "f")); err != nil || string(b) != "through FUSE" {
		t.Errorf("the original holds %q, %v; want what was written through the mount", b, err)
	}
	l.Stop()
	if isMountPoint(mnt) {
		t.Errorf("%s is still mounted after Stop", mnt)
	}
}
