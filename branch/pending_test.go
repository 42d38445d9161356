package branch

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A failing merge changes nothing: not the target, and not the source branch, whose
// uncommitted changes stay uncommitted. A merge that goes through makes them the source's
// checkpoint and says so.
func TestFailedMergeLeavesSource(t *testing.T) {
	ctx := context.Background()
	text := lines(10, "base")
	e, ws := setup(t, map[string]string{"t.txt": text}, "agent")
	put(t, ws["main"], "t.txt", strings.Replace(text, "line 3 base", "line 3 ours", 1))
	put(t, ws["agent"], "t.txt", strings.Replace(text, "line 3 base", "line 3 theirs", 1))
	agentBase := ws["agent"].Base()
	if _, err := e.Merge(ctx, "agent", "main", MergeOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("merge: %v", err)
	}
	if ws["agent"].Base() != agentBase {
		t.Fatal("a failed merge checkpointed the source branch")
	}
	if changed, _ := ws["agent"].Changed(); !changed {
		t.Fatal("the source's uncommitted changes are gone")
	}
	res, err := e.Merge(ctx, "agent", "main", MergeOptions{Take: map[string]string{"t.txt": StrategyTheirs}})
	if err != nil {
		t.Fatal(err)
	}
	if res.SourceCheckpoint.IsZero() || ws["agent"].Base() != res.SourceCheckpoint {
		t.Fatalf("source checkpoint %s, agent base %s", res.SourceCheckpoint, ws["agent"].Base())
	}
	if got, _ := fileAt(t, ws["main"], "t.txt"); !strings.Contains(got, "line 3 theirs") {
		t.Fatalf("--take theirs: %q", got)
	}
	if res, err := e.Merge(ctx, "agent", "main", MergeOptions{}); err != nil || !res.UpToDate {
		t.Fatalf("merging again: %+v %v", res, err)
	}
}

// Markers: a same-line conflict is written into the file, a binary one gets the source's
// version beside it; the merge stays pending until the markers are gone; --continue makes
// a checkpoint with two parents; --abort restores the target.
func TestMergeMarkersPending(t *testing.T) {
	ctx := context.Background()
	text := lines(10, "base")
	for _, finish := range []string{"continue", "abort"} {
		t.Run(finish, func(t *testing.T) {
			e, ws := setup(t, map[string]string{"t.txt": text, "bin": "\x00base", "clean.txt": text}, "agent")
			main := ws["main"]
			put(t, main, "t.txt", strings.Replace(text, "line 3 base", "line 3 ours", 1))
			put(t, main, "bin", "\x00ours")
			put(t, ws["agent"], "t.txt", strings.Replace(text, "line 3 base", "line 3 theirs", 1))
			put(t, ws["agent"], "bin", "\x00theirs")
			put(t, ws["agent"], "clean.txt", text+"added by agent\n")
			before := dump(t, main)
			res, err := e.Merge(ctx, "agent", "main", MergeOptions{Strategy: StrategyMarkers})
			if !errors.Is(err, ErrConflict) || !res.Pending || len(res.Conflicts) != 2 {
				t.Fatalf("merge: %+v %v", res, err)
			}
			got, _ := fileAt(t, main, "t.txt")
			if !strings.Contains(got, "<<<<<<< main\nline 3 ours\n=======\nline 3 theirs\n>>>>>>> agent\n") {
				t.Fatalf("no markers:\n%s", got)
			}
			if got, _ := fileAt(t, main, "bin~agent"); got != "\x00theirs" {
				t.Fatalf("bin~agent = %q", got)
			}
			if got, _ := fileAt(t, main, "clean.txt"); !strings.HasSuffix(got, "added by agent\n") {
				t.Fatal("the clean part of the merge is missing")
			}
			p, err := e.MergeStatus(ctx, "main")
			if err != nil || p == nil || len(p.Open) != 1 || p.Open[0] != "t.txt" || len(p.Copies) != 1 {
				t.Fatalf("status: %+v %v", p, err)
			}
			if _, err := e.Merge(ctx, "agent", "main", MergeOptions{}); !errors.Is(err, ErrBusy) {
				t.Fatalf("second merge while pending: %v", err)
			}
			if finish == "abort" {
				if err := e.MergeAbort(ctx, "main"); err != nil {
					t.Fatal(err)
				}
				if after := dump(t, main); after != before {
					t.Fatalf("abort did not restore:\n%s\n---\n%s", before, after)
				}
				if p, _ := e.MergeStatus(ctx, "main"); p != nil {
					t.Fatal("still pending after abort")
				}
				return
			}
			if _, err := e.MergeContinue(ctx, "main"); !errors.Is(err, ErrConflict) {
				t.Fatalf("continue with markers left: %v", err)
			}
			put(t, main, "t.txt", strings.Replace(text, "line 3 base", "line 3 settled", 1))
			cr, err := e.MergeContinue(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			c, _ := e.ReadCommit(ctx, cr.Commit)
			if len(c.Parents) != 2 || len(cr.Removed) != 1 {
				t.Fatalf("merge checkpoint parents %v, removed %v", c.Parents, cr.Removed)
			}
			if _, ok := fileAt(t, main, "bin~agent"); ok {
				t.Fatal("the copy survived --continue")
			}
			if res, err := e.Merge(ctx, "agent", "main", MergeOptions{}); err != nil || !res.UpToDate {
				t.Fatalf("merging again after continue: %+v %v", res, err)
			}
		})
	}
}

// A conflicting file edited in place (its blocks stay, working pages hold the edit) is read
// with its pages when merge status and --continue look for markers.
func TestMergeContinueSeesWorkingPages(t *testing.T) {
	ctx := context.Background()
	text := lines(400, "base") // stored in blocks, not inline
	e, ws := setup(t, map[string]string{"t.txt": text}, "agent")
	main := ws["main"]
	put(t, main, "t.txt", strings.Replace(text, "line 3 base", "line 3 ours", 1))
	put(t, ws["agent"], "t.txt", strings.Replace(text, "line 3 base", "line 3 theirs", 1))
	if _, err := e.Merge(ctx, "agent", "main", MergeOptions{Strategy: StrategyMarkers}); !errors.Is(err, ErrConflict) {
		t.Fatalf("merge: %v", err)
	}
	got, _ := fileAt(t, main, "t.txt")
	if len(got) <= InlineMax {
		t.Fatalf("the merged file is inline (%d bytes); the test needs blocks", len(got))
	}
	n, err := main.Lookup(ctx, RootIno, "t.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite each marker in place with a line of the same length.
	for _, m := range []string{"<<<<<<<", "=======", ">>>>>>>"} {
		i := strings.Index(got, m)
		if i < 0 {
			t.Fatalf("no %s in the merged file", m)
		}
		if _, err := main.Write(ctx, n.Ino, int64(i), []byte(strings.Repeat("x", len(m)))); err != nil {
			t.Fatal(err)
		}
	}
	p, err := e.MergeStatus(ctx, "main")
	if err != nil || p == nil || len(p.Open) != 0 {
		t.Fatalf("status after settling in place: %+v %v", p, err)
	}
	if _, err := e.MergeContinue(ctx, "main"); err != nil {
		t.Fatalf("continue after settling in place: %v", err)
	}
}
