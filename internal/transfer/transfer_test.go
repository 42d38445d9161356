package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/testenv"
	"github.com/agentfs/agentfs/store"
)

func openWorkspace(t *testing.T) (*branch.Engine, *branch.Workspace) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, err := e.Workspace(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	return e, ws
}

// describe renders everything export must preserve about a tree.
func describe(t *testing.T, root string) string {
	t.Helper()
	var sb strings.Builder
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&sb, "%s mode=%o uid=%d gid=%d", rel, st.Mode, st.Uid, st.Gid)
		if !fi.IsDir() {
			fmt.Fprintf(&sb, " mtime=%d", fi.ModTime().UnixNano())
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&sb, " -> %s", target)
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " size=%d sha=%x", len(data), sha256.Sum256(data))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					fmt.Fprintf(&sb, " linkof=%s", first)
				} else {
					inodes[st.Ino] = rel
				}
			}
		}
		if names, _ := listXattrs(p); len(names) > 0 {
			for _, n := range names {
				v, _ := getXattr(p, n)
				fmt.Fprintf(&sb, " x:%s=%q", n, v)
			}
		}
		sb.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func makeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "small.txt"), []byte("hello\n"), 0o640))
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: several blocks
	must(os.WriteFile(filepath.Join(dir, "a/big.bin"), big, 0o600))
	must(os.WriteFile(filepath.Join(dir, "a/b/exec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Symlink("../small.txt", filepath.Join(dir, "a/link")))
	must(os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "small.txt"), filepath.Join(dir, "a/b/c/hard")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	// A sparse file: data, a 1 MiB hole, data.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("start"), 0)
	must(err)
	_, err = f.WriteAt([]byte("end"), 1<<20)
	must(err)
	must(f.Close())
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	if err := unix.Lsetxattr(filepath.Join(dir, "small.txt"), "user.agent", []byte("v1"), 0); err != nil {
		t.Logf("xattrs not supported here: %v", err)
	}
	return dir
}

func TestImportExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	e, ws := openWorkspace(t)
	src := makeTree(t)
	if _, err := Import(ctx, ws, src); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Checkpoint(ctx, "main", "", "import"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, ws, out); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, out), describe(t, src); got != want {
		t.Fatalf("export differs from source\ngot:\n%s\nwant:\n%s", got, want)
	}
	// Re-importing an unchanged tree writes no content.
	st, err := Import(ctx, ws, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 0 {
		t.Fatalf("re-import wrote %d bytes", st.Written)
	}
	if changed, _ := ws.Changed(); changed {
		t.Fatal("re-import of an unchanged tree changed the branch")
	}
	// Changes in the source are picked up: edit, delete, replace a dir with a file.
	if err := os.WriteFile(filepath.Join(src, "small.txt"), []byte("changed content"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(src, "a/b"))
	if err := os.WriteFile(filepath.Join(src, "a/b"), []byte("now a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, ws, src); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "out2")
	if err := Export(ctx, ws, out2); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, out2), describe(t, src); got != want {
		t.Fatalf("second export differs\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// A real tree nobody here wrote: part of the Go source, compared with diff -r.
func TestImportExportGoSource(t *testing.T) {
	src := filepath.Join(testenv.GOROOT(), "src", "net")
	if _, err := os.Stat(src); err != nil {
		t.Skip("no Go source tree")
	}
	ctx := context.Background()
	_, ws := openWorkspace(t)
	if _, err := Import(ctx, ws, src); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, ws, out); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("diff", "-r", "--no-dereference", src, out).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, b)
	}
	if got, want := describe(t, out), describe(t, src); got != want {
		t.Fatal("metadata differs after export")
	}
}

func TestImportErrors(t *testing.T) {
	_, ws := openWorkspace(t)
	if _, err := Import(context.Background(), ws, "/does/not/exist"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("import of a missing dir: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if err := Export(context.Background(), ws, dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("export into a non-empty dir: %v", err)
	}
}
