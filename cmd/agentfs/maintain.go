package main

import (
	"context"
	"log"
	"sync"
	"time"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/repo"
)

// maintenance is the daemon's background upkeep (issue 13): it refreshes the copies of the
// metadata every minute (what a damaged database may lose is bounded by that) and evicts
// the workspaces of branches idle for EvictIdle (memory follows the branches in use), and on a
// schedule, or sooner when a dry run finds more garbage than a threshold, applies the
// checkpoint retention policies and collects garbage (api.RunMaintenance). The schedule
// counts from the last collection recorded in the repository (agentfs gc and agentfs
// maintenance --run count too), so a restart does not postpone it.
type maintenance struct {
	GCEvery     time.Duration // 0: no scheduled collection
	GCGarbage   int64         // bytes of garbage that start a collection; 0: never
	CheckEvery  time.Duration // how often the dry run looks
	CopiesEvery time.Duration // also how often idle workspaces are evicted
	EvictIdle   time.Duration // a workspace unused this long, and not mounted, leaves memory

	mu        sync.Mutex
	started   time.Time // counts as the last collection when none is recorded
	nextCheck time.Time
}

func defaultMaintenance() *maintenance {
	return &maintenance{GCEvery: 24 * time.Hour, GCGarbage: 1 << 30, CheckEvery: 10 * time.Minute, CopiesEvery: time.Minute, EvictIdle: 5 * time.Minute}
}

// lastGC is when the last collection ran (the daemon's start if none is recorded).
func (m *maintenance) lastGC(r *repo.Repo) time.Time {
	if rec, ok, err := r.Engine.LastGC(); err == nil && ok {
		return rec.Time
	}
	return m.started
}

// begin starts the clock; serve calls it before it answers calls.
func (m *maintenance) begin() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = time.Now()
	m.nextCheck = m.started.Add(m.CheckEvery)
}

// schedule says when maintenance runs next (agentfs status, agentfs maintenance).
func (m *maintenance) schedule(r *repo.Repo) api.Schedule {
	m.mu.Lock()
	next := m.nextCheck
	m.mu.Unlock()
	s := api.Schedule{GCEvery: m.GCEvery, GCGarbage: m.GCGarbage, CheckEvery: m.CheckEvery, NextCheck: next}
	if m.GCEvery > 0 {
		// A scheduled collection runs at the first check once GCEvery has passed.
		due := m.lastGC(r).Add(m.GCEvery)
		s.NextGC = next
		if due.After(next) {
			checks := (due.Sub(next) + m.CheckEvery - 1) / m.CheckEvery
			s.NextGC = next.Add(checks * m.CheckEvery)
		}
	}
	return s
}

// run works until ctx ends.
func (m *maintenance) run(ctx context.Context, r *repo.Repo, logger *log.Logger) {
	copies := time.NewTicker(m.CopiesEvery)
	defer copies.Stop()
	check := time.NewTicker(m.CheckEvery)
	defer check.Stop()
	collect := func(why string) {
		rec, err := api.RunMaintenance(ctx, r.Engine, why)
		if err != nil {
			logger.Printf("maintenance: retention and gc (%s): %v", why, err)
			return
		}
		logger.Printf("maintenance: retention and gc (%s): pruned %d checkpoints; deleted %d blocks, %d bytes; on disk %d -> %d bytes",
			why, rec.Pruned, rec.Deleted, rec.DeletedBytes, rec.DiskBefore, rec.DiskAfter)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-copies.C:
			if err := r.Store.SaveCopies(false); err != nil {
				logger.Printf("maintenance: metadata copy: %v", err)
			}
			r.Engine.EvictIdle(m.EvictIdle)
		case now := <-check.C:
			m.mu.Lock()
			m.nextCheck = now.Add(m.CheckEvery)
			m.mu.Unlock()
			if m.GCEvery > 0 && time.Since(m.lastGC(r)) >= m.GCEvery {
				collect("scheduled")
				continue
			}
			if m.GCGarbage <= 0 {
				continue
			}
			st, err := gc.Run(ctx, r.Engine, gc.Options{DryRun: true})
			if err != nil {
				logger.Printf("maintenance: gc dry run: %v", err)
				continue
			}
			if st.GarbageBytes >= m.GCGarbage {
				collect("garbage over the threshold")
			}
		}
	}
}
