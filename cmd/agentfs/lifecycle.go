package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

// Who owns a repository is decided by its lock (internal/repo/lock.go): a daemon, which
// takes it before anything else and then listens on its socket, or a command that opens the
// repository directly. A command never opens the repository while a daemon holds the lock,
// even one still starting: it waits for the daemon's socket instead.

// daemonStartTimeout bounds how long a command waits for a starting daemon's socket.
const daemonStartTimeout = 30 * time.Second

// waitForDaemon waits while a daemon holds dir's lock until its socket answers. It returns
// nil when no daemon holds the lock (any more), or after timeout.
func waitForDaemon(dir string, timeout time.Duration) *api.Client {
	sock := repo.SocketPath(dir)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := api.Dial(sock); err == nil {
			return c
		}
		if !repo.Held(dir) {
			return nil
		}
		if h, err := repo.ReadHolder(dir); err == nil && h.Role == repo.RoleCLI {
			return nil
		}
	}
	return nil
}

// openDirect takes the repository's lock and opens it in this process, or returns the client
// of a daemon that serves (or is starting on) it. Another command holding the lock is waited
// for: commands are short.
func openDirect(dir string) (api.Service, func() error, error) {
	sock := repo.SocketPath(dir)
	if c, err := api.Dial(sock); err == nil {
		return c, func() error { return nil }, nil
	}
	if !repo.Exists(dir) {
		_, err := repo.Open(dir, false) // says there is no repository, and what to do
		return nil, nil, err
	}
	said := false
	deadline := time.Now().Add(5 * time.Minute)
	for {
		lk, h, err := repo.TryLock(dir, repo.RoleCLI)
		if err == nil {
			r, err := repo.Open(dir, false)
			if err != nil {
				lk.Unlock()
				return nil, nil, err
			}
			return &api.Local{Engine: r.Engine, Remotes: r.Remotes}, func() error {
				err := r.Close()
				lk.Unlock()
				return err
			}, nil
		}
		if !errors.Is(err, repo.ErrLocked) {
			return nil, nil, err
		}
		if h.Role == repo.RoleDaemon {
			if c := waitForDaemon(dir, daemonStartTimeout); c != nil {
				return c, func() error { return nil }, nil
			}
			if repo.Held(dir) {
				return nil, nil, fmt.Errorf("%s holds %s but did not answer on %s within %s; see %s/agentfs.log", h, dir, sock, daemonStartTimeout, dir)
			}
			continue
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w (%s, %s); wait for it to finish", repo.ErrInUse, dir, h)
		}
		if !said && h.Role == repo.RoleCLI {
			fmt.Fprintf(os.Stderr, "agentfs: waiting for %s to finish with %s\n", h, dir)
			said = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errOtherDaemon: another daemon holds the repository.
var errOtherDaemon = errors.New("a daemon already serves")

// lockForDaemon takes dir's lock for a daemon. Another daemon holding it is an error
// (errOtherDaemon); a command holding it is waited for.
func lockForDaemon(dir string) (*repo.Lock, error) {
	daemonSeen := 0
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		lk, h, err := repo.TryLock(dir, repo.RoleDaemon)
		if err == nil {
			return lk, nil
		}
		if !errors.Is(err, repo.ErrLocked) {
			return nil, err
		}
		// Several looks in a row: a probe (repo.Held) holds the lock for an instant, and
		// the file may still name a daemon that was killed.
		if h.Role != repo.RoleDaemon {
			daemonSeen = 0
		} else if daemonSeen++; daemonSeen >= 3 {
			return nil, fmt.Errorf("%w %s (%s, socket %s); stop it first: agentfs stop", errOtherDaemon, dir, h, repo.SocketPath(dir))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (%s, %s)", repo.ErrInUse, dir, h)
		}
	}
}

func stopCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the daemon cleanly: flush, unmount, exit (its mounts come back at its next start)",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := repoDir()
			client, err := api.Dial(repo.SocketPath(dir))
			if err != nil {
				if client = waitForDaemon(dir, daemonStartTimeout); client == nil {
					return fmt.Errorf("no agentfs daemon serves %s", dir)
				}
			}
			if err := client.Stop(context.Background()); err != nil {
				return err
			}
			if !repo.WaitUnlocked(dir, 2*time.Minute) {
				return fmt.Errorf("the daemon of %s accepted to stop but still runs after 2 minutes; see %s/agentfs.log", dir, dir)
			}
			return done(asJSON, map[string]string{"stopped": dir}, "stopped the daemon of %s", dir)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

// runDirect is run without the in-process API handler: fn gets the daemon's client or the
// repository opened in this process (*api.Local).
func runDirect(fn func(ctx context.Context, s api.Service) error) error {
	s, closeFn, err := openDirect(repoDir())
	if err != nil {
		return err
	}
	err = fn(context.Background(), s)
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	return err
}
