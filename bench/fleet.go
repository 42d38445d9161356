package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

// The fleet rows: what an orchestrator with thousands of branches sees. Each runs through a
// real daemon on a repository of its own.

type fleetSizes struct {
	branches int // branches created, listed, checkpointed
	cycles   int // mount + unmount cycles
	parallel int // branches checkpointing at once
	tree     int // files in the checkpoint the branches fork
}

func fleetConfig(cfg Config) fleetSizes {
	if cfg.Quick {
		return fleetSizes{branches: 1_000, cycles: 100, parallel: 16, tree: 1_000}
	}
	return fleetSizes{branches: 10_000, cycles: 1_000, parallel: 16, tree: 10_000}
}

// RunFleet runs only the fleet rows (agentfs-bench -fleet).
func RunFleet(ctx context.Context, cfg Config, cl *Cleanup) (*Report, error) {
	s := &suite{cfg: cfg, cl: cl, rep: &Report{Started: time.Now(), Quick: cfg.Quick, Machine: Machine(cfg.WorkDir)}}
	s.logf = func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "[%6.1fs] %s\n", time.Since(s.rep.Started).Seconds(), fmt.Sprintf(format, a...))
		}
	}
	s.pool = newPool(1)
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	err := s.fleet(ctx)
	s.rep.Duration = time.Since(s.rep.Started)
	return s.rep, err
}

func (s *suite) fleet(ctx context.Context) error {
	fs := fleetConfig(s.cfg)
	repoDir := filepath.Join(s.cfg.WorkDir, "fleet-repo")
	os.RemoveAll(repoDir)
	s.cl.Add(func() { os.RemoveAll(repoDir) })
	r, err := repo.Init(ctx, repoDir)
	if err != nil {
		return err
	}
	base, err := BuildTree(ctx, r.Engine, "fleetbase", fs.tree)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d, err := StartDaemon(s.cfg.Bin, repoDir, filepath.Join(s.cfg.WorkDir, "fleet-daemon.log"), "", s.cl)
	if err != nil {
		return err
	}
	defer d.Stop()
	c := d.Client
	n := fs.branches
	params := fmt.Sprintf("forks of a %s-file checkpoint, daemon API", count(fs.tree))

	// Create n branches; time branch list at 50 and at n.
	s.logf("fleet: creating %d branches", n)
	var lat []time.Duration
	var list50 Value
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		if _, err := c.CreateBranch(ctx, fmt.Sprintf("f%05d", i), base.String()); err != nil {
			s.row("fleet", fmt.Sprintf("create %s branches", count(n)), params, errValue(err), nil)
			return nil
		}
		lat = append(lat, time.Since(t))
		if i+1 == 50 {
			list50 = s.timeList(repoDir)
		}
	}
	v := Latencies(lat)
	v.Text = "total " + fmtDur(time.Since(start))
	s.row("fleet", fmt.Sprintf("create %s branches", count(n)), params+", one after another, synced", v, nil)
	listN := s.timeList(repoDir)
	s.row("fleet", "branch list, 50 branches", "CLI against the daemon, median of 5", list50, nil)
	s.row("fleet", fmt.Sprintf("branch list, %s branches", count(n)), "CLI against the daemon, median of 5", listN, nil)
	if list50.Dur > 0 && listN.Dur > 0 {
		f := float64(listN.Dur) / float64(list50.Dur)
		s.rep.add(&Row{Area: "fleet", Figure: fmt.Sprintf("branch list: %s branches / 50", count(n)), Params: "ratio of the medians",
			AgentFS: Value{Text: fmt.Sprintf("%.1fx", f)},
			target:  &Target{Text: "<= 200x", Check: func(*Row) (bool, bool) { return f <= 200, true }}})
	}

	// Write a file in each branch and checkpoint it.
	s.logf("fleet: checkpointing %d branches", n)
	lat = lat[:0]
	start = time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%05d", i)
		t := time.Now()
		err := c.WriteFile(ctx, name, "agent.txt", []byte(name))
		if err == nil {
			_, err = c.Checkpoint(ctx, name, "", "work of "+name)
		}
		if err != nil {
			s.row("fleet", fmt.Sprintf("write + checkpoint each of %s branches", count(n)), params, errValue(err), nil)
			return nil
		}
		lat = append(lat, time.Since(t))
	}
	v = Latencies(lat)
	v.Text = "total " + fmtDur(time.Since(start))
	s.row("fleet", fmt.Sprintf("write a file + checkpoint, each of %s branches", count(n)), "daemon API, one after another, synced", v, nil)

	s.parallelCheckpoints(ctx, c, fs.parallel)
	s.mountCycles(ctx, d, fs.cycles, n)
	s.gcPause(ctx, d)
	return nil
}

