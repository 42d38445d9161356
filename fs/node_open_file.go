package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/work"
)

// openFlags are the FOPEN flags of an open file. The page cache may survive close and
// reopen (KEEP_CACHE): content changes only through this mount, and a reset invalidates it
// explicitly. A read-only descriptor has nothing to report at close, so it needs no FLUSH
// round trip; a writable one gets FLUSH, which reports its file's write errors (errSeq).
func openFlags(flags uint32) uint32 {
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH
	}
	return fuse.FOPEN_KEEP_CACHE
}

// handle is an open file. Reads and writes go to the inode; the handle remembers which
// errors of its file it has reported (errSeq) and the workspace generation it was opened
// in: after a rollback its writes fail with ESTALE instead of reaching the restored tree.
type handle struct {
	gen uint64         // workspace generation at open
	ra  work.ReadAhead // sequential reads through this handle read ahead

	mu       sync.Mutex
	errsSeen uint64 // errSeq sequence reported up to
}

func (f *fsys) newHandle(ino uint64) *handle {
	return &handle{gen: f.ws.Generation(), errsSeen: f.errs.sample(ino)}
}

// reported returns the file's write error this handle has not reported yet.
func (f *fsys) reported(ino uint64, fh gofs.FileHandle) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return f.errs.check(ino, &h.errsSeen)
}

// handleGen returns the generation a handle was opened in (nil without a handle).
func handleGen(fh gofs.FileHandle) *uint64 {
	if h, ok := fh.(*handle); ok {
		return &h.gen
	}
	return nil
}

// opened records that cn has one more open handle.
func (f *fsys) opened(cn *node) {
	f.mu.Lock()
	f.open[cn]++
	f.mu.Unlock()
	f.hold(cn.ino())
}

// released records that cn has one handle less (the inode itself stays held while the
// kernel knows it). The last handle forgets the file's write errors.
func (f *fsys) released(ctx context.Context, cn *node) error {
	f.mu.Lock()
	if f.open[cn]--; f.open[cn] <= 0 {
		delete(f.open, cn)
		f.errs.forget(cn.ino())
	}
	f.mu.Unlock()
	return f.unhold(ctx, cn.ino())
}

// Open registers the handle with the workspace, so that an unlinked file keeps its content
// until the last handle goes. O_TRUNC arrives here (atomic_o_trunc).
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		if e := n.fs.writable(); e != 0 {
			return nil, 0, e
		}
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := n.fs.dropPrivs(ctx, n.ino(), false); err != nil {
			return nil, 0, n.fs.errno("open", err)
		}
		var zero uint64
		in, err := n.fs.ws.GetAttr(wctx(ctx), n.ino())
		if err != nil {
			return nil, 0, n.fs.errno("open", err)
		}
		if in.IsRegular() && in.Size != 0 {
			_, err := n.fs.ws.SetAttr(wctx(ctx), n.ino(), setSize(&zero))
			n.fs.blocks.forget(n.ino())
			if err != nil {
				return nil, 0, n.fs.errno("open", err)
			}
			n.inodeChanged()
		}
	}
	n.fs.opened(n)
	return n.fs.newHandle(n.ino()), openFlags(flags), 0
}

func (n *node) Release(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return n.fs.errno("release", n.fs.released(wctx(ctx), n))
}

// Flush runs at every close(2) of a writable descriptor: it reports a write error of the
// file that this descriptor has not reported yet, as close on a local filesystem does.
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return n.fs.reported(n.ino(), f)
}

// Read reads through the handle's read-ahead (work.ReadAhead): the kernel reads ahead at most
// a few 128 KiB READs, and a cold block behind each is a synchronous disk read.
func (n *node) Read(ctx context.Context, f gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var ra *work.ReadAhead
	if h, ok := f.(*handle); ok {
		ra = &h.ra
	}
	got, err := n.fs.ws.ReadAt(wctx(ctx), ra, n.ino(), off, dest)
	if err != nil {
		return nil, n.fs.errno("read", err)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (n *node) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return 0, e
	}
	if err := n.fs.dropPrivs(ctx, n.ino(), false); err != nil {
		return 0, n.fs.errno("write", err)
	}
	got, err := n.fs.ws.WriteSince(wctx(ctx), handleGen(f), n.ino(), off, data)
	if err != nil {
		e := n.fs.errno("write", err)
		n.fs.errs.set(n.ino(), e)
		return 0, e
	}
	n.fs.blocks.wrote(n.ino(), uint64(off), uint64(off)+uint64(got))
	n.inodeChanged()
	return uint32(got), 0
}

