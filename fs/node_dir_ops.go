package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/work"
)

// Workspace operations are transactions: they run to the end once started. A FUSE interrupt
// (which Go programs cause all the time through preemption signals) must not abort them
// half-way, so requests reach the workspace without their cancellation.
func wctx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	in, err := n.fs.ws.Lookup(wctx(ctx), n.ino(), name)
	if err != nil {
		return nil, n.fs.errno("lookup", err)
	}
	return n.child(ctx, in, out), 0
}

// newAttr is the owner and mode of a new node; mode carries the caller's umask (aclFS).
func (n *node) newAttr(ctx context.Context, mode, rdev uint32) work.Attr {
	uid, gid := n.fs.caller(ctx)
	mode, umask := splitUmask(mode)
	return work.Attr{Mode: mode, Uid: uid, Gid: gid, Rdev: rdev, Umask: umask}
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return nil, e
	}
	in, err := n.fs.ws.Mkdir(wctx(ctx), n.ino(), name, n.newAttr(ctx, mode|syscall.S_IFDIR, 0))
	if err != nil {
		return nil, n.fs.errno("mkdir", err)
	}
	n.nameChanged(name)
	return n.child(ctx, in, out), 0
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return nil, e
	}
	in, err := n.fs.ws.Create(wctx(ctx), n.ino(), name, n.newAttr(ctx, mode, dev))
	if err != nil {
		return nil, n.fs.errno("mknod", err)
	}
	n.nameChanged(name)
	return n.child(ctx, in, out), 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return nil, nil, 0, e
	}
	in, err := n.fs.ws.Create(wctx(ctx), n.ino(), name, n.newAttr(ctx, mode|syscall.S_IFREG, 0))
	if err == syscall.EEXIST && flags&syscall.O_EXCL == 0 {
		// Another creator won the race: open the existing file, as open(2) does.
		var existing *work.Inode
		if existing, err = n.fs.ws.Lookup(wctx(ctx), n.ino(), name); err == nil {
			if existing.IsDir() {
				return nil, nil, 0, syscall.EISDIR
			}
			child := n.child(ctx, existing, out)
			fh, fuseFlags, errno := child.Operations().(*node).Open(ctx, flags)
			if errno != 0 {
				return nil, nil, 0, errno
			}
			if flags&syscall.O_TRUNC != 0 {
				if a, err := n.fs.ws.GetAttr(wctx(ctx), existing.Ino); err == nil {
					n.fs.fillAttr(a, &out.Attr)
				}
			}
			return child, fh, fuseFlags, 0
		}
	}
	if err != nil {
		return nil, nil, 0, n.fs.errno("create", err)
	}
	n.nameChanged(name)
	child := n.child(ctx, in, out)
	n.fs.opened(child.Operations().(*node))
	return child, n.fs.newHandle(in.Ino), openFlags(flags), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return nil, e
	}
	in, err := n.fs.ws.Symlink(wctx(ctx), n.ino(), name, target, n.newAttr(ctx, syscall.S_IFLNK|0o777, 0))
	if err != nil {
		return nil, n.fs.errno("symlink", err)
	}
	n.nameChanged(name)
	return n.child(ctx, in, out), 0
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.fs.writable(); e != 0 {
		return nil, e
	}
	in, err := n.fs.ws.Link(wctx(ctx), target.EmbeddedInode().StableAttr().Ino, n.ino(), name)
	if err != nil {
		return nil, n.fs.errno("link", err)
	}
	n.nameChanged(name, in.Ino)
	return n.child(ctx, in, out), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	ino := n.childIno(name)
	e := n.fs.errno("unlink", n.fs.ws.Unlink(wctx(ctx), n.ino(), name))
	if e == 0 {
		n.nameChanged(name, ino)
	}
	return e
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	ino := n.childIno(name)
	e := n.fs.errno("rmdir", n.fs.ws.Rmdir(wctx(ctx), n.ino(), name))
	if e == 0 {
		n.nameChanged(name, ino)
	}
	return e
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.fs.writable(); e != 0 {
		return e
	}
	// RENAME_NOREPLACE and RENAME_EXCHANGE have the same values in branch; anything else
	// (RENAME_WHITEOUT) is refused there with EINVAL.
	np := newParent.EmbeddedInode().StableAttr().Ino
	src, dst := n.childIno(name), newParent.EmbeddedInode().GetChild(newName)
	e := n.fs.errno("rename", n.fs.ws.Rename(wctx(ctx), n.ino(), name, np, newName, flags))
	if e == 0 {
		n.fs.changed(func() change {
			c := change{inodes: []uint64{n.ino(), np, src}, entries: []entryRef{{n.ino(), name}, {np, newName}}}
			if dst != nil {
				c.inodes = append(c.inodes, dst.StableAttr().Ino)
			}
			return c
		})
	}
	return e
}

