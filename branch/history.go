package branch

import (
	"container/heap"
	"context"
	"errors"
	"time"

	"github.com/agentfs/agentfs/store"
)

// HistoryOptions filter a branch's history.
type HistoryOptions struct {
	Limit int       // at most this many entries; 0 = all
	Since time.Time // only checkpoints taken at or after this time; zero = all
	// Agent keeps the checkpoints whose provenance names this agent, or that were taken on
	// a branch of this name (one branch per agent is the convention).
	Agent string
}

// History is Log with filters. It walks the history newest first through a queue ordered by
// time, so that -n N reads about N commits, and --since stops at the first older one on
// each line of history.
func (e *Engine) History(ctx context.Context, branch string, o HistoryOptions) ([]LogEntry, error) {
	r, err := e.Resolve(ctx, branch)
	if err != nil {
		return nil, err
	}
	seen := map[store.ID]bool{}
	q := &commitQueue{}
	push := func(id store.ID) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		c, err := e.ReadCommit(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // history before a pruned checkpoint
		}
		if err != nil {
			return err
		}
		heap.Push(q, LogEntry{ID: id, Commit: c})
		return nil
	}
	if err := push(r.Commit); err != nil {
		return nil, err
	}
	var out []LogEntry
	for q.Len() > 0 && (o.Limit <= 0 || len(out) < o.Limit) {
		le := heap.Pop(q).(LogEntry)
		if !o.Since.IsZero() && le.Time.Before(o.Since) {
			continue // and its parents are older still
		}
		if o.Agent == "" || le.Agent == o.Agent || le.Branch == o.Agent {
			out = append(out, le)
		}
		for _, p := range le.Parents {
			if err := push(p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// commitQueue is a heap of commits, newest first.
type commitQueue []LogEntry

func (q commitQueue) Len() int           { return len(q) }
func (q commitQueue) Less(i, j int) bool { return q[i].Time.After(q[j].Time) }
func (q commitQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)        { *q = append(*q, x.(LogEntry)) }
func (q *commitQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// CheckpointIfChanged is CheckpointWith that makes no checkpoint when the branch's state is
// the same as its last checkpoint's. A name or labels are always honoured: they record an
// event (agentfs run labels its checkpoint with the command's exit code) even when no file
// changed. It returns the checkpoint and whether it made one. It folds once, outside the
// branch's lock, like a checkpoint (frozenFold), and compares the fold with the base.
func (e *Engine) CheckpointIfChanged(ctx context.Context, branch string, o CheckpointOptions) (store.ID, []Change, bool, error) {
	o.ifChanged = o.Name == "" && len(o.Labels) == 0
	id, changes, err := e.CheckpointWith(ctx, branch, o)
	if errors.Is(err, errUnchanged) {
		return id, nil, false, nil
	}
	return id, changes, err == nil, err
}
