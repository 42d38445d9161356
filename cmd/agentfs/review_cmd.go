package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

func diffCmd() *cobra.Command {
	var asJSON, patch, stat bool
	cmd := &cobra.Command{
		Use:   "diff REF REF [--patch | --stat] [--json] [-- PATH...]",
		Short: "Show what changed from the first ref to the second: paths, a patch, or line counts",
		Long: "diff lists the paths added (A), modified (M), deleted (D) and renamed (R) from the first\n" +
			"ref to the second. --patch prints a git-style unified diff (patch -p1 and git apply\n" +
			"accept it), --stat the lines added and deleted per file. Paths after -- limit the\n" +
			"output to those paths and what is below them.",
		Args: func(c *cobra.Command, args []string) error {
			refs := args
			if at := c.ArgsLenAtDash(); at >= 0 {
				refs = args[:at]
			}
			if len(refs) != 2 {
				return usageError{fmt.Errorf("diff takes two REFs, optionally followed by -- and paths")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			r := api.DiffRequest{A: args[0], B: args[1], Patch: patch, Names: !patch && !stat && !asJSON}
			if at := c.ArgsLenAtDash(); at >= 0 {
				r.Paths = args[at:]
			}
			return run(func(ctx context.Context, s api.Service) error {
				files, err := s.DiffFiles(ctx, r)
				if err != nil {
					return err
				}
				switch {
				case asJSON:
					return printJSON(files)
				case patch:
					for _, f := range files {
						fmt.Print(f.Patch)
					}
				case stat:
					printStat(files)
				default:
					for _, f := range files {
						if f.Kind == "renamed" {
							fmt.Printf("R %s -> %s\n", f.OldPath, f.Path)
							continue
						}
						fmt.Printf("%c %s\n", strings.ToUpper(f.Kind)[0], f.Path)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&patch, "patch", "p", false, "print a git-style unified diff")
	cmd.Flags().BoolVar(&stat, "stat", false, "print lines added and deleted per file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, with line counts (and patches with --patch); see docs/cli.md")
	return cmd
}

// printStat prints git's --stat: one line per path and a summary.
func printStat(files []branch.FileDiff) {
	width := 0
	for _, f := range files {
		width = max(width, len(statName(f)))
	}
	var added, deleted int
	for _, f := range files {
		var what string
		switch {
		case f.Binary:
			what = "Bin"
		case f.Type == "dir":
			what = f.Kind + " directory"
		case f.Added+f.Deleted == 0 && f.OldMode != f.NewMode && f.Kind == "modified":
			what = fmt.Sprintf("mode %s => %s", f.OldMode, f.NewMode)
		default:
			what = fmt.Sprintf("%d %s%s", f.Added+f.Deleted, strings.Repeat("+", min(f.Added, 40)), strings.Repeat("-", min(f.Deleted, 40)))
		}
		fmt.Printf(" %-*s | %s\n", width, statName(f), what)
		added += f.Added
		deleted += f.Deleted
	}
	fmt.Printf(" %d paths changed, %d insertions(+), %d deletions(-)\n", len(files), added, deleted)
}

func statName(f branch.FileDiff) string {
	if f.Kind == "renamed" {
		return f.OldPath + " => " + f.Path
	}
	return f.Path
}

func revertCmd() *cobra.Command {
	var r api.RevertRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revert CHECKPOINT [--on BRANCH] [-m MESSAGE] [--dry-run] [--json]",
		Short: "Undo exactly what CHECKPOINT changed, on top of the branch's current state",
		Long: "revert makes a new checkpoint on BRANCH (default: the branch CHECKPOINT was taken on)\n" +
			"that undoes the changes CHECKPOINT made relative to its parent, as a three-way merge.\n" +
			"Paths changed since then in ways that do not combine are listed as conflicts, and\n" +
			"then the branch is not changed.",
		Args: nargs(1, "CHECKPOINT"),
		RunE: func(c *cobra.Command, args []string) error {
			r.Checkpoint = args[0]
			return run(func(ctx context.Context, s api.Service) error {
				if r.On == "" {
					on, err := checkpointBranch(ctx, s, r.Checkpoint)
					if err != nil {
						return err
					}
					r.On = on
				}
				res, err := s.Revert(ctx, r)
				conflict := errors.Is(err, branch.ErrConflict)
				if err != nil && !conflict {
					return err
				}
				if asJSON {
					if jerr := printJSON(res); jerr != nil {
						return jerr
					}
					return err
				}
				for _, c := range res.Conflicts {
					fmt.Fprintf(os.Stderr, "CONFLICT (%s): %s\n", c.Kind, c.Path)
				}
				switch {
				case conflict:
				case res.UpToDate:
					fmt.Printf("nothing to revert: the changes of %s are not on %s any more\n", r.Checkpoint, r.On)
				case r.DryRun:
					fmt.Printf("would revert %s on %s: %d paths change\n", r.Checkpoint, r.On, len(res.Changes))
				default:
					fmt.Println(res.Checkpoint)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&r.On, "on", "", "branch to revert on (default: the checkpoint's branch)")
	cmd.Flags().StringVarP(&r.Message, "message", "m", "", "message of the new checkpoint")
	cmd.Flags().BoolVar(&r.DryRun, "dry-run", false, "report what would change; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

// checkpointBranch returns the branch a checkpoint was taken on.
func checkpointBranch(ctx context.Context, s api.Service, ref string) (string, error) {
	infos, err := s.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	return infos.Branch, nil
}

// addReviewCmds adds the review commands (review_cmd.go): revert, ...
func addReviewCmds(root *cobra.Command) {
	root.AddCommand(revertCmd(), tagCmd(), blameCmd())
}

func tagCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag NAME REF | tag list [--json] | tag delete NAME",
		Short: "Name a checkpoint for good: tags outlive branches, work as refs, and keep gc away",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{fmt.Errorf("tag takes NAME and REF (or: tag list, tag delete NAME)")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				t, err := s.TagCreate(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				fmt.Printf("tagged %s as %s\n", short(t.Checkpoint.ID), t.Name)
				return nil
			})
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List tags",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				tags, err := s.Tags(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(tags)
				}
				w := table()
				for _, t := range tags {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, short(t.Checkpoint.ID), t.Checkpoint.Branch, t.Checkpoint.Message)
				}
				return w.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	var deleteJSON bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a tag (its checkpoint stays until gc finds nothing else refers to it)",
		Args:  nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				if err := s.TagDelete(ctx, args[0]); err != nil {
					return err
				}
				return done(deleteJSON, map[string]string{"deleted": args[0]}, "deleted tag %s", args[0])
			})
		},
	}
	jsonFlag(del, &deleteJSON)
	cmd.AddCommand(list, del)
	return cmd
}

func blameCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "blame REF:PATH [--json]",
		Short: "Name, for each line of a file, the checkpoint that last changed it",
		Long: "blame prints every line of the file with the checkpoint that last changed it (a binary\n" +
			"file as a whole). For a branch, lines changed since its last checkpoint show as\n" +
			"'uncommitted'. Renames are followed.",
		Args: nargs(1, "REF:PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			ref, p := splitRefPath(args[0])
			if p == "" {
				return usageError{fmt.Errorf("blame takes REF:PATH, e.g. main:README.md")}
			}
			return run(func(ctx context.Context, s api.Service) error {
				res, err := s.Blame(ctx, ref, p)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(res)
				}
				w := table()
				for _, l := range res.Lines {
					id := short(l.Checkpoint)
					if id == "" {
						id = "uncommitted"
					}
					text := strings.TrimSuffix(l.Text, "\n")
					if res.Binary {
						text = "(binary file)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d)\t%s\n", id, l.Branch, l.Time.Local().Format(time.DateTime), l.Line, text)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func logCmd() *cobra.Command {
	var asJSON bool
	var r api.LogRequest
	var since, author string
	cmd := &cobra.Command{
		Use:   "log REF [-n N] [--since WHEN] [--agent NAME] [--json]",
		Short: "List the checkpoints of a branch (or any ref), newest first",
		Long: "log lists the history of REF newest first. -n keeps the N newest, --since those taken\n" +
			"after WHEN (a duration such as 2h, a date 2006-01-02, or an RFC 3339 time), --agent\n" +
			"(or --author) those taken on that agent's branch.",
		Args: nargs(1, "REF"),
		RunE: func(c *cobra.Command, args []string) error {
			r.Ref = args[0]
			if r.Limit < 0 {
				return usageError{fmt.Errorf("-n takes a positive number")}
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return usageError{err}
				}
				r.Since = t
			}
			if author != "" {
				r.Agent = author
			}
			return run(func(ctx context.Context, s api.Service) error {
				cps, err := s.History(ctx, r)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cps)
				}
				w := table()
				for _, cp := range cps {
					name := cp.Name
					if name != "" {
						name = cp.Branch + "@" + name
					}
					msg := cp.Message
					if cp.Pruned {
						msg += " (pruned)"
					}
					if cp.SignedBy != "" {
						msg += " [signed by " + cp.SignedBy + "]"
					} else if cp.SignedVia != "" {
						msg += " [signed via " + short(cp.SignedVia) + "]"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", short(cp.ID), cp.Time.Local().Format(time.DateTime), name, msg)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().IntVarP(&r.Limit, "max-count", "n", 0, "show at most N checkpoints")
	cmd.Flags().StringVar(&since, "since", "", "only checkpoints after WHEN: a duration (2h), a date or an RFC 3339 time")
	cmd.Flags().StringVar(&r.Agent, "agent", "", "only checkpoints taken on this agent's branch")
	cmd.Flags().StringVar(&author, "author", "", "same as --agent")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}
