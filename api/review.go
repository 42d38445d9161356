package api

import (
	"context"
	"time"

	"github.com/agentfs/agentfs/branch"
)

// Reviewer is the part of Service that reviews and undoes work: content diffs, revert,
// blame, tags and settling merge conflicts (docs/api.md, "Review").
type Reviewer interface {
	DiffFiles(ctx context.Context, r DiffRequest) ([]branch.FileDiff, error)
	Revert(ctx context.Context, r RevertRequest) (MergeResult, error)
	// Resolve names the checkpoint a ref stands for (a branch: its base checkpoint).
	Resolve(ctx context.Context, ref string) (CheckpointInfo, error)
	// A merge with strategy markers that found conflicts stays pending until one of these.
	MergeStatus(ctx context.Context, branch string) (*PendingMerge, error) // nil: none pending
	MergeContinue(ctx context.Context, branch string) (ContinueResult, error)
	MergeAbort(ctx context.Context, branch string) error
	// Tags name checkpoints beyond the life of their branch; they are refs and gc roots.
	TagCreate(ctx context.Context, name, ref string) (TagInfo, error)
	Tags(ctx context.Context) ([]TagInfo, error)
	TagDelete(ctx context.Context, name string) error
	// Blame names, for each line of the file at path in ref, the checkpoint that last
	// changed it.
	Blame(ctx context.Context, ref, path string) (BlameResult, error)
	// History is Log with a limit and filters.
	History(ctx context.Context, r LogRequest) ([]CheckpointInfo, error)
}

// LogRequest asks for the history of a ref, newest first.
type LogRequest struct {
	Ref   string    `json:"ref"`
	Limit int       `json:"limit,omitempty"` // at most this many; 0 = all
	Since time.Time `json:"since,omitempty"` // only checkpoints at or after this time
	Agent string    `json:"agent,omitempty"` // only checkpoints taken on this branch
}

func (l *Local) History(ctx context.Context, r LogRequest) ([]CheckpointInfo, error) {
	entries, err := l.Engine.History(ctx, r.Ref, branch.HistoryOptions{Limit: r.Limit, Since: r.Since, Agent: r.Agent})
	if err != nil {
		return nil, err
	}
	return l.checkpointInfos(ctx, entries)
}

func (c *Client) History(ctx context.Context, r LogRequest) ([]CheckpointInfo, error) {
	return do[[]CheckpointInfo](ctx, c, "history", Request{Review: &ReviewRequest{Log: &r}})
}

// BlameResult is a file's blame; a binary file is one line.
type BlameResult struct {
	Path   string      `json:"path"`
	Binary bool        `json:"binary,omitempty"`
	Lines  []BlameLine `json:"lines"`
}

// BlameLine is one line and the checkpoint that last changed it. An empty Checkpoint means
// the branch's uncommitted changes.
type BlameLine struct {
	Line       int       `json:"line"`
	Text       string    `json:"text"`
	Checkpoint string    `json:"checkpoint"`
	Branch     string    `json:"branch"`
	Name       string    `json:"name,omitempty"`
	Message    string    `json:"message,omitempty"`
	Time       time.Time `json:"time"`
	Agent      string    `json:"agent,omitempty"` // the checkpoint's provenance, when recorded
	Session    string    `json:"session,omitempty"`
	ToolCall   string    `json:"tool_call,omitempty"`
}

func (l *Local) Blame(ctx context.Context, ref, p string) (BlameResult, error) {
	res, err := l.Engine.Blame(ctx, ref, p)
	if err != nil {
		return BlameResult{}, err
	}
	out := BlameResult{Path: res.Path, Binary: res.Binary, Lines: make([]BlameLine, 0, len(res.Lines))}
	for _, bl := range res.Lines {
		line := BlameLine{Line: bl.Line, Text: bl.Text}
		if res.Binary {
			line.Text = "" // the file as a whole: its bytes are for cat, not for JSON
		}
		if !bl.ID.IsZero() {
			line.Checkpoint = bl.ID.String()
		}
		if c := bl.Commit; c != nil {
			line.Branch, line.Name, line.Message, line.Time = c.Branch, c.Name, c.Message, c.Time
			line.Agent, line.Session, line.ToolCall = c.Agent, c.Session, c.ToolCall
		}
		out.Lines = append(out.Lines, line)
	}
	return out, nil
}