// timeList runs `agentfs branch list` five times and returns the median wall time.
func (s *suite) timeList(repoDir string) Value {
	var ds []time.Duration
	for i := 0; i < 5; i++ {
		t := time.Now()
		out, err := exec.Command(s.cfg.Bin, "--repo", repoDir, "branch", "list").CombinedOutput()
		if err != nil {
			return errValue(fmt.Errorf("branch list: %v: %s", err, out))
		}
		ds = append(ds, time.Since(t))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return Value{Dur: ds[len(ds)/2]}
}

// parallelCheckpoints times k branches checkpointing at once against one alone. With
// per-branch locks, the k synced commits share fsyncs instead of queueing behind one lock.
func (s *suite) parallelCheckpoints(ctx context.Context, c *api.Client, k int) {
	s.logf("fleet: %d checkpoints in parallel", k)
	const rounds = 5
	round := func(r, branches int) (time.Duration, error) {
		for i := 0; i < branches; i++ {
			name := fmt.Sprintf("f%05d", i)
			if err := c.WriteFile(ctx, name, "round.txt", []byte(fmt.Sprint(r))); err != nil {
				return 0, err
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, branches)
		t := time.Now()
		for i := 0; i < branches; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, errs[i] = c.Checkpoint(ctx, fmt.Sprintf("f%05d", i), "", "parallel")
			}(i)
		}
		wg.Wait()
		dt := time.Since(t)
		for _, err := range errs {
			if err != nil {
				return 0, err
			}
		}
		return dt, nil
	}
	var one, many []time.Duration
	for r := 0; r < rounds; r++ {
		d1, err := round(2*r, 1)
		if err != nil {
			s.row("fleet", "checkpoints in parallel", "", errValue(err), nil)
			return
		}
		dk, err := round(2*r+1, k)
		if err != nil {
			s.row("fleet", "checkpoints in parallel", "", errValue(err), nil)
			return
		}
		one, many = append(one, d1), append(many, dk)
	}
	v1, vk := Latencies(one), Latencies(many)
	s.row("fleet", "checkpoint of 1 branch alone", fmt.Sprintf("one changed file, synced, %d rounds", rounds), v1, nil)
	f := float64(vk.P50) / float64(v1.P50)
	vk.Text = fmt.Sprintf("(%.1fx one alone; %dx if they queued)", f, k)
	s.row("fleet", fmt.Sprintf("%d checkpoints of %d branches at once", k, k), fmt.Sprintf("one changed file each, synced, %d rounds, wall time", rounds), vk,
		&Target{Text: fmt.Sprintf("< %dx one alone", k/2), Check: func(*Row) (bool, bool) { return f < float64(k/2), v1.P50 > 0 }})
}