// OpendirHandle opens a directory stream that reads the directory in batches, resuming after
// the last name it read, so a directory with 100k entries is never held in one call.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	in, err := n.fs.ws.GetAttr(wctx(ctx), n.ino())
	if err != nil {
		return nil, 0, n.fs.errno("opendir", err)
	}
	if !in.IsDir() {
		return nil, 0, syscall.ENOTDIR
	}
	d := &dirHandle{n: n}
	d.rewind()
	// The kernel may keep the listing: entries change only through this mount (which tells
	// the kernel) or by a rollback or merge (whose reset invalidates every directory).
	return d, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// readDirBatch is how many entries a directory handle reads from the workspace at a time.
const readDirBatch = 512

// dirHandle is an open directory. The offset of an entry is its name's cookie in the
// directory (dirCookies), not its position: the kernel does not open directories on the
// mount (opendir.go), so a stream may be continued by a listing other than the one that
// began it, made after entries were created or removed, and a position would then skip or
// repeat entries; a name resumes exactly where the stream was, as ext4's hash does.
type dirHandle struct {
	n     *node
	ents  []fuse.DirEntry // the entries read so far since the last rewind or seek
	after string          // the last name in ents ("" from the start)
	pos   int             // index of the next entry to return
	eof   bool            // ents reaches the end of the directory
	// listed counts the names read since the start, whole says the stream began there
	// (dirCookies.listed).
	listed int
	whole  bool
}

func (d *dirHandle) rewind() {
	parent := uint64(work.RootIno)
	if _, p := d.n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	d.ents = append(d.ents[:0],
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.n.ino(), Off: 1},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent, Off: 2})
	d.after, d.pos, d.eof = "", 0, false
	d.listed, d.whole = 0, true
}

func (d *dirHandle) fill(ctx context.Context) syscall.Errno {
	c := d.n.dirCookies()
	got := 0
	err := d.n.fs.ws.ReadDir(wctx(ctx), d.n.ino(), d.after, func(e work.DirEntry) error {
		d.ents = append(d.ents, fuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: e.Mode, Off: c.cookie(e.Name)})
		d.after = e.Name
		got++
		if got == readDirBatch {
			return errStop
		}
		return nil
	})
	if err != nil {
		return d.n.fs.errno("readdir", err)
	}
	d.listed += got
	if got < readDirBatch {
		d.eof = true
		if d.whole {
			c.listed(d.listed)
		}
	}
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if d.pos == len(d.ents) && !d.eof {
		if e := d.fill(ctx); e != 0 {
			return nil, e
		}
	}
	if d.pos == len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.pos]
	d.pos++
	return &e, 0
}

// Seekdir goes to the entry after the one with offset off, which any listing of the
// directory may have handed out.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off <= 2 { // the start, after ".", after ".."
		d.rewind() // rewinddir sees entries added since opendir
		d.pos = int(off)
		return 0
	}
	for i := range d.ents {
		if d.ents[i].Off == off {
			d.pos = i + 1
			return 0
		}
	}
	name, ok := d.n.dirCookies().name(off)
	d.ents, d.pos, d.whole = d.ents[:0], 0, false
	if !ok { // never handed out, or long forgotten: past the end
		d.eof = true
		return 0
	}
	d.after, d.eof = name, false
	return 0
}

// dirCookies gives each name listed in a directory a listing offset that stays the same
// whichever listing hands it out. Names removed since stay known for a while (a stream may
// still be after one): the table keeps two generations, and starts a new one when the
// current one holds more than twice the names of the last whole listing (at least
// minCookieGen), so a directory with churn does not grow it without bound.
type dirCookies struct {
	mu       sync.Mutex
	next     uint64            // the next new cookie
	byName   map[string]uint64 // this generation
	names    map[uint64]string
	oldNames map[uint64]string // the previous generation
	oldBy    map[string]uint64
	limit    int // names in this generation before a new one begins
}

const minCookieGen = 4096

func (n *node) dirCookies() *dirCookies {
	if c := n.cookies.Load(); c != nil {
		return c
	}
	n.cookies.CompareAndSwap(nil, &dirCookies{next: 3, byName: map[string]uint64{}, names: map[uint64]string{}, limit: minCookieGen})
	return n.cookies.Load()
}

func (c *dirCookies) cookie(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off, ok := c.byName[name]; ok {
		return off
	}
	off, ok := c.oldBy[name]
	if !ok {
		off = c.next // after "." (1) and ".." (2)
		c.next++
	}
	if len(c.byName) >= c.limit {
		c.oldBy, c.oldNames = c.byName, c.names
		c.byName, c.names = map[string]uint64{}, map[uint64]string{}
	}
	c.byName[name] = off
	c.names[off] = name
	return off
}

// listed notes that a whole listing held n names.
func (c *dirCookies) listed(n int) {
	c.mu.Lock()
	c.limit = max(minCookieGen, 2*n)
	c.mu.Unlock()
}

func (c *dirCookies) name(off uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.names[off]; ok {
		return s, true
	}
	s, ok := c.oldNames[off]
	return s, ok
}

func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.fs.errno("fsyncdir", d.n.fs.ws.Fsync(wctx(ctx), d.n.ino()))
}
