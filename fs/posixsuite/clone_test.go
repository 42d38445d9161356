package posixsuite

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	afs "github.com/agentfs/agentfs/fs"
)

// FICLONE never reaches a FUSE filesystem: the kernel has no FUSE request for it and answers
// EOPNOTSUPP itself (fs/remap_range.c: no remap_file_range in fuse's file_operations). This
// test pins that down, so that the day a kernel forwards it, we notice; until then
// `cp --reflink=always` fails on a mount and plain `cp` (copy_file_range) is the way to
// share blocks.
func TestFICLONEIsRefusedByTheKernel(t *testing.T) {
	dir, _ := mountBranch(t, afs.Options{})
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("FICLONE on a FUSE mount: %v; the kernel used to answer EOPNOTSUPP (update docs/architecture.md)", err)
	}
	if _, err := exec.LookPath("cp"); err == nil {
		msg, err := exec.Command("cp", "--reflink=always", src, filepath.Join(dir, "reflinked")).CombinedOutput()
		if err == nil || !strings.Contains(string(msg), "not supported") {
			t.Fatalf("cp --reflink=always: %v %s", err, msg)
		}
	}
}
