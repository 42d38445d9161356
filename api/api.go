// Package api is the control API of agentfs: one Service interface, implemented by Local
// (directly on an open repository) and by Client (over the daemon's Unix socket), so that
// every CLI command runs the same code whether or not a daemon is running.
//
// The wire format is HTTP/JSON on a Unix socket (see docs/api.md): it needs no code
// generation, curl --unix-socket can drive it, and a per-branch access check can sit in
// one place in the handler.
package api

import (
	"context"
	"io"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/transfer"
	"github.com/agentfs/agentfs/remote"
)

// Service is everything the CLI can ask of a repository.
type Service interface {
	// Branches lists the branches; it costs O(branches) unless o.Space asks for the space
	// accounting, which walks what every branch reaches (at most one ListOptions).
	Branches(ctx context.Context, o ...ListOptions) ([]BranchInfo, error)
	CreateBranch(ctx context.Context, name, from string) (BranchInfo, error)
	DeleteBranch(ctx context.Context, name string) error
	Checkpoint(ctx context.Context, branch, name, message string) (CheckpointInfo, error)
	// File calls (api/files.go): change a branch's files without a mount.
	WriteFile(ctx context.Context, br, path string, data []byte) error
	MakeDir(ctx context.Context, br, path string) error
	Move(ctx context.Context, br, src, dst string) error
	// CheckpointWith is Checkpoint with provenance (api/provenance.go).
	CheckpointWith(ctx context.Context, br string, o branch.CheckpointOptions) (CheckpointInfo, error)
	Rollback(ctx context.Context, branch, ref string) error
	Diff(ctx context.Context, a, b string) ([]branch.Change, error)
	Log(ctx context.Context, branch string) ([]CheckpointInfo, error)
	List(ctx context.Context, ref, path string) ([]Entry, error)
	Cat(ctx context.Context, ref, path string, w io.Writer) error
	Import(ctx context.Context, branch, dir string) (ImportResult, error)
	// Export takes at most one ExportOptions (none: the safe defaults).
	Export(ctx context.Context, ref, dir string, o ...ExportOptions) error
	Mount(ctx context.Context, ref, dir string, o MountOptions) (MountInfo, error)
	Unmount(ctx context.Context, dir string) error
	Mounts(ctx context.Context) ([]MountInfo, error)
	// Remotes (api/remote.go): object storage push/pull.
	RemoteAdd(ctx context.Context, name, url string, sec remote.Security) (remote.Remote, error)
	RemoteRekey(ctx context.Context, name, keyFile string) (remote.RekeyResult, error)
	RemoteRemove(ctx context.Context, name string) error
	RemoteList(ctx context.Context) ([]remote.Remote, error)
	Push(ctx context.Context, remoteName, branch string) (remote.PushResult, error)
	Pull(ctx context.Context, remoteName, branch string, o remote.PullOptions) (remote.PullResult, error)
	RemoteProgress(ctx context.Context) ([]remote.Progress, error)
	Merge(ctx context.Context, r MergeRequest) (MergeResult, error)
	GC(ctx context.Context, o GCOptions) (gc.Stats, error)
	Fsck(ctx context.Context, o FsckOptions) (*gc.Report, error)
	PruneCheckpoints(ctx context.Context, branch string, keepLast int, keepWithin time.Duration) (PruneResult, error)
	// SetQuota changes a branch's limits (api/quota.go); an omitted limit stays as it is.
	SetQuota(ctx context.Context, branch string, q QuotaRequest) (BranchInfo, error)
	Reviewer   // api/review.go
	Maintainer // api/maintenance.go
}

// BranchInfo describes a branch.
type BranchInfo struct {
	Name    string    `json:"name"`
	Base    string    `json:"base"` // id of the checkpoint its working state starts from
	Created time.Time `json:"created"`
	Changed bool      `json:"changed"` // has changes since Base
	Mounted string    `json:"mounted,omitempty"`
	// Stored bytes the branch references together with other versions, and the bytes only
	// it references (what deleting it and running gc frees). Only filled when asked for
	// (ListOptions.Space, branch list --space): counting them walks the repository.
	SharedBytes    *int64 `json:"shared_bytes,omitempty"`
	ExclusiveBytes *int64 `json:"exclusive_bytes,omitempty"`
	// Quota (0: none) and, with an inode quota, the inodes it counts (see agentfs branch quota).
	QuotaBytes  int64 `json:"quota_bytes,omitempty"`
	QuotaInodes int64 `json:"quota_inodes,omitempty"`
	InodesUsed  int64 `json:"inodes_used,omitempty"`
}

// ListOptions change what Branches returns.
type ListOptions struct {
	Space bool // fill SharedBytes and ExclusiveBytes (one walk over the repository)
}

func listOptions(o []ListOptions) ListOptions {
	if len(o) > 0 {
		return o[0]
	}
	return ListOptions{}
}

// CheckpointInfo describes a checkpoint.
type CheckpointInfo struct {
	ID      string    `json:"id"`
	Branch  string    `json:"branch"`
	Name    string    `json:"name,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
	Parents []string  `json:"parents"`
	Pruned  bool      `json:"pruned,omitempty"` // its tree was given up by checkpoint prune
	// Unchanged: a checkpoint was asked for, but the branch was the same as this, its last
	// checkpoint, so none was made.
	Unchanged bool `json:"unchanged,omitempty"`
	// Who made it and why: agent, session, tool_call, caller, via, labels (api/provenance.go).
	branch.Provenance
	Files branch.FileCounts `json:"files"`           // paths created, modified, deleted since the first parent
	Paths *PathLists        `json:"paths,omitempty"` // the paths themselves (checkpoint and log --json)
	// SignedBy is the public key that signed a remote ref naming this checkpoint (pushed from
	// here, or verified on pull or clone); SignedVia, the newer checkpoint of this log whose
	// signature covers this one through its history.
	SignedBy  string `json:"signed_by,omitempty"`
	SignedVia string `json:"signed_via,omitempty"`
}

// Entry is one file in a listing.
type Entry struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"` // file, dir, symlink, other
	Mode   string    `json:"mode"` // permission bits in octal, e.g. "0644"
	Size   uint64    `json:"size"`
	Mtime  time.Time `json:"mtime"`
	Target string    `json:"target,omitempty"` // symlink target
}

// ImportResult is the checkpoint an import made and what it did.
type ImportResult struct {
	Checkpoint CheckpointInfo `json:"checkpoint"`
	Stats      transfer.Stats `json:"stats"`
	// Saved is the checkpoint that kept the branch's uncommitted changes before the import
	// replaced its tree (nil if it had none).
	Saved *CheckpointInfo `json:"saved,omitempty"`
}

// MountInfo describes a mount served by the daemon.
type MountInfo struct {
	Ref string `json:"ref"` // branch name, or checkpoint id for read-only mounts
	Dir string `json:"dir"`
	MountOptions
}
