package main

import (
	"bytes"
	"context"
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
	"syscall"
	"testing"
	"time"
)

// soakCounts are what a soak run did.
type soakCounts struct {
	ops, writes, forks, pushes, pushFails, pulls, merges, gcs, gcBusy, gcLost atomic.Int64

	cliKills     atomic.Int64 // CLIs SIGKILLed while their daemon ran the push for them
	directKills  atomic.Int64 // CLIs SIGKILLed while pushing themselves (their daemon was down)
	daemonKills  atomic.Int64 // daemons SIGKILLed while they pushed
	daemonStarts atomic.Int64 // restarts after a kill
}

func (c *soakCounts) String() string {
	return fmt.Sprintf("%d operations: %d writes, %d forks, %d successful pushes (%d refused or failed), %d pulls, %d merges into main, %d remote collections (%d busy, %d stopped by their fence); SIGKILLs: %d daemons mid-push (%d restarts), %d CLIs pushing through a daemon, %d CLIs pushing themselves",
		c.ops.Load(), c.writes.Load(), c.forks.Load(), c.pushes.Load(), c.pushFails.Load(), c.pulls.Load(), c.merges.Load(),
		c.gcs.Load(), c.gcBusy.Load(), c.gcLost.Load(), c.daemonKills.Load(), c.daemonStarts.Load(), c.cliKills.Load(), c.directKills.Load())
}

// pushed is one push that reported success, by host.
type pushed struct {
	host           int
	branch, commit string
}

// soakCmdTimeout bounds every command of a soak: a command that hangs fails the run with its
// name instead of eating the test's timeout.
const soakCmdTimeout = 5 * time.Minute

// soakHost is one host: a repository, served by a daemon that the soak SIGKILLs mid-push and
// starts again. Only the host's own goroutine starts, reaps or stops its daemon.
type soakHost struct {
	repo string
	env  []string
	cmd  *exec.Cmd // the running daemon; nil while it is down
	done chan struct{}
	log  *bytes.Buffer
	down int // operations left to run without a daemon (the CLI then opens the repository)
}

// start starts the daemon and waits until its socket answers.
func (h *soakHost) start() error {
	cmd := exec.Command(agentfsBin, "--repo", h.repo, "serve")
	cmd.Env = h.env
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	h.cmd, h.done, h.log = cmd, done, &logb
	sock := filepath.Join(h.repo, "agentfs.sock")
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if c, err := dialUnix(sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			h.cmd = nil
			return fmt.Errorf("daemon of %s exited at start:\n%s", h.repo, lastLines(logb.String(), 10))
		case <-time.After(50 * time.Millisecond):
		}
	}
	h.kill()
	return fmt.Errorf("daemon of %s did not answer within a minute:\n%s", h.repo, lastLines(logb.String(), 10))
}

func (h *soakHost) up() bool { return h.cmd != nil }

// kill SIGKILLs the daemon (if not already dead) and reaps it.
func (h *soakHost) kill() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Kill()
	<-h.done
	h.cmd = nil
}

// stop asks the daemon to stop and waits a bounded time.
func (h *soakHost) stop() error {
	if h.cmd == nil {
		return nil
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		h.cmd = nil
		return nil
	case <-time.After(30 * time.Second):
		h.kill()
		return fmt.Errorf("daemon of %s did not stop on SIGTERM within 30s", h.repo)
	}
}

// TestSoakSharedBucket: four hosts, each a repository served by its own daemon, share one
// bucket. Each writes and checkpoints its own branch, forks, pushes, merges its branch into
// main, pushes main (pulling and merging when another host was first) and pulls, at random,
// through its daemon, while a fifth host's daemon runs remote gc in a loop. A third of the
// pushes are SIGKILLed mid-way: either the daemon doing the push (it is then started again
// at once, or left down for a few operations, during which the CLI pushes by itself) or the
// CLI. At the end every host finishes its pushes; fsck --remote --verify-data is clean on
// every host and on a full clone of the bucket; every branch of that clone is at the commit
// that its last successful push reported and exports exactly what the pushing host exports
// for that commit; every push that reported success is in its branch's history. The counts
// of operations and kills are logged. AGENTFS_SOAK_DURATION (default 10s per backend) and
// AGENTFS_SOAK_SEED replay a run; the file:// and S3 halves run at the same time.
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
	env := append(os.Environ(), "AGENTFS_LEASE_TTL=3s", "AGENTFS_PACK_SIZE="+strconv.Itoa(64<<10))
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		soak(t, "file://"+t.TempDir(), env, seed, dur)
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		url, s3env := s3Bucket(t, "soak")
		soak(t, url, append(env[:len(env):len(env)], s3env...), seed+1, dur)
	})
}

