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
	var conflicts, take, cont, abort, status string
	cmd := &cobra.Command{
		Use: "merge SRC --into DST [--strategy fail|ours|theirs] [--conflicts=markers] [--take ours|theirs PATH...] [-m MESSAGE] [--dry-run] [--json]\n" +
			"  agentfs merge --status DST | --continue DST | --abort DST",
		Short: "Three-way merge of SRC (a branch or checkpoint) into branch DST",
		Long: "merge combines the changes SRC and DST made since their nearest common checkpoint.\n" +
			"Text files changed on both sides merge line by line. Conflicts are listed per path;\n" +
			"with --strategy fail (the default) they change nothing, ours/theirs resolve them all,\n" +
			"--take ours|theirs PATH... resolves those paths only. With --conflicts=markers the\n" +
			"conflicts are written into DST's files (git-style markers in text files, the source's\n" +
			"version of other files beside them as PATH~SRC) and the merge stays pending: edit the\n" +
			"files, then merge --continue DST (a checkpoint with two parents), or merge --abort DST.",
		Args: func(c *cobra.Command, args []string) error {
			if cont != "" || abort != "" || status != "" {
				if len(args) != 0 {
					return usageError{fmt.Errorf("merge --continue, --abort and --status take only the branch")}
				}
				return nil
			}
			if len(args) < 1 {
				return usageError{fmt.Errorf("merge takes SRC (and --into DST)")}
			}
			if len(args) > 1 && take == "" {
				return usageError{fmt.Errorf("merge takes one SRC; paths after it go with --take ours|theirs")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case cont != "":
				return run(func(ctx context.Context, s api.Service) error {
					res, err := s.MergeContinue(ctx, cont)
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(res)
					}
					for _, p := range res.Removed {
						fmt.Fprintf(os.Stderr, "removed %s\n", p)
					}
					fmt.Println(res.Checkpoint)
					return nil
				})
			case abort != "":
				return run(func(ctx context.Context, s api.Service) error {
					if err := s.MergeAbort(ctx, abort); err != nil {
						return err
					}
					if !asJSON {
						fmt.Printf("merge into %s aborted; the branch is back at its state before the merge\n", abort)
					}
					return nil
				})
			case status != "":
				return run(func(ctx context.Context, s api.Service) error {
					p, err := s.MergeStatus(ctx, status)
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(p)
					}
					printPending(status, p)
					return nil
				})
			}
			if r.Into == "" {
				return usageError{fmt.Errorf("merge needs --into DST, the branch to merge into")}
			}
			switch conflicts {
			case "", "fail":
			case "markers":
				r.Strategy = branch.StrategyMarkers
			default:
				return usageError{fmt.Errorf("--conflicts takes fail or markers")}
			}
			r.Src = args[0]
			if take != "" {
				if len(args) < 2 {
					return usageError{fmt.Errorf("--take %s needs the paths it applies to, after SRC", take)}
				}
				r.Take = map[string]string{}
				for _, p := range args[1:] {
					r.Take[p] = take
				}
			}
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
	cmd.Flags().StringVar(&conflicts, "conflicts", "", "markers: write conflicts into the files and leave the merge pending")
	cmd.Flags().StringVar(&take, "take", "", "ours or theirs: resolve the conflicts of the PATHs given after SRC with that side")
	cmd.Flags().StringVar(&cont, "continue", "", "complete the pending merge into this branch")
	cmd.Flags().StringVar(&abort, "abort", "", "abandon the pending merge into this branch and restore it")
	cmd.Flags().StringVar(&status, "status", "", "show the pending merge into this branch and its unresolved paths")
	cmd.Flags().StringVarP(&r.Message, "message", "m", "", "message of the merge checkpoint")
	cmd.Flags().BoolVar(&r.DryRun, "dry-run", false, "report what the merge would do; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func printMerge(r api.MergeRequest, res api.MergeResult) {
	for _, c := range res.Conflicts {
		fmt.Fprintf(os.Stderr, "CONFLICT (%s): %s\n", c.Kind, c.Path)
	}
	if res.SourceCheckpoint != "" {
		fmt.Fprintf(os.Stderr, "checkpointed %s's changes as %s\n", r.Src, short(res.SourceCheckpoint))
	}
	switch {
	case res.UpToDate:
		fmt.Printf("%s is already merged into %s\n", r.Src, r.Into)
	case res.Pending:
		fmt.Printf("merge of %s into %s is pending: settle the conflicts above in the files, then run\n  agentfs merge --continue %s   (or --abort %s)\n", r.Src, r.Into, r.Into, r.Into)
	case len(res.Conflicts) > 0 && res.Checkpoint == "" && !r.DryRun:
	case r.DryRun:
		fmt.Printf("would merge %s into %s: %d paths change\n", r.Src, r.Into, len(res.Changes))
	default:
		fmt.Println(res.Checkpoint)
	}
}

func printPending(br string, p *api.PendingMerge) {
	if p == nil {
		fmt.Printf("no merge into %s is pending\n", br)
		return
	}
	fmt.Printf("merging %s into %s (abort restores %s)\n", p.Source, br, short(p.Head))
	for _, u := range p.Unresolved {
		fmt.Printf("  unresolved: %s\n", u)
	}
	for _, c := range p.Copies {
		fmt.Printf("  source's version: %s (removed by --continue)\n", c)
	}
	if len(p.Unresolved) == 0 {
		fmt.Printf("all conflicts settled; run: agentfs merge --continue %s\n", br)
	}
}