// Fsync makes the file durable (and everything written before it, on every branch of the
// repository: one synced write-ahead log), then reports the file's write error this
// descriptor has not reported yet.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if e := n.fs.errno("fsync", n.fs.ws.Fsync(wctx(ctx), n.ino())); e != 0 {
		n.fs.errs.set(n.ino(), e)
		n.fs.reported(n.ino(), f) // this call reports it
		return e
	}
	return n.fs.reported(n.ino(), f)
}

// maxCopy bounds one copy_file_range: the reply counts bytes in 32 bits (the kernel asks
// for less than 4 GiB at a time anyway; cp loops).
const maxCopy = 1 << 30

// CopyFileRange implements copy_file_range(2) between two files of this mount (the kernel
// sends nothing else here): whole blocks are shared with the source instead of copied
// (work.Workspace.CopyRange), so cp inside a branch writes almost nothing.
func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return 0, e
	}
	dst, ok := out.Operations().(*node)
	if !ok || dst.fs != n.fs {
		return 0, syscall.EXDEV
	}
	if flags != 0 {
		return 0, syscall.EINVAL
	}
	if offIn > work.MaxFileSize || offOut > work.MaxFileSize {
		return 0, syscall.EFBIG
	}
	if err := n.fs.dropPrivsUnflagged(ctx, dst.ino()); err != nil {
		return 0, n.fs.errno("copy_file_range", err)
	}
	got, err := n.fs.ws.CopyRange(wctx(ctx), handleGen(fhOut), n.ino(), int64(offIn), dst.ino(), int64(offOut), int64(min(length, maxCopy)))
	if got > 0 {
		// Shared blocks may bring the source's holes: count the destination again.
		n.fs.blocks.forget(dst.ino())
		dst.inodeChanged()
	}
	if err != nil && got == 0 {
		e := n.fs.errno("copy_file_range", err)
		n.fs.errs.set(dst.ino(), e)
		return 0, e
	}
	return uint32(got), 0
}

// Fallocate modes (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// Allocate implements fallocate (see allocate), then drops the file's st_blocks count and
// tells the other mounts.
func (n *node) Allocate(ctx context.Context, f gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	e := n.allocate(ctx, f, off, size, mode)
	n.fs.blocks.forget(n.ino())
	if e == 0 {
		n.inodeChanged()
	}
	return e
}

// allocate implements fallocate: mode 0 and KEEP_SIZE allocate (blocks are stored lazily in a
// copy-on-write store, so nothing is reserved: mode 0 only extends the size), PUNCH_HOLE
// (always with KEEP_SIZE, the kernel checks) and ZERO_RANGE (with or without KEEP_SIZE)
// make the range read as zeros and store nothing for it. Other modes (COLLAPSE_RANGE,
// INSERT_RANGE, UNSHARE_RANGE) get EOPNOTSUPP, as on many local filesystems.
func (n *node) allocate(ctx context.Context, f gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	if err := n.fs.dropPrivsUnflagged(ctx, n.ino()); err != nil {
		return n.fs.errno("fallocate", err)
	}
	switch mode {
	case 0:
		// An empty write at the end extends the size atomically, without shrinking a file
		// that a concurrent write made longer.
		_, err := n.fs.ws.WriteSince(wctx(ctx), handleGen(f), n.ino(), int64(off+size), nil)
		return n.fs.errno("fallocate", err)
	case fallocKeepSize:
		return 0
	case fallocPunchHole | fallocKeepSize, fallocZeroRange | fallocKeepSize:
		return n.fs.errno("fallocate", n.fs.ws.ZeroRange(wctx(ctx), n.ino(), int64(off), int64(size), true))
	case fallocZeroRange:
		return n.fs.errno("fallocate", n.fs.ws.ZeroRange(wctx(ctx), n.ino(), int64(off), int64(size), false))
	}
	return syscall.EOPNOTSUPP
}

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel handles the other whences itself).
func (n *node) Lseek(ctx context.Context, f gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	switch whence {
	case unix.SEEK_DATA, unix.SEEK_HOLE:
		pos, err := n.fs.ws.Seek(wctx(ctx), n.ino(), int64(off), whence == unix.SEEK_HOLE)
		if err != nil {
			return 0, n.fs.errno("lseek", err)
		}
		return uint64(pos), 0
	}
	return 0, syscall.EINVAL
}
