package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/internal/token"
)

// exitCode makes agentfs exit with a command's own status (agentfs run).
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

func runCmd() *cobra.Command {
	var fork, name, br, dir string
	var withToken bool
	var prov provenanceFlags
	cmd := &cobra.Command{
		Use:   "run [--fork REF --name NAME | --branch B] [--dir D] [--token] -- CMD [ARGS...]",
		Short: "Run a command in a mounted branch, then checkpoint it with the command line and exit code",
		Long: "run forks REF into a new branch NAME (or uses branch B), mounts it on a private temporary\n" +
			"directory (or D), runs CMD there with AGENTFS_BRANCH and AGENTFS_MOUNT (and AGENTFS_TOKEN\n" +
			"with --token) in its environment, checkpoints the branch with the command line as message\n" +
			"and the label exit=CODE, unmounts, and exits with CMD's exit code. Without a daemon it\n" +
			"serves the mount itself for the command's lifetime.",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 || c.ArgsLenAtDash() != 0 {
				return usageError{errors.New("run takes the command after --, e.g. agentfs run --fork main --name job1 -- make test")}
			}
			if (fork == "") == (br == "") || (fork != "" && name == "") {
				return usageError{errors.New("give --fork REF --name NAME, or --branch B")}
			}
			p, err := prov.provenance("run")
			if err != nil {
				return err
			}
			s, closeFn, err := connectMounting()
			if err != nil {
				return err
			}
			code, err := runIn(context.Background(), s, runSpec{fork: fork, name: name, branch: br, dir: dir, token: withToken, prov: p, argv: args})
			if cerr := closeFn(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fork, "fork", "", "ref to fork into a new branch (with --name)")
	cmd.Flags().StringVar(&name, "name", "", "name of the new branch")
	cmd.Flags().StringVar(&br, "branch", "", "existing branch to run in")
	cmd.Flags().StringVar(&dir, "dir", "", "mount here instead of a new temporary directory")
	cmd.Flags().BoolVar(&withToken, "token", false, "make a token for the branch (read,write,checkpoint) for the command; revoked afterwards")
	prov.register(cmd)
	return cmd
}

// connectMounting is connect for commands that mount: the daemon if one runs, else the
// repository opened here with a mount table of its own (the mount lives as long as this
// process).
func connectMounting() (api.Service, func() error, error) {
	dir := repoDir()
	if c, err := api.Dial(repo.SocketPath(dir)); err == nil {
		return c, func() error { return nil }, nil
	}
	r, err := repo.Open(dir, false)
	if err != nil {
		return nil, nil, err
	}
	l := &api.Local{Engine: r.Engine, Remotes: r.Remotes, Mounter: &api.MountTable{RepoDir: dir}}
	c := api.InProcess(guard(dir, l, false, nil), "")
	return c, func() error {
		err := l.Mounter.UnmountAll()
		c.Close()
		return errors.Join(err, r.Close())
	}, nil
}

type runSpec struct {
	fork, name, branch, dir string
	token                   bool
	prov                    branch.Provenance
	argv                    []string
}

// runIn runs the command in the branch and returns its exit code.
func runIn(ctx context.Context, s api.Service, r runSpec) (int, error) {
	br := r.branch
	if r.fork != "" {
		if _, err := s.CreateBranch(ctx, r.name, r.fork); err != nil {
			return 0, err
		}
		br = r.name
	} else if _, err := s.Log(ctx, br); err != nil {
		return 0, err
	}
	mnt := r.dir
	if mnt == "" {
		d, err := os.MkdirTemp("", "agentfs-run-")
		if err != nil {
			return 0, err
		}
		defer os.Remove(d)
		mnt = d
	}
	mnt, err := absPath(mnt)
	if err != nil {
		return 0, err
	}
	if _, err := s.Mount(ctx, br, mnt, api.MountOptions{}); err != nil {
		return 0, err
	}
	mounted := true
	defer func() {
		if mounted {
			s.Unmount(ctx, mnt)
		}
	}()
	env := append(os.Environ(), "AGENTFS_BRANCH="+br, "AGENTFS_MOUNT="+mnt)
	var tokID string
	if r.token {
		str, t, err := token.Open(repoDir()).Create(br, nil, "", 24*time.Hour, false, time.Now())
		if err != nil {
			return 0, err
		}
		tokID = t.ID
		defer token.Open(repoDir()).Revoke(tokID)
		env = append(env, "AGENTFS_TOKEN="+str)
	}
	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Dir, cmd.Env = mnt, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	code := 0
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "agentfs: %s: %v\n", r.argv[0], errors.Unwrap(err))
		code = 127 // as a shell reports a command it cannot run
	} else {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			for s := range sig {
				cmd.Process.Signal(s)
			}
		}()
		err := cmd.Wait()
		signal.Stop(sig)
		close(sig)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() >= 0:
			code = ee.ExitCode()
		case errors.As(err, &ee):
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		case err != nil:
			return 0, err
		}
	}
	p := r.prov
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels["exit"] = strconv.Itoa(code)
	msg := shellJoin(r.argv)
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	cp, err := s.CheckpointWith(ctx, br, branch.CheckpointOptions{Message: msg, Provenance: p})
	if err != nil {
		return code, err
	}
	mounted = false
	if err := s.Unmount(ctx, mnt); err != nil {
		return code, err
	}
	fmt.Fprintf(os.Stderr, "agentfs: %s exited %d; checkpoint %s on branch %s\n", r.argv[0], code, short(cp.ID), br)
	return code, nil
}

// shellJoin quotes argv as a shell would need it.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
