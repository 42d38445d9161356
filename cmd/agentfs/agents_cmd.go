package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/audit"
	"github.com/agentfs/agentfs/internal/token"
)

func auditPath(dir string) string { return filepath.Join(dir, "audit.log") }

// guard puts the access checks and the audit log in front of svc's handler.
func guard(dir string, l *api.Local, requireToken bool, logf func(format string, args ...any)) *api.Guard {
	g := &api.Guard{Next: api.Handler(l), Engine: l.Engine, Tokens: token.Open(dir), RequireToken: requireToken, Audit: audit.Open(auditPath(dir))}
	if logf != nil {
		g.AuditError = func(err error) { logf("audit log: %v", err) }
	}
	return g
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke capability tokens for agents", Args: nargs(0, "a subcommand: create, list or revoke")}
	var rights []string
	var prefix string
	var ttl time.Duration
	var readOther bool
	create := &cobra.Command{
		Use:   "create BRANCH [--rights LIST] [--path PREFIX] [--ttl DURATION]",
		Short: "Make a token for one branch and print it (it is shown only once)",
		Long: "Rights: " + strings.Join(token.Rights, ", ") + " (default " + strings.Join(token.DefaultRights, ",") + ").\n" +
			"The token is a bearer secret for agentfs serve --listen (the control API and /mcp);\n" +
			"only its hash is stored in the repository.",
		Args: nargs(1, "BRANCH"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := token.CheckRights(rights); err != nil {
				return usageError{err}
			}
			clean, err := api.CleanPath(prefix)
			if err != nil {
				return usageError{err}
			}
			if err := run(func(ctx context.Context, s api.Service) error { _, err := s.Log(ctx, args[0]); return err }); err != nil {
				return err
			}
			str, t, err := token.Open(repoDir()).Create(args[0], rights, clean, ttl, readOther, time.Now())
			if err != nil {
				return err
			}
			auditLocal("token.create", t.Branch, fmt.Sprintf(`{"id":%q,"rights":%q,"path":%q,"ttl":%q}`, t.ID, strings.Join(t.Rights, ","), t.Path, ttl))
			fmt.Println(str)
			fmt.Fprintf(os.Stderr, "token %s for branch %s (%s)\n", t.ID, t.Branch, strings.Join(t.Rights, ","))
			return nil
		},
	}
	create.Flags().StringSliceVar(&rights, "rights", nil, "comma-separated rights: "+strings.Join(token.Rights, ","))
	create.Flags().StringVar(&prefix, "path", "", "limit the token to this path prefix of the branch")
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 1h (default: until revoked)")
	create.Flags().BoolVar(&readOther, "read-other-checkpoints", false, "let the token read checkpoints of other branches by id")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List tokens (their ids, never their secrets)",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			ts, err := token.Open(repoDir()).List()
			if err != nil {
				return err
			}
			if asJSON {
				for i := range ts {
					ts[i].Hash = ""
				}
				return printJSON(ts)
			}
			w := table()
			fmt.Fprintln(w, "ID\tBRANCH\tRIGHTS\tPATH\tEXPIRES\tSTATE")
			now := time.Now()
			for _, t := range ts {
				state, exp := "valid", "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Local().Format(time.DateTime)
					if !now.Before(t.Expires) {
						state = "expired"
					}
				}
				if t.Revoked {
					state = "revoked"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Branch, strings.Join(t.Rights, ","), t.Path, exp, state)
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: every later call with it gets 401",
		Args:  nargs(1, "ID"),
		RunE: func(c *cobra.Command, args []string) error {
			err := token.Open(repoDir()).Revoke(args[0])
			auditLocal("token.revoke", "", fmt.Sprintf(`{"id":%q}`, args[0]))
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// auditLocal logs an operation that does not go through the control API.
func auditLocal(what, br, args string) {
	audit.Open(auditPath(repoDir())).Append(audit.Entry{Time: time.Now().UTC(), Who: api.CallerOf(context.Background()), What: what, Branch: br, Args: []byte(args), Result: "ok", Status: 200})
}

func auditCmd() *cobra.Command {
	var since, br string
	var asJSON, verify bool
	cmd := &cobra.Command{
		Use:   "audit [--since T] [--branch B] [--json] [--verify]",
		Short: "Show the audit log of control operations, or check its hash chain",
		Long: "Every control call (through the daemon or not, with a token or not) is one line of\n" +
			"REPO/audit.log: time, who, what, arguments, result, and the hash of the line before.\n" +
			"--verify fails if a line was edited, removed or inserted.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			path := auditPath(repoDir())
			if verify {
				n, err := audit.Verify(path)
				if err != nil {
					return err
				}
				fmt.Printf("audit log intact: %d entries\n", n)
				return nil
			}
			var f audit.Filter
			f.Branch = br
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			es, err := audit.Read(path, f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(es)
			}
			w := table()
			for _, e := range es {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Who, e.What, e.Branch, e.Result)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries from this time on: RFC 3339 (2026-12-01T10:00:00Z) or a duration ago (1h)")
	cmd.Flags().StringVar(&br, "branch", "", "only entries naming this branch")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&verify, "verify", false, "check the hash chain; exit 1 if it is broken")
	return cmd
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since takes a time (2026-12-01T10:00:00Z) or a duration (1h), got %q", s)
	}
	return t, nil
}
