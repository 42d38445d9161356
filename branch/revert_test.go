package branch

import (
	"context"
	"errors"
	"testing"
)

// Revert of the middle of three checkpoints undoes only its edit; a later edit of the same
// lines makes it a conflict that leaves the branch as it was.
func TestRevertOneCheckpoint(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"a.txt": lines(20, "a"), "b.txt": lines(20, "b"), "c.txt": lines(20, "c")})
	main := ws["main"]
	var cps [3]string
	for i, f := range []string{"a.txt", "b.txt", "c.txt"} {
		put(t, main, f, "edited "+f+"\n"+lines(20, f[:1]))
		id, err := e.Checkpoint(ctx, "main", "", "edit "+f)
		if err != nil {
			t.Fatal(err)
		}
		cps[i] = id.String()
	}
	res, err := e.Revert(ctx, cps[1], "main", RevertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Path != "b.txt" {
		t.Fatalf("revert changed %v, want b.txt only", res.Changes)
	}
	for f, want := range map[string]string{"a.txt": "edited a.txt\n" + lines(20, "a"), "b.txt": lines(20, "b"), "c.txt": "edited c.txt\n" + lines(20, "c")} {
		if got, _ := fileAt(t, main, f); got != want {
			t.Errorf("%s after revert = %q, want %q", f, got[:min(len(got), 30)], want[:30])
		}
	}
	c, _ := e.ReadCommit(ctx, res.Commit)
	if len(c.Parents) != 1 || c.Parents[0].String() != cps[2] {
		t.Fatalf("revert checkpoint parents %v, want the branch head %s", c.Parents, cps[2])
	}

	// Reverting the same checkpoint again finds nothing left to undo.
	if res, err := e.Revert(ctx, cps[1], "main", RevertOptions{}); err != nil || !res.UpToDate {
		t.Fatalf("second revert: %+v %v", res, err)
	}

	// a.txt's first line is edited again: reverting the first checkpoint conflicts, and the
	// branch (its uncommitted edit included) is left as it was.
	put(t, main, "a.txt", "edited again\n"+lines(20, "a"))
	before := main.Base()
	res, err = e.Revert(ctx, cps[0], "main", RevertOptions{})
	if !errors.Is(err, ErrConflict) || len(res.Conflicts) != 1 || res.Conflicts[0].Path != "a.txt" {
		t.Fatalf("conflicting revert: %+v %v", res, err)
	}
	if main.Base() != before {
		t.Fatal("a conflicting revert moved the branch")
	}
	if got, _ := fileAt(t, main, "a.txt"); got != "edited again\n"+lines(20, "a") {
		t.Fatalf("a conflicting revert changed a.txt: %q", got[:20])
	}
}
