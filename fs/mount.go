// Package fs serves a work.Workspace as a FUSE filesystem (github.com/hanwen/go-fuse/v2).
//
// It is a thin adapter: every operation maps onto one Workspace call, and the only
// FUSE-specific logic is cache control. The kernel caches entries, negative entries,
// attributes, symlink targets and file pages (FOPEN_KEEP_CACHE) for an hour, because the
// daemon sees every change to a mounted workspace and invalidates what changed underneath:
// a rollback, merge, revert, pull, import or a file written through the control API runs the
// Workspace's reset hook, which invalidates every kernel cache entry the mount knows of
// (reset.go); a change through another mount of the same branch is sent to this mount's
// kernel entry by entry (invalidate.go).
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/work"
)

// Options configures a mount.
type Options struct {
	ReadOnly   bool   // also implied by ws.ReadOnly()
	FsName     string // shown in /proc/mounts, e.g. "agentfs:main"
	StatfsPath string // statfs reports the free space of this path (the repository dir)
	Debug      bool   // log every FUSE request
	Logger     *log.Logger
	// Owner, when set, maps identities for this mount: files the repository stores as
	// owned by root appear owned by Owner, and what Owner creates is stored as root (see
	// IDMap). Work done through the mount then checkpoints with no ownership change.
	Owner *IDMap
	// AllowOther lets users other than the one who mounted reach the mount (allow_other).
	// Without it the kernel refuses every other uid, root's included when not the mounter.
	AllowOther bool
}

// Cache timeouts. Every change to a workspace that does not come through the mount
// invalidates explicitly (invalidate.go), so the timeouts only bound the damage of a change
// path that forgot to; with 5 s, `find` and `git status` over a tree looked up every name
// again after each pause. A read-only view never changes.
const (
	cacheTimeout         = time.Hour
	readOnlyCacheTimeout = time.Hour
	// maxWrite is the largest READ/WRITE request (the kernel caps it at 1 MiB). go-fuse
	// gives every request it reads from /dev/fuse a buffer of this size, per mount: with
	// 1 MiB, 64 mounts under 16 writers held 218 MB of them (heap profile in
	// docs/performance.md); with 256 KiB, 44 MB. The daemon's CPU per GiB written
	// sequentially did not change measurably (4.8-5.7 s at both sizes, 1 MiB writes).
	maxWrite = 256 << 10
)

// Mounted is a mounted workspace. (The brief called the type Mount too, which Go does not
// allow next to the function Mount; the function keeps the name.)
type Mounted struct {
	dir    string
	fsys   *fsys
	server *fuse.Server
	dirs   *noOpendirFS

	removeHook func() // drops the workspace's reset hook of this mount

	mu        sync.Mutex
	unmounted bool
}

// Mount mounts ws at dir, which must be an existing empty directory that is not already a
// mount point, and serves it until Unmount.
func Mount(ws *work.Workspace, dir string, o Options) (*Mounted, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mount point %q: %w", dir, err)
	}
	if err := CheckMountPoint(abs); err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = log.Default()
	}
	ro := o.ReadOnly || ws.ReadOnly()
	if o.AllowOther && !allowOtherPermitted() {
		return nil, fmt.Errorf("--allow-other needs user_allow_other in /etc/fuse.conf when not mounting as root")
	}
	f := &fsys{ws: ws, ro: ro, log: logger, statfsPath: o.StatfsPath, ids: o.Owner, open: map[*node]int{}, holds: map[uint64]int{}, nodes: map[uint64]*node{}}
	root := &node{fs: f}
	f.root = root

	timeout := cacheTimeout
	if ro {
		timeout = readOnlyCacheTimeout
	}
	name := o.FsName
	if name == "" {
		name = "agentfs"
		if b := ws.Branch(); b != "" {
			name += ":" + b
		}
	}
	mo := fuse.MountOptions{
		FsName:   name,
		Name:     "agentfs",
		MaxWrite: maxWrite,
		// The kernel checks permissions against our attributes; no ACCESS round trips.
		Options:              []string{"default_permissions"},
		AllowOther:           o.AllowOther,
		DirectMount:          os.Geteuid() == 0, // falls back to fusermount3
		EnableSymlinkCaching: true,              // symlinks are immutable; reset invalidates
		// POSIX ACLs: the kernel enforces and caches them, we store them (acl.go). The
		// daemon drops privileges on write, truncate and chown (killpriv.go).
		EnableAcl:         true,
		ExtraCapabilities: aclCapabilities | fuse.CAP_HANDLE_KILLPRIV_V2,
		Debug:             o.Debug,
		Logger:            logger,
		// Locks stay with the kernel (EnableLocks false): local flock/fcntl locking is
		// correct for one host, and SQLite works with it.
	}
	if ro {
		mo.Options = append(mo.Options, "ro")
	}
	negTimeout := timeout
	opts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &negTimeout,
		RootStableAttr:  &gofs.StableAttr{Ino: work.RootIno, Mode: syscall.S_IFDIR},
		Logger:          logger,
		// Report mode 0000 as 0000: without this go-fuse shows 0644/0755, and the kernel,
		// which enforces what we report (default_permissions), lets everyone read.
		NullPermissions: true,
	}
	mark := markStderr()
	// acl.go, killpriv.go, opendir.go
	raw := &noOpendirFS{RawFileSystem: &killPrivFS{RawFileSystem: &aclFS{gofs.NewNodeFS(root, opts)}, f: f}}
	server, err := mountTimed(abs, raw, &opts.MountOptions) // fs/metrics.go
	if err != nil {
		return nil, mountCause(abs, err, mark) // mounterr.go: the cause, not the exit code
	}
	m := &Mounted{dir: abs, fsys: f, server: server, dirs: raw}
	m.removeHook = ws.OnReset(f.invalidateAll)
	f.register()
	return m, nil
}

