package bench

// How to add a row with the three columns (agentfs, plain dir, go-fuse loopback):
//
//	s.fileRows("name", func(dir string) ([]Value, error) {
//		// run the workload in dir (already made, removed afterwards) with plain system calls;
//		// return one Value per row below, in order (Latencies(samples), a Rate, a Dur...).
//	}, []*Row{newRow("area", "figure", "parameters", forIssue(17, ratioBelow(2, "time")))})
//
// fileRows runs fn once per side (s.sides: the agentfs mount, the plain directory, the
// loopback mount, then any --compare directory), fills the columns and ratios, checks the
// target, and with -pprof profiles the daemon while it repeats a missed row. Time a single
// operation with time.Now/time.Since and summarise with Latencies (p50/p99); quiesce() runs
// between sides. For work that is not per directory use s.row (agentfs only) or build a Row
// and call s.attach(row, side, value) per side, then s.add(row).

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/store"
)

// Config sizes the suite. Full and Quick give the two standard sizes.
type Config struct {
	Bin     string   // the agentfs binary
	WorkDir string   // scratch space; the plain directory lives here too
	Compare []string // other directories to run the file workloads on
	Quick   bool
	Log     io.Writer // progress lines

	LoopbackBin string   // the go-fuse loopback example; built from the module when empty
	Only        []string // if set, run only these parts (Parts); empty runs every part
	PprofDir    string   // if set, CPU profiles of the daemon for each missed target go here
	// PprofRows (-pprof-rows): rows whose figure matches are profiled as if they had missed
	// (a target met on a loaded machine, where the plain side slowed down too).
	PprofRows *regexp.Regexp

	ForkSizes   []int // files in the trees forked
	ForkN       int   // forks per size
	CkptTree    int   // files in the tree checkpoints and diffs run on
	CkptRuns    int
	DiffRuns    int
	RollbackN   int
	RandFile    int64 // bytes of the random I/O file
	WarmN       int
	ColdN       int
	FsyncN      int
	SmallN      int
	SeqSize     int64
	MetaFiles   int
	GitFiles    int
	GitRuns     int
	AgentTree   int // files in the checkpoint agents fork
	Agents      int
	Writers     int
	WriterFiles int
	WriterSize  int
	StoreTree   int64
	StoreForks  int
}

// Parts are the suite's sections, in the order they run; -only picks some of them.
var Parts = []string{"versions", "agents", "rollback", "files", "workloads", "storage", "remote", "fleet"}

// want reports whether part runs: every part unless Config.Only names some.
func (c Config) want(part string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, p := range c.Only {
		if p == part {
			return true
		}
	}
	return false
}

// Full is the size of `make bench`.
func Full() Config {
	return Config{
		ForkSizes: []int{10_000, 100_000, 1_000_000}, ForkN: 200,
		CkptTree: 100_000, CkptRuns: 30, DiffRuns: 30, RollbackN: 30,
		RandFile: 256 << 20, WarmN: 20_000, ColdN: 2_000, FsyncN: 500, SmallN: 20_000,
		SeqSize: 1 << 30, MetaFiles: 10_000, GitFiles: 10_000, GitRuns: 5,
		AgentTree: 100_000, Agents: 64, Writers: 16, WriterFiles: 200, WriterSize: 64 << 10,
		StoreTree: 1 << 30, StoreForks: 100,
	}
}

