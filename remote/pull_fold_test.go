package remote_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/work"
)

// A pull into a branch with uncommitted changes folds them outside the branch's lock (its
// checkpoint, then its merge with the fetched commit): every fold of the branch is paused
// while a write on the branch runs, and that write must complete (a fold holding the lock
// would hold it up; a generous timeout detects it). Every write is kept. The branch has
// uncommitted changes only, or a local checkpoint too.
func TestPullFoldsOutsideTheLock(t *testing.T) {
	for _, diverged := range []bool{false, true} {
		t.Run(fmt.Sprintf("local-checkpoint=%v", diverged), func(t *testing.T) {
			url := "file://" + t.TempDir()
			a := newRepo(t)
			if _, err := a.Remotes.Add(ctx, "origin", url); err != nil {
				t.Fatal(err)
			}
			want := randomFiles(1, 12, 200<<10)
			writeBranch(t, a, "main", want)
			if _, err := a.Remotes.Push(ctx, "origin", "main"); err != nil {
				t.Fatal(err)
			}
			b, _ := cloneRepo(t, url, []string{"main"})
			want["d3/later.txt"] = []byte("later\n")
			writeBranch(t, a, "main", want)
			if _, err := a.Remotes.Push(ctx, "origin", "main"); err != nil {
				t.Fatal(err)
			}

			ws, err := b.Engine.Workspace(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			create := func(name string, data []byte) error {
				f, err := ws.Create(ctx, branch.RootIno, name, branch.Attr{Mode: 0o644})
				if err == nil {
					_, err = ws.Write(ctx, f.Ino, 0, data)
				}
				return err
			}
			if diverged {
				if err := create("local.txt", []byte("checkpointed on B\n")); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Engine.Checkpoint(ctx, "main", "", "local"); err != nil {
					t.Fatal(err)
				}
			}
			if err := create("uncommitted.bin", randomFiles(3, 1, 300<<10)["d0/sub0/f000.bin"]); err != nil {
				t.Fatal(err)
			}

			var (
				mu    sync.Mutex
				folds int
				stuck []string
			)
			work.SetFoldHook(func(br string) {
				if br != "main" {
					return
				}
				mu.Lock()
				i := folds
				folds++
				mu.Unlock()
				done := make(chan error, 1)
				go func() { done <- create(fmt.Sprintf("during%d.txt", i), []byte("written during a fold\n")) }()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("write during fold %d: %v", i, err)
					}
				case <-time.After(30 * time.Second):
					mu.Lock()
					stuck = append(stuck, fmt.Sprintf("fold %d", i))
					mu.Unlock()
				}
			})
			res, err := b.Remotes.Pull(ctx, "origin", "main", remote.PullOptions{})
			work.SetFoldHook(nil)
			if len(stuck) > 0 {
				t.Fatalf("a write on main did not complete in 30 s while the pull's %v was paused: the fold holds the branch's lock", stuck)
			}
			if err != nil {
				t.Fatalf("pull while writing: %v", err)
			}
			if res.Action != "merged" || folds < 2 {
				t.Fatalf("pull = %+v after %d folds; want a merge folding main twice (its checkpoint, then the merge)", res, folds)
			}
			got := readBranch(t, b, res.Commit)
			for p, data := range want {
				if string(got[p]) != string(data) {
					t.Fatalf("the pull's merge lacks %s", p)
				}
			}
			for _, p := range []string{"uncommitted.bin", "during0.txt"} {
				if got[p] == nil {
					t.Fatalf("the pull's merge lacks %s, written before its merge folded", p)
				}
			}
			// Every write is in the branch, the last ones uncommitted.
			for i := range folds {
				if _, err := ws.Lookup(ctx, branch.RootIno, fmt.Sprintf("during%d.txt", i)); err != nil {
					t.Fatalf("during%d.txt, written while the pull folded: %v", i, err)
				}
			}
		})
	}
}
