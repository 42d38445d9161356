package branch

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentfs/agentfs/store"
)

func TestRetentionPolicy(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	id := func(i int) store.ID { return store.ID{byte(i)} }
	// History of branch "b", newest first: c0 is 0h old, c1 1h, ... c5 5h; c3 is named;
	// o6 and o7 come from the branch it was forked from.
	var log []LogEntry
	for i := 0; i < 6; i++ {
		c := &Commit{Branch: "b", Time: now.Add(-time.Duration(i) * time.Hour)}
		if i == 3 {
			c.Name = "release"
		}
		log = append(log, LogEntry{ID: id(i), Commit: c})
	}
	for i := 6; i < 8; i++ {
		log = append(log, LogEntry{ID: id(i), Commit: &Commit{Branch: "main", Time: now.Add(-time.Duration(i) * time.Hour)}})
	}
	ids := func(is ...int) []store.ID {
		var out []store.ID
		for _, i := range is {
			out = append(out, id(i))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		keepLast int
		within   time.Duration
		keep     []int // roots
		want     []int
	}{
		{"keep last 2", 2, 0, nil, []int{2, 4, 5}},
		{"keep last 0 prunes all unnamed", 0, 0, nil, []int{0, 1, 2, 4, 5}},
		{"keep last more than there are", 10, 0, nil, nil},
		{"within 90 minutes", 0, 90 * time.Minute, nil, []int{2, 4, 5}},
		{"within: exactly as old is pruned", 0, 2 * time.Hour, nil, []int{2, 4, 5}},
		{"either rule keeps", 1, 150 * time.Minute, nil, []int{4, 5}},
		{"roots (base, tags) are kept", 1, 0, []int{5, 2}, []int{1, 4}},
		{"named kept whatever the rule", 0, 0, []int{0}, []int{1, 2, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep := map[store.ID]bool{}
			for _, i := range tc.keep {
				keep[id(i)] = true
			}
			got := toPrune(log, "b", tc.keepLast, tc.within, now, keep)
			if want := ids(tc.want...); !reflect.DeepEqual(got, want) {
				t.Errorf("pruned %v, want %v", got, want)
			}
		})
	}
}

func TestRetentionEffectiveAndValid(t *testing.T) {
	repo := Retention{KeepLast: 5}
	own := Retention{KeepWithin: time.Hour}
	exempt := Retention{KeepAll: true}
	stored := map[string]Retention{"": repo, "a": own, "b": exempt}
	for _, tc := range []struct {
		branch string
		want   Retention
		prunes bool
	}{
		{"a", own, true}, {"b", exempt, false}, {"c", repo, true},
	} {
		if got := EffectiveRetention(stored, tc.branch); got != tc.want || got.Prunes() != tc.prunes {
			t.Errorf("%s: %+v (prunes %v), want %+v (%v)", tc.branch, got, got.Prunes(), tc.want, tc.prunes)
		}
	}
	if got := EffectiveRetention(map[string]Retention{}, "x"); got.Prunes() {
		t.Errorf("no policy prunes: %+v", got)
	}
	for _, bad := range []Retention{{KeepLast: -1}, {KeepWithin: -time.Second}, {KeepAll: true, KeepLast: 3}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// The stored policies reach PruneCheckpoints: the repository's for branches without their
// own, a branch's own instead, none for an exempt branch; deleting a branch drops its policy.
func TestApplyRetention(t *testing.T) {
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
		for i := 0; i < 4; i++ {
			writeFile(t, ws, RootIno, "f", []byte(fmt.Sprint(n, i)))
			name := ""
			if i == 0 {
				name = "first"
			}
			if _, err := e.Checkpoint(ctx, n, name, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.SetRetention("", Retention{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRetention("b", Retention{KeepAll: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRetention("c", Retention{KeepLast: 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRetention("nosuch", Retention{KeepLast: 2}); err == nil {
		t.Error("a policy for a missing branch was stored")
	}
	res, err := e.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each branch: "create branch" commit, first (named), 3 more; the newest is the base.
	// a keeps 1 + named: prunes create and two; c keeps 2: prunes create and one.
	if got := map[string]int{"a": len(res.Pruned["a"]), "b": len(res.Pruned["b"]), "c": len(res.Pruned["c"])}; !reflect.DeepEqual(got, map[string]int{"a": 3, "b": 0, "c": 2}) {
		t.Errorf("pruned %v", got)
	}
	if err := e.DeleteBranch(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	stored, err := e.Retentions()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stored["c"]; ok || len(stored) != 2 {
		t.Errorf("after deleting c: %v", stored)
	}
}
