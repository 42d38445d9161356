package branch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentfs/agentfs/work"
)

// Merge and revert fold the target branch outside its lock, like a checkpoint: a write on
// the branch completes while the fold is paused, is not in the result, and is not lost.
// The tests pause the fold itself (work.SetFoldHook), so an operation that folded holding
// the lock would hold the write up: they detect that with a generous timeout, not a timing
// threshold.

// whileFolding runs op (which folds branch) in the background. When its first fold of
// branch starts, it runs write, which must complete while that fold waits; then it lets op
// finish and returns op's error.
func whileFolding(t *testing.T, branch string, op func() error, write func() error) error {
	t.Helper()
	paused, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	work.SetFoldHook(func(b string) {
		if b == branch && first.CompareAndSwap(false, true) {
			close(paused)
			<-release
		}
	})
	opDone := make(chan error, 1)
	go func() { opDone <- op() }()
	t.Cleanup(func() { work.SetFoldHook(nil) })
	select {
	case <-paused:
	case err := <-opDone:
		t.Fatalf("the operation ended without folding %s (error: %v)", branch, err)
	case <-time.After(2 * time.Minute):
		free()
		<-opDone
		t.Fatalf("the operation did not fold %s within 2 minutes", branch)
	}
	wDone := make(chan error, 1)
	go func() { wDone <- write() }()
	select {
	case err := <-wDone:
		if err != nil {
			free()
			<-opDone
			t.Fatalf("write during the fold: %v", err)
		}
	case <-time.After(30 * time.Second):
		free()
		<-wDone
		<-opDone
		t.Fatalf("a write on %s did not complete in 30 s while the operation's fold was paused: the fold holds the branch's lock", branch)
	}
	free()
	err := <-opDone
	work.SetFoldHook(nil)
	return err
}

