package gc

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Repaired says a good copy from a remote replaced the broken local one (fsck --repair).
	Repaired bool `json:"repaired,omitempty"`
	// Damage names the damaged database file the object could not be read from, if any:
	// fsck --repair then rebuilds the database (repo.Repair) before fetching from remotes.
	Damage string `json:"damage,omitempty"`
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
	// Remote, when set, knows which blocks a remote holds. A block missing locally that a
	// remote holds is not a problem (a lazy clone fetches it on first read).
	Remote Remote
	// VerifyRemote also downloads and verifies the remote's copy of every block it holds.
	VerifyRemote bool
	// Repair replaces a missing or corrupt local block with the remote's verified copy.
	Repair bool
}

// Remote is what Check needs of the remotes (remote.Manager).
type Remote interface {
	Holds(id store.ID) (bool, error)
	FetchVerified(ctx context.Context, id store.ID) ([]byte, error)
}

// Damaged reports whether some problem comes from a damaged database file.
func (r *Report) Damaged() bool {
	for _, p := range r.Problems {
		if p.Damage != "" && !p.Repaired {
			return true
		}
	}
	return false
}

// Unrepaired counts the problems a repair did not fix.
func (r *Report) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
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
		return nil, store.Describe(err, "")
	}
	rep := &Report{Roots: len(roots), Problems: []Problem{}}
	seen := map[store.ID]struct{}{}
	// A fresh Tree, so that nodes are read from the store (and verified), not from a cache.
	w := e.NewWalker(snap, tree.New(e.Store(), 1024))
	w.Verify = true
	fetchCtx := ctx
	ctx = store.LocalOnly(ctx) // check what this repository holds; the remote separately
	w.Enter = func(ob *branch.Object) bool {
		if _, ok := seen[ob.ID]; ok {
			return false
		}
		seen[ob.ID] = struct{}{}
		if o.VerifyRemote && o.Remote != nil {
			if p, bad := checkRemoteCopy(fetchCtx, e, o.Remote, ob); bad {
				rep.Problems = append(rep.Problems, p)
			}
		}
		if o.Progress != nil && len(seen)%progressEvery == 1 { // from the first object on
			o.Progress(Progress{Phase: PhaseCheck, Done: int64(len(seen))})
		}
		return true
	}
	w.Broken = func(ob *branch.Object, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, store.ErrNotFound) && o.Remote != nil && !o.Repair {
			if ok, herr := o.Remote.Holds(ob.ID); herr == nil && ok {
				return nil // not fetched yet: the remote holds it
			}
		}
		why := "unreadable: " + firstLine(err.Error())
		de := store.AsDamage(err, "")
		if de != nil {
			why = fmt.Sprintf("unreadable (damaged %s %s)", de.Kind, de.Path)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			why = "missing"
		case errors.Is(err, store.ErrCorrupt):
			why = "corrupt (content does not match its hash)"
		case errors.Is(err, tree.ErrCorruptNode):
			why = "malformed: " + err.Error()
		}
		p := Problem{Ref: ob.Root.String(), Path: e.Where(ctx, ob), Object: string(ob.Kind), ID: ob.ID.String(), Error: why}
		if de != nil {
			p.Damage = de.Kind + " " + de.Path
		}
		if o.Repair && o.Remote != nil {
			p.Repaired = repair(fetchCtx, e, o.Remote, ob.ID)
		}
		rep.Problems = append(rep.Problems, p)
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

// repair replaces a broken local block with the remote's verified copy.
func repair(ctx context.Context, e *branch.Engine, r Remote, id store.ID) bool {
	if ok, err := r.Holds(id); err != nil || !ok {
		return false
	}
	data, err := r.FetchVerified(ctx, id)
	if err != nil {
		return false
	}
	if err := e.Store().Discard(id); err != nil {
		return false
	}
	got, err := e.Store().Put(ctx, data)
	return err == nil && got == id
}

// checkRemoteCopy downloads and verifies the remote's copy of an object it holds.
func checkRemoteCopy(ctx context.Context, e *branch.Engine, r Remote, ob *branch.Object) (Problem, bool) {
	if ok, err := r.Holds(ob.ID); err != nil || !ok {
		return Problem{}, false
	}
	if _, err := r.FetchVerified(ctx, ob.ID); err != nil {
		return Problem{Ref: ob.Root.String(), Path: e.Where(store.LocalOnly(ctx), ob), Object: string(ob.Kind),
			ID: ob.ID.String(), Error: "the remote's copy is broken: " + err.Error()}, true
	}
	return Problem{}, false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
