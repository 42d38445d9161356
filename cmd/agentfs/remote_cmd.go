package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	_ "github.com/agentfs/agentfs/backends/all"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
)

const defaultRemote = "origin"

func remoteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage remotes (object storage buckets that hold pushed branches)",
		Args:  nargs(0, "a subcommand: add, list, remove"),
	}
	var addJSON, removeJSON bool
	var addSec securityFlags
	add := &cobra.Command{
		Use:   "add NAME URL [--key-file FILE]... [--trust PUBKEY]... [--trust-file FILE]",
		Short: "Add a remote: s3://bucket/prefix?region=R, gs://bucket/prefix, az://account/container/prefix, file:///path",
		Long: "remote add configures a remote. --key-file encrypts what agentfs writes there (a 32-byte key,\n" +
			"64 hex digits, base64 of 32 bytes, or a passphrase; docs/format.md); the key can also come from\n" +
			"AGENTFS_REMOTE_KEY_<NAME> or AGENTFS_REMOTE_KEY. --trust makes pull accept only branches\n" +
			"signed by those keys (agentfs keygen prints one).",
		Args: nargs(2, "NAME and URL"),
		RunE: func(c *cobra.Command, args []string) error {
			sec, err := addSec.security()
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				r, err := s.RemoteAdd(ctx, args[0], args[1], sec)
				if err != nil {
					return err
				}
				return done(addJSON, r, "added remote %s (%s)", r.Name, r.URL)
			})
		},
	}
	jsonFlag(add, &addJSON)
	addSec.keyFlags(add)
	addSec.trustFlags(add)
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List remotes",
		Args:    nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				rs, err := s.RemoteList(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(rs)
				}
				w := table()
				fmt.Fprintln(w, "REMOTE\tURL")
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%s\n", r.Name, r.URL)
				}
				return w.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	remove := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Forget a remote (nothing in the bucket is deleted)",
		Args:    nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				if err := s.RemoteRemove(ctx, args[0]); err != nil {
					return err
				}
				return done(removeJSON, map[string]string{"removed": args[0]}, "removed remote %s (nothing in its bucket was deleted)", args[0])
			})
		},
	}
	jsonFlag(remove, &removeJSON)
	cmd.AddCommand(add, list, remove, rekeyCmd())
	return cmd
}

// remoteAndBranch reads [REMOTE] BRANCH.
func remoteAndBranch(args []string) (string, string) {
	if len(args) == 1 {
		return defaultRemote, args[0]
	}
	return args[0], args[1]
}

func oneOrTwo(c *cobra.Command, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError{fmt.Errorf("%s takes [REMOTE] BRANCH", c.CommandPath())}
	}
	return nil
}

func pushCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "push [REMOTE] BRANCH",
		Short: "Send a branch to a remote (default origin); checkpoints uncommitted changes first",
		Long: "push uploads what the remote lacks and moves the remote branch by compare-and-swap.\n" +
			"If the remote branch changed since your last pull, the push is rejected: pull first.",
		Args: oneOrTwo,
		RunE: func(c *cobra.Command, args []string) error {
			rem, br := remoteAndBranch(args)
			return run(func(ctx context.Context, s api.Service) error {
				stop := showProgress(ctx, s, "push", rem, br)
				res, err := s.Push(ctx, rem, br)
				stop()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(res)
				}
				if res.UpToDate {
					fmt.Printf("%s/%s is up to date (%s)\n", rem, br, short(res.Commit))
					return nil
				}
				fmt.Printf("pushed %s to %s (%s): %d objects, %s in %d packs\n", br, rem, short(res.Commit), res.Objects, mib(res.Bytes), res.Packs)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pullCmd() *cobra.Command {
	var asJSON, full, noMerge bool
	var sec securityFlags
	cmd := &cobra.Command{
		Use:   "pull [REMOTE] BRANCH",
		Short: "Fetch a branch from a remote (default origin) and bring the local branch up to it",
		Long: "pull creates the local branch, fast-forwards it, or (when both sides have new checkpoints)\n" +
			"merges the remote branch into it. File contents are fetched on first read unless --full.",
		Args: oneOrTwo,
		RunE: func(c *cobra.Command, args []string) error {
			rem, br := remoteAndBranch(args)
			trust, err := sec.trust()
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				stop := showProgress(ctx, s, "pull", rem, br)
				res, err := s.Pull(ctx, rem, br, remote.PullOptions{Full: full, NoMerge: noMerge, Trust: trust})
				stop()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(res)
				}
				printPull(res)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&full, "full", false, "fetch file contents now, not on first read")
	cmd.Flags().BoolVar(&noMerge, "no-merge", false, "fail instead of merging when the branches have diverged")
	sec.trustFlags(cmd)
	return cmd
}

func printPull(res remote.PullResult) {
	switch res.Action {
	case "created":
		fmt.Printf("%s: created from %s/%s (%s)\n", res.Branch, res.Remote, res.Branch, short(res.Commit))
	case "fast-forward":
		fmt.Printf("%s: fast-forward to %s/%s (%s)\n", res.Branch, res.Remote, res.Branch, short(res.Commit))
	case "up-to-date":
		fmt.Printf("%s: up to date with %s/%s (%s)\n", res.Branch, res.Remote, res.Branch, short(res.Commit))
	case "ahead":
		fmt.Printf("%s: ahead of %s/%s; push it with: agentfs push %s %s\n", res.Branch, res.Remote, res.Branch, res.Remote, res.Branch)
	case "merged":
		fmt.Printf("%s: merged %s/%s (%s)\n", res.Branch, res.Remote, res.Branch, short(res.Commit))
	default:
		fmt.Printf("%s: %s (%s)\n", res.Branch, res.Action, short(res.Commit))
	}
}

func cloneCmd() *cobra.Command {
	var branches []string
	var full, asJSON bool
	var sec securityFlags
	cmd := &cobra.Command{
		Use:   "clone URL [--branch B]...",
		Short: "Create the repository at --repo from a remote (added as origin); lazy unless --full",
		Long: "clone initialises a new repository, adds URL as remote origin and pulls its branches (all,\n" +
			"or those given with --branch). Only checkpoints and directory trees are downloaded; file\n" +
			"contents come on first read (and stay cached) unless --full.",
		Args: nargs(1, "URL"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := repoDir()
			s, err := sec.security()
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, "FORMAT")); err == nil {
				return fmt.Errorf("%w at %s: clone creates a new repository; choose another --repo", repo.ErrExists, dir)
			}
			_, statErr := os.Stat(dir)
			ctx := context.Background()
			r, err := repo.Init(ctx, dir)
			if err != nil {
				return err
			}
			svc := &api.Local{Engine: r.Engine, Remotes: r.Remotes}
			stop := showProgress(ctx, svc, "clone", "", "") // a new repository: its only transfer
			res, err := r.Remotes.Clone(ctx, args[0], branches, remote.PullOptions{Full: full, KeyFiles: s.KeyFiles, Trust: s.Trust})
			stop()
			if err == nil && !slices.ContainsFunc(res.Branches, func(p remote.PullResult) bool { return p.Branch == "main" }) {
				// init made an empty main; the remote's branches are what the user asked for.
				err = r.Engine.DeleteBranch(ctx, "main")
			}
			cerr := r.Close()
			if err == nil {
				err = cerr
			}
			if err != nil {
				if errors.Is(statErr, os.ErrNotExist) {
					os.RemoveAll(dir) // do not leave a half-made repository behind
				}
				return err
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Printf("cloned %s into %s\n", args[0], dir)
			for _, b := range res.Branches {
				fmt.Printf("  %s (%s)\n", b.Branch, short(b.Commit))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&branches, "branch", nil, "branch to clone (repeatable; default: all)")
	cmd.Flags().BoolVar(&full, "full", false, "download file contents now, not on first read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	sec.keyFlags(cmd)
	sec.trustFlags(cmd)
	return cmd
}