// Quick is the size of `make bench-quick`: every row, smaller sizes.
func Quick() Config {
	return Config{
		Quick:     true,
		ForkSizes: []int{1_000, 10_000, 100_000}, ForkN: 50,
		CkptTree: 10_000, CkptRuns: 5, DiffRuns: 5, RollbackN: 5,
		RandFile: 16 << 20, WarmN: 2_000, ColdN: 200, FsyncN: 50, SmallN: 2_000,
		SeqSize: 64 << 20, MetaFiles: 10_000, GitFiles: 1_000, GitRuns: 3,
		AgentTree: 10_000, Agents: 64, Writers: 16, WriterFiles: 20, WriterSize: 64 << 10,
		StoreTree: 32 << 20, StoreForks: 10,
	}
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// side is a directory a file workload runs on.
type side struct {
	name, dir string
}

type suite struct {
	cfg       Config
	rep       *Report
	cl        *Cleanup
	pool      *pool
	cold      bool
	sides     []side // [0] agentfs, [1] plain, [2] loopback (if it started), then --compare
	cur       string // the side a file workload runs on now
	profiling bool
	d         *Daemon
	lb        *Loopback
	logf      func(format string, a ...any)
}

// Run runs the whole suite. Cleanup is run by the caller (also on Ctrl-C).
func Run(ctx context.Context, cfg Config, cl *Cleanup) (*Report, error) {
	s := &suite{cfg: cfg, cl: cl, rep: &Report{Started: time.Now(), Quick: cfg.Quick, Machine: Machine(cfg.WorkDir), LoadStart: LoadAvg()}}
	s.logf = func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "[%6.1fs] %s\n", time.Since(s.rep.Started).Seconds(), fmt.Sprintf(format, a...))
		}
	}
	s.cold = CanDropCaches()
	s.pool = newPool(1)
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if cfg.want("versions") {
		s.versions(ctx)
	}
	if cfg.want("agents") || cfg.want("rollback") || cfg.want("files") || cfg.want("workloads") {
		if err := s.daemonPart(ctx); err != nil {
			s.rep.LoadEnd = LoadAvg()
			return s.rep, err
		}
	}
	if cfg.want("storage") {
		s.storage(ctx)
	}
	if cfg.want("remote") {
		s.remote(ctx)
	}
	if cfg.want("fleet") {
		if err := s.fleet(ctx); err != nil { // bench/fleet.go
			return s.rep, err
		}
	}
	s.rep.Duration = time.Since(s.rep.Started)
	s.rep.LoadEnd = LoadAvg()
	return s.rep, nil
}

func (s *suite) row(area, figure, params string, v Value, t *Target) {
	s.add(&Row{Area: area, Figure: figure, Params: params, AgentFS: v, target: t})
}

// engineRow adds a row measured in this process (the engine API); again repeats it under the
// profiler (-pprof), which then profiles this process instead of the daemon.
func (s *suite) engineRow(figure, params string, v Value, t *Target, again func() error) {
	s.add(&Row{Area: "versions", Figure: figure, Params: params, AgentFS: v, target: t, again: again, inProcess: true})
}

// versions: the engine API in-process, on a repository of its own.
func (s *suite) versions(ctx context.Context) {
	dir := filepath.Join(s.cfg.WorkDir, "engine-repo")
	os.RemoveAll(dir)
	defer removeAll(dir)
	r, err := repo.Init(ctx, dir)
	if err != nil {
		s.row("versions", "fork", "", errValue(err), nil)
		return
	}
	defer r.Close()
	e := r.Engine
	commits := map[int]store.ID{}
	var p50s, p99s []time.Duration
	for _, n := range s.cfg.ForkSizes {
		s.logf("versions: building a tree of %d files", n)
		t := time.Now()
		c, err := BuildTree(ctx, e, "tree"+count(n), n)
		if err != nil {
			s.row("versions", "fork", count(n)+" files", errValue(err), nil)
			continue
		}
		s.logf("versions: built in %.1fs; forking %d times", time.Since(t).Seconds(), s.cfg.ForkN)
		commits[n] = c
		v, err := ForkLatency(ctx, e, c, "fork"+count(n), s.cfg.ForkN)
		if err != nil {
			v = errValue(err)
		} else {
			p50s = append(p50s, v.P50)
			p99s = append(p99s, v.P99)
		}
		again := 0
		s.engineRow("fork of a checkpoint (engine API)", fmt.Sprintf("%s files, %d forks, synced", count(n), s.cfg.ForkN), v, forIssue(10, p99Below(time.Millisecond)), func() error {
			again++
			_, err := ForkLatency(ctx, e, c, fmt.Sprintf("again%d-fork%s", again, count(n)), 50)
			return err
		})
	}
	if len(p50s) == len(s.cfg.ForkSizes) && p50s[0] > 0 {
		f := float64(p50s[len(p50s)-1]) / float64(p50s[0])
		f99 := float64(p99s[len(p99s)-1]) / float64(p99s[0])
		v := Value{Text: fmt.Sprintf("%.2fx (p99: %.2fx)", f, f99)}
		s.rep.add(&Row{Area: "versions", Figure: "fork flatness: p50 at largest / smallest tree (p99 beside it)",
			Params: count(s.cfg.ForkSizes[len(p50s)-1]) + " vs " + count(s.cfg.ForkSizes[0]) + " files", AgentFS: v,
			target: forIssue(10, &Target{Text: "flat (≤ 1.5x)", Check: func(*Row) (bool, bool) { return f <= 1.5, true }})})
	}
	base, ok := commits[s.cfg.CkptTree]
	if !ok {
		c, err := BuildTree(ctx, e, "ckpttree", s.cfg.CkptTree)
		if err != nil {
			s.row("versions", "checkpoint", "", errValue(err), nil)
			return
		}
		base = c
	}
	for _, n := range []int{1, 100, 10_000} {
		runs := s.cfg.CkptRuns
		if n >= 10_000 {
			runs = max(3, runs/6)
		}
		s.logf("versions: checkpoint after %d changed files", n)
		v, err := CheckpointLatency(ctx, e, base, s.cfg.CkptTree, n, runs, fmt.Sprintf("ckpt%d", n))
		if err != nil {
			v = errValue(err)
		}
		var t *Target
		if n == 100 {
			t = forIssue(10, p50Below(10*time.Millisecond))
		}
		again := 0
		s.engineRow(fmt.Sprintf("checkpoint after %s changed 4 KiB files", count(n)), fmt.Sprintf("%s-file tree, %d runs, synced, incompressible content, includes hashing the changed pages", count(s.cfg.CkptTree), runs), v, t, func() error {
			again++
			_, err := CheckpointLatency(ctx, e, base, s.cfg.CkptTree, n, 5, fmt.Sprintf("again%d-ckpt%d", again, n))
			return err
		})
	}
	for _, n := range []int{1, 1000} {
		s.logf("versions: diff of refs differing by %d files", n)
		v, err := DiffLatency(ctx, e, base, s.cfg.CkptTree, n, s.cfg.DiffRuns, fmt.Sprintf("diff%d", n))
		if err != nil {
			v = errValue(err)
		}
		s.row("versions", fmt.Sprintf("diff of two checkpoints differing by %s files", count(n)), fmt.Sprintf("%s-file tree, %d runs, node cache warm", count(s.cfg.CkptTree), s.cfg.DiffRuns), v, nil)
	}
}

