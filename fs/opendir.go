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
// go-fuse's node bridge lists a directory only through a handle it opened, so READDIR with
// handle 0 opens one here (the node's OpendirHandle) and keeps it for the next batch of the
// same directory: the bridge resumes at the kernel's offset (Seekdir) and rewinds at offset
// 0, so a listing started after a change sees it. The handle is released when it reaches
// the end of the directory, and at most maxDirStreams are kept for listings abandoned
// half-way.
type noOpendirFS struct {
	fuse.RawFileSystem
	server *fuse.Server

	mu      sync.Mutex
	streams map[uint64]uint64 // node id -> handle of the node bridge, not in use

	opendirs atomic.Int64 // OPENDIR requests received (tests)
	opened   atomic.Int64 // handles this wrapper opened for READDIR (tests)
}

// maxDirStreams bounds the handles kept for listings that stopped before the end.
const maxDirStreams = 256

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
	fh, st := f.take(c, in.InHeader)
	if st != fuse.OK {
		return st
	}
	req := *in
	req.Fh = fh
	st = read(c, &req, out)
	if st != fuse.OK || len(out.Bytes()) == 0 {
		f.release(in.NodeId, fh) // the end of the listing, or an error
		return st
	}
	f.put(in.NodeId, fh)
	return st
}

// take returns a handle of the node bridge on directory in.NodeId that nobody else uses:
// one kept from the last batch, or a new one.
func (f *noOpendirFS) take(c <-chan struct{}, h fuse.InHeader) (uint64, fuse.Status) {
	f.mu.Lock()
	fh, ok := f.streams[h.NodeId]
	delete(f.streams, h.NodeId)
	f.mu.Unlock()
	if ok {
		return fh, fuse.OK
	}
	var out fuse.OpenOut
	if st := f.RawFileSystem.OpenDir(c, &fuse.OpenIn{InHeader: h, Flags: syscall.O_RDONLY}, &out); st != fuse.OK {
		return 0, st
	}
	f.opened.Add(1)
	return out.Fh, fuse.OK
}

// put keeps fh for the next batch; a handle already kept (a concurrent listing of the same
// directory) or one past the bound is released instead.
func (f *noOpendirFS) put(node, fh uint64) {
	f.mu.Lock()
	if f.streams == nil {
		f.streams = map[uint64]uint64{}
	}
	old, had := f.streams[node]
	var evict, evictFh uint64
	if !had && len(f.streams) >= maxDirStreams {
		for n, h := range f.streams { // any one: it is only a listing abandoned half-way
			evict, evictFh = n, h
			delete(f.streams, n)
			break
		}
	}
	f.streams[node] = fh
	f.mu.Unlock()
	if had {
		f.release(node, old)
	}
	if evictFh != 0 {
		f.release(evict, evictFh)
	}
}

func (f *noOpendirFS) release(node, fh uint64) {
	f.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: fuse.InHeader{NodeId: node}, Fh: fh})
}

func (f *noOpendirFS) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if in.Fh != 0 {
		return f.RawFileSystem.FsyncDir(c, in)
	}
	fh, st := f.take(c, in.InHeader)
	if st != fuse.OK {
		return st
	}
	defer f.put(in.NodeId, fh)
	req := *in
	req.Fh = fh
	return f.RawFileSystem.FsyncDir(c, &req)
}

// OnUnmount drops the kept handles.
func (f *noOpendirFS) OnUnmount() {
	f.mu.Lock()
	streams := f.streams
	f.streams = nil
	f.mu.Unlock()
	for node, fh := range streams {
		f.release(node, fh)
	}
	f.RawFileSystem.OnUnmount()
}
