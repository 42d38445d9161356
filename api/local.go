package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/transfer"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
)

// Local serves a Service from an engine in this process.
type Local struct {
	Engine  *branch.Engine
	Mounter *MountTable // nil when no daemon runs: mounting then needs one
	// Remotes runs push and pull (api/remote.go); nil: remote calls fail.
	Remotes *remote.Manager
	// Schedule tells when the daemon's maintenance runs next; nil: no daemon runs it.
	Schedule func() Schedule

	allowed []string // host directories import and export may use (AllowPaths); none: any
}

var _ Service = (*Local)(nil)

func (l *Local) branchInfo(ctx context.Context, b *branch.Branch) (BranchInfo, error) {
	info := BranchInfo{Name: b.Name, Base: b.Base.String(), Created: b.Created}
	ws, err := l.Engine.Workspace(ctx, b.Name)
	if err != nil {
		return info, err
	}
	if info.Changed, err = ws.Changed(); err != nil {
		return info, err
	}
	info.Base = ws.Base().String()
	if l.Mounter != nil {
		info.Mounted = l.Mounter.DirOf(b.Name)
	}
	return info, l.quotaInfo(ctx, &info)
}

func (l *Local) Branches(ctx context.Context, o ...ListOptions) ([]BranchInfo, error) {
	bs, err := l.Engine.BranchStates()
	if err != nil {
		return nil, err
	}
	var mounted map[string]string
	if l.Mounter != nil {
		mounted = l.Mounter.ReadWriteDirs()
	}
	out := make([]BranchInfo, 0, len(bs))
	for _, b := range bs {
		info := BranchInfo{Name: b.Name, Base: b.Base.String(), Created: b.Created, Changed: b.Changed, Mounted: mounted[b.Name]}
		if err := l.quotaInfo(ctx, &info); err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	if !listOptions(o).Space {
		return out, nil
	}
	return out, l.branchSpace(ctx, out)
}

func (l *Local) CreateBranch(ctx context.Context, name, from string) (BranchInfo, error) {
	b, err := l.Engine.CreateBranch(ctx, name, from)
	if err != nil {
		return BranchInfo{}, err
	}
	return l.branchInfo(ctx, b)
}

func (l *Local) DeleteBranch(ctx context.Context, name string) error {
	return l.Engine.DeleteBranch(ctx, name)
}

func (l *Local) checkpointInfo(ctx context.Context, id store.ID) (CheckpointInfo, error) {
	c, err := l.Engine.ReadCommit(ctx, id)
	if err != nil {
		return CheckpointInfo{}, err
	}
	return commitInfo(id, c), nil
}

func commitInfo(id store.ID, c *branch.Commit) CheckpointInfo {
	info := CheckpointInfo{ID: id.String(), Branch: c.Branch, Name: c.Name, Message: c.Message, Time: c.Time, Parents: []string{},
		Provenance: c.Provenance, Files: c.Files}
	for _, p := range c.Parents {
		info.Parents = append(info.Parents, p.String())
	}
	return info
}

func (l *Local) Checkpoint(ctx context.Context, br, name, message string) (CheckpointInfo, error) {
	return l.CheckpointWith(ctx, br, branch.CheckpointOptions{Name: name, Message: message})
}

func (l *Local) Rollback(ctx context.Context, br, ref string) error {
	return l.Engine.Rollback(ctx, br, ref)
}

func (l *Local) Diff(ctx context.Context, a, b string) ([]branch.Change, error) {
	return l.Engine.Diff(ctx, a, b)
}

func (l *Local) Log(ctx context.Context, br string) ([]CheckpointInfo, error) {
	entries, err := l.Engine.Log(ctx, br)
	if err != nil {
		return nil, err
	}
	return l.checkpointInfos(ctx, entries)
}

// checkpointInfos describes log entries as log and history show them: pruned ones marked,
// the others with the paths they changed.
func (l *Local) checkpointInfos(ctx context.Context, entries []branch.LogEntry) ([]CheckpointInfo, error) {
	out := make([]CheckpointInfo, 0, len(entries))
	// covered: checkpoint -> the signed checkpoint whose history holds it (entries come
	// newest first, so a child is seen before its parents).
	covered := map[store.ID]string{}
	for _, e := range entries {
		info := commitInfo(e.ID, e.Commit)
		if l.Remotes != nil {
			si, err := l.Remotes.Signer(e.ID)
			if err != nil {
				return nil, err
			}
			via := covered[e.ID]
			if si != nil {
				info.SignedBy, via = si.Signer, e.ID.String()
			} else {
				info.SignedVia = via
			}
			if via != "" && e.Commit != nil {
				for _, p := range e.Commit.Parents {
					if _, ok := covered[p]; !ok {
						covered[p] = via
					}
				}
			}
		}
		pruned, err := l.Engine.IsPruned(e.ID)
		if err != nil {
			return nil, err
		}
		if info.Pruned = pruned; !pruned {
			if err := l.logPaths(ctx, &info, e.Commit); err != nil {
				return nil, err
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// walk resolves a slash-separated path inside ref.
func (l *Local) walk(ctx context.Context, ref, p string) (*branch.Workspace, *branch.Inode, error) {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return nil, nil, invalidf("path %q: '..' is not allowed in a path inside a ref", p)
		}
	}
	ws, _, err := l.Engine.Open(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	n, err := ws.GetAttr(ctx, branch.RootIno)
	if err != nil {
		return nil, nil, err
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." {
			continue
		}
		if n, err = ws.Lookup(ctx, n.Ino, part); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return nil, nil, fmt.Errorf("%s:%s: %w", ref, p, branch.ErrNotFound)
			}
			return nil, nil, err
		}
	}
	return ws, n, nil
}

func entryOf(name string, n *branch.Inode) Entry {
	e := Entry{Name: name, Type: typeOf(n), Mode: fmt.Sprintf("%04o", n.Mode&0o7777), Size: n.Size, Mtime: time.Unix(0, n.Mtime).UTC()}
	if n.IsSymlink() {
		e.Target = string(n.Data)
	}
	return e
}

func typeOf(n *branch.Inode) string {
	switch {
	case n.IsDir():
		return "dir"
	case n.IsRegular():
		return "file"
	case n.IsSymlink():
		return "symlink"
	}
	return "other"
}

func (l *Local) List(ctx context.Context, ref, p string) ([]Entry, error) {
	ws, n, err := l.walk(ctx, ref, p)
	if err != nil {
		return nil, err
	}
	if !n.IsDir() {
		return []Entry{entryOf(filepath.Base(p), n)}, nil
	}
	out := []Entry{}
	err = ws.ReadDir(ctx, n.Ino, "", func(d branch.DirEntry) error {
		c, err := ws.GetAttr(ctx, d.Ino)
		if err != nil {
			return err
		}
		out = append(out, entryOf(d.Name, c))
		return nil
	})
	return out, err
}

func (l *Local) Cat(ctx context.Context, ref, p string, w io.Writer) error {
	ws, n, err := l.walk(ctx, ref, p)
	if err != nil {
		return err
	}
	if n.IsDir() {
		return invalidf("%s:%s is a directory; list it with agentfs ls", ref, p)
	}
	if n.IsSymlink() {
		_, err := w.Write(n.Data)
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(n.Size); {
		k, err := ws.Read(ctx, n.Ino, off, buf)
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		off += int64(k)
	}
	return nil
}

func (l *Local) Import(ctx context.Context, br, dir string) (ImportResult, error) {
	if err := branch.ValidateName("branch", br); err != nil {
		return ImportResult{}, err
	}
	dir, err := l.hostPath("import", dir)
	if err != nil {
		return ImportResult{}, err
	}
	if err := checkImportDir(dir); err != nil {
		return ImportResult{}, err
	}
	if _, err := l.Engine.GetBranch(br); errors.Is(err, branch.ErrNotFound) {
		if _, err := l.Engine.CreateBranch(ctx, br, ""); err != nil {
			return ImportResult{}, err
		}
	} else if err != nil {
		return ImportResult{}, err
	}
	ws, err := l.Engine.Workspace(ctx, br)
	if err != nil {
		return ImportResult{}, err
	}
	// The import replaces the tree; uncommitted work is kept in a checkpoint first, as merge
	// and pull do, so that it stays in the log.
	var res ImportResult
	if changed, err := ws.Changed(); err != nil {
		return res, err
	} else if changed {
		saved, err := l.Checkpoint(ctx, br, "", "uncommitted changes before import of "+dir)
		if err != nil {
			return res, err
		}
		res.Saved = &saved
	}
	res.Stats, err = transfer.ImportWith(ctx, ws, dir, transfer.ImportOptions{Progress: copyProgress(ctx)})
	ws.NotifyChanged() // mounts of the branch drop what their kernels cached
	if err != nil {
		return res, err
	}
	res.Checkpoint, err = l.Checkpoint(ctx, br, "", "import "+dir)
	return res, err
}

func (l *Local) Export(ctx context.Context, ref, dir string, o ...ExportOptions) error {
	dir, err := l.hostPath("export", dir)
	if err != nil {
		return err
	}
	if err := checkExportDir(dir); err != nil {
		return err
	}
	ws, r, err := l.Engine.Open(ctx, ref)
	if err != nil {
		return err
	}
	// The whole committed tree is checked first: export walks only what the root reaches,
	// and a tree with parent-link loops or bad names elsewhere is damaged or crafted.
	if err := l.Engine.CheckCommit(ctx, r.Commit, store.ID{}); err != nil {
		return fmt.Errorf("export %s: %w; nothing was exported", ref, err)
	}
	var eo ExportOptions
	if len(o) > 0 {
		eo = o[0]
	}
	// Warnings go to the caller as events (the CLI prints them), or to this process's
	// stderr when nobody listens: the daemon's log.
	warn := func(msg string) { fmt.Fprintln(os.Stderr, "agentfs: "+msg) }
	if eventsOf(ctx) != nil {
		warn = func(msg string) { report(ctx, Event{Warning: msg}) }
	}
	return transfer.ExportWith(ctx, ws, dir, transfer.ExportOptions{Devices: eo.Devices, SetID: eo.SetID, Warn: warn, Progress: copyProgress(ctx)})
}

// ExportOptions: what an export may restore beyond plain files (see transfer.ExportOptions).
type ExportOptions struct {
	Devices bool `json:"devices,omitempty"` // create device nodes
	SetID   bool `json:"setid,omitempty"`   // restore setuid/setgid bits and file capabilities
}

// ErrNoDaemon means the operation needs a running daemon.
var ErrNoDaemon = errors.New("no agentfs daemon is serving this repository")

func (l *Local) Mount(ctx context.Context, ref, dir string, o MountOptions) (MountInfo, error) {
	if l.Mounter == nil {
		return MountInfo{}, fmt.Errorf("%w; start one with: agentfs serve", ErrNoDaemon)
	}
	return l.Mounter.Mount(ctx, l.Engine, ref, dir, o)
}

func (l *Local) Unmount(ctx context.Context, dir string) error {
	if l.Mounter == nil {
		return fmt.Errorf("%w; nothing is mounted", ErrNoDaemon)
	}
	return l.Mounter.Unmount(dir)
}

func (l *Local) Mounts(ctx context.Context) ([]MountInfo, error) {
	if l.Mounter == nil {
		return []MountInfo{}, nil
	}
	return l.Mounter.List(), nil
}
