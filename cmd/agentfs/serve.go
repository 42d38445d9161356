package main

import (
	"context"
	"errors"
	"fmt"
	"log"
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
	var initIfMissing bool
	var mo api.MountOptions
	cmd := &cobra.Command{
		Use:   "serve [--mount REF:DIR]... [--owner UID:GID] [--allow-other] [--allow-path DIR]...",
		Short: "Run the daemon: own the repository, serve mounts and the control API",
		Long: "serve owns the repository until it gets SIGTERM or SIGINT, when it flushes, unmounts\n" +
			"everything and exits. While it runs, every agentfs command goes through its socket.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return serve(repoDir(), mounts, mo, allowPaths, initIfMissing)
		},
	}
	cmd.Flags().StringArrayVar(&mounts, "mount", nil, "mount REF at DIR once started (repeatable), e.g. main:./mnt")
	mountFlags(cmd, &mo, "the --mount mounts")
	cmd.Flags().StringArrayVar(&allowPaths, "allow-path", nil, "confine import and export through the API to this host directory (repeatable)")
	cmd.Flags().BoolVar(&initIfMissing, "init", false, "create the repository if it does not exist")
	return cmd
}

// mountFlags adds the mount options' flags (--owner, --allow-other) to cmd.
func mountFlags(cmd *cobra.Command, mo *api.MountOptions, which string) {
	cmd.Flags().StringVar(&mo.Owner, "owner", "", "show files stored as root's as owned by UID:GID, and store what UID:GID creates as root's ("+which+")")
	cmd.Flags().BoolVar(&mo.AllowOther, "allow-other", false, "let other users than the daemon's reach "+which+" (needed when a container runs as another uid)")
}

func serve(dir string, mounts []string, mo api.MountOptions, allowPaths []string, initIfMissing bool) error {
	logger := log.New(os.Stderr, "agentfs: ", log.LstdFlags)
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
	if err := svc.AllowPaths(allowPaths); err != nil {
		r.Close()
		return usageError{err}
	}
	os.Remove(sock) // stale: nobody answered on it above, and we hold the repository lock
	ln, err := net.Listen("unix", sock)
	if err != nil {
		r.Close()
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	os.Chmod(sock, 0o600)
	srv := &http.Server{Handler: api.Handler(svc), ErrorLog: logger}
	go srv.Serve(ln)
	shutdown := func() error {
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
		info, err := svc.Mount(ctx, ref, mdir, mo)
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
	var mo api.MountOptions
	cmd := &cobra.Command{
		Use:   "mount BRANCH DIR [--read-only] [--owner UID:GID] [--allow-other]",
		Short: "Mount a branch (read-write) or a checkpoint (read-only) at DIR; starts the daemon if needed",
		Args:  nargs(2, "BRANCH (or a checkpoint REF) and DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			client, err := ensureDaemon(repoDir())
			if err != nil {
				return err
			}
			info, err := client.Mount(context.Background(), args[0], dir, mo)
			if err != nil {
				return err
			}
			mode := "read-write"
			if info.ReadOnly {
				mode = "read-only"
			}
			fmt.Printf("mounted %s at %s (%s)\n", info.Ref, info.Dir, mode)
			return nil
		},
	}
	cmd.Flags().BoolVar(&mo.ReadOnly, "read-only", false, "mount read-only")
	mountFlags(cmd, &mo, "the mount")
	return cmd
}

func unmountCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unmount DIR",
		Short: "Flush and unmount an agentfs mount",
		Args:  nargs(1, "DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[0])
			if err != nil {
				return err
			}
			client, err := api.Dial(repo.SocketPath(repoDir()))
			if err != nil {
				return fmt.Errorf("no agentfs daemon serves %s, so nothing of it is mounted at %s", repoDir(), dir)
			}
			return client.Unmount(context.Background(), dir)
		},
	}
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