// overwrite writes data at off in file p of ws (no test helpers: it runs off the test's
// goroutine).
func overwrite(ws *Workspace, p string, off int64, data string) error {
	ctx := context.Background()
	_, _, ino, err := resolve(ctx, ws, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	_, err = ws.Write(ctx, ino, off, []byte(data))
	return err
}

// writeDuring is the write made while a fold waits: "w" overwritten, "during.txt" created.
func writeDuring(ws *Workspace) func() error {
	return func() error {
		if err := overwrite(ws, "w", 0, "during"); err != nil {
			return err
		}
		f, err := ws.Create(context.Background(), RootIno, "during.txt", Attr{Mode: 0o644})
		if err != nil {
			return err
		}
		if _, err = ws.Write(context.Background(), f.Ino, 0, []byte("made during the fold")); err != nil {
			return err
		}
		_, err = ws.Mkdir(context.Background(), RootIno, "ddir", Attr{Mode: 0o755})
		return err
	}
}

// wantLinks checks the root directory's link count: 2 plus a link per subdirectory.
func wantLinks(t *testing.T, ws *Workspace, what string) {
	t.Helper()
	ctx := context.Background()
	want := uint32(2)
	if err := ws.ReadDir(ctx, RootIno, "", func(d DirEntry) error {
		if d.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			want++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n, err := ws.GetAttr(ctx, RootIno)
	if err != nil {
		t.Fatal(err)
	}
	if n.Nlink != want {
		t.Fatalf("%s: the root directory has %d links, want %d", what, n.Nlink, want)
	}
}

func wantFile(t *testing.T, ws *Workspace, what, p, want string) {
	t.Helper()
	got, ok := fileAt(t, ws, p)
	switch {
	case want == "" && ok:
		t.Fatalf("%s: %s exists (%q), want it absent", what, p, got)
	case want != "" && !ok:
		t.Fatalf("%s: %s is missing, want %q", what, p, want)
	case got != want:
		t.Fatalf("%s: %s holds %q, want %q", what, p, got, want)
	}
}

// checkCarried checks that the write made during the fold is in the branch's working state,
// after a restart too, and in its next checkpoint.
func checkCarried(t *testing.T, e *Engine, branch string) *Engine {
	t.Helper()
	ctx := context.Background()
	for _, when := range []string{"after the operation", "after a restart"} {
		ws, _ := e.Workspace(ctx, branch)
		wantFile(t, ws, when, "w", "during")
		wantFile(t, ws, when, "during.txt", "made during the fold")
		if _, err := ws.Lookup(ctx, RootIno, "ddir"); err != nil {
			t.Fatalf("%s: ddir, made during the fold: %v", when, err)
		}
		wantLinks(t, ws, when)
		if when == "after the operation" {
			e = reopenEngine(t, e)
		}
	}
	id, err := e.Checkpoint(ctx, branch, "", "after")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.View(ctx, id)
	wantFile(t, v, "the next checkpoint", "w", "during")
	wantFile(t, v, "the next checkpoint", "during.txt", "made during the fold")
	verifyRepository(t, e)
	return e
}

func editLine(text string, line int, tag string) string {
	return strings.Replace(text, fmt.Sprintf("line %d base", line), fmt.Sprintf("line %d %s", line, tag), 1)
}

// mergeSetup: main and feature share shared.txt; feature edits its line 1 and adds new.txt
// (checkpointed); main has uncommitted files, some of several pages.
func mergeSetup(t *testing.T) (*Engine, map[string]*Workspace, string) {
	ctx := context.Background()
	text := lines(10, "base")
	e, ws := setup(t, map[string]string{"shared.txt": text, "w": "before"}, "feature")
	changedFiles(t, ws["main"], 40, "main")
	// Feature's changes come after main's, so that the merge changes the root directory's
	// inode (its mtime, and its link count with feature's new directory): the write during
	// the fold changes it too, and is carried onto it (rebaseDir).
	put(t, ws["feature"], "shared.txt", editLine(text, 1, "feature"))
	put(t, ws["feature"], "fdir/new.txt", "from feature")
	put(t, ws["feature"], "new.txt", "from feature")
	if _, err := e.Checkpoint(ctx, "feature", "", "feature work"); err != nil {
		t.Fatal(err)
	}
	return e, ws, text
}

func TestMergeFoldsOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	e, ws, text := mergeSetup(t)
	var res *MergeResult
	folds := ws["main"].FoldCount()
	err := whileFolding(t, "main", func() (err error) {
		res, err = e.Merge(ctx, "feature", "main", MergeOptions{})
		return err
	}, writeDuring(ws["main"]))
	if err != nil {
		t.Fatal(err)
	}
	if n := ws["main"].FoldCount() - folds; n != 1 {
		t.Fatalf("the merge folded main %d times, want once", n)
	}
	v, err := e.View(ctx, res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	// The merge holds main's work from before the fold and feature's, not the write made
	// during the fold.
	wantFile(t, v, "the merge", "shared.txt", editLine(text, 1, "feature"))
	wantFile(t, v, "the merge", "new.txt", "from feature")
	wantFile(t, v, "the merge", "f00010", readAll(t, ws["main"], "f00010"))
	wantFile(t, v, "the merge", "w", "before")
	wantFile(t, v, "the merge", "during.txt", "")
	c, err := e.ReadCommit(ctx, res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Parents) != 2 {
		t.Fatalf("the merge has parents %v, want main's changes before it and feature", c.Parents)
	}
	// The branch shows the merge and the write on top.
	wantFile(t, ws["main"], "main", "shared.txt", editLine(text, 1, "feature"))
	wantFile(t, ws["main"], "main", "new.txt", "from feature")
	wantFile(t, ws["main"], "main", "fdir/new.txt", "from feature")
	wantLinks(t, v, "the merge")
	checkCarried(t, e, "main")
}

// A write during the fold that touches what the merge changes cannot be carried over the
// merge's result (it would undo feature's edit of the file): the merge folds again under the
// lock, and the write is merged like any change of main's.
func TestMergeClashFoldsAgainUnderTheLock(t *testing.T) {
	ctx := context.Background()
	e, ws, text := mergeSetup(t)
	off := int64(strings.Index(text, "line 8 base"))
	var res *MergeResult
	folds := ws["main"].FoldCount()
	err := whileFolding(t, "main", func() (err error) {
		res, err = e.Merge(ctx, "feature", "main", MergeOptions{})
		return err
	}, func() error { return overwrite(ws["main"], "shared.txt", off, "line 8 main") })
	if err != nil {
		t.Fatal(err)
	}
	if n := ws["main"].FoldCount() - folds; n != 2 {
		t.Fatalf("the merge folded main %d times, want 2 (outside the lock, then again under it)", n)
	}
	want := strings.Replace(editLine(text, 1, "feature"), "line 8 base", "line 8 main", 1)
	v, _ := e.View(ctx, res.Commit)
	wantFile(t, v, "the merge", "shared.txt", want)
	wantFile(t, ws["main"], "main", "shared.txt", want)
	verifyRepository(t, e)
}

// A merge that stops on conflicts written into the files (markers) carries the write too.
func TestPendingMergeCarriesWrites(t *testing.T) {
	ctx := context.Background()
	e, ws, text := mergeSetup(t)
	put(t, ws["main"], "shared.txt", editLine(text, 1, "main"))
	err := whileFolding(t, "main", func() error {
		_, err := e.Merge(ctx, "feature", "main", MergeOptions{Strategy: StrategyMarkers})
		return err
	}, writeDuring(ws["main"]))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("merge with conflicts = %v, want a conflict", err)
	}
	if got, _ := fileAt(t, ws["main"], "shared.txt"); !strings.Contains(got, "<<<<<<<") {
		t.Fatalf("shared.txt holds no conflict markers:\n%s", got)
	}
	wantFile(t, ws["main"], "main", "new.txt", "from feature")
	put(t, ws["main"], "shared.txt", editLine(editLine(text, 1, "main"), 2, "settled"))
	if _, err := e.MergeContinue(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	checkCarried(t, e, "main")
}

func TestRevertFoldsOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	text := lines(10, "base")
	e, ws := setup(t, map[string]string{"shared.txt": text, "w": "before"})
	main := ws["main"]
	put(t, main, "shared.txt", editLine(text, 3, "undo me"))
	put(t, main, "added.txt", "undo me too")
	undo, err := e.Checkpoint(ctx, "main", "", "to revert")
	if err != nil {
		t.Fatal(err)
	}
	changedFiles(t, main, 40, "main")
	var res *MergeResult
	err = whileFolding(t, "main", func() (err error) {
		res, err = e.Revert(ctx, undo.String(), "main", RevertOptions{})
		return err
	}, writeDuring(main))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.View(ctx, res.Commit)
	wantFile(t, v, "the revert", "shared.txt", text)
	wantFile(t, v, "the revert", "added.txt", "")
	wantFile(t, v, "the revert", "f00010", readAll(t, main, "f00010"))
	wantFile(t, v, "the revert", "w", "before")
	wantFile(t, v, "the revert", "during.txt", "")
	wantFile(t, main, "main", "shared.txt", text)
	checkCarried(t, e, "main")
}

// TestFoldProbe measures how many 4 KiB writes to another file of the branch complete while
// a merge and a revert fold 1,024 uncommitted 64 KiB files (AGENTFS_FOLD_PROBE=1; a figure,
// not a check: the writes stall for the whole fold when it holds the branch's lock).
func TestFoldProbe(t *testing.T) {
	if os.Getenv("AGENTFS_FOLD_PROBE") == "" {
		t.Skip("set AGENTFS_FOLD_PROBE=1 to measure")
	}
	ctx := context.Background()
	for _, op := range []string{"merge", "revert"} {
		e, ws := setup(t, map[string]string{"shared.txt": "base\n"}, "feature")
		main := ws["main"]
		put(t, ws["feature"], "new.txt", "from feature")
		if _, err := e.Checkpoint(ctx, "feature", "", ""); err != nil {
			t.Fatal(err)
		}
		put(t, main, "undo.txt", "to revert")
		undo, err := e.Checkpoint(ctx, "main", "", "")
		if err != nil {
			t.Fatal(err)
		}
		block := make([]byte, BlockSize)
		for i := range 1024 {
			randFill(block, uint64(i)+1)
			writeFile(t, main, RootIno, fmt.Sprintf("big%04d", i), block)
		}
		log, err := main.Create(ctx, RootIno, "log", Attr{Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var writes atomic.Int64
		var worst atomic.Int64
		done := make(chan error, 1)
		go func() {
			page := make([]byte, PageSize)
			for i := int64(0); !stop.Load(); i++ {
				start := time.Now()
				if _, err := main.Write(ctx, log.Ino, (i%256)*PageSize, page); err != nil {
					done <- err
					return
				}
				if d := int64(time.Since(start)); d > worst.Load() {
					worst.Store(d)
				}
				writes.Add(1)
			}
			done <- nil
		}()
		time.Sleep(50 * time.Millisecond)
		before, start := writes.Load(), time.Now()
		worst.Store(0)
		if op == "merge" {
			_, err = e.Merge(ctx, "feature", "main", MergeOptions{})
		} else {
			_, err = e.Revert(ctx, undo.String(), "main", RevertOptions{})
		}
		took, during := time.Since(start), writes.Load()-before
		stop.Store(true)
		if werr := <-done; werr != nil {
			t.Fatal(werr)
		}
		slowest := time.Duration(worst.Load()) // the write in flight when it returned included
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s of 1,024 uncommitted 64 KiB files: %v; %d writes completed during it; slowest write %v", op, took.Round(time.Millisecond), during, slowest.Round(time.Millisecond))
	}
}

// The blocks being folded at once are bounded per daemon, not per fold: checkpoints of
// several branches at the same time share the fold slots (work.FoldPeak).
func TestFoldMemoryBoundIsPerDaemon(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	const branches, files = 6, 48
	block := make([]byte, BlockSize)
	for b := range branches {
		name := fmt.Sprintf("b%d", b)
		if _, err := e.CreateBranch(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		ws, _ := e.Workspace(ctx, name)
		for i := range files {
			randFill(block, uint64(b*files+i+1))
			writeFile(t, ws, RootIno, fmt.Sprintf("f%d", i), block)
		}
	}
	work.FoldPeak()
	var wg sync.WaitGroup
	errs := make(chan error, branches)
	for b := range branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Checkpoint(ctx, fmt.Sprintf("b%d", b), "", "")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	peak, bound := work.FoldPeak()
	t.Logf("%d checkpoints of %d blocks each at once: at most %d blocks in flight (bound %d)", branches, files, peak, bound)
	if peak == 0 || peak > bound {
		t.Fatalf("%d blocks were folded at once by %d checkpoints; the daemon's bound is %d", peak, branches, bound)
	}
}

// CheckpointIfChanged folds once, outside the lock: it makes no checkpoint when the state is
// its base's, and otherwise one holding the state before its snapshot, while a write on the
// branch completes.
func TestCheckpointIfChangedFoldsOnceOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"w": "before"})
	main := ws["main"]
	base := main.Base()
	folds := main.FoldCount()
	id, _, made, err := e.CheckpointIfChanged(ctx, "main", CheckpointOptions{})
	if err != nil || made || id != base {
		t.Fatalf("checkpoint of an unchanged branch = %v, made %v, %v; want its base %v, none made", id, made, err, base)
	}
	changedFiles(t, main, 20, "main")
	err = whileFolding(t, "main", func() (err error) {
		id, _, made, err = e.CheckpointIfChanged(ctx, "main", CheckpointOptions{})
		return err
	}, writeDuring(main))
	if err != nil || !made {
		t.Fatalf("checkpoint of a changed branch: made %v, %v", made, err)
	}
	if n := main.FoldCount() - folds; n != 2 {
		t.Fatalf("two checkpoints folded %d times, want 2", n)
	}
	v, _ := e.View(ctx, id)
	wantFile(t, v, "the checkpoint", "f00010", readAll(t, main, "f00010"))
	wantFile(t, v, "the checkpoint", "during.txt", "")
	checkCarried(t, e, "main")
}

// merge --continue folds outside the lock too.
func TestMergeContinueFoldsOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	e, ws, text := mergeSetup(t)
	main := ws["main"]
	put(t, main, "shared.txt", editLine(text, 1, "main"))
	if _, err := e.Merge(ctx, "feature", "main", MergeOptions{Strategy: StrategyMarkers}); !errors.Is(err, ErrConflict) {
		t.Fatalf("merge with conflicts = %v, want a conflict", err)
	}
	settled := editLine(editLine(text, 1, "main"), 2, "settled")
	put(t, main, "shared.txt", settled)
	var res *ContinueResult
	err := whileFolding(t, "main", func() (err error) {
		res, err = e.MergeContinue(ctx, "main")
		return err
	}, writeDuring(main))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.View(ctx, res.Commit)
	wantFile(t, v, "the merge", "shared.txt", settled)
	wantFile(t, v, "the merge", "new.txt", "from feature")
	wantFile(t, v, "the merge", "w", "before")
	wantFile(t, v, "the merge", "during.txt", "")
	if p, err := e.pendingMerge("main"); err != nil || p != nil {
		t.Fatalf("a merge is still pending after --continue: %+v, %v", p, err)
	}
	checkCarried(t, e, "main")
}

// A kept fold leaves memory once it is stale (the branch changed, or moved to a new base),
// and an in-memory fold once its branch is idle, even while the branch stays mounted.
func TestStaleFoldsLeaveMemory(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"w": "before"})
	main := ws["main"]
	defer main.OnReset(func() {})() // as a mount does: EvictIdle keeps the workspace
	changedFiles(t, main, 30, "a")
	diff := func() {
		t.Helper()
		if _, err := e.Diff(ctx, "main@base", "main"); err != nil {
			t.Fatal(err)
		}
	}
	want := func(what string, n int) {
		t.Helper()
		if got := e.keptFolds(); got != n {
			t.Fatalf("%s: %d folds kept, want %d", what, got, n)
		}
	}
	diff()
	want("after a diff", 1)
	e.EvictIdle(time.Hour)
	want("a current fold of a branch in use", 1)
	put(t, main, "w", "changed")
	e.EvictIdle(time.Hour)
	want("after a write", 0)
	diff()
	if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
		t.Fatal(err)
	}
	want("after a checkpoint", 0)
	put(t, main, "w", "again")
	diff()
	e.EvictIdle(0) // idle since forever; the mount keeps the workspace
	want("after the branch was idle", 0)
	if e.OpenWorkspaces() == 0 {
		t.Fatal("a mounted workspace was evicted")
	}
}

