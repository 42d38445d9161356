package api

import (
	"context"

	"github.com/agentfs/agentfs/branch"
)

// Reviewer is the part of Service that reviews and undoes work: content diffs, revert,
// blame, tags and settling merge conflicts (docs/api.md, "Review").
type Reviewer interface {
	DiffFiles(ctx context.Context, r DiffRequest) ([]branch.FileDiff, error)
}

// DiffRequest asks for the file-by-file changes from ref A to ref B.
type DiffRequest struct {
	A       string   `json:"a"`
	B       string   `json:"b"`
	Paths   []string `json:"paths,omitempty"`   // limit to these paths (and below)
	Patch   bool     `json:"patch,omitempty"`   // include each file's git-style diff
	Context int      `json:"context,omitempty"` // context lines; 0 = 3
	Names   bool     `json:"names,omitempty"`   // names and kinds only: no line counts
}

func (l *Local) DiffFiles(ctx context.Context, r DiffRequest) ([]branch.FileDiff, error) {
	out, err := l.Engine.DiffFiles(ctx, r.A, r.B, branch.DiffOptions{Paths: r.Paths, Patch: r.Patch, Context: r.Context, Names: r.Names})
	if out == nil && err == nil {
		out = []branch.FileDiff{}
	}
	return out, err
}

func (c *Client) DiffFiles(ctx context.Context, r DiffRequest) ([]branch.FileDiff, error) {
	return do[[]branch.FileDiff](ctx, c, "diff.files", Request{Review: &ReviewRequest{Diff: &r}})
}

// ReviewRequest carries the arguments of the review calls (one field per call).
type ReviewRequest struct {
	Diff *DiffRequest `json:"diff,omitempty"`
}

func init() {
	calls["diff.files"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Review == nil || r.Review.Diff == nil {
			return nil, errMissing("diff.files")
		}
		return s.DiffFiles(ctx, *r.Review.Diff)
	}
}