// daemonPart runs everything that needs a real daemon: memory, agents, rollback, file I/O.
func (s *suite) daemonPart(ctx context.Context) error {
	repoDir := filepath.Join(s.cfg.WorkDir, "daemon-repo")
	os.RemoveAll(repoDir)
	s.cl.Add(func() { os.RemoveAll(repoDir) })
	s.logf("daemon: preparing a repository with a %d-file checkpoint", s.cfg.AgentTree)
	r, err := repo.Init(ctx, repoDir)
	if err != nil {
		return err
	}
	agentTree := s.cfg.AgentTree
	if !s.cfg.want("agents") {
		agentTree = 1 // only the agents rows fork it
	}
	agentBase, err := BuildTree(ctx, r.Engine, "agentbase", agentTree)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var pprofAddr string
	if s.cfg.PprofDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	d, err := StartDaemon(s.cfg.Bin, repoDir, filepath.Join(s.cfg.WorkDir, "daemon.log"), pprofAddr, s.cl)
	if err != nil {
		return err
	}
	defer d.Stop()
	s.d = d
	mnt := filepath.Join(s.cfg.WorkDir, "mnt")
	os.RemoveAll(mnt)
	if err := d.Mount(ctx, "main", mnt); err != nil {
		return fmt.Errorf("mount main: %w", err)
	}
	plain := filepath.Join(s.cfg.WorkDir, "plain")
	os.RemoveAll(plain)
	if err := os.MkdirAll(plain, 0o755); err != nil {
		return err
	}
	s.cl.Add(func() { os.RemoveAll(plain) })
	s.sides = []side{{"agentfs", mnt}, {"plain", plain}}
	if lb, err := s.startLoopback(); err != nil {
		s.rep.add(&Row{Area: "loopback", Figure: "go-fuse loopback mount (third column)", AgentFS: errValue(err)})
	} else {
		s.lb = lb
		s.sides = append(s.sides, side{"loopback", lb.Dir})
	}
	for i, c := range s.cfg.Compare {
		sub := filepath.Join(c, fmt.Sprintf("agentfs-bench-%d", os.Getpid()))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("--compare %s: %w", c, err)
		}
		s.cl.Add(func() { os.RemoveAll(sub) })
		s.sides = append(s.sides, side{fmt.Sprintf("compare%d", i+1), sub})
	}

	time.Sleep(500 * time.Millisecond)
	rss1, err := d.RSS()
	memRow := func(fig, params string, b int64, err error, t *Target) {
		v := Value{Bytes: b}
		if err != nil {
			v = errValue(err)
		}
		s.row("memory", fig, params, v, t)
	}
	memRow("daemon RSS, idle, 1 mounted branch", "VmRSS of agentfs serve", rss1, err, nil)

	if s.cfg.want("agents") {
		s.agents(ctx, d, agentBase, memRow)
	}
	if s.cfg.want("rollback") {
		s.rollback(ctx, d, mnt)
	}
	if s.cfg.want("files") {
		s.fileWorkloads()
	}
	if s.cfg.want("workloads") {
		s.workloads(ctx, d) // workloads.go
	}
	return nil
}

