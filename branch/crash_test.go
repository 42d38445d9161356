package branch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// verifyRepository checks that every branch resolves and that every object its base commit
// and overlay reach is present and valid: what fsck checks, from inside the package.
func verifyRepository(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	branches, err := e.Branches()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range branches {
		c, err := e.ReadCommit(ctx, b.Base)
		if err != nil {
			t.Fatalf("branch %s: base checkpoint: %v", b.Name, err)
		}
		if err := e.tree.Walk(ctx, c.Root, func(id store.ID, level int, leaf func(func(k, v []byte) bool)) error {
			if leaf == nil {
				return nil
			}
			var ferr error
			leaf(func(k, v []byte) bool {
				if k[0] == kindBlock {
					if _, ferr = e.st.Get(ctx, store.ID(v), nil); ferr != nil {
						return false
					}
				}
				return true
			})
			return ferr
		}); err != nil {
			t.Fatalf("branch %s: tree: %v", b.Name, err)
		}
		// The live state reads back too (overlay over base).
		ws, err := e.Workspace(ctx, b.Name)
		if err != nil {
			t.Fatalf("branch %s: %v", b.Name, err)
		}
		dump(t, ws)
	}
}

// A crash loses unsynced writes but never the repository's consistency: after losing a
// random part of the unsynced data, every branch and checkpoint that was durable is intact,
// and every branch resolves and reads.
func TestCrashConsistency(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 5))
			fs := vfs.NewCrashableMem()
			st, err := store.Open("db", store.Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			e, _ := Open(st, Options{})
			e.CreateBranch(ctx, "main", "")
			ws, _ := e.Workspace(ctx, "main")
			durable := map[store.ID]string{} // checkpoint -> dump
			for i := 0; i < 40; i++ {
				data := make([]byte, rng.IntN(3*BlockSize))
				randFill(data, seed*1000+uint64(i))
				writeFile(t, ws, RootIno, fmt.Sprintf("f%d", rng.IntN(10)), data)
				switch rng.IntN(4) {
				case 0:
					id, err := e.Checkpoint(ctx, "main", "", "")
					if err != nil {
						t.Fatal(err)
					}
					durable[id] = dump(t, ws)
				case 1:
					name := fmt.Sprint("b", i)
					if _, err := e.CreateBranch(ctx, name, "main"); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Unsynced tail: writes and tree nodes nobody synced.
			for i := 0; i < 20; i++ {
				writeFile(t, ws, RootIno, fmt.Sprintf("late%d", i), make([]byte, 100+i))
			}
			_, _ = e.tree.Apply(ctx, ws.RootLocked(), []tree.Mutation{{Key: []byte("zz"), Value: []byte("unsynced")}})
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: int(rng.IntN(100)), RNG: rand.New(rand.NewPCG(seed, 9))})
			st.Close()

			st2, err := store.Open("db", store.Options{FS: crashed})
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			e2, _ := Open(st2, Options{})
			verifyRepository(t, e2)
			for id, want := range durable {
				v, err := e2.View(ctx, id)
				if err != nil {
					t.Fatalf("durable checkpoint %s lost: %v", id, err)
				}
				if got := dump(t, v); got != want {
					t.Fatalf("durable checkpoint %s changed after the crash", id)
				}
			}
		})
	}
}

func FuzzDecodeCommit(f *testing.F) {
	f.Add(encodeCommit(&Commit{Parents: []store.ID{{1}, {2}}, Branch: "main", Name: "n", Message: "m"}))
	f.Add([]byte("C\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommit(b)
		if err != nil {
			return
		}
		d, err := decodeCommit(encodeCommit(c))
		if err != nil || d.Root != c.Root || len(d.Parents) != len(c.Parents) || d.Message != c.Message || !d.Time.Equal(c.Time) {
			t.Fatalf("re-encoded commit differs: %v", err)
		}
	})
}

func FuzzDecodeBranch(f *testing.F) {
	f.Add(encodeBranch(&Branch{ID: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if br, err := decodeBranch("x", b); err == nil {
			if _, err := decodeBranch("x", encodeBranch(br)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
