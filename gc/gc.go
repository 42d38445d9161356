// Package gc collects the garbage of a repository (blocks no live version references),
// checks its integrity (fsck) and accounts for the space each branch holds.
//
// A collection marks from a snapshot of the roots taken by branch.Engine.BeginGC, then
// deletes the unmarked blocks through the store's GC window, which spares every block
// written or retained while the collection runs (see branch/gc.go for why that is enough).
// Writes, forks and checkpoints go on meanwhile. Blocks are deleted in batches; then the
// keyspace is compacted and gc waits for Pebble to rewrite the blob files that held dead
// values, so that the repository shrinks on disk before gc returns.
package gc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// Phases reported through Options.Progress.
const (
	PhaseMark    = "mark"    // Done counts objects marked; Total is unknown (0)
	PhaseSweep   = "sweep"   // Done of Total unreachable blocks deleted
	PhaseCompact = "compact" // reclaiming disk space
	PhaseCheck   = "check"   // fsck: Done objects verified
)

// Progress is a progress report.
type Progress struct {
	Phase       string
	Done, Total int64
}

// Options configure Run.
type Options struct {
	DryRun    bool           // only count what would be reclaimed
	Progress  func(Progress) // called from the collecting goroutine; nil = no reports
	BatchSize int            // blocks deleted per batch; 0 = 4096
}

// Stats is what a collection found and did.
type Stats struct {
	Roots          int      `json:"roots"`
	Reachable      int64    `json:"reachable_blocks"`
	Blocks         int64    `json:"blocks"` // stored before the collection
	Bytes          int64    `json:"bytes"`  // their stored (compressed) bytes
	Garbage        int64    `json:"garbage_blocks"`
	GarbageBytes   int64    `json:"garbage_bytes"`
	Deleted        int64    `json:"deleted_blocks"` // 0 in a dry run
	DeletedBytes   int64    `json:"deleted_bytes"`
	Spared         int64    `json:"spared_blocks"` // unreachable, but written again during the run
	CommitsDropped int      `json:"commits_dropped"`
	Unreadable     []string `json:"unreadable,omitempty"` // objects the mark could not read (nothing deleted)
	DiskBefore     uint64   `json:"disk_before"`          // bytes of the database on disk as du counts them
	DiskAfter      uint64   `json:"disk_after"`
	DataBefore     uint64   `json:"data_before"` // live sstables and blob files (see DataOnDisk)
	DataAfter      uint64   `json:"data_after"`
	// Settled says Pebble finished rewriting blob files and removing obsolete files
	// before gc returned; false: some space comes back later, in the background.
	Settled  bool          `json:"settled"`
	DryRun   bool          `json:"dry_run"`
	Duration time.Duration `json:"duration_ns"`
}

// runMu serialises collections and checks in this process (a store allows one GC window).
var runMu sync.Mutex

const progressEvery = 4096

