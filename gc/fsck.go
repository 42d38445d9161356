package gc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// Problem is one missing or corrupt object, with the version and the path it breaks.
type Problem struct {
	Ref    string `json:"ref"`    // e.g. "branch main", "checkpoint main@v1"
	Path   string `json:"path"`   // the file (or tree region) it affects
	Object string `json:"object"` // checkpoint, tree node, data block
	ID     string `json:"id"`
	Error  string `json:"error"` // "missing" or "corrupt: ..."
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s %s %s", p.Ref, p.Path, p.Object, p.ID, p.Error)
}

// Report is the result of Check.
type Report struct {
	Roots    int           `json:"roots"`
	Objects  int64         `json:"objects"` // distinct objects verified
	Problems []Problem     `json:"problems"`
	Duration time.Duration `json:"duration_ns"`
}

// CheckOptions configure Check.
type CheckOptions struct {
	Progress func(Progress)
}

// Check verifies that every object reachable from every root is present and matches its
// hash. Each object is read once, from disk (not from caches), and a broken one is
// reported against the first root that reaches it. Check runs alongside writes; it is
// serialised with Run in this process.
func Check(ctx context.Context, e *branch.Engine, o CheckOptions) (*Report, error) {
	runMu.Lock()
	defer runMu.Unlock()
	start := time.Now()
	snap := e.Store().DB().NewSnapshot()
	defer snap.Close()
	roots, err := e.Roots(snap)
	if err != nil {
		return nil, err
	}
	rep := &Report{Roots: len(roots), Problems: []Problem{}}
	seen := map[store.ID]struct{}{}
	// A fresh Tree, so that nodes are read from the store (and verified), not from a cache.
	w := e.NewWalker(snap, tree.New(e.Store(), 1024))
	w.Verify = true
	w.Enter = func(ob *branch.Object) bool {
		if _, ok := seen[ob.ID]; ok {
			return false
		}
		seen[ob.ID] = struct{}{}
		if o.Progress != nil && len(seen)%progressEvery == 0 {
			o.Progress(Progress{Phase: PhaseCheck, Done: int64(len(seen))})
		}
		return true
	}
	w.Broken = func(ob *branch.Object, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := "unreadable: " + err.Error()
		switch {
		case errors.Is(err, store.ErrNotFound):
			why = "missing"
		case errors.Is(err, store.ErrCorrupt):
			why = "corrupt (content does not match its hash)"
		case errors.Is(err, tree.ErrCorruptNode):
			why = "malformed: " + err.Error()
		}
		rep.Problems = append(rep.Problems, Problem{
			Ref: ob.Root.String(), Path: e.Where(ctx, ob), Object: string(ob.Kind), ID: ob.ID.String(), Error: why,
		})
		return nil
	}
	for _, r := range roots {
		if err := w.Walk(ctx, r); err != nil {
			return nil, err
		}
	}
	rep.Objects = int64(len(seen))
	rep.Duration = time.Since(start)
	return rep, nil
}
