package branch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/agentfs/agentfs/store"
)

// powerLossSeeds returns the seeds to run: AGENTFS_POWERLOSS_SEED=N replays one,
// =random picks a new one; by default fixed seeds, so that CI is repeatable.
func powerLossSeeds(t *testing.T) []uint64 {
	switch v := os.Getenv("AGENTFS_POWERLOSS_SEED"); v {
	case "":
		return []uint64{42, 1796004770704710185, 7}
	case "random":
		// AGENTFS_POWERLOSS_RUNS=N runs N new seeds.
		n, _ := strconv.Atoi(os.Getenv("AGENTFS_POWERLOSS_RUNS"))
		seeds := []uint64{uint64(time.Now().UnixNano())}
		for i := 1; i < n; i++ {
			seeds = append(seeds, seeds[0]+uint64(i))
		}
		return seeds
	default:
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("AGENTFS_POWERLOSS_SEED=%q: want a number or random", v)
		}
		return []uint64{s}
	}
}

// TestPowerLoss runs random file operations on Pebble's crash-simulating filesystem, with
// fsyncs and checkpoints among them, and cuts the power at random moments: the crash keeps
// a random part of the unsynced data, in any order, as a disk may. After each cut the
// repository must open, verify, and show exactly the state after some operation at or after
// the last fsync (everything an fsync acknowledged; no torn operation). Then work goes on
// on the crashed filesystem, for several cuts.
func TestPowerLoss(t *testing.T) {
	for _, seed := range powerLossSeeds(t) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (AGENTFS_POWERLOSS_SEED=%d replays it)", seed, seed)
			powerLoss(t, seed)
		})
	}
}

func powerLoss(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*store.Store, *Engine) {
		t.Helper()
		// A small memtable: logs rotate and memtables flush during the run.
		st, err := store.Open("db", store.Options{FS: fs, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatalf("seed %d: repository does not open after the power cut: %v", seed, err)
		}
		e, err := Open(st, Options{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return st, e
	}
	st, e := open(fs)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 6; round++ {
		ws, err := e.Workspace(ctx, "main")
		if err != nil {
			t.Fatal(err)
		}
		// states holds the dumps after the last fsync and after every operation since.
		states := map[string]int{dump(t, ws): 0}
		ops := 20 + rng.IntN(60)
		for i := 1; i <= ops; i++ {
			name := fmt.Sprint("f", rng.IntN(6))
			ino := lookupOrCreate(t, ws, name)
			states[dump(t, ws)] = i // a create is an operation of its own
			switch op := rng.IntN(10); {
			case op < 5:
				data := make([]byte, 1+rng.IntN(3*PageSize))
				randFill(data, rng.Uint64())
				if rng.IntN(4) == 0 {
					clear(data) // zero writes become holes
				}
				if _, err := ws.Write(ctx, ino, int64(rng.IntN(3*BlockSize)), data); err != nil {
					t.Fatal(err)
				}
			case op < 6:
				size := uint64(rng.IntN(3 * BlockSize))
				if _, err := ws.SetAttr(ctx, ino, SetAttr{Size: &size}); err != nil {
					t.Fatal(err)
				}
			case op < 7:
				if err := ws.Rename(ctx, RootIno, name, RootIno, fmt.Sprint("f", rng.IntN(6)), 0); err != nil {
					t.Fatal(err)
				}
			case op < 8:
				if err := ws.Unlink(ctx, RootIno, name); err != nil {
					t.Fatal(err)
				}
			case op < 9:
				if err := ws.Fsync(ctx, ino); err != nil {
					t.Fatal(err)
				}
				states = map[string]int{}
			default:
				if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
					t.Fatal(err)
				}
				states = map[string]int{}
			}
			states[dump(t, ws)] = i
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(seed, uint64(round)))})
		st.Close()
		fs = crashed
		st, e = open(fs)
		verifyRepository(t, e)
		ws, err = e.Workspace(ctx, "main")
		if err != nil {
			t.Fatal(err)
		}
		got := dump(t, ws)
		if _, ok := states[got]; !ok {
			t.Fatalf("seed %d round %d: after the power cut the branch is in no state between the last fsync and the cut:\n%s", seed, round, got)
		}
	}
	st.Close()
}

func lookupOrCreate(t *testing.T, ws *Workspace, name string) uint64 {
	t.Helper()
	ctx := context.Background()
	n, err := ws.Lookup(ctx, RootIno, name)
	if err == nil {
		return n.Ino
	}
	n, err = ws.Create(ctx, RootIno, name, Attr{Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Release(ctx, n.Ino); err != nil {
		t.Fatal(err)
	}
	return n.Ino
}
