package api

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/fs"
)

// MountOptions are how a mount is made. They are one struct so that everything that keeps or
// restores mounts (the API call, serve --mount, the daemon's mount table) carries all of them.
type MountOptions struct {
	ReadOnly bool `json:"read_only"`
	// Owner "UID:GID" maps identities for the mount: files stored as root's appear owned by
	// UID:GID, and what UID:GID creates is stored as root's (fs.IDMap). Empty: no mapping.
	Owner string `json:"owner,omitempty"`
	// AllowOther lets other users than the daemon's reach the mount (FUSE allow_other).
	// Mounts are private without it; a container running as another uid needs it.
	AllowOther bool `json:"allow_other,omitempty"`
}

// check validates the options, returning the parsed owner map (nil for none).
func (o MountOptions) check() (*fs.IDMap, error) {
	if o.Owner == "" {
		return nil, nil
	}
	m, err := fs.ParseIDMap(o.Owner)
	if err != nil {
		return nil, invalidError{err.Error()}
	}
	return m, nil
}

// MountTable holds the mounts a daemon serves.
type MountTable struct {
	RepoDir string
	Logger  *log.Logger
	// Persist keeps the table in REPO/mounts.json for the next start (mountstate.go).
	Persist bool

	mu      sync.Mutex
	mounts  map[string]*mounted // by directory
	closing bool                // UnmountAll: the saved table stays for the next start
}

type mounted struct {
	info   MountInfo
	branch string // empty for a checkpoint
	m      *fs.Mounted
	e      *branch.Engine
	unpin  func() // keeps a mounted checkpoint from garbage collection
}

// DirOf returns where a branch is mounted read-write, or "".
func (t *MountTable) DirOf(br string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.mounts {
		if m.info.Ref == br && !m.info.ReadOnly {
			return m.info.Dir
		}
	}
	return ""
}

// ReadWriteDirs returns where each branch is mounted read-write, by branch.
func (t *MountTable) ReadWriteDirs() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.mounts))
	for _, m := range t.mounts {
		if !m.info.ReadOnly {
			out[m.info.Ref] = m.info.Dir
		}
	}
	return out
}

// prepareMountPoint detaches a mount left at dir by a daemon that died (kill -9, OOM):
// nobody can use it, so it is cleared instead of asking the user to. fs.Mount checks the
// rest (exists, empty, not a mount point).
func prepareMountPoint(dir string) error {
	// stat may still answer from the kernel's attribute cache; listing asks the (dead) daemon.
	if _, err := os.ReadDir(dir); errors.Is(err, syscall.ENOTCONN) {
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("FUSE is not available (/dev/fuse is missing): load the fuse kernel module, or give the container --device /dev/fuse --cap-add SYS_ADMIN")
	}
	return nil
}

// Mount mounts ref at dir: a branch read-write (unless readOnly), a checkpoint read-only.
func (t *MountTable) Mount(ctx context.Context, e *branch.Engine, ref, dir string, o MountOptions) (MountInfo, error) {
	owner, err := o.check()
	if err != nil {
		return MountInfo{}, err
	}
	if !filepath.IsAbs(dir) {
		return MountInfo{}, invalidf("mount point %q is relative; give an absolute path", dir)
	}
	abs := filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mounts == nil {
		t.mounts = map[string]*mounted{}
	}
	if m, ok := t.mounts[abs]; ok {
		return MountInfo{}, fmt.Errorf("%s is already mounted (%s); unmount it first: agentfs unmount %s", abs, m.info.Ref, abs)
	}
	r, err := e.Resolve(ctx, ref)
	if err != nil {
		return MountInfo{}, err
	}
	var ws *branch.Workspace
	unpin := func() {}
	if r.Branch != "" {
		ws, err = e.Workspace(ctx, r.Branch)
	} else {
		ws, unpin, err = e.PinView(ctx, r.Commit, "mounted at "+abs)
	}
	if err != nil {
		return MountInfo{}, err
	}
	ok := false
	defer func() {
		if !ok {
			unpin()
		}
	}()
	info := MountInfo{Ref: ref, Dir: abs, MountOptions: o}
	info.ReadOnly = o.ReadOnly || r.Branch == ""
	if r.Branch == "" {
		info.Ref = r.Commit.String()
	} else if !info.ReadOnly {
		for _, m := range t.mounts {
			if m.info.Ref == r.Branch && !m.info.ReadOnly {
				return MountInfo{}, fmt.Errorf("branch %s is already mounted read-write at %s; unmount it there, or fork a new branch for this mount", r.Branch, m.info.Dir)
			}
		}
	}
	if err := prepareMountPoint(abs); err != nil {
		return MountInfo{}, err
	}
	if err := fs.CheckMountPoint(abs); err != nil {
		return MountInfo{}, invalidError{err.Error()}
	}
	name := "agentfs:" + info.Ref
	m, err := fs.Mount(ws, abs, fs.Options{ReadOnly: info.ReadOnly, FsName: name, StatfsPath: t.RepoDir, Logger: t.Logger,
		Owner: owner, AllowOther: o.AllowOther})
	if err != nil {
		return MountInfo{}, err
	}
	if r.Branch != "" {
		e.SetBusy(r.Branch, "mounted at "+abs)
	}
	t.mounts[abs] = &mounted{info: info, branch: r.Branch, m: m, e: e, unpin: unpin}
	t.saveLocked()
	ok = true
	return info, nil
}

// Unmount flushes and unmounts the agentfs mount at dir.
func (t *MountTable) Unmount(dir string) error {
	if !filepath.IsAbs(dir) {
		return invalidf("mount point %q is relative; give an absolute path", dir)
	}
	abs := filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	t.mu.Lock()
	m, ok := t.mounts[abs]
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not an agentfs mount of this repository (see: agentfs mounts): %w", abs, branch.ErrNotFound)
	}
	if err := m.m.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", abs, err)
	}
	t.mu.Lock()
	delete(t.mounts, abs)
	t.saveLocked()
	t.mu.Unlock()
	m.unpin()
	if m.branch != "" && !t.anyMountOf(m.branch) {
		m.e.SetBusy(m.branch, "")
		m.e.EvictUnused(m.branch)
	}
	releaseMemorySoon() // release.go
	return nil
}

func (t *MountTable) anyMountOf(br string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.mounts {
		if m.branch == br {
			return true
		}
	}
	return false
}

// List returns the mounts sorted by directory.
func (t *MountTable) List() []MountInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]MountInfo, 0, len(t.mounts))
	for _, m := range t.mounts {
		out = append(out, m.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out
}

// UnmountAll unmounts everything, for shutdown.
func (t *MountTable) UnmountAll() error {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	var errs []error
	for _, m := range t.List() {
		errs = append(errs, t.Unmount(m.Dir))
	}
	return errors.Join(errs...)
}
