package fs

import (
	"context"
	"errors"
	"log"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/work"
)

// errStop ends a workspace directory scan early.
var errStop = work.Stop

// fsys is the state shared by all nodes of one mount.
type fsys struct {
	ws         *work.Workspace
	ro         bool
	log        *log.Logger
	statfsPath string
	ids        *IDMap // nil: identities as stored
	blocks     stBlocks
	root       *node
	closed     atomic.Bool // set after Unmount: the reset hook does nothing
	errs       errSeq      // write errors per inode, reported at fsync and close
	killState              // privileges the daemon drops (killpriv.go)

	mu    sync.Mutex
	open  map[*node]int    // nodes with open file handles, so a reset reaches unlinked files too
	holds map[uint64]int   // workspace Opens this mount holds, per inode
	nodes map[uint64]*node // nodes the kernel knows, by inode number (see known)
}

// hold keeps inode ino alive in the workspace (ws.Open) while the kernel or a handle
// references it.
func (f *fsys) hold(ino uint64) {
	f.mu.Lock()
	f.holds[ino]++
	f.mu.Unlock()
	f.ws.Open(ino)
}

// unhold drops a hold; the workspace removes the inode if it was the last one of an unlinked
// file, and writes its buffered data otherwise.
func (f *fsys) unhold(ctx context.Context, ino uint64) error {
	f.mu.Lock()
	if f.holds[ino]--; f.holds[ino] <= 0 {
		delete(f.holds, ino)
	}
	f.mu.Unlock()
	return f.ws.Release(ctx, ino)
}

// releaseAll drops every hold left when the mount ends (the kernel sends no FORGET on
// unmount).
func (f *fsys) releaseAll() {
	f.mu.Lock()
	holds := f.holds
	f.holds = map[uint64]int{}
	f.open = map[*node]int{}
	f.nodes = map[uint64]*node{}
	f.mu.Unlock()
	for ino, c := range holds {
		for range c {
			if err := f.ws.Release(context.Background(), ino); err != nil {
				f.log.Printf("agentfs: release of inode %d at unmount: %v", ino, err)
			}
		}
	}
}

// node is one inode of the mount. It holds only the inode number: every attribute comes from
// the workspace.
//
// While the kernel knows a node (from LOOKUP to FORGET) the mount holds the inode open in the
// workspace, as a local filesystem keeps an inode that a dentry or descriptor references: a
// file unlinked between the kernel's LOOKUP and OPEN, or while it is a process's cwd, still
// has its attributes.
type node struct {
	gofs.Inode
	fs   *fsys
	held atomic.Bool // this node holds its inode (see fsys.hold)
	// cookies are the listing offsets of a directory's names (dirHandle), made at its
	// first listing.
	cookies atomic.Pointer[dirCookies]
}

// OnForget runs when the kernel forgot the node.
func (n *node) OnForget() {
	n.fs.mu.Lock()
	if n.fs.nodes[n.ino()] == n {
		delete(n.fs.nodes, n.ino())
	}
	n.fs.mu.Unlock()
	if n.held.CompareAndSwap(true, false) {
		if err := n.fs.unhold(context.Background(), n.ino()); err != nil {
			n.fs.errno("forget", err)
		}
	}
}

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// errno turns a workspace error into the errno the kernel gets. It is the only place that
// does: syscall.Errno values (also wrapped) pass through, a cancelled request is EINTR,
// anything else is logged and becomes EIO.
func (f *fsys) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if e == syscall.EIO {
			f.log.Printf("agentfs: %s: %v", op, err)
		}
		return e
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	f.log.Printf("agentfs: %s: %v", op, err)
	return syscall.EIO
}

// writable refuses changes to a read-only mount.
func (f *fsys) writable() syscall.Errno {
	if f.ro {
		return syscall.EROFS
	}
	return 0
}

// fillAttr copies an inode's attributes into a FUSE attribute, with the mount's identities.
func (f *fsys) fillAttr(in *work.Inode, out *fuse.Attr) {
	out.Ino = in.Ino
	out.Mode = in.Mode
	out.Nlink = in.Nlink
	out.Uid, out.Gid = f.ids.shownUID(in.Uid), f.ids.shownGID(in.Gid)
	out.Rdev = in.Rdev
	out.Size = in.Size
	out.Blocks = f.blocks.get(context.Background(), f.ws, in)
	out.Blksize = 4096
	out.Atime, out.Atimensec = splitNs(in.Atime)
	out.Mtime, out.Mtimensec = splitNs(in.Mtime)
	out.Ctime, out.Ctimensec = splitNs(in.Ctime)
}

func splitNs(ns int64) (uint64, uint32) {
	s, r := ns/1e9, ns%1e9
	if r < 0 {
		s, r = s-1, r+1e9
	}
	return uint64(s), uint32(r)
}

// child returns the go-fuse inode for a workspace inode found under n, filling out.
func (n *node) child(ctx context.Context, in *work.Inode, out *fuse.EntryOut) *gofs.Inode {
	n.fs.fillAttr(in, &out.Attr)
	child := n.NewInode(ctx, &node{fs: n.fs}, gofs.StableAttr{Mode: in.Mode & syscall.S_IFMT, Ino: in.Ino})
	if cn, ok := child.Operations().(*node); ok {
		n.fs.mu.Lock()
		n.fs.nodes[in.Ino] = cn
		n.fs.mu.Unlock()
		if cn.held.CompareAndSwap(false, true) {
			n.fs.hold(in.Ino) // a new node, or one revived after OnForget
		}
	}
	return child
}

// caller returns the uid and gid of the process making the request, as stored.
func (f *fsys) caller(ctx context.Context) (uint32, uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return f.ids.storedUID(c.Uid), f.ids.storedGID(c.Gid)
	}
	return 0, 0
}
