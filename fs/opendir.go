package fs

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// noOpendirFS saves `find`, `git status` and `grep -r` two round trips per directory. It
// answers OPENDIR with ENOSYS, which a kernel announcing FUSE_NO_OPENDIR_SUPPORT takes as
// "never send OPENDIR or RELEASEDIR again": every later opendir(2) is served by the kernel
// alone, with the listing cached (FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR are the kernel's default
// then) until the directory changes. Only a READDIR(PLUS) that misses the kernel's cache
// reaches the daemon, with file handle 0.
//
// go-fuse's node bridge lists a directory only through a handle it opened, so the daemon
// keeps one per directory: the listing. A READDIR from offset 0 (opendir, rewinddir, or the
// kernel refilling its cache) starts a new listing, which sees every change. A READDIR from
// any other offset continues the directory's current listing, whose entries keep the
// offsets they were handed out with even after the listing reached the end: the kernel may
// serve the start of a stream from its cache (filled from that listing) and ask for the
// rest later, after a reader unlinked what it read (`rm -rf` reads and unlinks as it goes),
// and a position counted again in the shrunken directory would skip entries. A listing is
// released when a newer one replaces it, when the kernel forgets the directory, or when
// more than maxListings are kept. A stream continued by a listing other than its own (another
// process listed the directory from the start in between) resumes after the last name it
// read: offsets are names' cookies, not positions (dirHandle).
type noOpendirFS struct {
	fuse.RawFileSystem
	server *fuse.Server

	mu       sync.Mutex
	listings map[uint64]*listing // by directory node id

	opendirs atomic.Int64 // OPENDIR requests received (tests)
	opened   atomic.Int64 // listings started (tests)
}

// maxListings bounds the directories whose last listing is kept.
const maxListings = 4096

// listing is a handle of the node bridge on a directory.
type listing struct {
	node, fh uint64
	users    int  // requests using it now
	dropped  bool // no longer in listings: release when users reach 0
}

func (f *noOpendirFS) Init(s *fuse.Server) {
	f.server = s
	f.RawFileSystem.Init(s)
}

// noOpendir reports whether the kernel takes ENOSYS from OPENDIR as no-opendir.
func (f *noOpendirFS) noOpendir() bool {
	return f.server != nil && f.server.KernelSettings().Flags64()&fuse.CAP_NO_OPENDIR_SUPPORT != 0
}

func (f *noOpendirFS) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.opendirs.Add(1)
	if f.noOpendir() {
		return fuse.ENOSYS
	}
	return f.RawFileSystem.OpenDir(c, in, out)
}

func (f *noOpendirFS) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if in.Fh != 0 {
		return f.RawFileSystem.ReadDir(c, in, out)
	}
	return f.list(c, in, out, f.RawFileSystem.ReadDir)
}

func (f *noOpendirFS) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if in.Fh != 0 {
		return f.RawFileSystem.ReadDirPlus(c, in, out)
	}
	return f.list(c, in, out, f.RawFileSystem.ReadDirPlus)
}

type readDirFunc func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status

// list serves one READDIR(PLUS) batch of a directory the kernel did not open.
func (f *noOpendirFS) list(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList, read readDirFunc) fuse.Status {
	l, st := f.take(c, in.InHeader, in.Offset == 0)
	if st != fuse.OK {
		return st
	}
	defer f.done(l)
	req := *in
	req.Fh = l.fh
	return read(c, &req, out)
}

// take returns the current listing of directory h.NodeId, or starts a new one (fresh, or
// none is kept).
func (f *noOpendirFS) take(c <-chan struct{}, h fuse.InHeader, fresh bool) (*listing, fuse.Status) {
	f.mu.Lock()
	if l := f.listings[h.NodeId]; l != nil && !fresh {
		l.users++
		f.mu.Unlock()
		return l, fuse.OK
	}
	f.mu.Unlock()
	var out fuse.OpenOut
	if st := f.RawFileSystem.OpenDir(c, &fuse.OpenIn{InHeader: h, Flags: syscall.O_RDONLY}, &out); st != fuse.OK {
		return nil, st
	}
	f.opened.Add(1)
	l := &listing{node: h.NodeId, fh: out.Fh, users: 1}
	var release []*listing
	f.mu.Lock()
	if f.listings == nil {
		f.listings = map[uint64]*listing{}
	}
	if old := f.listings[h.NodeId]; old != nil {
		release = append(release, f.drop(old)...)
	} else if len(f.listings) >= maxListings {
		for _, other := range f.listings { // any one: the least likely to be continued is unknown
			release = append(release, f.drop(other)...)
			break
		}
	}
	f.listings[h.NodeId] = l
	f.mu.Unlock()
	f.release(release)
	return l, fuse.OK
}

// drop takes l out of listings and returns it if it can be released now; callers hold mu.
func (f *noOpendirFS) drop(l *listing) []*listing {
	delete(f.listings, l.node)
	l.dropped = true
	if l.users == 0 {
		return []*listing{l}
	}
	return nil
}

// done ends a request's use of l.
func (f *noOpendirFS) done(l *listing) {
	f.mu.Lock()
	l.users--
	last := l.dropped && l.users == 0
	f.mu.Unlock()
	if last {
		f.release([]*listing{l})
	}
}

func (f *noOpendirFS) release(ls []*listing) {
	for _, l := range ls {
		f.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: fuse.InHeader{NodeId: l.node}, Fh: l.fh})
	}
}

func (f *noOpendirFS) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if in.Fh != 0 {
		return f.RawFileSystem.FsyncDir(c, in)
	}
	l, st := f.take(c, in.InHeader, false)
	if st != fuse.OK {
		return st
	}
	defer f.done(l)
	req := *in
	req.Fh = l.fh
	return f.RawFileSystem.FsyncDir(c, &req)
}

// Forget releases the directory's listing before the bridge forgets the node: releasing a
// handle of a node it no longer knows would panic. (The kernel sends no FORGET while a
// READDIR of the directory is in flight.)
func (f *noOpendirFS) Forget(node, nlookup uint64) {
	var release []*listing
	f.mu.Lock()
	if l := f.listings[node]; l != nil {
		release = f.drop(l)
	}
	f.mu.Unlock()
	f.release(release)
	f.RawFileSystem.Forget(node, nlookup)
}

// kept returns how many listings are kept (tests).
func (f *noOpendirFS) kept() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.listings)
}

// OnUnmount drops the kept listings.
func (f *noOpendirFS) OnUnmount() {
	f.mu.Lock()
	var release []*listing
	for _, l := range f.listings {
		release = append(release, f.drop(l)...)
	}
	f.mu.Unlock()
	f.release(release)
	f.RawFileSystem.OnUnmount()
}
