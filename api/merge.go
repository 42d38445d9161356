package api

import (
	"context"

	"github.com/agentfs/agentfs/branch"
)

// MergeRequest asks to merge Src into the branch Into.
type MergeRequest struct {
	Src      string `json:"src"`
	Into     string `json:"into"`
	Strategy string `json:"strategy,omitempty"` // fail (default), ours, theirs or markers
	Message  string `json:"message,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
	// Take resolves the conflicts of these paths with one side: path -> "ours" or "theirs".
	Take map[string]string `json:"take,omitempty"`
}

// MergeResult is what a merge did or, for a dry run or a conflict, would do.
type MergeResult struct {
	Checkpoint string            `json:"checkpoint,omitempty"` // the merge checkpoint id
	Base       string            `json:"base"`                 // the merge base id ("" if none)
	UpToDate   bool              `json:"up_to_date"`
	Conflicts  []branch.Conflict `json:"conflicts"`
	Changes    []branch.Change   `json:"changes"`
	// Pending: conflicts were written into the target (strategy markers); finish with
	// merge.continue or merge.abort.
	Pending bool `json:"pending,omitempty"`
	// SourceCheckpoint is the checkpoint the source branch's uncommitted changes became.
	SourceCheckpoint string `json:"source_checkpoint,omitempty"`
}

func (l *Local) Merge(ctx context.Context, r MergeRequest) (MergeResult, error) {
	res, err := l.Engine.Merge(ctx, r.Src, r.Into, branch.MergeOptions{Strategy: r.Strategy, Message: r.Message, DryRun: r.DryRun, Take: r.Take})
	return mergeResult(res), err
}

// Merge calls the daemon. A conflict comes back as the result (with its conflicts) and an
// error matching branch.ErrConflict.
func (c *Client) Merge(ctx context.Context, r MergeRequest) (MergeResult, error) {
	res, err := do[mergeReply](ctx, c, "merge", Request{Merge: &r})
	if err != nil {
		return MergeResult{}, err
	}
	if res.Error != "" {
		return res.Result, &remoteError{errorBody{Error: res.Error, Code: "conflict"}}
	}
	return res.Result, nil
}

// mergeReply carries a result together with a conflict error, which a plain error reply
// could not.
type mergeReply struct {
	Result MergeResult `json:"result"`
	Error  string      `json:"error,omitempty"`
}

func init() {
	codes = append(codes, struct {
		code   string
		err    error
		status int
	}{"conflict", branch.ErrConflict, 409})
	calls["merge"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Merge == nil {
			return nil, errMissing("merge")
		}
		res, err := s.Merge(ctx, *r.Merge)
		if err != nil && isConflict(err) {
			return mergeReply{Result: res, Error: err.Error()}, nil
		}
		return mergeReply{Result: res}, err
	}
}
