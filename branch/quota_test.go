package branch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// usageOf counts inodes exactly; bytes are not counted here (gc.Space does it in the daemon).
func usageOf(ctx context.Context, e *Engine, name string) (Usage, error) {
	n, err := e.ExclusiveInodes(ctx, name)
	return Usage{Inodes: n}, err
}

// An inode quota admits exactly the limit in creates past the fork point, across
// checkpoints and a reopen; a fork's own inodes do not count; deleting makes room again.
func TestInodeQuota(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.SetUsageFunc(usageOf)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	mws, _ := e.Workspace(ctx, "main")
	for i := range 30 { // inherited by the fork: not its own
		if _, err := mws.Create(ctx, RootIno, fmt.Sprintf("base%d", i), Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateBranch(ctx, "agent", "main"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetQuota(ctx, "agent", Quota{Inodes: 10}); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "agent")
	made := 0
	for i := range 6 {
		if _, err := ws.Create(ctx, RootIno, fmt.Sprintf("a%d", i), Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		made++
	}
	if _, err := e.Checkpoint(ctx, "agent", "", ""); err != nil {
		t.Fatal(err)
	}
	e = reopenEngine(t, e)
	e.SetUsageFunc(usageOf)
	ws, _ = e.Workspace(ctx, "agent")
	if q, _ := e.GetQuota("agent"); q.Inodes != 10 {
		t.Fatalf("quota after reopen: %+v", q)
	}
	var err error
	for i := 0; err == nil && i < 20; i++ {
		if i%2 == 0 {
			_, err = ws.Mkdir(ctx, RootIno, fmt.Sprintf("d%d", i), Attr{Mode: 0o755})
		} else {
			_, err = ws.Symlink(ctx, RootIno, fmt.Sprintf("l%d", i), "x", Attr{})
		}
		if err == nil {
			made++
		}
	}
	if !errors.Is(err, syscall.EDQUOT) || made != 10 {
		t.Fatalf("made %d inodes, then %v; want 10 then EDQUOT", made, err)
	}
	if n, _ := e.ExclusiveInodes(ctx, "agent"); n != 10 {
		t.Fatalf("ExclusiveInodes = %d, want 10", n)
	}
	// Deleting inodes the fork did not make frees nothing; deleting its own does.
	if err := ws.Unlink(ctx, RootIno, "base0"); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.ExclusiveInodes(ctx, "agent"); n != 10 {
		t.Fatalf("after deleting an inherited file: %d", n)
	}
	if err := ws.Unlink(ctx, RootIno, "a0"); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.ExclusiveInodes(ctx, "agent"); n != 9 {
		t.Fatalf("after deleting its own file: %d", n)
	}
	e.quotaChanged("agent") // skip the refusal back-off
	if _, err := ws.Create(ctx, RootIno, "again", Attr{Mode: 0o644}); err != nil {
		t.Fatalf("create after freeing one: %v", err)
	}
	// main has no quota.
	mws, _ = e.Workspace(ctx, "main")
	for i := range 20 {
		if _, err := mws.Create(ctx, RootIno, fmt.Sprintf("m%d", i), Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
}

// Concurrent creates under an inode quota: exactly the limit is admitted.
func TestInodeQuotaConcurrent(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.SetUsageFunc(usageOf)
	if _, err := e.CreateBranch(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.Workspace(ctx, "b")
	if err := e.SetQuota(ctx, "b", Quota{Inodes: 20}); err != nil {
		t.Fatal(err)
	}
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				_, err := ws.Create(ctx, RootIno, fmt.Sprintf("g%d-%d", g, i), Attr{Mode: 0o644})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, syscall.EDQUOT):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 || refused.Load() != 60 {
		t.Fatalf("admitted %d, refused %d; want 20 and 60", ok.Load(), refused.Load())
	}
}

// A merge that would take the target over its quota fails with ErrQuota, naming the quota,
// and changes nothing: the target's uncommitted work and the source stay as they were.
func TestMergeQuota(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"a": "x"}, "agent")
	e.SetUsageFunc(usageOf) // inodes exactly; bytes count 0 here, so only a merge's own adds
	for i := range 5 {
		put(t, ws["agent"], fmt.Sprintf("new/f%d", i), "agent work\n")
	}
	put(t, ws["agent"], "big", strings.Repeat("b", 3000))
	put(t, ws["main"], "local", "uncommitted on main\n")
	for _, q := range []Quota{{Inodes: 5}, {Bytes: 2000}} {
		if err := e.SetQuota(ctx, "main", q); err != nil {
			t.Fatal(err)
		}
		_, err := e.Merge(ctx, "agent", "main", MergeOptions{})
		if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "holds") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("merge over %+v: %v, want one line with ErrQuota", q, err)
		}
		t.Logf("quota %+v: %v", q, err)
		if _, ok := fileAt(t, ws["main"], "new/f0"); ok {
			t.Fatal("a refused merge changed main")
		}
		if c, ok := fileAt(t, ws["main"], "local"); !ok || c != "uncommitted on main\n" {
			t.Fatalf("main's uncommitted file after a refused merge: %q %v", c, ok)
		}
		if c, ok := fileAt(t, ws["agent"], "big"); !ok || len(c) != 3000 {
			t.Fatal("the source lost its work")
		}
	}
	if err := e.SetQuota(ctx, "main", Quota{Inodes: 20, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Merge(ctx, "agent", "main", MergeOptions{}); err != nil {
		t.Fatalf("merge within the quota: %v", err)
	}
	if c, ok := fileAt(t, ws["main"], "new/f4"); !ok || c != "agent work\n" {
		t.Fatalf("after the merge: %q %v", c, ok)
	}
}

// A rollback to a checkpoint that holds more than the quota's last count makes the next
// create count again: the branch cannot grow past its limit by rolling back.
func TestQuotaAfterRollback(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"a": "x"}, "agent")
	e.SetUsageFunc(usageOf)
	if err := e.SetQuota(ctx, "agent", Quota{Inodes: 5}); err != nil {
		t.Fatal(err)
	}
	agent := ws["agent"]
	for i := range 5 {
		if _, err := agent.Create(ctx, RootIno, fmt.Sprintf("f%d", i), Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Checkpoint(ctx, "agent", "five", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.Rollback(ctx, "agent", "main@base"); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Create(ctx, RootIno, "one", Attr{Mode: 0o644}); err != nil {
		t.Fatalf("create after rolling back to no inodes: %v", err)
	}
	if err := e.Rollback(ctx, "agent", "agent@five"); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Create(ctx, RootIno, "more", Attr{Mode: 0o644}); !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("create after rolling back to 5 of 5 inodes: %v, want EDQUOT", err)
	}
}
