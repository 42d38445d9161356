package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when AGENTFS_PPROF is set
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

func serveCmd() *cobra.Command {
	var mounts, allowPaths []string
	var initIfMissing, auto bool
	var mo api.MountOptions
	cmd := &cobra.Command{
		Use:   "serve [--mount REF:DIR]... [--owner UID:GID] [--allow-other] [--allow-path DIR]...",
		Short: "Run the daemon: own the repository, serve mounts and the control API",
		Long: "serve owns the repository until it gets SIGTERM or SIGINT, when it flushes, unmounts\n" +
			"everything and exits. While it runs, every agentfs command goes through its socket.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return serve(repoDir(), mounts, mo, allowPaths, initIfMissing, auto)
		},
	}
	cmd.Flags().StringArrayVar(&mounts, "mount", nil, "mount REF at DIR once started (repeatable), e.g. main:./mnt")
	mountFlags(cmd, &mo, "the --mount mounts")
	cmd.Flags().StringArrayVar(&allowPaths, "allow-path", nil, "confine import and export through the API to this host directory (repeatable)")
	cmd.Flags().BoolVar(&initIfMissing, "init", false, "create the repository if it does not exist")
	cmd.Flags().StringVar(&listenFlag, "listen", "", "also serve the control API and MCP on this TCP address (e.g. 127.0.0.1:7070); every call needs a token (agentfs token create)")
	// --auto: started by a command that needed a daemon (agentfs mount); if another daemon
	// got the repository first, give way quietly.
	cmd.Flags().BoolVar(&auto, "auto", false, "")
	cmd.Flags().MarkHidden("auto")
	cmd.Flags().DurationVar(&maint.GCEvery, "gc-every", maint.GCEvery, "collect garbage this often (0: never on a schedule)")
	cmd.Flags().Int64Var(&maint.GCGarbage, "gc-garbage", maint.GCGarbage, "collect garbage as soon as a dry run (every 10m) finds this many bytes of it (0: never)")
	cmd.Flags().DurationVar(&maint.CheckEvery, "gc-check-every", maint.CheckEvery, "how often maintenance checks the schedule and the garbage")
	cmd.Flags().MarkHidden("gc-check-every") // tests shorten it
	cmd.Flags().DurationVar(&maint.CopiesEvery, "copies-every", maint.CopiesEvery, "how often the metadata copies are refreshed and idle workspaces evicted")
	cmd.Flags().MarkHidden("copies-every")
	cmd.Flags().DurationVar(&maint.EvictIdle, "evict-idle", maint.EvictIdle, "drop from memory the workspace of a branch not mounted and unused this long")
	cmd.Flags().StringVar(&memoryTarget, "memory-target", fmt.Sprintf("%dM", defaultMemoryTarget>>20), "collect garbage early to keep the daemon's memory near SIZE (0: Go's default pacing; GOMEMLIMIT overrides; see docs/performance.md)")

	addObservabilityFlags(cmd) // --metrics, --log-format, --log-level (serve_obs.go)
	return cmd
}

// memoryTarget is serve --memory-target (memlimit.go).
var memoryTarget string

// maint is the daemon's background maintenance (maintain.go), set by serve's flags.
var maint = defaultMaintenance()

// mountFlags adds the mount options' flags (--owner, --allow-other) to cmd.
func mountFlags(cmd *cobra.Command, mo *api.MountOptions, which string) {
	cmd.Flags().StringVar(&mo.Owner, "owner", "", "show files stored as root's as owned by UID:GID, and store what UID:GID creates as root's ("+which+")")
	cmd.Flags().BoolVar(&mo.AllowOther, "allow-other", false, "let other users than the daemon's reach "+which+" (needed when a container runs as another uid)")
}

