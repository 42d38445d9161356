package branch

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// While one branch's synced ref commit is held up (a slow fsync, here a test hook), other
// branches checkpoint, fork, roll back and are deleted: no engine-wide lock is held across
// a ref's durable commit. The old engine held Engine.mu there, and every call below waited.
func TestCheckpointsOfOtherBranchesProceed(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := e.CreateBranch(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
		ws, err := e.Workspace(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, ws, RootIno, "f", []byte(n))
	}
	entered, release := make(chan struct{}), make(chan struct{})
	testBeforeRefCommit = func(name string) {
		if name == "a" {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { testBeforeRefCommit = nil })
	aDone := make(chan error, 1)
	go func() {
		_, err := e.Checkpoint(ctx, "a", "", "held up")
		aDone <- err
	}()
	<-entered

	others := make(chan error, 1)
	go func() {
		others <- func() error {
			if _, err := e.Checkpoint(ctx, "b", "one", "while a waits"); err != nil {
				return fmt.Errorf("checkpoint b: %w", err)
			}
			if _, err := e.CreateBranch(ctx, "d", "b"); err != nil {
				return fmt.Errorf("fork b to d: %w", err)
			}
			if err := e.Rollback(ctx, "d", "b@one"); err != nil {
				return fmt.Errorf("rollback d: %w", err)
			}
			if err := e.DeleteBranch(ctx, "c"); err != nil {
				return fmt.Errorf("delete c: %w", err)
			}
			if _, err := e.CreateTag(ctx, "t1", "b"); err != nil {
				return fmt.Errorf("tag b: %w", err)
			}
			return nil
		}()
	}()
	// A fail-safe, not a measurement: the calls take milliseconds; before per-branch locks
	// they waited forever.
	select {
	case err := <-others:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		close(release)
		t.Fatal("operations on other branches waited for branch a's synced commit")
	}
	select {
	case err := <-aDone:
		t.Fatalf("checkpoint of a returned (%v) while its commit was held", err)
	default:
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}

	// Overlay ids stay unique, also across a restart (they are reserved in ranges).
	e = reopenEngine(t, e)
	for _, n := range []string{"e", "f"} {
		if _, err := e.CreateBranch(ctx, n, "a"); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := e.Workspace(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ws, RootIno, "g", []byte("again"))
	if _, err := e.Checkpoint(ctx, "b", "", "after restart"); err != nil {
		t.Fatal(err)
	}
	bs, err := e.Branches()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]string{}
	for _, b := range bs {
		if other, ok := ids[b.ID]; ok {
			t.Errorf("branches %s and %s share overlay id %d", other, b.Name, b.ID)
		}
		ids[b.ID] = b.Name
	}
	if len(bs) != 5 {
		t.Errorf("%d branches, want a b d e f", len(bs))
	}
}

// The per-key locks are dropped when unused: a fleet of branches leaves no lock behind.
func TestKeyedLocksDropped(t *testing.T) {
	var k keyedLocks
	done := make(chan struct{})
	unlock := k.lock("x")
	go func() {
		defer close(done)
		k.lock("x")()
	}()
	for i := 0; i < 100; i++ {
		k.lock(fmt.Sprint(i))()
	}
	unlock()
	<-done
	if len(k.m) != 0 {
		t.Errorf("%d locks left, want 0", len(k.m))
	}
}
