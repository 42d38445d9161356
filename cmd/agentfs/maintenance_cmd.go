package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
)

func retentionCmd() *cobra.Command {
	var r api.RetentionRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "retention [BRANCH] [--keep-last N] [--keep-within AGE] [--keep-all] [--clear] [--json]",
		Short: "Set which checkpoints maintenance keeps, for BRANCH or (without it) the repository; without flags, show the policies",
		Long: "A policy keeps a branch's N newest unnamed checkpoints and those younger than AGE (30d, 12h);\n" +
			"named and tagged checkpoints and every branch's base are always kept. The daemon applies\n" +
			"the policies before each scheduled gc (agentfs maintenance --run does it now). A branch's\n" +
			"own policy replaces the repository's; --keep-all exempts a branch.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			br := ""
			if len(args) == 1 {
				br = args[0]
			}
			set := false
			for _, f := range []string{"keep-last", "keep-within", "keep-all", "clear"} {
				set = set || c.Flags().Changed(f)
			}
			if set && r.KeepLast < 0 {
				return usageError{fmt.Errorf("--keep-last %d: want a count", r.KeepLast)}
			}
			if _, err := api.ParseAge(r.KeepWithin); err != nil {
				return usageError{fmt.Errorf("--keep-within %v", err)}
			}
			return run(func(ctx context.Context, s api.Service) error {
				var policies []api.RetentionInfo
				if set {
					var err error
					if policies, err = s.SetRetention(ctx, br, r); err != nil {
						return err
					}
				} else {
					m, err := s.Maintenance(ctx, false)
					if err != nil {
						return err
					}
					policies = m.Retention
				}
				if asJSON {
					return printJSON(policies)
				}
				printRetention(policies)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&r.KeepLast, "keep-last", 0, "keep the N newest unnamed checkpoints")
	cmd.Flags().StringVar(&r.KeepWithin, "keep-within", "", "keep checkpoints younger than AGE (30d, 12h)")
	cmd.Flags().BoolVar(&r.KeepAll, "keep-all", false, "keep every checkpoint (exempt the branch from the repository's policy)")
	cmd.Flags().BoolVar(&r.Clear, "clear", false, "remove the policy (a branch then follows the repository's)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func printRetention(ps []api.RetentionInfo) {
	if len(ps) == 0 {
		fmt.Println("retention:  none (every checkpoint is kept; set one with agentfs retention --keep-last N)")
	}
	for i, p := range ps {
		label := "retention: "
		if i > 0 {
			label = "           "
		}
		who := "repository"
		if p.Branch != "" {
			who = "branch " + p.Branch
		}
		fmt.Printf("%s %s: %s\n", label, who, p.Policy)
	}
}

func maintenanceCmd() *cobra.Command {
	var runNow, asJSON bool
	cmd := &cobra.Command{
		Use:   "maintenance [--run] [--json]",
		Short: "Show the retention policies, the last gc and the daemon's schedule; --run applies retention and collects garbage now",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				m, err := s.Maintenance(ctx, runNow)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(m)
				}
				if m.Ran != nil {
					fmt.Printf("ran:        pruned %d checkpoints, freed %s in %s\n", m.Ran.Pruned, mib(m.Ran.DeletedBytes), m.Ran.Duration.Round(time.Millisecond))
				}
				printMaintenance(m)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&runNow, "run", false, "apply the retention policies and collect garbage now")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printMaintenance writes the policies, the last gc and the schedule (also agentfs status).
func printMaintenance(m api.MaintenanceInfo) {
	printRetention(m.Retention)
	if g := m.LastGC; g != nil {
		fmt.Printf("last gc:    %s (%s): freed %s, pruned %d checkpoints; on disk %s -> %s\n", g.Time.Local().Format(time.RFC3339), g.Why,
			mib(g.DeletedBytes), g.Pruned, mib(int64(g.DiskBefore)), mib(int64(g.DiskAfter)))
	} else {
		fmt.Println("last gc:    never")
	}
	s := m.Schedule
	switch {
	case s == nil:
		fmt.Println("next gc:    no daemon runs maintenance (agentfs serve does, or run agentfs maintenance --run)")
	case s.GCEvery > 0:
		fmt.Printf("next gc:    %s (every %s, retention first", s.NextGC.Local().Format(time.RFC3339), s.GCEvery)
		if s.GCGarbage > 0 {
			fmt.Printf("; sooner if the check at %s finds %s of garbage", s.NextCheck.Local().Format(time.Kitchen), mib(s.GCGarbage))
		}
		fmt.Println(")")
	case s.GCGarbage > 0:
		fmt.Printf("next gc:    when a check (next at %s) finds %s of garbage\n", s.NextCheck.Local().Format(time.Kitchen), mib(s.GCGarbage))
	default:
		fmt.Println("next gc:    none scheduled (serve --gc-every 0 --gc-garbage 0)")
	}
}