func (c *Client) Blame(ctx context.Context, ref, p string) (BlameResult, error) {
	return do[BlameResult](ctx, c, "blame", Request{Ref: ref, Path: p})
}

// TagInfo is a tag and its checkpoint.
type TagInfo struct {
	Name       string         `json:"name"`
	Checkpoint CheckpointInfo `json:"checkpoint"`
}

func (l *Local) TagCreate(ctx context.Context, name, ref string) (TagInfo, error) {
	id, err := l.Engine.CreateTag(ctx, name, ref)
	if err != nil {
		return TagInfo{}, err
	}
	cp, err := l.checkpointInfo(ctx, id)
	return TagInfo{Name: name, Checkpoint: cp}, err
}

func (l *Local) Tags(ctx context.Context) ([]TagInfo, error) {
	tags, err := l.Engine.Tags()
	if err != nil {
		return nil, err
	}
	out := make([]TagInfo, 0, len(tags))
	for _, t := range tags {
		cp, err := l.checkpointInfo(ctx, t.Commit)
		if err != nil {
			cp = CheckpointInfo{ID: t.Commit.String(), Parents: []string{}}
		}
		out = append(out, TagInfo{Name: t.Name, Checkpoint: cp})
	}
	return out, nil
}

func (l *Local) TagDelete(ctx context.Context, name string) error { return l.Engine.DeleteTag(name) }

func (c *Client) TagCreate(ctx context.Context, name, ref string) (TagInfo, error) {
	return do[TagInfo](ctx, c, "tag.create", Request{Name: name, Ref: ref})
}

func (c *Client) Tags(ctx context.Context) ([]TagInfo, error) {
	return do[[]TagInfo](ctx, c, "tags", Request{})
}

func (c *Client) TagDelete(ctx context.Context, name string) error {
	_, err := do[struct{}](ctx, c, "tag.delete", Request{Name: name})
	return err
}

// PendingMerge is a merge waiting for its conflicts to be settled.
type PendingMerge struct {
	Branch       string            `json:"branch"`
	Source       string            `json:"source"`
	SourceCommit string            `json:"source_checkpoint"`
	Head         string            `json:"head"` // the checkpoint --abort restores
	Conflicts    []branch.Conflict `json:"conflicts"`
	Unresolved   []string          `json:"unresolved"`       // conflicting files that still hold markers
	Copies       []string          `json:"copies,omitempty"` // PATH~SOURCE files with the source's version
}

// ContinueResult is the checkpoint that completed a merge.
type ContinueResult struct {
	Checkpoint string   `json:"checkpoint"`
	Removed    []string `json:"removed,omitempty"` // PATH~SOURCE copies removed
}

func (l *Local) MergeStatus(ctx context.Context, br string) (*PendingMerge, error) {
	p, err := l.Engine.MergeStatus(ctx, br)
	if err != nil || p == nil {
		return nil, err
	}
	out := &PendingMerge{Branch: p.Branch, Source: p.Source, SourceCommit: p.SourceCommit.String(), Head: p.Head.String(),
		Conflicts: p.Conflicts, Unresolved: p.Open, Copies: p.Copies}
	if out.Unresolved == nil {
		out.Unresolved = []string{}
	}
	return out, nil
}

func (l *Local) MergeContinue(ctx context.Context, br string) (ContinueResult, error) {
	res, err := l.Engine.MergeContinue(ctx, br)
	if err != nil {
		return ContinueResult{}, err
	}
	return ContinueResult{Checkpoint: res.Commit.String(), Removed: res.Removed}, nil
}

func (l *Local) MergeAbort(ctx context.Context, br string) error { return l.Engine.MergeAbort(ctx, br) }

func (c *Client) MergeStatus(ctx context.Context, br string) (*PendingMerge, error) {
	return do[*PendingMerge](ctx, c, "merge.status", Request{Branch: br})
}

func (c *Client) MergeContinue(ctx context.Context, br string) (ContinueResult, error) {
	return do[ContinueResult](ctx, c, "merge.continue", Request{Branch: br})
}

func (c *Client) MergeAbort(ctx context.Context, br string) error {
	_, err := do[struct{}](ctx, c, "merge.abort", Request{Branch: br})
	return err
}

