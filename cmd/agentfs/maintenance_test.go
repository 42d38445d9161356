package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A retention policy set through the CLI is applied by the daemon's scheduled maintenance
// before gc: the old unnamed checkpoints are pruned, the named one, the newest ones and an
// exempt branch's are kept, their space comes back, and agentfs status shows the policy,
// the last gc and the next one.
func TestRetentionScheduledMaintenance(t *testing.T) {
	repo := newRepo(t)
	for i := 0; i < 5; i++ {
		dir := t.TempDir()
		randomFile(t, dir, "data", 1<<20)
		ok(t, repo, "import", "main", dir)
		if i == 1 {
			ok(t, repo, "checkpoint", "main", "--name", "keepme")
		}
	}
	ok(t, repo, "fork", "main", "exempt")
	dir := t.TempDir()
	randomFile(t, dir, "data", 1<<20)
	ok(t, repo, "import", "exempt", dir)
	dir = t.TempDir()
	randomFile(t, dir, "data", 1<<20)
	ok(t, repo, "import", "exempt", dir)

	ok(t, repo, "retention", "--keep-last", "2")
	ok(t, repo, "retention", "exempt", "--keep-all")
	if r := agentfs(t, repo, "retention", "main", "--keep-within", "soon"); r.code != 2 {
		t.Errorf("--keep-within soon: exit %d %q", r.code, r.stderr)
	}
	out := ok(t, repo, "status")
	for _, want := range []string{"repository: keep the last 2", "branch exempt: keep all", "last gc:    never", "no daemon runs maintenance"} {
		if !strings.Contains(out, want) {
			t.Errorf("status without daemon lacks %q:\n%s", want, out)
		}
	}

	d := startDaemon(t, repo, "--gc-every", "1s", "--gc-check-every", "200ms")
	var st struct {
		Maintenance struct {
			LastGC *struct {
				Why          string `json:"why"`
				Pruned       int    `json:"pruned_checkpoints"`
				DeletedBytes int64  `json:"deleted_bytes"`
			} `json:"last_gc"`
			Schedule *struct {
				NextGC time.Time `json:"next_gc"`
			} `json:"schedule"`
		} `json:"maintenance"`
	}
	// Fail-safe only: the first check comes after 200ms.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := json.Unmarshal([]byte(ok(t, repo, "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if g := st.Maintenance.LastGC; g != nil && g.Why == "scheduled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled gc within a minute:\n%s", d.log.String())
		}
	}
	// The first scheduled run pruned the old checkpoints of main (not exempt's) and gc
	// freed the random files only they held; later runs find nothing more.
	var prunedN, blocks, freed int64
	if i := strings.Index(d.log.String(), "retention and gc (scheduled): "); i < 0 {
		t.Errorf("daemon log:\n%s", d.log.String())
	} else {
		fmt.Sscanf(d.log.String()[i:], "retention and gc (scheduled): pruned %d checkpoints; deleted %d blocks, %d bytes", &prunedN, &blocks, &freed)
		// Pruned: the empty first checkpoint and imports 0, 1 and 2. Imports 0 and 2 held a
		// 1 MiB random file nothing else holds; import 1's file stays with keepme.
		if prunedN != 4 || freed < 2<<20 || freed > 3<<20 {
			t.Errorf("first scheduled run pruned %d checkpoints and freed %d bytes; want 4 and 2 MiB", prunedN, freed)
		}
	}
	if st.Maintenance.Schedule == nil || st.Maintenance.Schedule.NextGC.IsZero() {
		t.Errorf("status --json shows no next gc: %+v", st.Maintenance)
	}
	type entry struct {
		Name   string `json:"name"`
		Pruned bool   `json:"pruned"`
	}
	var log []entry
	json.Unmarshal([]byte(ok(t, repo, "log", "main", "--json")), &log)
	var pruned []string
	for i, e := range log {
		if e.Pruned {
			pruned = append(pruned, fmt.Sprint(i))
			if i < 2 || e.Name == "keepme" {
				t.Errorf("checkpoint %d (%q) of main pruned; the 2 newest and named ones are kept", i, e.Name)
			}
		}
	}
	if len(pruned) < 3 {
		t.Errorf("pruned entries %v of %d in main's log, want the unnamed ones beyond the newest 2", pruned, len(log))
	}
	var exempt []entry
	json.Unmarshal([]byte(ok(t, repo, "log", "exempt", "--json")), &exempt)
	for i, e := range exempt {
		if e.Pruned && i < 2 {
			t.Errorf("exempt branch: its own checkpoint %d was pruned", i)
		}
	}
	out = ok(t, repo, "status")
	for _, want := range []string{"retention:  repository: keep the last 2", "last gc:", "(scheduled)", "next gc:    "} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// agentfs maintenance --run does the same at once, through the daemon.
	out = ok(t, repo, "maintenance", "--run")
	if !strings.Contains(out, "ran:        pruned 0 checkpoints") || !strings.Contains(out, "(agentfs maintenance)") {
		t.Errorf("maintenance --run:\n%s", out)
	}
	d.stop(t)
	ok(t, repo, "fsck")
}
