package api

import (
	"context"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/metrics"
	"github.com/agentfs/agentfs/remote"
)

// Instrument returns s counting what its calls did into the daemon's metrics
// (internal/metrics): checkpoints, forks, rollbacks, merges, gc runs and reclaimed bytes,
// pushes and pulls with their bytes. Every other call passes through unchanged.
func Instrument(s Service) Service { return instrumented{s} }

type instrumented struct{ Service }

func (i instrumented) CreateBranch(ctx context.Context, name, from string) (BranchInfo, error) {
	b, err := i.Service.CreateBranch(ctx, name, from)
	if err == nil && from != "" {
		metrics.Forks.Inc()
	}
	return b, err
}

func (i instrumented) Checkpoint(ctx context.Context, br, name, message string) (CheckpointInfo, error) {
	cp, err := i.Service.Checkpoint(ctx, br, name, message)
	if err == nil {
		metrics.Checkpoints.Inc()
	}
	return cp, err
}

func (i instrumented) CheckpointWith(ctx context.Context, br string, o branch.CheckpointOptions) (CheckpointInfo, error) {
	cp, err := i.Service.CheckpointWith(ctx, br, o)
	if err == nil {
		metrics.Checkpoints.Inc()
	}
	return cp, err
}

func (i instrumented) Rollback(ctx context.Context, br, ref string) error {
	err := i.Service.Rollback(ctx, br, ref)
	if err == nil {
		metrics.Rollbacks.Inc()
	}
	return err
}

func (i instrumented) Merge(ctx context.Context, r MergeRequest) (MergeResult, error) {
	res, err := i.Service.Merge(ctx, r)
	if err == nil && res.Checkpoint != "" {
		metrics.Merges.Inc()
	}
	return res, err
}

func (i instrumented) GC(ctx context.Context, o GCOptions) (gc.Stats, error) {
	st, err := i.Service.GC(ctx, o)
	if err == nil && !o.DryRun {
		metrics.GCRuns.Inc()
		metrics.GCReclaimedBytes.Add(float64(st.DeletedBytes))
	}
	return st, err
}

func (i instrumented) Push(ctx context.Context, rem, br string) (remote.PushResult, error) {
	res, err := i.Service.Push(ctx, rem, br)
	if err != nil {
		metrics.RemoteErrors.Inc()
		return res, err
	}
	metrics.Pushes.Inc()
	metrics.PushedBytes.Add(float64(res.Bytes))
	return res, nil
}

func (i instrumented) Pull(ctx context.Context, rem, br string, o remote.PullOptions) (remote.PullResult, error) {
	res, err := i.Service.Pull(ctx, rem, br, o)
	if err != nil {
		metrics.RemoteErrors.Inc()
		return res, err
	}
	metrics.Pulls.Inc()
	metrics.PulledBytes.Add(float64(res.Bytes))
	return res, nil
}
