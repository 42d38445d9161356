package branch

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/store"
)

// Checkpoint retention: a stored policy, per branch or for the whole repository, that the
// daemon's maintenance applies (PruneCheckpoints) before it collects garbage.
//
//	'M' "retention/" branch -> JSON Retention ("" branch: the repository's default)
//	'M' "lastgc"             -> JSON GCRecord
//
// A branch's own policy replaces the repository's. Named checkpoints, tagged ones, bases of
// branches and everything PruneCheckpoints spares are always kept.

// Retention says which unnamed checkpoints of a branch to keep: the KeepLast newest and those
// younger than KeepWithin (both, when both are set). KeepAll keeps everything (a branch
// exempt from the repository's policy).
type Retention struct {
	KeepLast   int           `json:"keep_last,omitempty"`
	KeepWithin time.Duration `json:"keep_within,omitempty"`
	KeepAll    bool          `json:"keep_all,omitempty"`
}

// IsZero reports whether r is no policy at all.
func (r Retention) IsZero() bool { return r == Retention{} }

// Prunes reports whether the policy ever prunes anything.
func (r Retention) Prunes() bool { return !r.KeepAll && (r.KeepLast > 0 || r.KeepWithin > 0) }

// Validate refuses policies that make no sense.
func (r Retention) Validate() error {
	switch {
	case r.KeepLast < 0 || r.KeepWithin < 0:
		return fmt.Errorf("%w: retention: keep-last and keep-within must not be negative", ErrInvalidName)
	case r.KeepAll && (r.KeepLast > 0 || r.KeepWithin > 0):
		return fmt.Errorf("%w: retention: keep-all keeps everything; give it alone", ErrInvalidName)
	}
	return nil
}

func (r Retention) String() string {
	switch {
	case r.KeepAll:
		return "keep all"
	case r.IsZero():
		return "none (keep all)"
	}
	var s string
	if r.KeepLast > 0 {
		s = fmt.Sprintf("keep the last %d", r.KeepLast)
	}
	if r.KeepWithin > 0 {
		if s != "" {
			s += " and "
		}
		s += "keep those within " + FormatAge(r.KeepWithin)
	}
	return s + ", and named ones"
}

// FormatAge writes a period as agentfs retention reads it: whole days as "30d".
func FormatAge(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func retentionKey(branch string) []byte { return append([]byte("Mretention/"), branch...) }

// SetRetention stores the policy of branch ("" for the repository); a zero policy removes it.
func (e *Engine) SetRetention(branch string, r Retention) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if branch != "" {
		defer e.lockBranch(branch)() // not while the branch is deleted
		if _, err := e.GetBranch(branch); err != nil {
			return err
		}
	}
	b := e.db.NewBatch()
	defer b.Close()
	if r.IsZero() {
		if err := b.Delete(retentionKey(branch), nil); err != nil {
			return err
		}
	} else {
		v, _ := json.Marshal(r)
		if err := b.Set(retentionKey(branch), v, nil); err != nil {
			return err
		}
	}
	return e.st.CommitDurable(b)
}

// Retentions returns the stored policies by branch ("" is the repository's).
func (e *Engine) Retentions() (map[string]Retention, error) {
	out := map[string]Retention{}
	p := retentionKey("")
	err := scanPrefix(e.db, p, func(k, v []byte) error {
		var r Retention
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("retention of %q: malformed record", k[len(p):])
		}
		out[string(k[len(p):])] = r
		return nil
	})
	return out, err
}

// EffectiveRetention is the policy that applies to branch, given the stored ones.
func EffectiveRetention(stored map[string]Retention, branch string) Retention {
	if r, ok := stored[branch]; ok {
		return r
	}
	return stored[""]
}

// RetentionResult is what applying the policies pruned, by branch.
type RetentionResult struct {
	Pruned map[string][]store.ID
}

// Count returns how many checkpoints were pruned.
func (r RetentionResult) Count() int {
	n := 0
	for _, ids := range r.Pruned {
		n += len(ids)
	}
	return n
}

// ApplyRetention prunes every branch's checkpoints by its effective policy. gc then frees
// what the pruned checkpoints alone held.
func (e *Engine) ApplyRetention(ctx context.Context) (RetentionResult, error) {
	res := RetentionResult{Pruned: map[string][]store.ID{}}
	stored, err := e.Retentions()
	if err != nil || len(stored) == 0 {
		return res, err
	}
	bs, err := e.Branches()
	if err != nil {
		return res, err
	}
	defer e.op()()
	keep, err := e.rootCommits() // once: a fleet of branches is not scanned once per branch
	if err != nil {
		return res, err
	}
	for _, b := range bs {
		r := EffectiveRetention(stored, b.Name)
		if !r.Prunes() {
			continue
		}
		ids, err := e.prune(ctx, b.Name, r.KeepLast, r.KeepWithin, keep)
		if err != nil {
			return res, fmt.Errorf("retention of branch %s: %w", b.Name, err)
		}
		if len(ids) > 0 {
			res.Pruned[b.Name] = ids
		}
	}
	return res, nil
}

// toPrune picks, from a branch's history (newest first), the checkpoints a policy of
// keepLast and keepWithin lets go: the branch's own unnamed checkpoints beyond the keepLast
// newest and older than keepWithin, none of those in keep (roots: bases, tags, names).
func toPrune(log []LogEntry, branch string, keepLast int, keepWithin time.Duration, now time.Time, keep map[store.ID]bool) []store.ID {
	var out []store.ID
	own := 0
	for _, le := range log {
		if le.Commit.Branch != branch {
			continue // history shared with the branch it was forked from
		}
		own++
		if own <= keepLast || now.Sub(le.Commit.Time) < keepWithin || le.Commit.Name != "" || keep[le.ID] {
			continue
		}
		out = append(out, le.ID)
	}
	return out
}

// GCRecord describes the last garbage collection, for agentfs status.
type GCRecord struct {
	Time         time.Time     `json:"time"`
	Why          string        `json:"why"` // "agentfs gc", "scheduled", "garbage over the threshold", "agentfs maintenance"
	DeletedBytes int64         `json:"deleted_bytes"`
	Deleted      int64         `json:"deleted_blocks"`
	Pruned       int           `json:"pruned_checkpoints"` // by the retention policies just before
	DiskBefore   uint64        `json:"disk_before"`
	DiskAfter    uint64        `json:"disk_after"`
	Duration     time.Duration `json:"duration_ns"`
}

var keyLastGC = []byte("Mlastgc")

// SaveGCRecord stores r as the last collection (unsynced: losing it to a power cut only
// loses a line of agentfs status).
func (e *Engine) SaveGCRecord(r GCRecord) error {
	v, _ := json.Marshal(r)
	return e.db.Set(keyLastGC, v, pebble.NoSync)
}

// LastGC returns the last collection's record (ok false: none yet).
func (e *Engine) LastGC() (GCRecord, bool, error) {
	var r GCRecord
	v, ok, err := e.getKey(keyLastGC)
	if err != nil || !ok {
		return r, false, err
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("last gc record: %w", err)
	}
	return r, true, nil
}

// SortedRetentions lists stored policies: the repository's first, then by branch.
func SortedRetentions(stored map[string]Retention) []string {
	names := make([]string, 0, len(stored))
	for n := range stored {
		names = append(names, n)
	}
	sort.Strings(names) // "" sorts first
	return names
}
