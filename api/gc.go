package api

import (
	"context"
	"fmt"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/remote"
)

// GCOptions configure a collection. Progress is called in this process only; a caller
// over the socket gets the progress as events (api/events.go).
type GCOptions struct {
	DryRun   bool              `json:"dry_run"`
	Progress func(gc.Progress) `json:"-"`
}

// FsckOptions configure a check.
type FsckOptions struct {
	Progress func(gc.Progress) `json:"-"`
	// Remote also checks every remote: each object reachable from its refs and from this
	// repository's unfinished pushes must be listed in the bucket.
	Remote bool
	// VerifyData (with Remote) reads each of those objects back and checks its hash.
	VerifyData bool
	Repair     bool // replace broken local blocks with good copies from a remote
}

// PruneResult lists the checkpoints a prune marked.
type PruneResult struct {
	Pruned []string `json:"pruned"`
}

// On the wire: gc takes dry_run; fsck takes remote and repair; checkpoint.prune takes branch,
// keep_last and keep_within (a Go duration such as "24h").

func (l *Local) GC(ctx context.Context, o GCOptions) (gc.Stats, error) {
	st, err := gc.Run(ctx, l.Engine, gc.Options{DryRun: o.DryRun, Progress: gcProgress(ctx, o.Progress)})
	if err == nil && !o.DryRun {
		_, err = recordGC(l.Engine, "agentfs gc", st, 0) // for agentfs status (maintenance.go)
	}
	return st, err
}

func (l *Local) Fsck(ctx context.Context, o FsckOptions) (*gc.Report, error) {
	co := gc.CheckOptions{Progress: gcProgress(ctx, o.Progress), Repair: o.Repair}
	var remotes []remote.Remote
	if l.Remotes != nil {
		var err error
		if remotes, err = l.Remotes.List(ctx); err != nil {
			return nil, err
		}
		if len(remotes) > 0 {
			co.Remote = l.Remotes
		}
	}
	if co.Remote == nil && (o.Remote || o.Repair) {
		return nil, fmt.Errorf("%w: fsck --remote and --repair need a remote; add one with: agentfs remote add NAME URL", branch.ErrInvalidName)
	}
	rep, err := gc.Check(ctx, l.Engine, co)
	if err != nil || !o.Remote {
		return rep, err
	}
	for _, r := range remotes {
		res, err := l.Remotes.Check(ctx, r.Name, o.VerifyData)
		if err != nil {
			return nil, err
		}
		rep.Roots += res.Refs + res.Pending
		rep.Objects += res.Objects
		for _, p := range res.Problems {
			rep.Problems = append(rep.Problems, gc.Problem{Ref: p.Ref, Path: p.Path, Object: p.Object, ID: p.ID, Error: p.Error})
		}
	}
	return rep, nil
}

func (l *Local) PruneCheckpoints(ctx context.Context, br string, keepLast int, keepWithin time.Duration) (PruneResult, error) {
	ids, err := l.Engine.PruneCheckpoints(ctx, br, keepLast, keepWithin)
	out := PruneResult{Pruned: make([]string, 0, len(ids))}
	for _, id := range ids {
		out.Pruned = append(out.Pruned, id.String())
	}
	return out, err
}

func (c *Client) GC(ctx context.Context, o GCOptions) (gc.Stats, error) {
	return do[gc.Stats](ctx, c, "gc", Request{DryRun: o.DryRun})
}

func (c *Client) Fsck(ctx context.Context, o FsckOptions) (*gc.Report, error) {
	return do[*gc.Report](ctx, c, "fsck", Request{FsckRemote: o.Remote, VerifyData: o.VerifyData, Repair: o.Repair})
}

func (c *Client) PruneCheckpoints(ctx context.Context, br string, keepLast int, keepWithin time.Duration) (PruneResult, error) {
	return do[PruneResult](ctx, c, "checkpoint.prune", Request{Branch: br, KeepLast: keepLast, KeepWithin: keepWithin.String()})
}

func pruneCall(ctx context.Context, s Service, r Request) (any, error) {
	keepWithin := time.Duration(0)
	if r.KeepWithin != "" {
		var err error
		if keepWithin, err = time.ParseDuration(r.KeepWithin); err != nil {
			return nil, fmt.Errorf("%w: checkpoint.prune: bad keep_within %q", branch.ErrInvalidName, r.KeepWithin)
		}
	}
	return s.PruneCheckpoints(ctx, r.Branch, r.KeepLast, keepWithin)
}

// branchSpace fills the space accounting of every branch in out.
func (l *Local) branchSpace(ctx context.Context, out []BranchInfo) error {
	space, err := gc.Space(ctx, l.Engine)
	if err != nil {
		return err
	}
	for i := range out {
		s := space[out[i].Name]
		out[i].SharedBytes, out[i].ExclusiveBytes = &s.Shared, &s.Exclusive
	}
	return nil
}