// RevertRequest asks to undo what Checkpoint changed, on top of branch On.
type RevertRequest struct {
	Checkpoint string `json:"checkpoint"`
	On         string `json:"on"`
	Message    string `json:"message,omitempty"`
	DryRun     bool   `json:"dry_run,omitempty"`
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

// Revert reports conflicts as Merge does: the result lists them and the error matches
// branch.ErrConflict.
func (l *Local) Revert(ctx context.Context, r RevertRequest) (MergeResult, error) {
	res, err := l.Engine.Revert(ctx, r.Checkpoint, r.On, branch.RevertOptions{Message: r.Message, DryRun: r.DryRun})
	return mergeResult(res), err
}

func (l *Local) Resolve(ctx context.Context, ref string) (CheckpointInfo, error) {
	r, err := l.Engine.Resolve(ctx, ref)
	if err != nil {
		return CheckpointInfo{}, err
	}
	return l.checkpointInfo(ctx, r.Commit)
}

func (c *Client) Resolve(ctx context.Context, ref string) (CheckpointInfo, error) {
	return do[CheckpointInfo](ctx, c, "resolve", Request{Ref: ref})
}

func (c *Client) Revert(ctx context.Context, r RevertRequest) (MergeResult, error) {
	return doConflict(ctx, c, "revert", Request{Review: &ReviewRequest{Revert: &r}})
}

// doConflict calls a merge-like call whose conflicts come back with the result.
func doConflict(ctx context.Context, c *Client, call string, r Request) (MergeResult, error) {
	res, err := do[mergeReply](ctx, c, call, r)
	if err != nil {
		return MergeResult{}, err
	}
	if res.Error != "" {
		return res.Result, &remoteError{errorBody{Error: res.Error, Code: "conflict"}}
	}
	return res.Result, nil
}

// conflictReply wraps a merge-like result so that a conflict travels with it.
func conflictReply(res MergeResult, err error) (any, error) {
	if err != nil && isConflict(err) {
		return mergeReply{Result: res, Error: err.Error()}, nil
	}
	return mergeReply{Result: res}, err
}

// mergeResult converts the engine's result (nil when nothing was computed).
func mergeResult(res *branch.MergeResult) MergeResult {
	if res == nil {
		return MergeResult{}
	}
	out := MergeResult{UpToDate: res.UpToDate, Conflicts: res.Conflicts, Changes: res.Changes, Pending: res.Pending}
	if !res.SourceCheckpoint.IsZero() {
		out.SourceCheckpoint = res.SourceCheckpoint.String()
	}
	if out.Conflicts == nil {
		out.Conflicts = []branch.Conflict{}
	}
	if out.Changes == nil {
		out.Changes = []branch.Change{}
	}
	if !res.Commit.IsZero() {
		out.Checkpoint = res.Commit.String()
	}
	if !res.Base.IsZero() {
		out.Base = res.Base.String()
	}
	return out
}

// ReviewRequest carries the arguments of the review calls (one field per call).
type ReviewRequest struct {
	Diff   *DiffRequest   `json:"diff,omitempty"`
	Revert *RevertRequest `json:"revert,omitempty"`
	Log    *LogRequest    `json:"log,omitempty"`
}

func init() {
	calls["diff.files"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Review == nil || r.Review.Diff == nil {
			return nil, errMissing("diff.files")
		}
		return s.DiffFiles(ctx, *r.Review.Diff)
	}
	calls["merge.status"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.MergeStatus(ctx, r.Branch) }
	calls["merge.continue"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.MergeContinue(ctx, r.Branch) }
	calls["merge.abort"] = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.MergeAbort(ctx, r.Branch)
	}
	calls["tag.create"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.TagCreate(ctx, r.Name, r.Ref) }
	calls["tags"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.Tags(ctx) }
	calls["tag.delete"] = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.TagDelete(ctx, r.Name)
	}
	calls["blame"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.Blame(ctx, r.Ref, r.Path) }
	calls["history"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Review == nil || r.Review.Log == nil {
			return nil, errMissing("history")
		}
		return s.History(ctx, *r.Review.Log)
	}
	calls["resolve"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.Resolve(ctx, r.Ref) }
	calls["revert"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Review == nil || r.Review.Revert == nil {
			return nil, errMissing("revert")
		}
		return conflictReply(s.Revert(ctx, *r.Review.Revert))
	}
}
