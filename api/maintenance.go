package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
)

// Maintainer is the part of Service that keeps a repository tidy over months: checkpoint
// retention policies and garbage collection, run by the daemon on a schedule or now.
type Maintainer interface {
	// Maintenance describes the policies, the last collection and the daemon's schedule;
	// with run it first applies the retention policies and collects garbage.
	Maintenance(ctx context.Context, run bool) (MaintenanceInfo, error)
	// SetRetention sets branch's policy ("" the repository's) and returns all policies.
	SetRetention(ctx context.Context, branch string, r RetentionRequest) ([]RetentionInfo, error)
}

// RetentionRequest sets a policy: keep the KeepLast newest unnamed checkpoints and those
// within KeepWithin ("30d", "12h"), or KeepAll; Clear removes the policy.
type RetentionRequest struct {
	KeepLast   int    `json:"keep_last,omitempty"`
	KeepWithin string `json:"keep_within,omitempty"`
	KeepAll    bool   `json:"keep_all,omitempty"`
	Clear      bool   `json:"clear,omitempty"`
}

// RetentionInfo is one stored policy.
type RetentionInfo struct {
	Branch     string `json:"branch"` // "" for the repository's, which applies to branches without their own
	KeepLast   int    `json:"keep_last,omitempty"`
	KeepWithin string `json:"keep_within,omitempty"`
	KeepAll    bool   `json:"keep_all,omitempty"`
	Policy     string `json:"policy"` // in words
}

// Schedule is when the daemon's maintenance runs.
type Schedule struct {
	GCEvery    time.Duration `json:"gc_every_ns"`      // 0: no scheduled collection
	GCGarbage  int64         `json:"gc_garbage_bytes"` // a check finding this much garbage collects at once; 0: never
	CheckEvery time.Duration `json:"check_every_ns"`
	NextGC     time.Time     `json:"next_gc,omitempty"` // the next scheduled collection (retention first)
	NextCheck  time.Time     `json:"next_check"`
}

// MaintenanceInfo is what agentfs maintenance and agentfs status show.
type MaintenanceInfo struct {
	Retention []RetentionInfo  `json:"retention"`
	LastGC    *branch.GCRecord `json:"last_gc,omitempty"`
	Schedule  *Schedule        `json:"schedule,omitempty"` // nil: no daemon runs maintenance
	Ran       *branch.GCRecord `json:"ran,omitempty"`      // what run did
}

// RunMaintenance applies the retention policies, then collects garbage, and records the
// collection for agentfs status. The daemon's schedule and agentfs maintenance --run call it.
func RunMaintenance(ctx context.Context, e *branch.Engine, why string) (branch.GCRecord, error) {
	rec := branch.GCRecord{Why: why}
	res, err := e.ApplyRetention(ctx)
	if err != nil {
		return rec, err
	}
	rec.Pruned = res.Count()
	st, err := gc.Run(ctx, e, gc.Options{})
	if err != nil {
		return rec, err
	}
	return recordGC(e, why, st, rec.Pruned)
}

func recordGC(e *branch.Engine, why string, st gc.Stats, pruned int) (branch.GCRecord, error) {
	rec := branch.GCRecord{Time: time.Now().UTC(), Why: why, DeletedBytes: st.DeletedBytes, Deleted: st.Deleted, Pruned: pruned,
		DiskBefore: st.DiskBefore, DiskAfter: st.DiskAfter, Duration: st.Duration}
	return rec, e.SaveGCRecord(rec)
}

func (l *Local) Maintenance(ctx context.Context, run bool) (MaintenanceInfo, error) {
	var out MaintenanceInfo
	if run {
		rec, err := RunMaintenance(ctx, l.Engine, "agentfs maintenance")
		if err != nil {
			return out, err
		}
		out.Ran = &rec
	}
	var err error
	if out.Retention, err = l.retentions(); err != nil {
		return out, err
	}
	if rec, ok, err := l.Engine.LastGC(); err != nil {
		return out, err
	} else if ok {
		out.LastGC = &rec
	}
	if l.Schedule != nil {
		s := l.Schedule()
		out.Schedule = &s
	}
	return out, nil
}

func (l *Local) SetRetention(ctx context.Context, br string, r RetentionRequest) ([]RetentionInfo, error) {
	var p branch.Retention
	if !r.Clear {
		within, err := ParseAge(r.KeepWithin)
		if err != nil {
			return nil, invalidf("retention: keep-within: %v", err)
		}
		p = branch.Retention{KeepLast: r.KeepLast, KeepWithin: within, KeepAll: r.KeepAll}
		switch {
		case p.IsZero():
			return nil, invalidf("retention: give --keep-last, --keep-within or --keep-all (or --clear to remove the policy)")
		case p.KeepLast < 0:
			return nil, invalidf("retention: --keep-last %d: want a count", p.KeepLast)
		case p.KeepAll && (p.KeepLast > 0 || p.KeepWithin > 0):
			return nil, invalidf("retention: --keep-all keeps everything; give it alone")
		}
	}
	if err := l.Engine.SetRetention(br, p); err != nil {
		return nil, err
	}
	return l.retentions()
}

func (l *Local) retentions() ([]RetentionInfo, error) {
	stored, err := l.Engine.Retentions()
	if err != nil {
		return nil, err
	}
	out := []RetentionInfo{}
	for _, name := range branch.SortedRetentions(stored) {
		r := stored[name]
		info := RetentionInfo{Branch: name, KeepLast: r.KeepLast, KeepAll: r.KeepAll, Policy: r.String()}
		if r.KeepWithin > 0 {
			info.KeepWithin = branch.FormatAge(r.KeepWithin)
		}
		out = append(out, info)
	}
	return out, nil
}

// ParseAge reads a period: a Go duration ("36h", "90m") or whole days ("30d"); "" is 0.
func ParseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: write days as 30d, or a duration such as 36h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: write days as 30d, or a duration such as 36h", s)
	}
	return d, nil
}

func (c *Client) Maintenance(ctx context.Context, run bool) (MaintenanceInfo, error) {
	return do[MaintenanceInfo](ctx, c, "maintenance", Request{Run: run})
}

func (c *Client) SetRetention(ctx context.Context, br string, r RetentionRequest) ([]RetentionInfo, error) {
	return do[[]RetentionInfo](ctx, c, "retention.set", Request{Branch: br, Retention: &r})
}

func init() {
	calls["maintenance"] = func(ctx context.Context, s Service, r Request) (any, error) { return s.Maintenance(ctx, r.Run) }
	calls["retention.set"] = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Retention == nil {
			return nil, errMissing("retention.set")
		}
		return s.SetRetention(ctx, r.Branch, *r.Retention)
	}
}
