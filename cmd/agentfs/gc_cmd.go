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
	"github.com/agentfs/agentfs/store"
)

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func gcCmd() *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--json]",
		Short: "Delete the blocks no branch, checkpoint or mount references, and reclaim the disk space",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				ctx, end := withEvents(ctx)
				st, err := s.GC(ctx, api.GCOptions{DryRun: dryRun})
				end()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(st)
				}
				if dryRun {
					fmt.Printf("would delete %d of %d blocks, %s of %s\n", st.Garbage, st.Blocks, mib(st.GarbageBytes), mib(st.Bytes))
					return nil
				}
				fmt.Printf("deleted %d of %d blocks, %s of %s; repository on disk: %s -> %s\n",
					st.Deleted, st.Blocks, mib(st.DeletedBytes), mib(st.Bytes), mib(int64(st.DiskBefore)), mib(int64(st.DiskAfter)))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only report what would be deleted")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

// errProblems makes fsck exit with code 1 after printing its report.
var errProblems = errors.New("fsck found problems")

func fsckCmd() *cobra.Command {
	var asJSON, remote, verifyData, repair bool
	cmd := &cobra.Command{
		Use:   "fsck [--json]",
		Short: "Verify that every object every branch, checkpoint and mount references is present and intact",
		Long:  "fsck reads every reachable object and checks its hash. It prints one line per problem\n(REF: PATH: OBJECT ID ERROR) and exits 0 only when the repository is clean.",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if verifyData && !remote {
				return usageError{errors.New("--verify-data needs --remote")}
			}
			dir := repoDir()
			s, closeFn, err := connect()
			if err != nil && repo.IsDamaged(store.Describe(err, "")) {
				if !repair {
					for _, l := range repo.Inspect(dir, err) {
						fmt.Println(l)
					}
					return errProblems
				}
				if err := rebuild(dir); err != nil {
					return err
				}
				s, closeFn, err = connect()
			}
			if err != nil {
				return err
			}
			ctx := context.Background()
			ectx, end := withEvents(ctx)
			rep, err := s.Fsck(ectx, api.FsckOptions{Remote: remote, VerifyData: verifyData, Repair: repair})
			end()
			if repair && !daemonServes(dir) && (err != nil && repo.IsDamaged(store.Describe(err, "")) || rep != nil && rep.Damaged()) {
				// The database itself is damaged: rebuild it, then repair blocks from the remotes.
				closeFn()
				if err := rebuild(dir); err != nil {
					return err
				}
				if s, closeFn, err = connect(); err != nil {
					return err
				}
				ectx, end := withEvents(ctx)
				rep, err = s.Fsck(ectx, api.FsckOptions{Remote: remote, VerifyData: verifyData, Repair: repair})
				end()
			}
			defer closeFn()
			if err != nil && !repair && repo.IsDamaged(store.Describe(err, "")) {
				for _, l := range repo.Inspect(dir, err) {
					fmt.Println(l)
				}
				return errProblems
			}
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fixed := ""
					if p.Repaired {
						fixed = " (repaired from the remote)"
					}
					fmt.Printf("%s: %s: %s %s %s%s\n", p.Ref, p.Path, p.Object, p.ID, p.Error, fixed)
				}
			}
			if n := rep.Unrepaired(); n > 0 {
				return fmt.Errorf("%w: %d broken objects (of %d checked)", errProblems, n, rep.Objects)
			}
			if !asJSON {
				fmt.Printf("clean: %d objects from %d roots verified\n", rep.Objects, rep.Roots)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	cmd.Flags().BoolVar(&remote, "remote", false, "also check that every remote holds all objects of its branches and of this repository's unfinished pushes")
	cmd.Flags().BoolVar(&verifyData, "verify-data", false, "with --remote: download every such object and check its hash")
	cmd.Flags().BoolVar(&repair, "repair", false, "replace missing or corrupt local blocks with verified copies from a remote")
	return cmd
}

// addPruneCmd adds "checkpoint prune" under the checkpoint command.
func addPruneCmd(root *cobra.Command) {
	var keepLast int
	var keepWithin time.Duration
	var asJSON, verbose bool
	prune := &cobra.Command{
		Use:   "prune BRANCH [--keep-last N] [--keep-within DURATION] [-v] [--json]",
		Short: "Mark older unnamed checkpoints of BRANCH as pruned; the next gc frees their files",
		Long: "prune keeps the N newest checkpoints of the branch, those taken within DURATION, named\n" +
			"ones and those other branches start from; the others stay in the log but their files\n" +
			"are freed by the next gc, and they can no longer be forked from or rolled back to.",
		Args: nargs(1, "BRANCH"),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("keep-last") && !c.Flags().Changed("keep-within") {
				return usageError{errors.New("checkpoint prune needs --keep-last N and/or --keep-within DURATION")}
			}
			return run(func(ctx context.Context, s api.Service) error {
				res, err := s.PruneCheckpoints(ctx, args[0], keepLast, keepWithin)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(res)
				}
				if verbose {
					for _, id := range res.Pruned {
						fmt.Println(id)
					}
				}
				fmt.Printf("pruned %d checkpoints of %s; run agentfs gc to free their space\n", len(res.Pruned), args[0])
				return nil
			})
		},
	}
	prune.Flags().IntVar(&keepLast, "keep-last", 0, "keep the N newest checkpoints")
	prune.Flags().DurationVar(&keepWithin, "keep-within", 0, "keep checkpoints newer than DURATION (e.g. 24h)")
	prune.Flags().BoolVar(&asJSON, "json", false, "print JSON (lists the pruned checkpoints)")
	prune.Flags().BoolVarP(&verbose, "verbose", "v", false, "list the pruned checkpoints before the summary")
	for _, c := range root.Commands() {
		if c.Name() == "checkpoint" {
			c.AddCommand(prune)
		}
	}
}

// rebuild runs repo.Repair under the repository lock and says what it did.
func rebuild(dir string) error {
	lk, h, err := repo.TryLock(dir, repo.RoleCLI)
	if err != nil {
		return fmt.Errorf("the repository is held by %s; stop it first (agentfs stop), then run agentfs fsck --repair", h)
	}
	defer lk.Unlock()
	rep, err := repo.Repair(context.Background(), dir)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	fmt.Fprintf(os.Stderr, "rebuilt the database from %s: %d blocks salvaged, %d unreadable, %d metadata keys, %d restored from the metadata copy; the damaged database is in %s\n",
		rep.Source, rep.Salvage.Blocks, rep.Salvage.BadBlocks, rep.Salvage.Meta, rep.MetaFromCopy, rep.Aside)
	return nil
}

// daemonServes reports whether a daemon answers on the repository's socket.
func daemonServes(dir string) bool {
	_, err := api.Dial(repo.SocketPath(dir))
	return err == nil
}
