// Command agentfs is the CLI and the daemon of agentfs, a versioned copy-on-write
// filesystem for AI agents. See docs/cli.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/store"
)

// usageError marks bad command-line usage (exit code 2).
type usageError struct{ error }

func main() {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	var code exitCode
	if errors.As(err, &code) {
		os.Exit(int(code)) // agentfs run: the command's own status; it has spoken for itself
	}
	err = store.Describe(err, filepath.Join(repoDir(), "db")) // damaged data: one line
	if !store.Reported(err) {                                 // the store's log said it already
		fmt.Fprintln(os.Stderr, "agentfs:", oneLine(err))
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "run 'agentfs --help' for usage")
		os.Exit(2)
	}
	os.Exit(1)
}

// oneLine keeps error output to one line, as promised in docs/cli.md.
func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

var repoFlag string

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "agentfs",
		Short:         "A versioned, copy-on-write filesystem for AI agents",
		Long:          "agentfs gives every agent its own branch of a workspace, mounted as a normal directory:\nfork in a millisecond, checkpoint often, roll back at once, diff and merge.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readVersion().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&repoFlag, "repo", "", "repository directory (default $AGENTFS_REPO, else ~/.agentfs)")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "draw no progress bars (they are drawn only when stderr is a terminal)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRun = quietForJSON // progress.go
	root.AddCommand(
		initCmd(), importCmd(), exportCmd(), branchCmd(), forkCmd(), checkpointCmd(),
		rollbackCmd(), diffCmd(), logCmd(), lsCmd(), catCmd(),
		mountCmd(), unmountCmd(), mountsCmd(), serveCmd(), stopCmd(), mergeCmd(),
		gcCmd(), fsckCmd(),
		remoteCmd(), pushCmd(), pullCmd(), cloneCmd(), keygenCmd(),
		csiCmd(), dockerPluginCmd(),
		versionCmd(), statusCmd(),
		retentionCmd(), maintenanceCmd(), // maintenance_cmd.go
	)
	addPruneCmd(root) // checkpoint prune (gc_cmd.go)
	addReviewCmds(root)
	addRemoteGCCmd(root)

	// Agents: mcp_cmd.go, agents_cmd.go, run_cmd.go.
	root.AddCommand(mcpCmd(), tokenCmd(), auditCmd(), runCmd())
	rejectUnknownSubcommands(root) // last: it sees every command added above
	return root
}

// rejectUnknownSubcommands makes an unknown (sub)command a usage error (exit 2) with
// cobra's "did you mean" suggestion, on the root and on every command that only groups
// subcommands (no RunE of its own, like branch); without arguments such a command prints
// its help. (A group without RunE would otherwise print help and exit 0 for a typo.)
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || (c.HasParent() && (c.RunE != nil || c.Run != nil)) {
		return
	}
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's own default, which it sets only on its path
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return usageError{errors.New(msg)}
	}
	c.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
}

// nargs checks the number of positional arguments.
func nargs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s", c.CommandPath(), names)}
		}
		return nil
	}
}
