package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
		SeqSize: 64 << 20, MetaFiles: 1_000, GitFiles: 1_000, GitRuns: 3,
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
	cfg   Config
	rep   *Report
	cl    *Cleanup
	pool  *pool
	cold  bool
	sides []side // [0] agentfs, [1] plain, then --compare
	logf  func(format string, a ...any)
}

// Run runs the whole suite. Cleanup is run by the caller (also on Ctrl-C).
func Run(ctx context.Context, cfg Config, cl *Cleanup) (*Report, error) {
	s := &suite{cfg: cfg, cl: cl, rep: &Report{Started: time.Now(), Quick: cfg.Quick, Machine: Machine(cfg.WorkDir)}}
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
	s.versions(ctx)
	if err := s.daemonPart(ctx); err != nil {
		return s.rep, err
	}
	s.storage(ctx)
	s.remote(ctx)
	if err := s.fleet(ctx); err != nil { // bench/fleet.go
		return s.rep, err
	}
	s.rep.Duration = time.Since(s.rep.Started)
	return s.rep, nil
}

func (s *suite) row(area, figure, params string, v Value, t *Target) {
	s.rep.add(&Row{Area: area, Figure: figure, Params: params, AgentFS: v, target: t})
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
	var p50s []time.Duration
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
		}
		s.row("versions", "fork of a checkpoint (engine API)", fmt.Sprintf("%s files, %d forks, synced", count(n), s.cfg.ForkN), v, p99Below(time.Millisecond))
	}
	if len(p50s) == len(s.cfg.ForkSizes) && p50s[0] > 0 {
		f := float64(p50s[len(p50s)-1]) / float64(p50s[0])
		v := Value{Text: fmt.Sprintf("%.2fx", f)}
		s.rep.add(&Row{Area: "versions", Figure: "fork flatness: p50 at largest / smallest tree",
			Params: count(s.cfg.ForkSizes[len(p50s)-1]) + " vs " + count(s.cfg.ForkSizes[0]) + " files", AgentFS: v,
			target: &Target{Text: "flat (<= 1.5x)", Check: func(*Row) (bool, bool) { return f <= 1.5, true }}})
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
			t = &Target{Text: "p50 < 10ms", Check: func(r *Row) (bool, bool) {
				return r.AgentFS.P50 < 10*time.Millisecond, r.AgentFS.isLatency()
			}}
		}
		s.row("versions", fmt.Sprintf("checkpoint after %s changed files", count(n)), fmt.Sprintf("%s-file tree, %d runs, synced", count(s.cfg.CkptTree), runs), v, t)
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
	agentBase, err := BuildTree(ctx, r.Engine, "agentbase", s.cfg.AgentTree)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d, err := StartDaemon(s.cfg.Bin, repoDir, filepath.Join(s.cfg.WorkDir, "daemon.log"), s.cl)
	if err != nil {
		return err
	}
	defer d.Stop()
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

	s.agents(ctx, d, agentBase, memRow)
	s.rollback(ctx, d, mnt)
	s.fileWorkloads()
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

	// 16 agents writing in parallel, beside 16 plain directories.
	w := s.cfg.Writers
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if b, err := d.RSS(); err == nil && b > peak {
				peak = b
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	s.logf("agents: %d parallel writers", w)
	av, err := RunParallelWriters(s.pool, dirs[:w], s.cfg.WriterFiles, s.cfg.WriterSize)
	close(stop)
	wg.Wait()
	if err != nil {
		av = errValue(err)
	}
	params := fmt.Sprintf("%d writers x %d files x %s, create+write+close, fsync last", w, s.cfg.WriterFiles, fmtBytes(int64(s.cfg.WriterSize)))
	row := &Row{Area: "agents", Figure: fmt.Sprintf("%d agents writing in parallel on %d branches", w, w), Params: params, AgentFS: av}
	for _, sd := range s.sides[1:] {
		var pd []string
		for i := 0; i < w; i++ {
			p := filepath.Join(sd.dir, "writers", fmt.Sprintf("agent%02d", i))
			os.MkdirAll(p, 0o755)
			pd = append(pd, p)
		}
		v, err := RunParallelWriters(s.pool, pd, s.cfg.WriterFiles, s.cfg.WriterSize)
		if err != nil {
			v = errValue(err)
		}
		os.RemoveAll(filepath.Join(sd.dir, "writers"))
		s.attach(row, sd, v)
	}
	s.rep.add(row)
	memRow(fmt.Sprintf("daemon RSS, peak under %d parallel writers", w), fmt.Sprintf("VmRSS sampled every 20ms, %d mounts", n), peak, nil, nil)
	s.logf("agents: unmounting")
	for i := 0; i < n; i++ {
		d.Client.Unmount(ctx, dirs[i])
	}
}

// attach puts v on row as the value of side sd (plain or a comparison).
func (s *suite) attach(row *Row, sd side, v Value) {
	if sd.name == "plain" {
		row.Plain = &v
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
	s.row("versions", "rollback of a mounted branch", fmt.Sprintf("100 changed files, daemon API, %d runs, includes kernel cache invalidation", s.cfg.RollbackN), v, p50Below(10*time.Millisecond))
}

// fileRow runs fn on every side in its own subdirectory and adds one row per figure fn
// returns (all of one call share the run).
func (s *suite) fileRows(name string, fn func(dir string) ([]Value, error), rows []*Row) {
	for _, sd := range s.sides {
		s.logf("file: %s on %s", name, sd.name)
		quiesce()
		dir := filepath.Join(sd.dir, "bench-"+name)
		vals, err := func() ([]Value, error) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			return fn(dir)
		}()
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
		s.rep.add(r)
	}
}

