package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

func mergeCmd() *cobra.Command {
	var r api.MergeRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "merge SRC --into DST [--strategy fail|ours|theirs] [-m MESSAGE] [--dry-run] [--json]",
		Short: "Three-way merge of SRC (a branch or checkpoint) into branch DST",
		Long: "merge combines the changes SRC and DST made since their nearest common checkpoint.\n" +
			"Text files changed on both sides merge line by line. Conflicts are listed per path;\n" +
			"with --strategy fail (the default) they change nothing, ours/theirs resolve them all.",
		Args: nargs(1, "SRC (and --into DST)"),
		RunE: func(c *cobra.Command, args []string) error {
			if r.Into == "" {
				return usageError{fmt.Errorf("merge needs --into DST, the branch to merge into")}
			}
			r.Src = args[0]
			return run(func(ctx context.Context, s api.Service) error {
				res, err := s.Merge(ctx, r)
				conflict := errors.Is(err, branch.ErrConflict)
				if err != nil && !conflict {
					return err
				}
				if asJSON {
					if jerr := printJSON(res); jerr != nil {
						return jerr
					}
				} else {
					printMerge(r, res)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&r.Into, "into", "", "branch to merge into (required)")
	cmd.Flags().StringVar(&r.Strategy, "strategy", "fail", "how to resolve conflicts: fail, ours or theirs")
	cmd.Flags().StringVarP(&r.Message, "message", "m", "", "message of the merge checkpoint")
	cmd.Flags().BoolVar(&r.DryRun, "dry-run", false, "report what the merge would do; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func printMerge(r api.MergeRequest, res api.MergeResult) {
	for _, c := range res.Conflicts {
		fmt.Fprintf(os.Stderr, "CONFLICT (%s): %s\n", c.Kind, c.Path)
	}
	switch {
	case res.UpToDate:
		fmt.Printf("%s is already merged into %s\n", r.Src, r.Into)
	case len(res.Conflicts) > 0 && r.Strategy == "fail":
	case r.DryRun:
		fmt.Printf("would merge %s into %s: %d paths change\n", r.Src, r.Into, len(res.Changes))
	default:
		fmt.Println(res.Checkpoint)
	}
}
