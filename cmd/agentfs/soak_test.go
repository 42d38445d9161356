package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakCounts are what a soak run did.
type soakCounts struct {
	ops, writes, forks, pushes, pushFails, kills, pulls, merges, gcs, gcBusy atomic.Int64
}

func (c *soakCounts) String() string {
	return fmt.Sprintf("%d operations: %d writes, %d forks, %d successful pushes (%d refused or failed), %d pushing CLIs SIGKILLed, %d pulls, %d merges into main, %d remote collections (%d busy)",
		c.ops.Load(), c.writes.Load(), c.forks.Load(), c.pushes.Load(), c.pushFails.Load(), c.kills.Load(), c.pulls.Load(), c.merges.Load(), c.gcs.Load(), c.gcBusy.Load())
}

// pushed is one push that reported success.
type pushed struct{ branch, commit string }

// TestSoakSharedBucket: four repositories (hosts) share one bucket through CLI processes.
// Each writes and checkpoints its own branch, forks, pushes (a random share of pushing CLIs
// are SIGKILLed mid-push), merges its branch into main, pushes main (pulling and merging
// when another host was first) and pulls, at random, while a fifth runs remote gc in a loop.
// At the end every host finishes its pushes, fsck --remote is clean on every host, a full
// clone of the bucket succeeds and is clean, and every push that reported success is in the
// history of its branch. AGENTFS_SOAK_DURATION (default 10s per backend) and
// AGENTFS_SOAK_SEED replay a run.
func TestSoakSharedBucket(t *testing.T) {
	dur := 10 * time.Second
	if s := os.Getenv("AGENTFS_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (AGENTFS_SOAK_SEED=%d replays it), %v per backend", seed, seed, dur)
	t.Setenv("AGENTFS_LEASE_TTL", "3s")
	t.Setenv("AGENTFS_PACK_SIZE", strconv.Itoa(64<<10))
	t.Run("file", func(t *testing.T) { soak(t, "file://"+t.TempDir(), seed, dur) })
	t.Run("s3", func(t *testing.T) { soak(t, s3Remote(t, "soak"), seed+1, dur) })
}