func serve(dir string, mounts []string, mo api.MountOptions, allowPaths []string, initIfMissing, auto bool) error {
	target, err := parseSize(memoryTarget)
	if err != nil {
		return usageError{fmt.Errorf("--memory-target: %v", err)}
	}
	followMemoryTarget(context.Background(), target)
	logger, err := serveObs.logger()
	if err != nil {
		return err
	}
	sock := repo.SocketPath(dir)
	if !repo.Exists(dir) {
		if !initIfMissing {
			_, err := repo.Open(dir, false) // says there is no repository, and what to do
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	// Lock and listen before anything slow: commands run meanwhile wait on the socket.
	lock, err := lockForDaemon(dir)
	if auto && errors.Is(err, errOtherDaemon) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.Unlock()
	os.Remove(sock) // stale: we hold the repository lock
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	os.Chmod(sock, 0o600)
	gate := api.NewGate()
	srv := &http.Server{Handler: gate, ErrorLog: logger, ConnContext: api.UnixConnContext}
	go srv.Serve(ln)
	ctx := context.Background()
	var tcp *http.Server // serve --listen (serve_tcp.go)
	stopServing := func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if tcp != nil {
			tcp.Shutdown(sctx)
		}
		srv.Shutdown(sctx)
		os.Remove(sock)
	}

	var r *repo.Repo
	if repo.Exists(dir) {
		r, err = repo.Open(dir, false)
	} else {
		r, err = repo.Init(ctx, dir)
	}
	if err != nil {
		gate.Open(nil, err)
		stopServing()
		return err
	}
	table := &api.MountTable{RepoDir: dir, Logger: logger, Persist: true}
	svc := &api.Local{Engine: r.Engine, Mounter: table, Remotes: r.Remotes}
	maint.begin()
	svc.Schedule = func() api.Schedule { return maint.schedule(r) }
	if err := svc.AllowPaths(allowPaths); err != nil {
		gate.Open(nil, err)
		stopServing()
		r.Close()
		return usageError{err}
	}
	stop := make(chan struct{}, 1)
	mux := http.NewServeMux()
	g := guard(dir, svc, false, logger.Printf)
	g.Next = api.Handler(api.Instrument(svc)) // counts versions and transfers (internal/metrics)
	mux.Handle("/", logCalls(g))              // one log line per call (serve_obs.go)
	// stop and remote.gc have handlers of their own, behind the same guard and audit log.
	mux.Handle("POST /v1/stop", logCalls(g.Wrap(api.StopHandler(func() { stop <- struct{}{} }))))
	mux.Handle("POST /v1/remote.gc", logCalls(g.Wrap(api.RemoteGCHandler(svc))))
	stopMetrics, err := serveObs.serveMetrics(r.Store.DB(), func(context.Context) error { _, err := r.Engine.Branches(); return err })
	if err != nil {
		gate.Open(nil, err)
		stopServing()
		r.Close()
		return err
	}
	shutdown := func() error {
		defer stopMetrics()
		stopServing()
		err := table.UnmountAll()
		return errors.Join(err, r.Close())
	}
	if n, err := table.Restore(ctx, r.Engine); err != nil {
		logger.Printf("%v", err)
	} else if n > 0 {
		logger.Printf("restored %d mounts", n)
	}
	if listenFlag != "" {
		if tcp, err = serveTCP(listenFlag, dir, svc, logger.Printf); err != nil {
			gate.Open(nil, errors.New("the daemon is stopping"))
			shutdown()
			return err
		}
	}
	for _, m := range mounts {
		ref, mdir, ok := strings.Cut(m, ":")
		if !ok {
			gate.Open(nil, errors.New("the daemon is stopping"))
			shutdown()
			return usageError{fmt.Errorf("--mount takes REF:DIR, got %q", m)}
		}
		if restoredAt(table, ref, mdir) {
			continue
		}
		mc := api.InProcess(g, "") // through the guard, so that the audit log has it
		info, err := mc.Mount(ctx, ref, mdir, mo)
		mc.Close()
		if err != nil {
			gate.Open(nil, errors.New("the daemon is stopping"))
			shutdown()
			return err
		}
		logger.Printf("mounted %s at %s", info.Ref, info.Dir)
	}
	gate.Open(mux, nil)
	if addr := os.Getenv("AGENTFS_PPROF"); addr != "" {
		// Profiling for operators: go tool pprof http://ADDR/debug/pprof/profile
		go func() { logger.Println(http.ListenAndServe(addr, nil)) }()
	}
	logger.Printf("serving %s on %s (agentfs stop, Ctrl-C or SIGTERM to stop)", dir, sock)
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { maint.run(mctx, r, logger); close(maintained) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-stop:
	}
	logger.Printf("stopping: flushing and unmounting")
	signal.Stop(sig)
	stopMaintenance()
	<-maintained
	return shutdown()
}

// restoredAt reports whether the saved mount table already brought ref back at dir.
func restoredAt(t *api.MountTable, ref, dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for _, m := range t.List() {
		if m.Dir == abs && m.Ref == ref {
			return true
		}
	}
	return false
}

// ensureDaemon starts a daemon in the background when none serves the repository, so that
// agentfs mount works without a separate agentfs serve. A daemon that is starting is waited
// for, not raced.
func ensureDaemon(dir string) (*api.Client, error) {
	sock := repo.SocketPath(dir)
	if c, err := api.Dial(sock); err == nil {
		return c, nil
	}
	if !repo.Exists(dir) {
		return nil, fmt.Errorf("no agentfs repository at %s: run 'agentfs init' first, or pass --repo", dir)
	}
	if c := waitForDaemon(dir, daemonStartTimeout); c != nil {
		return c, nil
	}
	// A daemon started just before this command (agentfs serve & agentfs mount) may not have
	// taken the lock yet: give it a moment rather than race it with a second one.
	for range 15 {
		time.Sleep(20 * time.Millisecond)
		if repo.Held(dir) {
			if c := waitForDaemon(dir, daemonStartTimeout); c != nil {
				return c, nil
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "agentfs.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "--repo", dir, "serve", "--auto")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(daemonStartTimeout); time.Now().Before(deadline); {
		if c, err := api.Dial(sock); err == nil {
			cmd.Process.Release()
			return c, nil
		}
		select {
		case <-done:
			// Another command may have started a daemon first; ours then gave way.
			if c := waitForDaemon(dir, daemonStartTimeout); c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("the daemon did not start; see %s", logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("the daemon did not answer within %s; see %s", daemonStartTimeout, logPath)
}

func mountCmd() *cobra.Command {
	var mo api.MountOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mount REF DIR [--read-only] [--owner UID:GID] [--allow-other] [--json]",
		Short: "Mount a branch (read-write) or a checkpoint (read-only) at DIR (created if missing); starts the daemon if needed",
		Args:  nargs(2, "BRANCH (or a checkpoint REF) and DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			if err := makeMountPoint(dir); err != nil { // mount_recovery.go
				return err
			}
			started := !daemonAnswers(repoDir())
			client, err := ensureDaemon(repoDir())
			if err != nil {
				return err
			}
			info, err := client.Mount(context.Background(), args[0], dir, mo)
			if err != nil {
				if started { // a daemon that serves nothing should not outlive the failed mount
					err = errors.Join(err, stopStartedDaemon(repoDir()))
				}
				return err
			}
			mode := "read-write"
			if info.ReadOnly {
				mode = "read-only"
			}
			return done(asJSON, info, "mounted %s at %s (%s)", info.Ref, info.Dir, mode)
		},
	}
	cmd.Flags().BoolVar(&mo.ReadOnly, "read-only", false, "mount read-only")
	mountFlags(cmd, &mo, "the mount")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func unmountCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unmount DIR",
		Short: "Flush and unmount an agentfs mount",
		Args:  nargs(1, "DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[0])
			if err != nil {
				return err
			}
			client, err := api.Dial(repo.SocketPath(repoDir()))
			if err == nil {
				err = client.Unmount(context.Background(), dir)
			}
			if err != nil {
				// A mount whose daemon died (kill -9, OOM) is no use to anyone: detach it.
				if detached, derr := detachStaleMount(dir); derr != nil || detached {
					if derr != nil {
						return derr
					}
					if !daemonAnswers(repoDir()) { // else the daemon's table never held it
						if err := api.ForgetSavedMount(repoDir(), dir); err != nil {
							return err
						}
					}
					return done(asJSON, map[string]any{"dir": dir, "stale": true}, "detached the stale mount at %s (its daemon had stopped)", dir)
				}
				if client == nil {
					return fmt.Errorf("no agentfs daemon serves %s, so nothing of it is mounted at %s", repoDir(), dir)
				}
				return err
			}
			return done(asJSON, map[string]any{"dir": dir}, "unmounted %s", dir)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func mountsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mounts [--json]",
		Short: "List the mounts the daemon serves",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var list []api.MountInfo
			if client, err := api.Dial(repo.SocketPath(repoDir())); err == nil {
				if list, err = client.Mounts(context.Background()); err != nil {
					return err
				}
			}
			if list == nil {
				list = []api.MountInfo{}
			}
			if asJSON {
				return printJSON(list)
			}
			w := table()
			for _, m := range list {
				mode := "rw"
				if m.ReadOnly {
					mode = "ro"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", m.Ref, m.Dir, mode)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}
