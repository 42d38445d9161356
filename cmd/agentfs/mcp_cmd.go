package main

import (
	"context"
	"errors"
	"io"
	"os/signal"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/mcpserver"
)

var errMissingBranch = errors.New("give the branch to serve: --branch BRANCH")

// isEOF: the client closed standard input, which ends a stdio session normally.
func isEOF(err error) bool { return err == nil || errors.Is(err, io.EOF) }

func mcpCmd() *cobra.Command {
	var br, agent string
	var auto bool
	cmd := &cobra.Command{
		Use:   "mcp --branch BRANCH [--agent NAME] [--checkpoint-each]",
		Short: "Serve a branch to an agent as an MCP server on standard input and output",
		Long: "mcp speaks the Model Context Protocol on stdin/stdout: the file tools of the reference\n" +
			"filesystem server, rooted at the branch, and version tools (checkpoint_create,\n" +
			"checkpoint_list, checkpoint_restore, diff, branch_fork, merge). It goes through the daemon\n" +
			"when one runs (a mount of the branch sees every change), else opens the repository itself.\n" +
			"Over HTTP, the daemon serves the same tools at /mcp (agentfs serve --listen).",
		Args: nargs(0, "no arguments (the branch is --branch)"),
		RunE: func(c *cobra.Command, args []string) error {
			if br == "" {
				return usageError{errMissingBranch}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return run(func(_ context.Context, s api.Service) error {
				if _, err := s.Log(ctx, br); err != nil {
					return err
				}
				srv := mcpserver.New(mcpserver.Options{Service: s, Branch: br, Agent: agent, AutoCheckpoint: auto, Version: Version})
				err := srv.Run(ctx, &mcp.StdioTransport{})
				if ctx.Err() != nil || isEOF(err) {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&br, "branch", "", "branch to serve (required)")
	cmd.Flags().StringVar(&agent, "agent", "", "agent name recorded in checkpoints (default $AGENTFS_AGENT, else the MCP client's name)")
	cmd.Flags().BoolVar(&auto, "checkpoint-each", false, "checkpoint after every tool call that changes the branch")
	return cmd
}
