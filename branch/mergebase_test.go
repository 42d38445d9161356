package branch

import (
	"context"
	"testing"
	"time"

	"github.com/agentfs/agentfs/store"
)

// The merge base comes from the commit graph: a commit whose clock ran far behind (another
// host's skewed clock) is still the nearest common ancestor. Picking by time would choose
// the fork point O here.
func TestMergeBaseIgnoresClocks(t *testing.T) {
	ctx := context.Background()
	clock := time.Unix(500, 0)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := Open(st, Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	write := func(br, name string) store.ID {
		t.Helper()
		ws, err := e.Workspace(ctx, br)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, ws, RootIno, name, []byte(name+br+clock.String()))
		id, err := e.Checkpoint(ctx, br, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	o := write("main", "o")
	for _, br := range []string{"a", "b"} {
		if _, err := e.CreateBranch(ctx, br, o.String()); err != nil {
			t.Fatal(err)
		}
	}
	clock = time.Unix(1, 0) // a's host: clock far behind
	a1 := write("a", "a1")
	clock = time.Unix(1000, 0)
	write("b", "b1")
	if _, err := e.Merge(ctx, "a", "b", MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	clock = time.Unix(2, 0)
	write("a", "a2")
	r, err := e.Merge(ctx, "a", "b", MergeOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Base != a1 {
		t.Fatalf("merge base %s, want a1 %s (o is %s)", r.Base, a1, o)
	}
}