// quiesce writes back dirty data (untimed) so one side's writeback does not slow the next.
func quiesce() {
	exec.Command("sync").Run()
	time.Sleep(200 * time.Millisecond)
}

func newRow(area, fig, params string, t *Target) *Row {
	return &Row{Area: area, Figure: fig, Params: params, target: t}
}

func (s *suite) fileWorkloads() {
	c := s.cfg
	// Only the kernel's caches are dropped: the daemon's Pebble block cache stays warm, so
	// these rows measure a page-cache miss, not a cold start of agentfs.
	cache := "kernel caches dropped on both sides; agentfs's own (Pebble) cache stays warm"
	if !s.cold {
		cache = "n/a: not root"
	}
	rf := fmtBytes(c.RandFile)
	s.fileRows("randomio", func(dir string) ([]Value, error) {
		r, err := RunRandomIO(s.pool, dir, c.RandFile, c.WarmN, c.ColdN, c.FsyncN, s.cold)
		return []Value{r.ReadWarm, r.WriteWarm, r.ReadCold, r.WriteCold, r.WriteFsync}, err
	}, []*Row{
		newRow("file I/O", "4 KiB random read, warm", fmt.Sprintf("%s file, page cache warm, %d reads", rf, c.WarmN), ratioBelow(2, "p50")),
		newRow("file I/O", "4 KiB random write, warm", fmt.Sprintf("%s file, page cache warm, %d writes, no fsync", rf, c.WarmN), nil),
		newRow("file I/O", "4 KiB random read, page cache dropped", fmt.Sprintf("%s file, %s, FADV_RANDOM, %d reads", rf, cache, c.ColdN), nil),
		newRow("file I/O", "4 KiB random write, page cache dropped", fmt.Sprintf("%s file, %s, %d writes, no fsync", rf, cache, c.ColdN), nil),
		newRow("file I/O", "4 KiB random write + fsync", fmt.Sprintf("%s file, %d write+fsync pairs", rf, c.FsyncN), ratioBelow(1.5, "p50")),
	})
	s.fileRows("small", func(dir string) ([]Value, error) {
		v, err := RunSmallOpenRead(dir, 100, 1024, c.SmallN)
		return []Value{v}, err
	}, []*Row{newRow("file I/O", "open + read + close of a small file, warm", fmt.Sprintf("1 KiB files, 100 files cycled, %d ops, all cached", c.SmallN), p50Below(20*time.Microsecond))})
	sz := fmtBytes(c.SeqSize)
	s.fileRows("seq", func(dir string) ([]Value, error) {
		r, err := RunSequential(s.pool, dir, c.SeqSize, s.cold)
		return []Value{r.WriteFsync, r.ReadCold, r.ReadWarm}, err
	}, []*Row{
		newRow("file I/O", "sequential write + fsync", sz+" file, 1 MiB writes, incompressible, fsync at end", rateAtLeast(500, "MB/s")),
		newRow("file I/O", "sequential read, page cache dropped", sz+" file, 1 MiB reads, "+cache, nil),
		newRow("file I/O", "sequential read, warm", sz+" file, 1 MiB reads, right after the read above", rateAtLeast(1500, "MB/s")),
	})
	s.fileRows("meta", func(dir string) ([]Value, error) {
		m, err := RunMetadata(dir, c.MetaFiles)
		return []Value{m.Create, m.Stat, m.Unlink}, err
	}, []*Row{
		newRow("metadata", "create small files", fmt.Sprintf("%s files of 100 B in one directory", count(c.MetaFiles)), nil),
		newRow("metadata", "stat", fmt.Sprintf("%s files just created (caches warm)", count(c.MetaFiles)), nil),
		newRow("metadata", "unlink", fmt.Sprintf("%s files", count(c.MetaFiles)), nil),
	})
	goroot := "/usr/local/go"
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	tarball := filepath.Join(s.cfg.WorkDir, "goroot-src.tar")
	nfiles, err := MakeTarball(goroot, tarball)
	if err != nil {
		s.row("metadata", "tar -x of GOROOT/src", "", errValue(err), nil)
	} else {
		fi, _ := os.Stat(tarball)
		s.fileRows("tar", func(dir string) ([]Value, error) {
			v, err := RunTarExtract(dir, tarball)
			return []Value{v}, err
		}, []*Row{newRow("metadata", "tar -x of $(go env GOROOT)/src", fmt.Sprintf("%d files, %s tarball on the plain disk, page cache warm", nfiles, fmtBytes(fi.Size())), ratioBelow(3, "time"))})
	}
	s.fileRows("git", func(dir string) ([]Value, error) {
		g, err := RunGit(dir, c.GitFiles, c.GitRuns)
		return []Value{g.Status, g.RmRf}, err
	}, []*Row{
		newRow("metadata", "git status", fmt.Sprintf("%s-file repository, clean, %d runs after 1 warm-up", count(c.GitFiles), c.GitRuns), ratioBelow(3, "p50")),
		newRow("metadata", "rm -rf of the git tree", fmt.Sprintf("%s files + .git", count(c.GitFiles)), ratioBelow(3, "time")),
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
	s.row("remote", "first read of a 4 KiB file, lazy clone", params(smallN), sv, p99Below(50*time.Millisecond))
	s.row("remote", "first read of a 64 MiB file, lazy clone", params(bigN), bv, nil)
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
