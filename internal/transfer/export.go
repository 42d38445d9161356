package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/posixacl"
)

// ExportOptions say what an export may restore beyond plain files, directories and links.
// A tree can come from a bucket whose content was crafted, so by default an export creates
// no device nodes and restores no setuid/setgid bits or file capabilities.
type ExportOptions struct {
	Devices  bool             // create character and block devices
	SetID    bool             // restore setuid/setgid bits and security.capability
	Warn     func(msg string) // told what was left out (nil: nothing is said)
	Progress func(Progress)   // told how far the export is (nil: no reports, and no scan)
}

type exporter struct {
	ctx   context.Context
	ws    *branch.Workspace
	o     ExportOptions
	links map[uint64]string // inode -> first exported path, for hard links
	dirs  map[uint64]bool   // directories exported: one reached twice is a loop
	buf   []byte
	root  bool
	meter meter
}

// Export writes the tree of ws into dst with the default (safe) options.
func Export(ctx context.Context, ws *branch.Workspace, dst string) error {
	return ExportWith(ctx, ws, dst, ExportOptions{})
}

// ExportWith writes the tree of ws into dst, which must not exist or be an empty directory.
// Owners are restored when running as root. Nothing is written outside dst: names are
// single path components (branch.Workspace.ReadDir checks them), every file is created
// exclusively and nothing follows a symlink, and a directory reached twice (a loop in a
// damaged or crafted tree) is an error.
func ExportWith(ctx context.Context, ws *branch.Workspace, dst string, o ExportOptions) error {
	if entries, err := os.ReadDir(dst); err == nil && len(entries) > 0 {
		return fmt.Errorf("export: %s is not empty; export into a new or empty directory", dst)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	ex := &exporter{ctx: ctx, ws: ws, o: o, links: map[uint64]string{}, dirs: map[uint64]bool{branch.RootIno: true},
		buf: make([]byte, chunk), root: os.Geteuid() == 0, meter: meter{f: o.Progress, phase: PhaseExport}}
	ex.meter.scanTree(ctx, ws)
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
		if ex.dirs[n.Ino] {
			return fmt.Errorf("directory inode %d is reached twice (a loop in a damaged or crafted tree)", n.Ino)
		}
		ex.dirs[n.Ino] = true
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
	case syscall.S_IFCHR, syscall.S_IFBLK:
		if !ex.o.Devices {
			ex.o.Warn(fmt.Sprintf("export: %s: device node left out (use --devices to create it)", p))
			return nil
		}
		if err := unix.Mknod(p, n.Mode&^(syscall.S_ISUID|syscall.S_ISGID), int(n.Rdev)); err != nil {
			return err
		}
	case syscall.S_IFIFO, syscall.S_IFSOCK:
		if err := unix.Mknod(p, n.Mode&(syscall.S_IFMT|0o777), 0); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown file type %#o", n.Mode&syscall.S_IFMT)
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
		ex.meter.add(int64(k))
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
	if !n.IsSymlink() {
		dropInheritedACLs(p, names)
	}
	for _, name := range names {
		v, err := ex.ws.GetXattr(ex.ctx, n.Ino, name)
		if err != nil {
			return err
		}
		if name == "security.capability" && !ex.o.SetID {
			ex.o.Warn(fmt.Sprintf("export: %s: file capabilities left out (use --setid to restore them)", p))
			continue
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
		mode := n.Mode & 0o7777
		if mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 && !ex.o.SetID && !n.IsDir() {
			ex.o.Warn(fmt.Sprintf("export: %s: setuid/setgid bits left out (use --setid to restore them)", p))
			mode &^= syscall.S_ISUID | syscall.S_ISGID
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, p, mode, 0); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.Atime), unix.NsecToTimespec(n.Mtime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// dropInheritedACLs removes the ACLs that a node took from a default ACL of the export's
// destination on the host, where the exported node has none: the export shows what the
// repository holds. (Inside the export no default ACL exists yet when nodes are created:
// a directory's own ACLs are restored after its children.)
func dropInheritedACLs(p string, stored []string) {
	for _, name := range []string{posixacl.Access, posixacl.Default} {
		if !slices.Contains(stored, name) {
			_ = unix.Removexattr(p, name) // absent, or no ACLs on the host: nothing to drop
		}
	}
}