// Random writes, truncates, zeroed ranges, unlinks and renames made while a merge or a
// revert folds are carried onto its result: the branch ends as if they had been made after
// it (the same operations on a second repository after its merge or revert).
// AGENTFS_MERGECARRY_SEED=N replays one seed.
func TestMergeCarriesRandomWrites(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, uint64(time.Now().UnixNano())}
	if s := os.Getenv("AGENTFS_MERGECARRY_SEED"); s != "" {
		var n uint64
		if _, err := fmt.Sscan(s, &n); err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{n}
	}
	for _, op := range []string{"merge", "revert"} {
		for _, seed := range seeds {
			t.Run(fmt.Sprint(op, "/", seed), func(t *testing.T) {
				t.Logf("seed %d (replay: AGENTFS_MERGECARRY_SEED=%d)", seed, seed)
				carryOntoRun(t, op, seed)
			})
		}
	}
}

func carryOntoRun(t *testing.T, op string, seed uint64) {
	ctx := context.Background()
	var dumps, results [2]string
	for run := range 2 { // 0: operations during the fold; 1: after the merge or revert
		files := map[string]string{"sub/x": "x"}
		for i := range 4 {
			files[fmt.Sprintf("t%d", i)] = lines(20, "base")
		}
		e, ws := setup(t, files, "feature")
		main := ws["main"]
		// The changes to merge in, or to revert: on files the random operations leave alone.
		side := ws["feature"]
		if op == "revert" {
			side = main
		}
		for i := range 4 {
			put(t, side, fmt.Sprintf("t%d", i), editLine(lines(20, "base"), i, "side"))
		}
		put(t, side, "fdir/new", "from the side")
		put(t, side, "sub/y", "from the side")
		undo, err := e.Checkpoint(ctx, side.Branch(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		randomOps(t, main, rand.New(rand.NewPCG(seed, 1)), 40)
		ops := rand.New(rand.NewPCG(seed, 2))
		folds := main.FoldCount()
		if run == 0 {
			afterMergeFold = func() { randomOps(t, main, ops, 40) }
		}
		var res *MergeResult
		if op == "merge" {
			res, err = e.Merge(ctx, "feature", "main", MergeOptions{})
		} else {
			res, err = e.Revert(ctx, undo.String(), "main", RevertOptions{})
		}
		afterMergeFold = nil
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 && main.FoldCount()-folds != 1 {
			t.Fatalf("the %s folded main %d times, want once (nothing clashes)", op, main.FoldCount()-folds)
		}
		if run == 1 {
			randomOps(t, main, ops, 40)
		}
		v, _ := e.View(ctx, res.Commit)
		results[run], dumps[run] = dump(t, v), dump(t, main)
		e = reopenEngine(t, e)
		main, _ = e.Workspace(ctx, "main")
		if got := dump(t, main); got != dumps[run] {
			t.Fatalf("run %d: after a restart main shows:\n%s\nwant:\n%s", run, got, dumps[run])
		}
		verifyRepository(t, e)
	}
	if results[0] != results[1] {
		t.Fatalf("the %s made while writing holds:\n%s\nwant:\n%s", op, results[0], results[1])
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("with the writes carried onto the %s main shows:\n%s\nwant (the writes made after it):\n%s", op, dumps[0], dumps[1])
	}
}
