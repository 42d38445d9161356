package fs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/work"
)

// Without FUSE_HANDLE_KILLPRIV_V2 the kernel drops a file's privileges itself: before every
// write it asks for security.capability (a GETXATTR round trip per WRITE), and before a
// chown it fetches the attributes again (GETATTR) and asks once more. With it, the daemon
// drops them (work.DropPrivs: a cached lookup when there is nothing to drop), and `tar -x`
// costs three requests less per file, a build one less per write.
//
// The kernel says when set-user-ID and set-group-ID must go (the caller lacks CAP_FSETID,
// or a chown) with a flag on the request (WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID,
// OPEN_KILL_SUIDGID) that go-fuse's node API does not pass on: killPrivFS notes the flag by
// the request's cancel channel, which is the request's own while it is served, and the node
// looks it up (fsys.killSuidgid).
type killPrivFS struct {
	fuse.RawFileSystem
	f      *fsys
	server *fuse.Server
}

func (k *killPrivFS) Init(s *fuse.Server) {
	k.server = s
	k.f.killpriv = func() bool {
		return s.KernelSettings().Flags64()&fuse.CAP_HANDLE_KILLPRIV_V2 != 0
	}
	k.RawFileSystem.Init(s)
}

func (k *killPrivFS) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	defer k.f.noteWrite(c, in.WriteFlags)()
	return k.RawFileSystem.Write(c, in, data)
}

func (k *killPrivFS) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	defer k.f.noteWrite(c, in.WriteFlags)()
	return k.RawFileSystem.Writev(c, in, data)
}

func (k *killPrivFS) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer k.f.noteKill(c, in.Valid&fuse.FATTR_KILL_SUIDGID != 0)()
	return k.RawFileSystem.SetAttr(c, in, out)
}

func (k *killPrivFS) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer k.f.noteKill(c, in.Mode&fuse.OPEN_KILL_SUIDGID != 0)()
	return k.RawFileSystem.Open(c, in, out)
}

// killState is what fsys keeps for KILLPRIV_V2.
type killState struct {
	killpriv func() bool  // set at Init: whether the kernel granted KILLPRIV_V2
	v2       atomic.Int32 // 0 not known yet, 1 no, 2 yes
	kills    sync.Map     // cancel channel of a request being served -> killKill or killWriteback
}

// What a request being served carries (killState.kills).
const (
	killKill      = 1 // KILL_SUIDGID
	killWriteback = 2 // a WRITE of the page cache (WRITE_CACHE: mmap), which drops nothing
)

// noteWrite notes the flags of a WRITE (noteKill). A write through mmap reaches the daemon
// as page writeback, later and without the writer; ext4 drops nothing on it (the capability
// stays), so neither does the daemon.
func (s *killState) noteWrite(c <-chan struct{}, flags uint32) func() {
	if flags&fuse.WRITE_CACHE != 0 && c != nil {
		s.kills.Store(c, killWriteback)
		return func() { s.kills.Delete(c) }
	}
	return s.noteKill(c, flags&fuse.WRITE_KILL_SUIDGID != 0)
}

// noteKill records that the request with cancel channel c carries KILL_SUIDGID, until the
// returned function runs.
func (s *killState) noteKill(c <-chan struct{}, kill bool) func() {
	if !kill || c == nil {
		return func() {}
	}
	s.kills.Store(c, killKill)
	return func() { s.kills.Delete(c) }
}

// dropsPrivs reports whether the daemon drops privileges itself (KILLPRIV_V2 granted).
func (s *killState) dropsPrivs() bool {
	switch s.v2.Load() {
	case 1:
		return false
	case 2:
		return true
	}
	if s.killpriv == nil {
		return false
	}
	v := int32(1)
	if s.killpriv() {
		v = 2
	}
	s.v2.Store(v)
	return v == 2
}

// dropPrivs drops ino's privileges as a write, truncate or chown must (work.DropPrivs), if
// the kernel left that to the daemon. A chown drops set-user-ID and set-group-ID whatever
// the request says (set-group-ID without group execute only when the caller, not root, is
// not in the file's group, as ext4).
func (f *fsys) dropPrivs(ctx context.Context, ino uint64, chown bool) error {
	if f.ro || !f.dropsPrivs() {
		return nil
	}
	p := work.Privs{SuidSgid: chown}
	if chown {
		if c, ok := fuse.FromContext(ctx); ok && c.Uid != 0 { // root has CAP_FSETID
			p.InGroup = f.inGroup(ctx)
		}
	} else if fc, ok := ctx.(*fuse.Context); ok && fc.Cancel != nil {
		switch k, _ := f.kills.Load(fc.Cancel); k {
		case killWriteback:
			return nil
		case killKill:
			p.SuidSgid, p.InGroup = true, f.inGroup(ctx)
		}
	}
	return f.ws.DropPrivs(wctx(ctx), ino, p)
}

// dropPrivsUnflagged drops ino's privileges for a change whose request carries no
// KILL_SUIDGID flag although the kernel leaves privileges to the daemon (FALLOCATE,
// COPY_FILE_RANGE: the kernel's file_modified hands them to SETATTR, which drops nothing
// under KILLPRIV_V2). As a local filesystem does, set-user-ID and set-group-ID go unless the
// caller is root (taken for CAP_FSETID, which the request does not show).
func (f *fsys) dropPrivsUnflagged(ctx context.Context, ino uint64) error {
	if f.ro || !f.dropsPrivs() {
		return nil
	}
	var p work.Privs
	if c, ok := fuse.FromContext(ctx); ok && c.Uid != 0 {
		p.SuidSgid, p.InGroup = true, f.inGroup(ctx)
	}
	return f.ws.DropPrivs(wctx(ctx), ino, p)
}

// inGroup returns whether the caller of the request is in a group, by its primary group or
// one of its supplementary groups, which FUSE requests do not carry: they are read from
// /proc, only when a file has set-group-ID without group execute and another primary group.
// When the caller is gone, it is in no group (the bit goes).
func (f *fsys) inGroup(ctx context.Context) func(gid uint32) bool {
	_, primary := f.caller(ctx)
	return func(gid uint32) bool {
		if gid == primary {
			return true
		}
		c, ok := fuse.FromContext(ctx)
		if !ok {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if groups, ok := strings.CutPrefix(line, "Groups:"); ok {
				for _, g := range strings.Fields(groups) {
					if n, err := strconv.ParseUint(g, 10, 32); err == nil && f.ids.storedGID(uint32(n)) == gid {
						return true
					}
				}
			}
		}
		return false
	}
}
