package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch"
)

type exporter struct {
	ctx   context.Context
	ws    *branch.Workspace
	links map[uint64]string // inode -> first exported path, for hard links
	buf   []byte
	root  bool
}

// Export writes the tree of ws into dst, which must not exist or be an empty directory.
// Owners are restored when running as root.
func Export(ctx context.Context, ws *branch.Workspace, dst string) error {
	if entries, err := os.ReadDir(dst); err == nil && len(entries) > 0 {
		return fmt.Errorf("export: %s is not empty; export into a new or empty directory", dst)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	ex := &exporter{ctx: ctx, ws: ws, links: map[uint64]string{}, buf: make([]byte, chunk), root: os.Geteuid() == 0}
	root, err := ws.GetAttr(ctx, branch.RootIno)
	if err != nil {
		return err
	}
	if err := ex.dir(root, dst); err != nil {
		return err
	}
	return ex.attrs(root, dst)
}

func (ex *exporter) dir(n *branch.Inode, p string) error {
	var entries []branch.DirEntry
	if err := ex.ws.ReadDir(ex.ctx, n.Ino, "", func(e branch.DirEntry) error {
		entries = append(entries, e)
		return nil
	}); err != nil {
		return err
	}
	for _, e := range entries {
		child, err := ex.ws.GetAttr(ex.ctx, e.Ino)
		if err != nil {
			return err
		}
		cp := filepath.Join(p, e.Name)
		if err := ex.entry(child, cp); err != nil {
			return fmt.Errorf("export %s: %w", cp, err)
		}
	}
	return nil
}

func (ex *exporter) entry(n *branch.Inode, p string) error {
	if first, ok := ex.links[n.Ino]; ok {
		return os.Link(first, p)
	}
	switch n.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := ex.dir(n, p); err != nil {
			return err
		}
	case syscall.S_IFLNK:
		if err := os.Symlink(string(n.Data), p); err != nil {
			return err
		}
	case syscall.S_IFREG:
		if err := ex.file(n, p); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(p, n.Mode, int(n.Rdev)); err != nil {
			return err
		}
	}
	if n.Nlink > 1 && !n.IsDir() {
		ex.links[n.Ino] = p
	}
	return ex.attrs(n, p)
}

func (ex *exporter) file(n *branch.Inode, p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	for off := int64(0); off < int64(n.Size); {
		k, err := ex.ws.Read(ex.ctx, n.Ino, off, ex.buf)
		if err != nil {
			f.Close()
			return err
		}
		if k == 0 {
			break
		}
		if _, err := f.WriteAt(ex.buf[:k], off); err != nil {
			f.Close()
			return err
		}
		off += int64(k)
	}
	if err := f.Truncate(int64(n.Size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// attrs restores xattrs, owner, mode and times, in that order (chown clears set-id bits).
func (ex *exporter) attrs(n *branch.Inode, p string) error {
	names, err := ex.ws.ListXattr(ex.ctx, n.Ino)
	if err != nil {
		return err
	}
	for _, name := range names {
		v, err := ex.ws.GetXattr(ex.ctx, n.Ino, name)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(p, name, v, 0); err != nil {
			return err
		}
	}
	if ex.root {
		if err := os.Lchown(p, int(n.Uid), int(n.Gid)); err != nil {
			return err
		}
	}
	if !n.IsSymlink() {
		if err := unix.Fchmodat(unix.AT_FDCWD, p, n.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.Atime), unix.NsecToTimespec(n.Mtime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
