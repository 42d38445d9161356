package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/repo"
)

func repoDir() string {
	if repoFlag != "" {
		return repoFlag
	}
	return repo.DefaultPath()
}

// connect returns the daemon's client when a daemon serves the repository (or is starting
// on it), else the repository opened in this process under its lock. close must be called
// when done.
func connect() (svc api.Service, close func() error, err error) {
	dir := repoDir()
	svc, closeDirect, err := openDirect(dir)
	if err != nil {
		return nil, nil, err
	}
	if l, ok := svc.(*api.Local); ok {
		// Calls go through the same guard as the daemon's (audit log): agents_cmd.go.
		c := api.InProcess(guard(dir, l, false, nil), "")
		return c, func() error { c.Close(); return closeDirect() }, nil
	}
	return svc, closeDirect, nil
}

// run connects, runs fn, and closes the repository, reporting the first error.
func run(fn func(ctx context.Context, s api.Service) error) error {
	s, closeFn, err := connect()
	if err != nil {
		return err
	}
	err = fn(context.Background(), s)
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	return err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func absPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return abs, nil
}

func initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a repository (with an empty branch main)",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := repo.Init(context.Background(), repoDir())
			if err != nil {
				return err
			}
			fmt.Printf("initialized agentfs repository at %s (branch main)\n", r.Dir)
			return r.Close()
		},
	}
}

func importCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import BRANCH DIR",
		Short: "Make BRANCH's tree equal to DIR and checkpoint it; prints the checkpoint id",
		Args:  nargs(2, "BRANCH and DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				res, err := s.Import(ctx, args[0], dir)
				if err != nil {
					return err
				}
				fmt.Println(res.Checkpoint.ID)
				return nil
			})
		},
	}
}

func exportCmd() *cobra.Command {
	var o api.ExportOptions
	cmd := &cobra.Command{
		Use:   "export REF DIR [--devices] [--setid]",
		Short: "Write REF's tree into a new directory DIR",
		Long: "export writes files, directories, symlinks, hard links, FIFOs, xattrs, modes and times\n" +
			"(owners too when run as root). Device nodes, setuid/setgid bits and file capabilities\n" +
			"are left out (with a warning) unless --devices or --setid asks for them.",
		Args: nargs(2, "REF and DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error { return s.Export(ctx, args[0], dir, o) })
		},
	}
	cmd.Flags().BoolVar(&o.Devices, "devices", false, "create device nodes")
	cmd.Flags().BoolVar(&o.SetID, "setid", false, "restore setuid/setgid bits and security.capability")
	return cmd
}

func branchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "branch", Short: "Create, list and delete branches", Args: nargs(0, "a subcommand: create, list or delete")}
	var from string
	create := &cobra.Command{
		Use:   "create NAME [--from REF]",
		Short: "Create a branch (empty, or from REF in constant time)",
		Args:  nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				b, err := s.CreateBranch(ctx, args[0], from)
				if err != nil {
					return err
				}
				fmt.Printf("created branch %s at %s\n", b.Name, short(b.Base))
				return nil
			})
		},
	}
	create.Flags().StringVar(&from, "from", "", "branch, checkpoint id or BRANCH@NAME to start from")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List branches",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				bs, err := s.Branches(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(bs)
				}
				w := table()
				fmt.Fprintln(w, "BRANCH\tBASE\tCHANGED\tSHARED\tEXCLUSIVE\tQUOTA\tMOUNTED")
				for _, b := range bs {
					fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", b.Name, short(b.Base), b.Changed, mib(b.SharedBytes), mib(b.ExclusiveBytes), quotaText(b), b.Mounted)
				}
				return w.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a branch (its checkpoints stay until gc)",
		Args:  nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error { return s.DeleteBranch(ctx, args[0]) })
		},
	}
	cmd.AddCommand(create, list, del, branchQuotaCmd())
	return cmd
}

func forkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fork REF NAME",
		Short: "Create branch NAME from REF (same as branch create NAME --from REF)",
		Args:  nargs(2, "REF and NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				b, err := s.CreateBranch(ctx, args[1], args[0])
				if err != nil {
					return err
				}
				fmt.Printf("created branch %s at %s\n", b.Name, short(b.Base))
				return nil
			})
		},
	}
}

func checkpointCmd() *cobra.Command {
	var name, msg string
	var prov provenanceFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "checkpoint BRANCH [--name NAME] [-m MESSAGE] [--agent A] [--session S] [--tool-call T] [--label K=V]... [--json]",
		Short: "Make the branch's current state an immutable checkpoint; prints its id",
		Args:  nargs(1, "BRANCH"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := prov.provenance("cli")
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				cp, err := s.CheckpointWith(ctx, args[0], branch.CheckpointOptions{Name: name, Message: msg, Provenance: p})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cp)
				}
				fmt.Println(cp.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name the checkpoint (then BRANCH@NAME refers to it)")
	cmd.Flags().StringVarP(&msg, "message", "m", "", "message")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checkpoint as JSON, with the paths it created, modified and deleted")
	prov.register(cmd)
	return cmd
}

func rollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback BRANCH REF",
		Short: "Discard the branch's state and make it REF's state",
		Args:  nargs(2, "BRANCH and REF"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error { return s.Rollback(ctx, args[0], args[1]) })
		},
	}
}

func logCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "log BRANCH [--json]",
		Short: "List a branch's checkpoints, newest first",
		Args:  nargs(1, "BRANCH"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				cps, err := s.Log(ctx, args[0])
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
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", short(cp.ID), cp.Time.Local().Format(time.DateTime), name, msg)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

// splitRefPath splits REF[:PATH].
func splitRefPath(s string) (string, string) {
	ref, p, _ := strings.Cut(s, ":")
	return ref, p
}

func lsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls REF[:PATH] [--json]",
		Short: "List a directory of a ref",
		Args:  nargs(1, "REF[:PATH]"),
		RunE: func(c *cobra.Command, args []string) error {
			ref, p := splitRefPath(args[0])
			return run(func(ctx context.Context, s api.Service) error {
				entries, err := s.List(ctx, ref, p)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(entries)
				}
				w := table()
				for _, e := range entries {
					name := e.Name
					if e.Type == "dir" {
						name += "/"
					}
					if e.Target != "" {
						name += " -> " + e.Target
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Mode, e.Type, e.Size, e.Mtime.Local().Format(time.DateTime), name)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func catCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat REF:PATH",
		Short: "Write a file of a ref to standard output",
		Args:  nargs(1, "REF:PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			ref, p := splitRefPath(args[0])
			if p == "" {
				return usageError{fmt.Errorf("cat takes REF:PATH, e.g. main:README.md")}
			}
			return run(func(ctx context.Context, s api.Service) error { return s.Cat(ctx, ref, p, os.Stdout) })
		},
	}
}
