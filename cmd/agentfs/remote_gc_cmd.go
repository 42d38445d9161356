package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/remote"
)

// addRemoteGCCmd adds "remote gc" under the remote command.
//
// With a daemon serving the repository it runs inside the daemon (the remote.gc call).
func addRemoteGCCmd(root *cobra.Command) {
	var dryRun, asJSON bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc NAME [--dry-run] [--json] [--grace DURATION]",
		Short: "Delete or rewrite the packs of a remote that no branch in the bucket references",
		Long: "remote gc marks every object reachable from the branch refs in the bucket (all hosts'\n" +
			"branches), deletes the packs none of whose objects is reachable and rewrites the packs\n" +
			"that are mostly unreachable. Packs younger than --grace (default 1h) are never touched,\n" +
			"so pushes in flight on other hosts are safe as long as a push takes less than the grace\n" +
			"period and the clocks agree to within it (docs/format.md, \"Garbage collection\").\n" +
			"Lazy clones of deleted branches can no longer fetch their files afterwards.",
		Args: nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if grace < 0 {
				return usageError{errors.New("--grace must not be negative")}
			}
			g := grace
			if g == 0 {
				g = -1 // GCOptions: negative = no grace period
			}
			// Not through connect's in-process handler: remote.gc is a call of the daemon's
			// socket (api.RemoteGCHandler) or a direct call on the opened repository.
			return runDirect(func(ctx context.Context, s api.Service) error {
				rg, ok := s.(api.RemoteGCer)
				if !ok {
					return errors.New("this agentfs cannot collect a remote's garbage")
				}
				if grace < 10*time.Minute && !dryRun {
					fmt.Fprintf(os.Stderr, "warning: grace period %s: a push in flight on another host may lose its packs\n", grace)
				}
				res, err := rg.RemoteGC(ctx, args[0], remote.GCOptions{DryRun: dryRun, Grace: g})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(res)
				}
				verb := "deleted"
				if dryRun {
					verb = "would delete"
				}
				fmt.Printf("%s: %d refs, %d live objects; %d packs (%s, %s live), %d younger than %s left alone\n",
					res.Remote, res.Refs, res.LiveObjects, res.Packs, mib(res.PackBytes), mib(res.LiveBytes), res.Young, res.Grace)
				fmt.Printf("%s %d dead packs (%s) and %d orphans; rewrote %d packs (%s) into %d (%s, %d objects copied); reclaimed %s\n",
					verb, res.Deleted, mib(res.DeletedBytes), res.Orphans, res.Rewritten, mib(res.RewrittenBytes),
					res.Written, mib(res.WrittenBytes), res.Copied, mib(res.Reclaimed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only report what would be deleted and rewritten")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&grace, "grace", remote.DefaultGrace, "leave packs younger than this alone (0 = none: only when no other host can push)")
	for _, c := range root.Commands() {
		if c.Name() == "remote" {
			c.AddCommand(cmd)
		}
	}
}