// CheckMountPoint fails with a clear error unless dir is an empty directory that is not
// already a mount point.
func CheckMountPoint(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("mount point %s: a stale FUSE mount is there (unmount it with `fusermount3 -u %s`): %w", dir, dir, err)
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mount point %s does not exist; create it first: mkdir -p %s", dir, dir)
		}
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	var self, parent syscall.Stat_t
	if err := syscall.Stat(dir, &self); err == nil && syscall.Stat(filepath.Dir(dir), &parent) == nil &&
		dir != "/" && self.Dev != parent.Dev {
		return fmt.Errorf("mount point %s is busy: something is already mounted there; unmount it first", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	defer d.Close()
	if names, err := d.Readdirnames(1); err != io.EOF {
		if err != nil {
			return fmt.Errorf("mount point %s: %w", dir, err)
		}
		return fmt.Errorf("mount point %s is not empty (it holds %q)", dir, names[0])
	}
	return nil
}

// allowOtherPermitted reports whether allow_other may be asked for: always as root, and for
// other users only where /etc/fuse.conf permits it (fusermount3 refuses the mount otherwise).
func allowOtherPermitted() bool {
	if os.Geteuid() == 0 {
		return true
	}
	b, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "user_allow_other" {
			return true
		}
	}
	return false
}

// Dir returns the absolute path of the mount point.
func (m *Mounted) Dir() string { return m.dir }

// Wait blocks until the filesystem is unmounted.
func (m *Mounted) Wait() { m.server.Wait() }

// Unmount writes the workspace's buffered data into the repository, then unmounts. If the
// mount is busy it detaches it lazily (the kernel finishes the unmount when the last user
// goes) and returns nil. Calling it again does nothing.
func (m *Mounted) Unmount() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unmounted {
		return nil
	}
	ferr := m.fsys.ws.FlushAll(context.Background())
	if ferr != nil {
		ferr = fmt.Errorf("flush before unmount of %s: %w", m.dir, ferr)
	}
	err := m.server.Unmount()
	if err == nil {
		m.fsys.releaseAll()
	} else {
		go func() { m.server.Wait(); m.fsys.releaseAll() }()
		m.fsys.log.Printf("agentfs: unmount %s: %v; detaching lazily", m.dir, err)
		if lerr := syscall.Unmount(m.dir, syscall.MNT_DETACH); lerr != nil {
			out, cerr := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput()
			if cerr != nil {
				return errors.Join(ferr, fmt.Errorf("unmount %s: %w; lazy unmount: %v; fusermount3: %v: %s", m.dir, err, lerr, cerr, out))
			}
		}
	}
	m.unmounted = true
	m.fsys.closed.Store(true)
	// The hook holds the whole mount (its inode tree, the server and its buffers): without
	// this every mount of the workspace ever made stayed in memory.
	m.removeHook()
	m.fsys.unregister()
	return ferr
}