func (s *suite) agents(ctx context.Context, d *Daemon, base store.ID, memRow func(string, string, int64, error, *Target)) {
	n := s.cfg.Agents
	s.logf("agents: fork + mount of %d branches", n)
	dirs := make([]string, n)
	lat := make([]time.Duration, 0, n)
	var total time.Duration
	var rss16 int64
	var err error
	for i := 0; i < n && err == nil; i++ {
		dirs[i] = filepath.Join(s.cfg.WorkDir, "agents", fmt.Sprintf("agent%02d", i))
		os.MkdirAll(dirs[i], 0o755)
		t := time.Now()
		name := fmt.Sprintf("agent%02d", i)
		if _, err = d.Client.CreateBranch(ctx, name, base.String()); err == nil {
			err = d.Mount(ctx, name, dirs[i])
		}
		dt := time.Since(t)
		total += dt
		lat = append(lat, dt)
		if i == 15 {
			time.Sleep(300 * time.Millisecond)
			rss16, _ = d.RSS()
		}
	}
	v := Value{Dur: total}
	if err != nil {
		v = errValue(err)
	} else {
		l := Latencies(lat)
		v.Text = fmt.Sprintf("(per agent p50 %s / p99 %s)", fmtDur(l.P50), fmtDur(l.P99))
	}
	s.row("agents", fmt.Sprintf("give %d agents a writable branch (fork + mount)", n), fmt.Sprintf("%s-file checkpoint, daemon API, one after another", count(s.cfg.AgentTree)), v, durBelow(time.Second))
	if err != nil {
		return
	}
	time.Sleep(500 * time.Millisecond)
	rss64, err := d.RSS()
	memRow("daemon RSS, idle, 16 mounted branches", "VmRSS of agentfs serve", rss16, nil, nil)
	memRow(fmt.Sprintf("daemon RSS, idle, %d mounted branches", n), "VmRSS of agentfs serve", rss64, err, bytesBelow(200<<20))

	// 16 agents writing in parallel on 16 branches, beside 16 plain directories and 16
	// directories of the loopback mount; the RSS of each server is sampled meanwhile.
	w := s.cfg.Writers
	s.logf("agents: %d parallel writers", w)
	av, peak, err := sampleRSS(d.Cmd.Process.Pid, func() (Value, error) {
		return RunParallelWriters(s.pool, dirs[:w], s.cfg.WriterFiles, s.cfg.WriterSize)
	})
	if err != nil {
		av = errValue(err)
	}
	params := fmt.Sprintf("%d writers x %d files x %s, create+write+close, fsync last", w, s.cfg.WriterFiles, fmtBytes(int64(s.cfg.WriterSize)))
	row := &Row{Area: "agents", Figure: fmt.Sprintf("%d agents writing in parallel on %d branches", w, w), Params: params, AgentFS: av,
		target: forIssue(10, rateShareOfPlain(0.5))}
	row.again = func() error {
		_, err := RunParallelWriters(s.pool, dirs[:w], s.cfg.WriterFiles, s.cfg.WriterSize)
		return err
	}
	rssRow := &Row{Area: "memory", Figure: fmt.Sprintf("server RSS, peak under %d parallel writers", w),
		Params:  fmt.Sprintf("VmRSS of agentfs serve (%d mounts) / of the loopback process, sampled every 20ms", n),
		AgentFS: Value{Bytes: peak}, target: forIssue(10, bytesAtMost(256<<20)), again: row.again, heap: true}
	for _, sd := range s.sides[1:] {
		var pd []string
		for i := 0; i < w; i++ {
			p := filepath.Join(sd.dir, "writers", fmt.Sprintf("agent%02d", i))
			os.MkdirAll(p, 0o755)
			pd = append(pd, p)
		}
		pid := 0
		if sd.name == "loopback" {
			pid = s.lb.Pid()
		}
		quiesce()
		v, lbPeak, err := sampleRSS(pid, func() (Value, error) {
			return RunParallelWriters(s.pool, pd, s.cfg.WriterFiles, s.cfg.WriterSize)
		})
		if err != nil {
			v = errValue(err)
		}
		os.RemoveAll(filepath.Join(sd.dir, "writers"))
		s.attach(row, sd, v)
		if pid != 0 {
			s.attach(rssRow, sd, Value{Bytes: lbPeak})
		}
	}
	s.add(row)
	s.add(rssRow)
	s.logf("agents: unmounting")
	for i := 0; i < n; i++ {
		d.Client.Unmount(ctx, dirs[i])
	}
}

