package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
)

// statusReport is what agentfs status shows. Each part is filled by one function of
// statusParts, so that a new part (maintenance, gc) is a field and a function.
type statusReport struct {
	Repo    string          `json:"repo"`
	Daemon  daemonStatus    `json:"daemon"`
	Mounts  []api.MountInfo `json:"mounts"`
	Changed []string        `json:"changed_branches"` // branches with uncommitted changes
	Remotes []remote.Remote `json:"remotes"`
	// Retention policies, the last gc and the daemon's schedule (maintenance_cmd.go).
	Maintenance api.MaintenanceInfo `json:"maintenance"`
}

type daemonStatus struct {
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Socket  string `json:"socket"`
}

// statusParts fill the report in order; each reads what it needs through the service.
var statusParts = []func(ctx context.Context, s api.Service, r *statusReport) error{
	func(ctx context.Context, s api.Service, r *statusReport) (err error) {
		r.Mounts, err = s.Mounts(ctx)
		return err
	},
	func(ctx context.Context, s api.Service, r *statusReport) error {
		bs, err := s.Branches(ctx)
		for _, b := range bs {
			if b.Changed {
				r.Changed = append(r.Changed, b.Name)
			}
		}
		return err
	},
	func(ctx context.Context, s api.Service, r *statusReport) (err error) {
		r.Remotes, err = s.RemoteList(ctx)
		return err
	},
	func(ctx context.Context, s api.Service, r *statusReport) (err error) {
		r.Maintenance, err = s.Maintenance(ctx, false)
		return err
	},
}

func statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the daemon, its mounts, branches with uncommitted changes and remotes",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := repoDir()
			r := statusReport{Repo: dir, Daemon: daemonStatus{Socket: repo.SocketPath(dir)}}
			pid, err := daemonPID(dir)
			if err != nil {
				return err
			}
			r.Daemon.Running, r.Daemon.PID = pid != 0, pid
			err = run(func(ctx context.Context, s api.Service) error {
				for _, part := range statusParts {
					if err := part(ctx, s, &r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(r)
			}
			printStatus(r)
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func printStatus(r statusReport) {
	fmt.Printf("repository: %s\n", r.Repo)
	if r.Daemon.Running {
		fmt.Printf("daemon:     running (pid %d, socket %s)\n", r.Daemon.PID, r.Daemon.Socket)
	} else {
		fmt.Printf("daemon:     not running (agentfs mount or agentfs serve starts it)\n")
	}
	if len(r.Mounts) == 0 {
		fmt.Printf("mounts:     none\n")
	}
	for i, m := range r.Mounts {
		label := "mounts:    "
		if i > 0 {
			label = "           "
		}
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		fmt.Printf("%s %s at %s (%s)\n", label, m.Ref, m.Dir, mode)
	}
	changed := "none"
	if len(r.Changed) > 0 {
		changed = strings.Join(r.Changed, ", ")
	}
	fmt.Printf("uncommitted: %s\n", changed)
	if len(r.Remotes) == 0 {
		fmt.Printf("remotes:    none\n")
	}
	for i, rm := range r.Remotes {
		label := "remotes:   "
		if i > 0 {
			label = "           "
		}
		fmt.Printf("%s %s %s\n", label, rm.Name, rm.URL)
	}
	printMaintenance(r.Maintenance)
}
