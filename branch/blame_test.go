package branch

import (
	"context"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// A line edited in the second of three checkpoints is blamed on that checkpoint; the others
// on the checkpoint that wrote them; a rename is followed; uncommitted lines are the
// branch's own.
func TestBlame(t *testing.T) {
	ctx := context.Background()
	e, ws := setup(t, map[string]string{"f.txt": "one\ntwo\nthree\n", "other": "x"})
	main := ws["main"]
	first := main.Base()
	put(t, main, "other", "y")
	c1, _ := e.Checkpoint(ctx, "main", "", "other file")
	put(t, main, "f.txt", "one\nTWO\nthree\n")
	c2, _ := e.Checkpoint(ctx, "main", "", "edit line 2")
	put(t, main, "f.txt", "one\nTWO\nthree\nfour\n")
	c3, _ := e.Checkpoint(ctx, "main", "", "add line 4")
	_ = c1
	res, err := e.Blame(ctx, c3.String(), "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.ID{first, c2, first, c3}
	if len(res.Lines) != len(want) {
		t.Fatalf("%d lines", len(res.Lines))
	}
	for i, l := range res.Lines {
		if l.ID != want[i] {
			t.Errorf("line %d %q blamed on %s (%s), want %s", l.Line, l.Text, l.ID, l.Commit.Message, want[i])
		}
	}
	// Renamed and edited without a checkpoint: the new line is uncommitted, the rest keeps
	// its history.
	parent, name, _, err := resolve(ctx, main, "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := main.Rename(ctx, parent, name, RootIno, "g.txt", 0); err != nil {
		t.Fatal(err)
	}
	put(t, main, "g.txt", "one\nTWO\nthree\nfour\nfive\n")
	res, err = e.Blame(ctx, "main", "g.txt")
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines[1].ID != c2 || !res.Lines[4].ID.IsZero() || !strings.Contains(res.Lines[4].Commit.Message, "uncommitted") {
		t.Fatalf("after rename: line 2 %s, line 5 %s", res.Lines[1].ID, res.Lines[4].ID)
	}
}
