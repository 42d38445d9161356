package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/jsonout"
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
		// remote gc has its own route, as in serve.go.
		mux := http.NewServeMux()
		g := guard(dir, l, false, nil)
		mux.Handle("POST /v1/remote.gc", g.Wrap(api.RemoteGCHandler(l)))
		mux.Handle("/", g)
		c := api.InProcess(mux, "")
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
	return enc.Encode(jsonout.EmptyLists(v)) // a list is [] even when empty
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
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository (with an empty branch main); does nothing if one exists",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			type result struct {
				Repo    string `json:"repo"`
				Created bool   `json:"created"`
			}
			// A daemon started with serve --init (make run) holds the lock and creates the
			// repository after it listens: wait for it rather than call its directory foreign.
			for deadline := time.Now().Add(daemonStartTimeout); repo.Held(repoDir()) && !repo.Exists(repoDir()) && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			r, err := repo.Init(context.Background(), repoDir())
			if errors.Is(err, repo.ErrExists) {
				// Running init twice (or after make run) is not a mistake: say so and go on.
				return done(asJSON, result{Repo: repoDir()}, "agentfs repository already exists at %s; nothing to do", repoDir())
			}
			if err != nil {
				return err
			}
			if err := r.Close(); err != nil {
				return err
			}
			return done(asJSON, result{Repo: r.Dir, Created: true}, "initialized agentfs repository at %s (branch main)", r.Dir)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func importCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import BRANCH DIR",
		Short: "Make BRANCH's tree equal to DIR and checkpoint it; prints the checkpoint id",
		Args:  nargs(2, "BRANCH and DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				ctx, end := withEvents(ctx) // progress (progress.go)
				res, err := s.Import(ctx, args[0], dir)
				end()
				if res.Saved != nil {
					fmt.Fprintf(os.Stderr, "saved the uncommitted changes of %s in checkpoint %s before the import\n", args[0], res.Saved.ID)
				}
				if err != nil {
					return err
				}
				return done(asJSON, res, "%s", res.Checkpoint.ID)
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func exportCmd() *cobra.Command {
	var o api.ExportOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export REF DIR [--devices] [--setid] [--json]",
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
			return run(func(ctx context.Context, s api.Service) error {
				ctx, end := withEvents(ctx) // progress and warnings (progress.go)
				err := s.Export(ctx, args[0], dir, o)
				end()
				if err != nil {
					return err
				}
				return done(asJSON, map[string]string{"ref": args[0], "dir": dir}, "exported %s to %s", args[0], dir)
			})
		},
	}
	cmd.Flags().BoolVar(&o.Devices, "devices", false, "create device nodes")
	cmd.Flags().BoolVar(&o.SetID, "setid", false, "restore setuid/setgid bits and security.capability")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func branchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "branch", Short: "Create, list and delete branches", Args: nargs(0, "a subcommand: create, list or delete")}
	var from string
	var createJSON, deleteJSON bool
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
				return done(createJSON, b, "created branch %s at %s", b.Name, short(b.Base))
			})
		},
	}
	create.Flags().StringVar(&from, "from", "", "branch, checkpoint id or BRANCH@NAME to start from")
	jsonFlag(create, &createJSON)
	var asJSON, space bool
	list := &cobra.Command{
		Use:   "list [--space] [--json]",
		Short: "List branches (with --space: what each holds, shared and exclusive)",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				bs, err := s.Branches(ctx, api.ListOptions{Space: space})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(bs)
				}
				w := table()
				if space {
					fmt.Fprintln(w, "BRANCH\tBASE\tCHANGED\tSHARED\tEXCLUSIVE\tQUOTA\tMOUNTED")
				} else {
					fmt.Fprintln(w, "BRANCH\tBASE\tCHANGED\tQUOTA\tMOUNTED")
				}
				for _, b := range bs {
					if space {
						fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", b.Name, short(b.Base), b.Changed, mib(*b.SharedBytes), mib(*b.ExclusiveBytes), quotaText(b), b.Mounted)
					} else {
						fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", b.Name, short(b.Base), b.Changed, quotaText(b), b.Mounted)
					}
				}
				return w.Flush()
			})
		},
	}
	list.Flags().BoolVar(&space, "space", false, "count the space each branch holds (walks the repository; slow with many branches)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a branch (its checkpoints stay until gc)",
		Args:  nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				if err := s.DeleteBranch(ctx, args[0]); err != nil {
					return err
				}
				return done(deleteJSON, map[string]string{"deleted": args[0]}, "deleted branch %s (its space comes back at the next agentfs gc)", args[0])
			})
		},
	}
	jsonFlag(del, &deleteJSON)
	cmd.AddCommand(create, list, del, branchQuotaCmd())
	return cmd
}

func forkCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "fork REF NAME",
		Short: "Create branch NAME from REF (same as branch create NAME --from REF)",
		Args:  nargs(2, "REF and NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				b, err := s.CreateBranch(ctx, args[1], args[0])
				if err != nil {
					return err
				}
				return done(asJSON, b, "created branch %s at %s", b.Name, short(b.Base))
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
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
				if cp.Unchanged && !asJSON {
					fmt.Fprintf(os.Stderr, "no change since the last checkpoint of %s; none made (its id follows)\n", args[0])
				}
				return done(asJSON, cp, "%s", cp.ID)
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
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback BRANCH REF",
		Short: "Discard the branch's state and make it REF's state",
		Args:  nargs(2, "BRANCH and REF"),
		RunE: func(c *cobra.Command, args []string) error {
			return run(func(ctx context.Context, s api.Service) error {
				if err := s.Rollback(ctx, args[0], args[1]); err != nil {
					return err
				}
				return done(asJSON, map[string]string{"branch": args[0], "ref": args[1]}, "rolled back %s to %s", args[0], args[1])
			})
		},
	}
	jsonFlag(cmd, &asJSON)
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