func soak(t *testing.T, url string, env []string, seed uint64, dur time.Duration) {
	const hosts, maxForks = 4, 4
	var counts soakCounts
	backend, _, _ := strings.Cut(url, ":")
	var ledgerMu sync.Mutex
	var ledger []pushed

	// run runs a CLI command on host h; killAfter > 0 SIGKILLs, after that long, the daemon
	// (killDaemon) or the CLI. It returns stdout, the exit code (-1 when the CLI was killed),
	// stderr, and whether the daemon was killed.
	run := func(h *soakHost, killAfter time.Duration, killDaemon bool, args ...string) (string, int, string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), soakCmdTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, agentfsBin, append([]string{"--repo", h.repo}, args...)...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return "", 1, err.Error(), false
		}
		var daemonKilled atomic.Bool
		var timer *time.Timer
		if killAfter > 0 {
			target := cmd.Process
			if killDaemon {
				target = h.cmd.Process
			}
			timer = time.AfterFunc(killAfter, func() {
				target.Kill()
				daemonKilled.Store(killDaemon)
			})
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		what := strings.Join(args, " ")
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = -1
			}
		}
		if ctx.Err() != nil {
			t.Errorf("agentfs %s did not finish within %v", what, soakCmdTimeout)
			code = 1
		}
		if strings.Contains(errb.String(), "panic") {
			t.Errorf("agentfs %s crashed:\n%s", what, firstPanic(errb.String()))
		}
		return out.String(), code, errb.String(), daemonKilled.Load()
	}
	must := func(h *soakHost, args ...string) string {
		t.Helper()
		out, code, stderr, _ := run(h, 0, false, args...)
		if code != 0 {
			t.Fatalf("agentfs %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
		}
		return out
	}
	// push pushes br from host i; with mayKill, a third of the pushes are SIGKILLed.
	push := func(rng *rand.Rand, i int, h *soakHost, br string, mayKill bool) bool {
		var after time.Duration
		killDaemon := false
		if mayKill && rng.IntN(3) == 0 {
			after = time.Duration(1+rng.IntN(400)) * time.Millisecond
			killDaemon = h.up() && rng.IntN(2) == 0
		}
		throughDaemon := h.up()
		out, code, stderr, daemonKilled := run(h, after, killDaemon, "push", "origin", br, "--json")
		if daemonKilled {
			counts.daemonKills.Add(1)
			h.kill() // reap it
			if rng.IntN(2) == 0 {
				h.down = 1 + rng.IntN(4)
			}
		}
		switch {
		case code == -1 && throughDaemon:
			counts.cliKills.Add(1)
		case code == -1:
			counts.directKills.Add(1)
		case code == 0:
			var res struct{ Commit string }
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Commit == "" {
				t.Errorf("push %s printed %q", br, out)
			}
			counts.pushes.Add(1)
			ledgerMu.Lock()
			ledger = append(ledger, pushed{i, br, res.Commit})
			ledgerMu.Unlock()
			return true
		case daemonKilled:
		default:
			counts.pushFails.Add(1)
			if !strings.Contains(stderr, "rejected") && !strings.Contains(stderr, "busy") {
				t.Logf("push %s: %s", br, strings.TrimSpace(stderr))
			}
		}
		return false
	}

	// Hosts: the first creates main and pushes it; the others clone. Every repository is
	// then served by a daemon, the collector's too.
	hs := make([]*soakHost, hosts+1)
	for i := range hs {
		hs[i] = &soakHost{repo: filepath.Join(t.TempDir(), "repo"), env: env}
	}
	gcHost := hs[hosts]
	must(hs[0], "init")
	must(hs[0], "import", "main", writeTree(t, map[string]string{"README": "soak\n"}))
	must(hs[0], "remote", "add", "origin", url)
	must(hs[0], "push", "origin", "main")
	for _, h := range hs[1:] {
		must(h, "clone", url)
	}
	for _, h := range hs {
		if err := h.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.kill)
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
			_, code, stderr, _ := run(gcHost, 0, false, "remote", "gc", "origin", "--grace", "1s")
			switch {
			case code == 0:
				counts.gcs.Add(1)
			case strings.Contains(stderr, "busy"):
				counts.gcBusy.Add(1)
				time.Sleep(100 * time.Millisecond)
			case strings.Contains(stderr, "lease lost"):
				// A collection stalled past its lease (the machine is loaded and the TTL
				// short): the fence stopped it before its next write or delete.
				counts.gcLost.Add(1)
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
			h, own := hs[i], fmt.Sprintf("h%d", i)
			work := t.TempDir()
			if _, code, stderr, _ := run(h, 0, false, "branch", "create", own, "--from", "main"); code != 0 {
				t.Errorf("host %d: branch create: %s", i, stderr)
				return
			}
			for n := 0; time.Now().Before(deadline); n++ {
				if !h.up() {
					if h.down > 0 {
						h.down--
					} else if err := h.start(); err != nil {
						t.Errorf("host %d: %v", i, err)
						return
					} else {
						counts.daemonStarts.Add(1)
					}
				}
				counts.ops.Add(1)
				op := rng.IntN(10)
				if op == 3 && len(forks[i]) >= maxForks {
					op = 0 // the branches stay few, so that the end's checks stay bounded
				}
				switch {
				case op < 3: // write and checkpoint (import checkpoints)
					name := filepath.Join(work, fmt.Sprintf("w%d", i), fmt.Sprintf("f%02d", rng.IntN(20)))
					os.MkdirAll(filepath.Dir(name), 0o755)
					data := make([]byte, rng.IntN(200<<10))
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					os.WriteFile(name, data, 0o644)
					if _, code, stderr, _ := run(h, 0, false, "import", own, work); code != 0 {
						t.Errorf("host %d: import: %s", i, stderr)
					}
					counts.writes.Add(1)
				case op < 4: // fork and push the fork
					fork := fmt.Sprintf("h%d-f%d", i, n)
					if _, code, stderr, _ := run(h, 0, false, "fork", own, fork); code != 0 {
						t.Errorf("host %d: fork: %s", i, stderr)
						continue
					}
					forks[i] = append(forks[i], fork)
					counts.forks.Add(1)
					push(rng, i, h, fork, true)
				case op < 6:
					push(rng, i, h, own, true)
				case op < 8: // merge into main and push main, pulling when another host was first
					if _, code, stderr, _ := run(h, 0, false, "merge", own, "--into", "main", "--strategy", "theirs"); code != 0 {
						t.Errorf("host %d: merge: %s", i, stderr)
						continue
					}
					counts.merges.Add(1)
					for try := 0; try < 3; try++ {
						if push(rng, i, h, "main", try == 0) {
							break
						}
						run(h, 0, false, "pull", "origin", "main")
						counts.pulls.Add(1)
					}
				default:
					if _, code, stderr, _ := run(h, 0, false, "pull", "origin", "main"); code != 0 && !strings.Contains(stderr, "busy") {
						t.Logf("host %d: pull: %s", i, strings.TrimSpace(stderr))
					}
					counts.pulls.Add(1)
				}
			}
		}(i)
	}
	wg.Wait()
	close(stopGC)
	<-gcDone
	t.Logf("%s: %s", backend, counts.String())
	if t.Failed() {
		return
	}

	// The end, each step timed: every host finishes what was interrupted, through its
	// daemon; then the bucket is checked from every host and from a full clone.
	step := time.Now()
	took := func(what string) {
		t.Logf("%s end: %s took %v", backend, what, time.Since(step).Round(time.Millisecond))
		step = time.Now()
	}
	time.Sleep(3 * time.Second) // leases of killed pushes expire (AGENTFS_LEASE_TTL)
	rng := rand.New(rand.NewPCG(seed, 99))
	for i, h := range hs[:hosts] {
		if !h.up() {
			if err := h.start(); err != nil {
				t.Fatalf("host %d: %v", i, err)
			}
			counts.daemonStarts.Add(1)
		}
		for _, br := range append([]string{fmt.Sprintf("h%d", i)}, forks[i]...) {
			for try := 0; !push(rng, i, h, br, false); try++ {
				if try == 5 {
					t.Fatalf("host %d: final push of %s failed 6 times", i, br)
				}
				time.Sleep(time.Second)
			}
		}
		for try := 0; ; try++ {
			run(h, 0, false, "pull", "origin", "main")
			if push(rng, i, h, "main", false) {
				break
			} else if try == 5 {
				t.Fatalf("host %d: final push of main failed 6 times", i)
			}
			time.Sleep(time.Second)
		}
	}
	took("final pushes")
	for i, h := range hs[:hosts] {
		if out, code, stderr, _ := run(h, 0, false, "fsck", "--remote", "--verify-data"); code != 0 {
			t.Errorf("host %d: fsck --remote --verify-data: exit %d\n%s%s", i, code, lastLines(out, 10), stderr)
		}
	}
	took("fsck --remote --verify-data on every host")
	for try := 0; ; try++ {
		_, code, stderr, _ := run(gcHost, 0, false, "remote", "gc", "origin", "--grace", "0s")
		if code == 0 {
			break
		} else if try == 2 || !strings.Contains(stderr, "lease lost") {
			t.Fatalf("final remote gc: %s", stderr)
		}
	}
	took("a last remote gc")
	clone := &soakHost{repo: filepath.Join(t.TempDir(), "clone"), env: env}
	must(clone, "clone", url, "--full")
	took("a full clone")
	if out, code, stderr, _ := run(clone, 0, false, "fsck", "--remote", "--verify-data"); code != 0 {
		t.Errorf("fsck --remote --verify-data of a full clone: exit %d\n%s%s", code, lastLines(out, 10), stderr)
	}
	took("fsck --remote --verify-data of the clone")

	// Every branch is at its last successful push (the end's pushes ran one at a time, so
	// the ledger's order is the bucket's) and exports what the pushing host exports there.
	last := map[string]pushed{}
	for _, p := range ledger {
		last[p.branch] = p
	}
	for br, p := range last {
		var log []struct{ ID string }
		if err := json.Unmarshal([]byte(must(clone, "log", br, "--json", "-n", "1")), &log); err != nil || len(log) == 0 {
			t.Fatalf("log %s: %v", br, err)
		}
		if log[0].ID != p.commit {
			t.Errorf("branch %s is at %s in the bucket, but its last successful push (host %d) reported %s", br, log[0].ID, p.host, p.commit)
			continue
		}
		fromClone, fromHost := filepath.Join(t.TempDir(), "x"), filepath.Join(t.TempDir(), "x")
		must(clone, "export", br, fromClone)
		must(hs[p.host], "export", p.commit, fromHost)
		sameTree(t, fromHost, fromClone)
	}
	took(fmt.Sprintf("exports of %d branches compared", len(last)))
	// No push that reported success is lost: each is in its branch's history.
	history := map[string]map[string]bool{}
	for _, p := range ledger {
		if history[p.branch] == nil {
			var log []struct{ ID string }
			if err := json.Unmarshal([]byte(must(clone, "log", p.branch, "--json")), &log); err != nil {
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
	took(fmt.Sprintf("%d successful pushes found in the history of %d branches", len(ledger), len(history)))
	for _, h := range hs {
		if err := h.stop(); err != nil {
			t.Error(err)
		}
	}
	took("daemons stopped")
	t.Logf("%s totals: %s", backend, counts.String())
}
