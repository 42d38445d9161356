package fs

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/work"
)

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	in, err := n.fs.ws.GetAttr(wctx(ctx), n.ino())
	if err != nil {
		return n.fs.errno("getattr", err)
	}
	n.fs.fillAttr(in, &out.Attr)
	return 0
}

func setSize(s *uint64) work.SetAttr { return work.SetAttr{Size: s} }

// Setattr applies chmod, chown, truncate and utimes. The kernel has checked permissions
// (default_permissions); UTIME_NOW arrives as a flag and is resolved to the current time here.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	var a work.SetAttr
	if m, ok := in.GetMode(); ok {
		a.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		u = n.fs.ids.storedUID(u)
		a.Uid = &u
	}
	if g, ok := in.GetGID(); ok {
		g = n.fs.ids.storedGID(g)
		a.Gid = &g
	}
	if s, ok := in.GetSize(); ok {
		a.Size = &s
		a.Since = handleGen(f) // ftruncate through a descriptor from before a rollback fails
	}
	if t, ok := in.GetATime(); ok {
		ns := t.UnixNano()
		a.Atime = &ns
	}
	if t, ok := in.GetMTime(); ok {
		ns := t.UnixNano()
		a.Mtime = &ns
	}
	if a.Size != nil || a.Uid != nil || a.Gid != nil {
		if err := n.fs.dropPrivs(ctx, n.ino(), a.Uid != nil || a.Gid != nil); err != nil {
			return n.fs.errno("setattr", err)
		}
	}
	res, err := n.fs.ws.SetAttr(wctx(ctx), n.ino(), a)
	if a.Size != nil {
		n.fs.blocks.forget(n.ino())
	}
	if err != nil {
		e := n.fs.errno("setattr", err)
		if a.Size != nil {
			n.fs.errs.set(n.ino(), e)
		}
		return e
	}
	n.fs.fillAttr(res, &out.Attr)
	n.inodeChanged()
	return 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.fs.ws.Readlink(wctx(ctx), n.ino())
	if err != nil {
		return nil, n.fs.errno("readlink", err)
	}
	return []byte(target), 0
}

// Statfs reports the free space of the repository's file system; the file counts are
// nominal (inodes are allocated without a fixed table).
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, work.MaxEntryName
	out.Files, out.Ffree = 1<<40, 1<<40
	if n.fs.statfsPath == "" {
		out.Blocks, out.Bfree, out.Bavail = 1<<30, 1<<30, 1<<30
		return 0
	}
	var st unix.Statfs_t
	if err := unix.Statfs(n.fs.statfsPath, &st); err != nil {
		return n.fs.errno("statfs", err)
	}
	scale := uint64(st.Bsize) / 4096
	if scale == 0 {
		scale = 1
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks*scale, st.Bfree*scale, st.Bavail*scale
	return 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, err := n.fs.ws.GetXattr(wctx(ctx), n.ino(), attr)
	if err == nil {
		v, err = n.fs.mapACL(attr, v, false)
	}
	if err != nil {
		return 0, n.fs.errno("getxattr", err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr sets an xattr; for the ACL xattrs the workspace also updates the mode
// (work/acl.go), and the kernel, which caches both, drops them itself.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	data, err := n.fs.mapACL(attr, data, true)
	if err != nil {
		return syscall.EINVAL
	}
	e := n.fs.errno("setxattr", n.fs.ws.SetXattr(wctx(ctx), n.ino(), attr, data, flags))
	if e == 0 {
		n.inodeChanged()
	}
	return e
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	e := n.fs.errno("removexattr", n.fs.ws.RemoveXattr(wctx(ctx), n.ino(), attr))
	if e == 0 {
		n.inodeChanged()
	}
	return e
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.fs.ws.ListXattr(wctx(ctx), n.ino())
	if err != nil {
		return 0, n.fs.errno("listxattr", err)
	}
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(0)
	}
	if len(dest) < b.Len() {
		return uint32(b.Len()), syscall.ERANGE
	}
	return uint32(copy(dest, b.String())), 0
}
