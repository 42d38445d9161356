package branch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// randomOps applies n random file operations to ws: writes across pages and blocks,
// truncates down and up, zeroed ranges, unlinks, renames, new files and directories.
func randomOps(t *testing.T, ws *Workspace, r *rand.Rand, n int) {
	t.Helper()
	ctx := context.Background()
	name := func() string { return fmt.Sprintf("f%d", r.IntN(8)) }
	for range n {
		switch op := r.IntN(10); {
		case op < 5: // write
			p := name()
			f, err := ws.Lookup(ctx, RootIno, p)
			if errors.Is(err, syscall.ENOENT) {
				f, err = ws.Create(ctx, RootIno, p, Attr{Mode: 0o644})
			}
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 1+r.IntN(3*PageSize))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			if _, err := ws.Write(ctx, f.Ino, int64(r.IntN(3*BlockSize)), data); err != nil {
				t.Fatal(err)
			}
		case op < 7: // truncate down or up
			f, err := ws.Lookup(ctx, RootIno, name())
			if err != nil {
				continue
			}
			size := uint64(r.IntN(3 * BlockSize))
			if _, err := ws.SetAttr(ctx, f.Ino, SetAttr{Size: &size}); err != nil {
				t.Fatal(err)
			}
		case op == 7: // zero a range
			f, err := ws.Lookup(ctx, RootIno, name())
			if err != nil {
				continue
			}
			if err := ws.ZeroRange(ctx, f.Ino, int64(r.IntN(2*BlockSize)), int64(1+r.IntN(BlockSize)), r.IntN(2) == 0); err != nil {
				t.Fatal(err)
			}
		case op == 8: // unlink
			if err := ws.Unlink(ctx, RootIno, name()); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Fatal(err)
			}
		default: // rename over another
			if err := ws.Rename(ctx, RootIno, name(), RootIno, name(), 0); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Fatal(err)
			}
		}
	}
}

// A checkpoint folds outside the branch's lock: writes that complete while it folds are not
// in it, and are not lost either (they stay uncommitted in the branch, across a restart and
// the next checkpoint). AGENTFS_CARRY_SEED=N replays one seed.
func TestCheckpointCarriesConcurrentWrites(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8, uint64(time.Now().UnixNano())}
	if s := os.Getenv("AGENTFS_CARRY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (replay: AGENTFS_CARRY_SEED=%d)", seed, seed)
			carryRun(t, seed)
		})
	}
}

func carryRun(t *testing.T, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 9))
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "main")
	for round := range 4 {
		randomOps(t, ws, r, 40)
		if round%2 == 1 {
			if _, err := e.Checkpoint(ctx, "main", "", "plain"); err != nil {
				t.Fatal(err)
			}
			randomOps(t, ws, r, 20)
		}
		atSnapshot := dump(t, ws)
		var during string
		afterCheckpointFold = func() {
			randomOps(t, ws, r, 30)
			during = dump(t, ws)
		}
		id, err := e.Checkpoint(ctx, "main", "", "while writing")
		afterCheckpointFold = nil
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.View(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := dump(t, v); got != atSnapshot {
			t.Fatalf("round %d: the checkpoint holds:\n%s\nwant the state before it folded:\n%s", round, got, atSnapshot)
		}
		if got := dump(t, ws); got != during {
			t.Fatalf("round %d: after the checkpoint the branch shows:\n%s\nwant the writes made while it folded:\n%s", round, got, during)
		}
		e = reopenEngine(t, e)
		ws, _ = e.Workspace(ctx, "main")
		if got := dump(t, ws); got != during {
			t.Fatalf("round %d: after a restart the branch shows:\n%s\nwant:\n%s", round, got, during)
		}
		id, err = e.Checkpoint(ctx, "main", "", "after")
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := e.View(ctx, id); dump(t, v) != during {
			t.Fatalf("round %d: the next checkpoint lost writes made during the previous one", round)
		}
		verifyRepository(t, e)
	}
}

// Checkpoints taken while a writer runs each hold a prefix of its writes (the writes that
// completed before the checkpoint), and the branch keeps every write.
func TestCheckpointWhileWriting(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "main")
	f, err := ws.Create(ctx, RootIno, "log", Attr{Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	const writes = 600 // pages, spread over ten blocks
	done := make(chan error, 1)
	go func() {
		page := make([]byte, PageSize)
		for i := range writes {
			page[0], page[1] = byte(i), byte(i>>8)
			page[2] = 1
			if _, err := ws.Write(ctx, f.Ino, int64(i)*PageSize, page); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var ids []string
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		id, err := e.Checkpoint(ctx, "main", "", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.String())
	}
	check := func(v *Workspace, what string) int {
		n, err := v.Lookup(ctx, RootIno, "log")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n.Size)
		if _, err := v.Read(ctx, n.Ino, 0, buf); err != nil {
			t.Fatal(err)
		}
		k := int(n.Size / PageSize)
		for i := range k {
			p := buf[i*PageSize:]
			if p[2] != 1 || int(p[0])|int(p[1])<<8 != i {
				t.Fatalf("%s: page %d of %d holds %v", what, i, k, p[:3])
			}
		}
		return k
	}
	if got := check(ws, "the branch"); got != writes {
		t.Fatalf("the branch holds %d of %d writes", got, writes)
	}
	for _, id := range ids {
		r, err := e.Resolve(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.View(ctx, r.Commit)
		if err != nil {
			t.Fatal(err)
		}
		check(v, "checkpoint "+id[:8])
	}
	t.Logf("%d checkpoints during %d writes", len(ids), writes)
}