// Run collects the garbage of the repository behind e.
func Run(ctx context.Context, e *branch.Engine, o Options) (Stats, error) {
	runMu.Lock()
	defer runMu.Unlock()
	start := time.Now()
	if o.BatchSize <= 0 {
		o.BatchSize = 4096
	}
	report := func(p Progress) {
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	st := e.Store()
	if !o.DryRun {
		// Flush the memtable so that before and after measure the same thing.
		if err := st.DB().Flush(); err != nil {
			return Stats{}, fmt.Errorf("gc: flush: %w", err)
		}
	}
	stats := Stats{DryRun: o.DryRun, DiskBefore: DiskUsage(st), DataBefore: DataOnDisk(st)}
	w, snap, err := e.BeginGC()
	if err != nil {
		return stats, err
	}
	ended := false
	end := func() {
		if !ended {
			ended = true
			snap.Close()
			e.EndGC(w)
		}
	}
	defer end()

	// Mark everything reachable from the snapshot's roots.
	roots, err := e.Roots(snap)
	if err != nil {
		return stats, store.Describe(err, "")
	}
	stats.Roots = len(roots)
	marked := map[store.ID]struct{}{}
	walker := e.NewWalker(snap, nil)
	walker.Enter = func(ob *branch.Object) bool {
		if _, ok := marked[ob.ID]; ok {
			return false
		}
		marked[ob.ID] = struct{}{}
		if len(marked)%progressEvery == 0 {
			report(Progress{Phase: PhaseMark, Done: int64(len(marked))})
		}
		return true
	}
	// An unreadable object stops the collection (what it references is unknown), but the
	// walk goes on so that every broken object is reported, not just the first.
	var broken []string
	walker.Broken = func(ob *branch.Object, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := firstLine(store.Describe(err, "").Error())
		if de := store.AsDamage(err, ""); de != nil {
			why = "damaged " + de.Kind + " " + de.Path
		}
		broken = append(broken, fmt.Sprintf("%s %s of %s (%s)", ob.Kind, ob.ID, ob.Root, why))
		return nil
	}
	for _, r := range roots {
		if err := walker.Walk(ctx, r); err != nil {
			return stats, err
		}
	}
	if len(broken) > 0 {
		stats.Unreadable = broken
		return stats, fmt.Errorf("gc: %d objects are unreadable, nothing was deleted: %s; run agentfs fsck", len(broken), strings.Join(broken, "; "))
	}
	stats.Reachable = int64(len(marked))
	report(Progress{Phase: PhaseMark, Done: stats.Reachable})

	// Everything stored and not marked is garbage (blocks written after the snapshot are
	// in the window, which Delete spares).
	var garbage []store.ID
	if err := st.Blocks(ctx, func(id store.ID, size int64) error {
		stats.Blocks++
		stats.Bytes += size
		if _, ok := marked[id]; !ok {
			garbage = append(garbage, id)
			stats.Garbage++
			stats.GarbageBytes += size
		}
		return nil
	}); err != nil {
		return stats, err
	}
	marked = nil
	if o.DryRun {
		stats.DiskAfter, stats.DataAfter = stats.DiskBefore, stats.DataBefore
		stats.Duration = time.Since(start)
		return stats, nil
	}

	// Sweep in batches.
	for i := 0; i < len(garbage); i += o.BatchSize {
		batch := garbage[i:min(i+o.BatchSize, len(garbage))]
		n, b, err := w.Delete(ctx, batch)
		stats.Deleted += int64(n)
		stats.DeletedBytes += b
		if err != nil {
			return stats, fmt.Errorf("gc: delete: %w", err)
		}
		report(Progress{Phase: PhaseSweep, Done: int64(i + len(batch)), Total: int64(len(garbage))})
	}
	stats.Spared = stats.Garbage - stats.Deleted
	// Drop the index entries of commits that are gone (also ones a crash left behind).
	commits, err := e.CommitIndex(snap)
	if err != nil {
		return stats, err
	}
	if stats.CommitsDropped, err = e.ForgetCommits(ctx, commits); err != nil {
		return stats, err
	}
	if err := st.Sync(); err != nil {
		return stats, err
	}
	// The snapshot would keep the deleted values alive through compaction: end first.
	end()
	// Reclaim the space: compact the keyspace so that the deleted blocks and overlays leave
	// the sstables, then wait for Pebble to rewrite the blob files that held dead values and
	// to remove the obsolete files, so that the figures below are what du sees.
	report(Progress{Phase: PhaseCompact})
	if err := st.CompactAll(ctx); err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	stats.Settled = st.WaitReclaimed(ctx, reclaimWait)
	// Refresh the copies of the metadata (they would otherwise keep obsolete files).
	if err := st.SaveCopies(true); err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	stats.DiskAfter, stats.DataAfter = DiskUsage(st), DataOnDisk(st)
	stats.Duration = time.Since(start)
	return stats, nil
}

// reclaimWait bounds how long a collection waits for Pebble's background blob rewrites.
const reclaimWait = 2 * time.Minute

// DiskUsage returns the bytes the repository's database takes on disk, counted as du counts
// them (allocated blocks of every file: WAL, sstables, blob files, manifest).
func DiskUsage(st *store.Store) uint64 {
	if st.Dir() == "" {
		return st.DiskUsage()
	}
	return store.DirUsage(st.Dir())
}

// DataOnDisk returns the bytes of the live sstables and blob files: the repository's data
// at rest once Pebble has removed obsolete files (it does so in the background after a
// compaction). It leaves out the WAL, which Pebble keeps (and recycles) in proportion to
// the memtable size (64 MiB), not to the data.
func DataOnDisk(st *store.Store) uint64 {
	m := st.DB().Metrics()
	return m.Table.Local.LiveSize + m.BlobFiles.LiveSize
}