func soak(t *testing.T, url string, seed uint64, dur time.Duration) {
	const hosts = 4
	var counts soakCounts
	var ledgerMu sync.Mutex
	var ledger []pushed

	// The first host creates main and pushes it; the others clone.
	repos := make([]string, hosts)
	repos[0] = newRepo(t)
	ok(t, repos[0], "import", "main", writeTree(t, map[string]string{"README": "soak\n"}))
	ok(t, repos[0], "remote", "add", "origin", url)
	ok(t, repos[0], "push", "origin", "main")
	for i := 1; i < hosts; i++ {
		repos[i] = filepath.Join(t.TempDir(), "repo")
		ok(t, repos[i], "clone", url)
	}
	gcRepo := filepath.Join(t.TempDir(), "gc")
	ok(t, gcRepo, "clone", url)

	// run runs a CLI command; kill > 0 SIGKILLs it after that long. It returns stdout, the
	// exit code (-1 when killed) and stderr.
	run := func(repo string, kill time.Duration, args ...string) (string, int, string) {
		cmd := exec.Command(agentfsBin, append([]string{"--repo", repo}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return "", 1, err.Error()
		}
		if kill > 0 {
			timer := time.AfterFunc(kill, func() { cmd.Process.Kill() })
			defer timer.Stop()
		}
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
				code = -1
			}
		}
		if strings.Contains(errb.String(), "panic") {
			t.Errorf("agentfs %s crashed:\n%s", strings.Join(args, " "), firstPanic(errb.String()))
		}
		return out.String(), code, errb.String()
	}
	push := func(rng *rand.Rand, repo, br string, mayKill bool) bool {
		var kill time.Duration
		if mayKill && rng.IntN(3) == 0 {
			kill = time.Duration(rng.IntN(400)) * time.Millisecond
		}
		out, code, stderr := run(repo, kill, "push", "origin", br, "--json")
		switch {
		case code == -1:
			counts.kills.Add(1)
		case code == 0:
			var res struct{ Commit string }
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Commit == "" {
				t.Errorf("push %s printed %q", br, out)
			}
			counts.pushes.Add(1)
			ledgerMu.Lock()
			ledger = append(ledger, pushed{br, res.Commit})
			ledgerMu.Unlock()
			return true
		default:
			counts.pushFails.Add(1)
			if !strings.Contains(stderr, "rejected") && !strings.Contains(stderr, "busy") {
				t.Logf("push %s: %s", br, strings.TrimSpace(stderr))
			}
		}
		return false
	}

	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	stopGC := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stopGC:
				return
			default:
			}
			_, code, stderr := run(gcRepo, 0, "remote", "gc", "origin", "--grace", "1s")
			switch {
			case code == 0:
				counts.gcs.Add(1)
			case strings.Contains(stderr, "busy"):
				counts.gcBusy.Add(1)
				time.Sleep(100 * time.Millisecond)
			default:
				t.Errorf("remote gc: %s", strings.TrimSpace(stderr))
				time.Sleep(time.Second)
			}
		}
	}()
	forks := make([][]string, hosts)
	for i := 0; i < hosts; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			repo, own := repos[i], fmt.Sprintf("h%d", i)
			work := t.TempDir()
			ok(t, repo, "branch", "create", own, "--from", "main")
			for n := 0; time.Now().Before(deadline); n++ {
				counts.ops.Add(1)
				switch op := rng.IntN(10); {
				case op < 3: // write and checkpoint (import checkpoints)
					name := filepath.Join(work, fmt.Sprintf("w%d", i), fmt.Sprintf("f%03d", rng.IntN(40)))
					os.MkdirAll(filepath.Dir(name), 0o755)
					data := make([]byte, rng.IntN(200<<10))
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					os.WriteFile(name, data, 0o644)
					if _, code, stderr := run(repo, 0, "import", own, work); code != 0 {
						t.Errorf("import: %s", stderr)
					}
					counts.writes.Add(1)
				case op < 4: // fork and push the fork
					fork := fmt.Sprintf("h%d-f%d", i, n)
					if _, code, stderr := run(repo, 0, "fork", own, fork); code != 0 {
						t.Errorf("fork: %s", stderr)
						continue
					}
					forks[i] = append(forks[i], fork)
					counts.forks.Add(1)
					push(rng, repo, fork, true)
				case op < 6:
					push(rng, repo, own, true)
				case op < 8: // merge into main and push main, pulling when another host was first
					if _, code, stderr := run(repo, 0, "merge", own, "--into", "main", "--strategy", "theirs"); code != 0 {
						t.Errorf("merge: %s", stderr)
						continue
					}
					counts.merges.Add(1)
					for try := 0; try < 3; try++ {
						if push(rng, repo, "main", try == 0) {
							break
						}
						run(repo, 0, "pull", "origin", "main")
						counts.pulls.Add(1)
					}
				default:
					if _, code, stderr := run(repo, 0, "pull", "origin", "main"); code != 0 && !strings.Contains(stderr, "busy") {
						t.Logf("pull: %s", strings.TrimSpace(stderr))
					}
					counts.pulls.Add(1)
				}
			}
		}(i)
	}
	wg.Wait()
	close(stopGC)
	<-gcDone
	t.Logf("%s", counts.String())

	// Every host finishes what was interrupted; then every host's view is clean.
	time.Sleep(3 * time.Second) // leases of killed pushes expire (AGENTFS_LEASE_TTL)
	for i, repo := range repos {
		for _, br := range append([]string{fmt.Sprintf("h%d", i)}, forks[i]...) {
			for try := 0; ; try++ {
				if _, code, stderr := run(repo, 0, "push", "origin", br); code == 0 {
					break
				} else if try == 5 {
					t.Fatalf("host %d: final push of %s: %s", i, br, stderr)
				}
			}
		}
		for try := 0; ; try++ {
			run(repo, 0, "pull", "origin", "main")
			if _, code, stderr := run(repo, 0, "push", "origin", "main"); code == 0 {
				break
			} else if try == 5 {
				t.Fatalf("host %d: final push of main: %s", i, stderr)
			}
		}
	}
	for i, repo := range repos {
		if out, code, stderr := run(repo, 0, "fsck", "--remote"); code != 0 {
			t.Errorf("host %d: fsck --remote: exit %d\n%s%s", i, code, lastLines(out, 10), stderr)
		}
	}
	// One more collection, then a full clone of everything.
	if _, code, stderr := run(gcRepo, 0, "remote", "gc", "origin", "--grace", "0s"); code != 0 {
		t.Errorf("final remote gc: %s", stderr)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	ok(t, clone, "clone", url, "--full")
	if out, code, stderr := run(clone, 0, "fsck", "--remote", "--verify-data"); code != 0 {
		t.Errorf("fsck --remote --verify-data of a full clone: exit %d\n%s%s", code, lastLines(out, 10), stderr)
	}
	// No push that reported success is lost: each is in its branch's history.
	history := map[string]map[string]bool{}
	for _, p := range ledger {
		if history[p.branch] == nil {
			var log []struct{ ID string }
			out := ok(t, clone, "log", p.branch, "--json")
			if err := json.Unmarshal([]byte(out), &log); err != nil {
				t.Fatal(err)
			}
			history[p.branch] = map[string]bool{}
			for _, c := range log {
				history[p.branch][c.ID] = true
			}
		}
		if !history[p.branch][p.commit] {
			t.Errorf("push of %s at %s reported success but is not in the branch's history", p.branch, p.commit)
		}
	}
	t.Logf("%d successful pushes checked against %d branches", len(ledger), len(history))
}