// mountCycles mounts and unmounts branches cycles times (a different branch each time,
// reading a file through each mount), twice, and compares the daemon's RSS: the first pass
// also fills the bounded caches (Pebble's block cache, the tree node cache) with the trees
// of the branches it mounts, so a leak shows as growth over the second pass.
func (s *suite) mountCycles(ctx context.Context, d *Daemon, cycles, branches int) {
	s.logf("fleet: 2 x %d mount/unmount cycles", cycles)
	dir := filepath.Join(s.cfg.WorkDir, "fleet-mnt")
	cycle := func(i int) error {
		name := fmt.Sprintf("f%05d", i%branches)
		if err := d.Mount(ctx, name, dir); err != nil {
			return err
		}
		_, rerr := os.ReadFile(filepath.Join(dir, "agent.txt"))
		if err := d.Client.Unmount(ctx, dir); err != nil {
			return err
		}
		return rerr
	}
	fail := func(err error) { s.row("fleet", "mount + unmount cycles", "", errValue(err), nil) }
	// rss waits until the daemon gave back the memory of the last unmounts (0.5s after).
	rss := func() (int64, error) {
		time.Sleep(2 * time.Second)
		return d.RSS()
	}
	for i := 0; i < 10; i++ { // the first mounts allocate what every later one reuses
		if err := cycle(i); err != nil {
			fail(err)
			return
		}
	}
	start, err := rss()
	if err != nil {
		fail(err)
		return
	}
	var lat []time.Duration
	var pass [2]int64
	for p := range pass {
		for i := 0; i < cycles; i++ {
			t := time.Now()
			if err := cycle(i); err != nil {
				fail(err)
				return
			}
			lat = append(lat, time.Since(t))
		}
		if pass[p], err = rss(); err != nil {
			fail(err)
			return
		}
	}
	s.row("fleet", fmt.Sprintf("mount + read + unmount, 2 x %s cycles", count(cycles)), "daemon API, a different branch each cycle", Latencies(lat), nil)
	s.row("fleet", fmt.Sprintf("daemon RSS after %s mount/unmount cycles", count(cycles)), "VmRSS of agentfs serve, caches cold",
		Value{Bytes: pass[0], Text: fmt.Sprintf("(before: %s, %+.1f%%)", fmtBytes(start), 100*float64(pass[0]-start)/float64(start))}, nil)
	grow := float64(pass[1]-pass[0]) / float64(pass[0])
	s.row("fleet", fmt.Sprintf("daemon RSS after %s more cycles", count(cycles)), "VmRSS of agentfs serve, same branches again",
		Value{Bytes: pass[1], Text: fmt.Sprintf("(before: %s, %+.1f%%)", fmtBytes(pass[0]), 100*grow)},
		&Target{Text: "within 20% of before", Check: func(*Row) (bool, bool) { return grow <= 0.2, true }})
}

// gcPause measures the longest time a writer waits for one small file write while gc runs
// (after a branch holding 256 MiB was deleted), against the same writer without gc.
func (s *suite) gcPause(ctx context.Context, d *Daemon) {
	s.logf("fleet: writer pauses during gc")
	c := d.Client
	const garbage = "gcgarbage"
	if _, err := c.CreateBranch(ctx, garbage, ""); err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	for i := 0; i < 64; i++ {
		if err := c.WriteFile(ctx, garbage, fmt.Sprintf("g%02d", i), s.pool.chunk(int64(i)<<22, 4<<20)); err != nil {
			s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
			return
		}
	}
	if _, err := c.Checkpoint(ctx, garbage, "", "garbage"); err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	if err := c.DeleteBranch(ctx, garbage); err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	mnt := filepath.Join(s.cfg.WorkDir, "fleet-writer")
	if err := d.Mount(ctx, "f00000", mnt); err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	defer c.Unmount(ctx, mnt)
	// write runs the writer until stop is closed and returns its op latencies.
	write := func(stop <-chan struct{}) ([]time.Duration, error) {
		var lat []time.Duration
		buf := s.pool.chunk(0, 4096)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return lat, nil
			default:
			}
			t := time.Now()
			if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("w%03d", i%256)), buf, 0o644); err != nil {
				return lat, err
			}
			lat = append(lat, time.Since(t))
		}
	}
	longest := func(l []time.Duration) time.Duration {
		var m time.Duration
		for _, x := range l {
			m = max(m, x)
		}
		return m
	}
	// The same writer for a while without gc, as the reference.
	stop := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(stop) })
	quiet, err := write(stop)
	if err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	stop = make(chan struct{})
	var busy []time.Duration
	var werr error
	done := make(chan struct{})
	go func() { busy, werr = write(stop); close(done) }()
	t := time.Now()
	st, gerr := c.GC(ctx, api.GCOptions{})
	gcTime := time.Since(t)
	close(stop)
	<-done
	if err := errors.Join(gerr, werr); err != nil {
		s.row("fleet", "longest writer pause during gc", "", errValue(err), nil)
		return
	}
	v := Value{Dur: longest(busy), Text: fmt.Sprintf("(%d writes during a %s gc that deleted %s; without gc: longest %s of %d)",
		len(busy), fmtDur(gcTime), fmtBytes(st.DeletedBytes), fmtDur(longest(quiet)), len(quiet))}
	s.row("fleet", "longest writer pause during gc", "4 KiB file writes in a mount while gc runs", v, nil)
	lv := Latencies(busy)
	s.row("fleet", "writer latency during gc", "4 KiB file create+write+close in a mount", lv, nil)
}
