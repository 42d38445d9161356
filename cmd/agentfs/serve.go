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
	var mounts []string
	var initIfMissing bool
	cmd := &cobra.Command{
		Use:   "serve [--mount REF:DIR]...",
		Short: "Run the daemon: own the repository, serve mounts and the control API",
		Long: "serve owns the repository until it gets SIGTERM or SIGINT, when it flushes, unmounts\n" +
			"everything and exits. While it runs, every agentfs command goes through its socket.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return serve(repoDir(), mounts, initIfMissing)
		},
	}
	cmd.Flags().StringArrayVar(&mounts, "mount", nil, "mount REF at DIR once started (repeatable), e.g. main:./mnt")
	cmd.Flags().BoolVar(&initIfMissing, "init", false, "create the repository if it does not exist")
	addObservabilityFlags(cmd) // --metrics, --log-format, --log-level (serve_obs.go)
	return cmd
}

func serve(dir string, mounts []string, initIfMissing bool) error {
	logger, err := serveObs.logger()
	if err != nil {
		return err
	}
	sock := repo.SocketPath(dir)
	if _, err := api.Dial(sock); err == nil {
		return fmt.Errorf("a daemon already serves %s (socket %s); stop it first", dir, sock)
	}
	ctx := context.Background()
	r, err := repo.Open(dir, false)
	if errors.Is(err, repo.ErrNoRepo) && initIfMissing {
		r, err = repo.Init(ctx, dir)
	}
	if err != nil {
		return err
	}
	table := &api.MountTable{RepoDir: dir, Logger: logger}
	svc := &api.Local{Engine: r.Engine, Mounter: table, Remotes: r.Remotes}
	os.Remove(sock) // stale: nobody answered on it above, and we hold the repository lock
	ln, err := net.Listen("unix", sock)
	if err != nil {
		r.Close()
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	os.Chmod(sock, 0o600)
	srv := &http.Server{Handler: logCalls(api.Handler(api.Instrument(svc))), ErrorLog: logger}
	go srv.Serve(ln)
	stopMetrics, err := serveObs.serveMetrics(r.Store.DB(), func(context.Context) error { _, err := r.Engine.Branches(); return err })
	if err != nil {
		srv.Close()
		r.Close()
		return err
	}
	shutdown := func() error {
		defer stopMetrics()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		err := table.UnmountAll()
		os.Remove(sock)
		return errors.Join(err, r.Close())
	}
	for _, m := range mounts {
		ref, mdir, ok := strings.Cut(m, ":")
		if !ok {
			shutdown()
			return usageError{fmt.Errorf("--mount takes REF:DIR, got %q", m)}
		}
		info, err := svc.Mount(ctx, ref, mdir, false)
		if err != nil {
			shutdown()
			return err
		}
		logger.Printf("mounted %s at %s", info.Ref, info.Dir)
	}
	if addr := os.Getenv("AGENTFS_PPROF"); addr != "" {
		// Profiling for operators: go tool pprof http://ADDR/debug/pprof/profile
		go func() { logger.Println(http.ListenAndServe(addr, nil)) }()
	}
	logger.Printf("serving %s on %s (Ctrl-C or SIGTERM to stop)", dir, sock)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	logger.Printf("stopping: flushing and unmounting")
	signal.Stop(sig)
	return shutdown()
}

// ensureDaemon starts a daemon in the background when none serves the repository, so that
// agentfs mount works without a separate agentfs serve.
func ensureDaemon(dir string) (*api.Client, error) {
	sock := repo.SocketPath(dir)
	if c, err := api.Dial(sock); err == nil {
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "FORMAT")); err != nil {
		return nil, fmt.Errorf("no agentfs repository at %s: run 'agentfs init' first, or pass --repo", dir)
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
	cmd := exec.Command(self, "--repo", dir, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if c, err := api.Dial(sock); err == nil {
			cmd.Process.Release()
			return c, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("the daemon did not start; see %s", logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("the daemon did not answer within 15s; see %s", logPath)
}

func mountCmd() *cobra.Command {
	var readOnly, asJSON bool
	cmd := &cobra.Command{
		Use:   "mount REF DIR [--read-only]",
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
			info, err := client.Mount(context.Background(), args[0], dir, readOnly)
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
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "mount read-only")
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
