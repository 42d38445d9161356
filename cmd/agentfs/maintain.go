package main

import (
	"context"
	"log"
	"time"

	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/repo"
)

// maintenance is the daemon's background upkeep (issue 13): it refreshes the copies of the
// metadata every minute (what a damaged database may lose is bounded by that), collects
// garbage on a schedule, and sooner when a dry run finds more garbage than a threshold.
type maintenance struct {
	GCEvery     time.Duration // 0: no scheduled collection
	GCGarbage   int64         // bytes of garbage that start a collection; 0: never
	CheckEvery  time.Duration // how often the dry run looks
	CopiesEvery time.Duration
}

var defaultMaintenance = maintenance{GCEvery: 24 * time.Hour, GCGarbage: 1 << 30, CheckEvery: 10 * time.Minute, CopiesEvery: time.Minute}

// run works until ctx ends.
func (m maintenance) run(ctx context.Context, r *repo.Repo, logger *log.Logger) {
	copies := time.NewTicker(m.CopiesEvery)
	defer copies.Stop()
	check := time.NewTicker(m.CheckEvery)
	defer check.Stop()
	lastGC := time.Now()
	collect := func(why string) {
		st, err := gc.Run(ctx, r.Engine, gc.Options{})
		lastGC = time.Now()
		if err != nil {
			logger.Printf("maintenance: gc (%s): %v", why, err)
			return
		}
		logger.Printf("maintenance: gc (%s): deleted %d blocks, %d bytes; on disk %d -> %d bytes", why, st.Deleted, st.DeletedBytes, st.DiskBefore, st.DiskAfter)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-copies.C:
			if err := r.Store.SaveCopies(false); err != nil {
				logger.Printf("maintenance: metadata copy: %v", err)
			}
		case <-check.C:
			if m.GCEvery > 0 && time.Since(lastGC) >= m.GCEvery {
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
