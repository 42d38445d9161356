package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/branch"
)

// provenanceFlags are the --agent, --session, --tool-call and --label flags of the commands
// that checkpoint; unset flags fall back to AGENTFS_AGENT, AGENTFS_SESSION and
// AGENTFS_TOOL_CALL, so that an orchestrator can set them once for an agent's process.
type provenanceFlags struct {
	agent, session, toolCall string
	labels                   []string
}

func (f *provenanceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.agent, "agent", "", "agent that made the checkpoint (default $AGENTFS_AGENT)")
	cmd.Flags().StringVar(&f.session, "session", "", "agent session (default $AGENTFS_SESSION)")
	cmd.Flags().StringVar(&f.toolCall, "tool-call", "", "tool call id (default $AGENTFS_TOOL_CALL)")
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE (repeatable)")
}

func envOr(v, name string) string {
	if v != "" {
		return v
	}
	return os.Getenv(name)
}

func (f *provenanceFlags) provenance(via string) (branch.Provenance, error) {
	labels, err := branch.ParseLabels(f.labels)
	if err != nil {
		return branch.Provenance{}, usageError{err}
	}
	p := branch.Provenance{
		Agent:    envOr(f.agent, "AGENTFS_AGENT"),
		Session:  envOr(f.session, "AGENTFS_SESSION"),
		ToolCall: envOr(f.toolCall, "AGENTFS_TOOL_CALL"),
		Via:      via,
		Labels:   labels,
	}
	return p, p.Validate()
}