// attach puts v on row as the value of side sd (plain or a comparison).
func (s *suite) attach(row *Row, sd side, v Value) {
	switch sd.name {
	case "plain":
		row.Plain = &v
		return
	case "loopback":
		row.Loopback = &v
		return
	}
	row.Others = append(row.Others, Named{Name: sd.name, Dir: sd.dir, Value: v})
}

func (s *suite) rollback(ctx context.Context, d *Daemon, mnt string) {
	s.logf("versions: rollback of the mounted branch")
	dir := filepath.Join(mnt, "rb")
	err := os.MkdirAll(dir, 0o755)
	write := func(tag string) error {
		for i := 0; i < 100; i++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte(tag), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	var cp string
	if err == nil {
		err = write("base")
	}
	if err == nil {
		var info api.CheckpointInfo
		info, err = d.Client.Checkpoint(ctx, "main", "rb", "")
		cp = info.ID
	}
	var lat []time.Duration
	for i := 0; i < s.cfg.RollbackN && err == nil; i++ {
		if err = write(fmt.Sprint("change ", i)); err != nil {
			break
		}
		t := time.Now()
		err = d.Client.Rollback(ctx, "main", cp)
		lat = append(lat, time.Since(t))
		if err == nil {
			var b []byte
			b, err = os.ReadFile(filepath.Join(dir, "f000"))
			if err == nil && string(b) != "base" {
				err = fmt.Errorf("after rollback the mount shows %q, want %q", b, "base")
			}
		}
	}
	v := Latencies(lat)
	if err != nil {
		v = errValue(err)
	}
	s.row("versions", "rollback of a mounted branch", fmt.Sprintf("100 changed files, daemon API, %d runs, includes kernel cache invalidation", s.cfg.RollbackN), v, forIssue(10, p50Below(10*time.Millisecond)))
}

// fileRows runs fn on every side in its own subdirectory and adds one row per figure fn
// returns (all of one call share the run).
func (s *suite) fileRows(name string, fn func(dir string) ([]Value, error), rows []*Row) {
	run := func(sd side, fn func(dir string) ([]Value, error)) ([]Value, error) {
		s.cur = sd.name
		defer func() { s.cur = "" }()
		dir := filepath.Join(sd.dir, "bench-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		return fn(dir)
	}
	for _, sd := range s.sides {
		s.logf("file: %s on %s", name, sd.name)
		quiesce()
		var vals []Value
		err := s.daemonAlive()
		if err == nil || sd.name != "agentfs" {
			vals, err = run(sd, fn)
		}
		for i, r := range rows {
			v := Value{}
			if err != nil {
				v = errValue(err)
			} else {
				v = vals[i]
			}
			if sd.name == "agentfs" {
				r.AgentFS = v
			} else {
				s.attach(r, sd, v)
			}
		}
	}
	for _, r := range rows {
		if r.againIn != nil {
			r.again = func() error {
				_, err := run(side{"agentfs", s.sides[0].dir}, func(dir string) ([]Value, error) { return nil, r.againIn(dir) })
				return err
			}
		} else {
			r.again = func() error { _, err := run(s.sides[0], fn); return err }
		}
		s.add(r)
	}
}

// daemonAlive restarts the daemon if it died during an earlier row (so that one death does
// not fail every later row) and then returns an error that says so, for the row about to run.
func (s *suite) daemonAlive() error {
	if s.d == nil {
		return nil
	}
	dead, how := s.d.Exited()
	if !dead {
		return nil
	}
	s.logf("daemon: agentfs serve exited (%s); restarting it", how)
	if err := s.d.Restart(context.Background(), "main", s.sides[0].dir); err != nil {
		return fmt.Errorf("agentfs serve exited (%s) and did not restart: %v", how, err)
	}
	return fmt.Errorf("agentfs serve exited (%s) before this row (watchdog? see /tmp/watchdog.log and %s); restarted for the next rows", how, s.d.log)
}

// add finishes a row, adds it to the report and, with -pprof, profiles the daemon while the
// row's agentfs side runs again if it missed its target.
func (s *suite) add(r *Row) {
	s.rep.add(r)
	// Each row also goes to the progress log as it is measured, so that a run stopped early
	// (Ctrl-C, a CI timeout) still shows what it measured.
	s.logf("row: %s | %s | %s", strings.Join(r.columns(), " | "), orDash(r.Target), orDash(r.Result))
	if r.Result == "MISS" || s.cfg.PprofRows != nil && s.cfg.PprofRows.MatchString(r.Figure) {
		s.profileMiss(r)
	}
}

// quiesce writes back dirty data (untimed) so one side's writeback does not slow the next.
func quiesce() {
	exec.Command("sync").Run()
	time.Sleep(200 * time.Millisecond)
}

// coldFunc returns what makes the next read of the current side cold, or nil when this
// process may not drop caches. On the agentfs side the daemon is restarted first, so that its
// own caches (Pebble's block cache, tree nodes, the branch's key cache) start empty too; then
// the kernel's page, dentry and inode caches are dropped. The loopback has no cache of its own.
// While profiling a missed row (-pprof) the daemon is not restarted: the profile is of one
// process.
func (s *suite) coldFunc() func() error {
	if !s.cold {
		return nil
	}
	return func() error {
		if s.cur == "agentfs" && !s.profiling {
			if err := s.d.Restart(context.Background(), "main", s.sides[0].dir); err != nil {
				return fmt.Errorf("restart the daemon for a cold read: %w", err)
			}
		}
		return DropCaches()
	}
}

const coldLabel = "cold = kernel caches dropped (sync; echo 3 > drop_caches) and the agentfs daemon restarted (its Pebble and tree caches empty)"

func newRow(area, fig, params string, t *Target) *Row {
	return &Row{Area: area, Figure: fig, Params: params, target: t}
}

func (s *suite) fileWorkloads() {
	c := s.cfg
	cache := coldLabel
	if !s.cold {
		cache = "n/a: not root"
	}
	rf := fmtBytes(c.RandFile)
	writeTarget := forIssue(10, all(p50AtMost(20*time.Microsecond), atMostLoopback("p50")))
	// Under the profiler each random I/O row repeats only its own figure, on a 16 MiB file.
	randomOnly := func(n RandomN) func(dir string) error {
		return func(dir string) error {
			_, err := RunRandomIO(s.pool, dir, 16<<20, n, s.coldFunc())
			return err
		}
	}
	randomRows := []*Row{
		newRow("file I/O", "4 KiB random read, warm", fmt.Sprintf("%s file, page cache warm, %d reads", rf, c.WarmN), forIssue(10, ratioBelow(2, "p50"))),
		newRow("file I/O", "4 KiB random write, no fsync, warm", fmt.Sprintf("%s file, page cache warm, %d writes", rf, c.WarmN), writeTarget),
		newRow("file I/O", "4 KiB random read, cold", fmt.Sprintf("%s file, %s, FADV_RANDOM, %d reads", rf, cache, c.ColdN), forIssue(17, ratioBelow(1.5, "p50"))),
		newRow("file I/O", "4 KiB random write, no fsync, cold", fmt.Sprintf("%s file, %s, %d writes", rf, cache, c.ColdN), writeTarget),
		newRow("file I/O", "4 KiB random write + fsync", fmt.Sprintf("%s file, %d write+fsync pairs", rf, c.FsyncN), forIssue(10, ratioBelow(1.5, "p50"))),
	}
	randomRows[0].againIn = randomOnly(RandomN{ReadWarm: 20_000})
	randomRows[1].againIn = randomOnly(RandomN{WriteWarm: 20_000})
	randomRows[2].againIn = randomOnly(RandomN{ReadCold: 2_000})
	randomRows[3].againIn = randomOnly(RandomN{WriteCold: 2_000})
	randomRows[4].againIn = randomOnly(RandomN{Fsync: 1_000})
	s.fileRows("randomio", func(dir string) ([]Value, error) {
		n := RandomN{ReadWarm: c.WarmN, WriteWarm: c.WarmN, ReadCold: c.ColdN, WriteCold: c.ColdN, Fsync: c.FsyncN}
		r, err := RunRandomIO(s.pool, dir, c.RandFile, n, s.coldFunc())
		return []Value{r.ReadWarm, r.WriteWarm, r.ReadCold, r.WriteCold, r.WriteFsync}, err
	}, randomRows)
	s.fileRows("small", func(dir string) ([]Value, error) {
		v, err := RunSmallOpenRead(dir, 100, 1024, c.SmallN)
		return []Value{v}, err
	}, []*Row{newRow("file I/O", "open + read + close of a small file, warm", fmt.Sprintf("1 KiB files, 100 files cycled, %d ops, all cached", c.SmallN), forIssue(17, p50AtMost(5*time.Microsecond)))})
	sz := fmtBytes(c.SeqSize)
	if c.Quick {
		sz += " (quick; the full run writes 1 GiB)"
	}
	seqRows := []*Row{
		newRow("file I/O", "sequential write + fsync", sz+" file, 1 MiB writes, incompressible, fsync at end", forIssue(10, rateAtLeast(1000, "MB/s"))),
		newRow("file I/O", "sequential read, cold", sz+" file, 1 MiB reads, "+cache, forIssue(17, rateShareOfPlain(1))),
		newRow("file I/O", "sequential read, warm", sz+" file, 1 MiB reads, right after the read above", rateAtLeast(1500, "MB/s")),
	}
	// Under the profiler a read row writes a 64 MiB file once and reads it several times.
	seqReads := func(cold bool) func(dir string) error {
		return func(dir string) error {
			path := filepath.Join(dir, "seq.dat")
			if _, err := writeFileFrom(s.pool, path, 64<<20, 1000); err != nil {
				return err
			}
			for i := 0; i < 8; i++ {
				if cold {
					if err := DropCaches(); err != nil {
						return err
					}
				}
				if _, err := readAll(path); err != nil {
					return err
				}
			}
			return nil
		}
	}
	seqRows[1].againIn, seqRows[2].againIn = seqReads(true), seqReads(false)
	s.fileRows("seq", func(dir string) ([]Value, error) {
		r, err := RunSequential(s.pool, dir, c.SeqSize, s.coldFunc())
		return []Value{r.WriteFsync, r.ReadCold, r.ReadWarm}, err
	}, seqRows)
	s.fileRows("meta", func(dir string) ([]Value, error) {
		m, err := RunMetadata(dir, c.MetaFiles)
		return []Value{m.Create, m.Stat, m.Unlink}, err
	}, []*Row{
		newRow("metadata", "create small files", fmt.Sprintf("%s files of 100 B in one directory", count(c.MetaFiles)), nil),
		newRow("metadata", "stat of files just created", fmt.Sprintf("%s files, each stat once, caches warm", count(c.MetaFiles)), forIssue(17, ratioBelow(3, "time"))),
		newRow("metadata", "unlink", fmt.Sprintf("%s files in one directory", count(c.MetaFiles)), forIssue(17, ratioBelow(2, "time"))),
	})
	s.microRows()
	goroot := "/usr/local/go"
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	tarball := filepath.Join(s.cfg.WorkDir, "goroot-src.tar")
	sub, what := "src", "$(go env GOROOT)/src"
	if c.Quick {
		sub, what = "src/crypto", "$(go env GOROOT)/src/crypto (quick; the full run extracts all of src)"
	}
	nfiles, err := MakeTarball(goroot, sub, tarball)
	if err != nil {
		s.row("metadata", "tar -x of "+what, "", errValue(err), nil)
	} else {
		fi, _ := os.Stat(tarball)
		s.fileRows("tar", func(dir string) ([]Value, error) {
			v, err := RunTarExtract(dir, tarball)
			return []Value{v}, err
		}, []*Row{newRow("metadata", "tar -x of "+what, fmt.Sprintf("%d files, %s tarball on the plain disk, page cache warm", nfiles, fmtBytes(fi.Size())), forIssue(17, ratioBelow(1.5, "time")))})
	}
	s.fileRows("git", func(dir string) ([]Value, error) {
		g, err := RunGit(dir, c.GitFiles, c.GitRuns)
		return []Value{g.Status, g.RmRf}, err
	}, []*Row{
		newRow("metadata", "git status", fmt.Sprintf("%s-file repository, clean, %d runs after 1 warm-up", count(c.GitFiles), c.GitRuns), forIssue(17, ratioBelow(2, "p50"))),
		newRow("metadata", "rm -rf of the git tree", fmt.Sprintf("%s files + .git", count(c.GitFiles)), nil),
	})
}

func (s *suite) storage(ctx context.Context) {
	c := s.cfg
	s.logf("storage: %d forks of a %s tree, 1%% changed each", c.StoreForks, fmtBytes(c.StoreTree))
	dir := filepath.Join(c.WorkDir, "storage-repo")
	os.RemoveAll(dir)
	defer removeAll(dir)
	params := fmt.Sprintf("%d forks of a %s tree (1 MiB incompressible files), each rewriting 1%% and checkpointed; plain = full copies (computed)", c.StoreForks, fmtBytes(c.StoreTree))
	r, err := repo.Init(ctx, dir)
	if err != nil {
		s.row("storage", "bytes on disk", params, errValue(err), nil)
		return
	}
	onDisk, logical, err := Storage(ctx, r.Engine, s.pool, dir, c.StoreTree, c.StoreForks, 0.01)
	var stored int64
	if err == nil {
		err = r.Store.Blocks(ctx, func(_ store.ID, size int64) error { stored += size; return nil })
	}
	r.Close()
	v := Value{Bytes: onDisk, Text: fmt.Sprintf("(dedup ratio %.1fx)", float64(logical)/float64(max(onDisk, 1)))}
	if err != nil {
		v = errValue(err)
	}
	plain := Value{Bytes: logical, Text: "(computed: base + full copies, not measured)"}
	s.rep.add(&Row{Area: "storage", Figure: fmt.Sprintf("bytes on disk for %d forks + base (du of the repository)", c.StoreForks), Params: params, AgentFS: v, Plain: &plain})
	sv := Value{Bytes: stored, Text: fmt.Sprintf("(dedup ratio %.1fx)", float64(logical)/float64(max(stored, 1)))}
	if err != nil {
		sv = errValue(err)
	}
	s.rep.add(&Row{Area: "storage", Figure: "stored block bytes (sum over the block store, without Pebble overhead)", Params: params, AgentFS: sv, Plain: &plain})
}

func (s *suite) remote(ctx context.Context) {
	// A built remote shows as a "clone" command in the binary's command list.
	out, _ := exec.Command(s.cfg.Bin, "help").CombinedOutput()
	built := false
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "clone" {
			built = true
		}
	}
	rtt := 20 * time.Millisecond
	smallN, bigN := 20, 3
	if s.cfg.Quick {
		smallN, bigN = 5, 1
	}
	sv, bv := Value{Text: "n/a (remote not built)"}, Value{Text: "n/a (remote not built)"}
	if built {
		s.logf("remote: push, lazy clone behind %s, first reads", rtt)
		var err error
		sv, bv, err = RemoteFirstRead(ctx, s.cfg.Bin, filepath.Join(s.cfg.WorkDir, "remote"), s.pool, rtt, smallN, bigN, 64<<20, s.cl)
		if err != nil {
			sv, bv = errValue(err), errValue(err)
		}
	}
	params := func(n int) string {
		return fmt.Sprintf("lazy clone of a file:// remote, +%s on every object open (one per GET), %d files, whole-file read, in reverse push order (no read-ahead hits)", fmtDur(rtt), n)
	}
	s.row("remote", "first read of a 4 KiB file, lazy clone", params(smallN), sv, forIssue(17, p99Below(50*time.Millisecond)))
	s.row("remote", "first read of a 64 MiB file, lazy clone", params(bigN), bv, forIssue(17, p99Below(400*time.Millisecond)))
}

// Machine describes where the suite runs.
func Machine(dir string) map[string]string {
	m := map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m["ram"] = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	os.MkdirAll(dir, 0o755)
	m["workdir_fs"] = FsType(dir)
	return m
}

// startLoopback starts the go-fuse loopback example over a directory next to the plain one.
func (s *suite) startLoopback() (*Loopback, error) {
	bin, err := loopbackBinary(s.cfg.LoopbackBin, s.cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	orig := filepath.Join(s.cfg.WorkDir, "loopback-orig")
	os.RemoveAll(orig)
	s.cl.Add(func() { os.RemoveAll(orig) })
	s.logf("loopback: mounting %s with %s", orig, bin)
	return StartLoopback(bin, orig, filepath.Join(s.cfg.WorkDir, "loopback"), filepath.Join(s.cfg.WorkDir, "loopback.log"), "", s.cl)
}
