package mcpserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

type checkpointArgs struct {
	Message  string            `json:"message,omitempty"`
	Name     string            `json:"name,omitempty" jsonschema:"optional name; BRANCH@NAME then refers to the checkpoint"`
	ToolCall string            `json:"tool_call,omitempty" jsonschema:"id of the tool call this checkpoint belongs to"`
	Labels   map[string]string `json:"labels,omitempty"`
}

type restoreArgs struct {
	Checkpoint string `json:"checkpoint" jsonschema:"checkpoint id (a unique prefix is enough) or BRANCH@NAME"`
}

type diffArgs struct {
	From string `json:"from,omitempty" jsonschema:"ref to compare from; default: the branch's last checkpoint"`
	To   string `json:"to,omitempty" jsonschema:"ref to compare to; default: the branch now"`
}

type forkArgs struct {
	Name string `json:"name" jsonschema:"name of the new branch"`
	From string `json:"from,omitempty" jsonschema:"ref to fork; default: this branch"`
}

type mergeArgs struct {
	Source   string `json:"source" jsonschema:"branch or checkpoint to merge into this branch"`
	Strategy string `json:"strategy,omitempty" jsonschema:"on conflicts: fail (default), ours or theirs"`
	DryRun   bool   `json:"dryRun,omitempty"`
}

func (s *server) versionTools(srv *mcp.Server) {
	br := s.o.Branch
	mcp.AddTool(srv, &mcp.Tool{Name: "checkpoint_create", Annotations: additive,
		Description: "Checkpoint the branch: an immutable version to diff against or restore later. Records this tool call as its provenance."},
		func(ctx context.Context, req *mcp.CallToolRequest, a checkpointArgs) (*mcp.CallToolResult, any, error) {
			p := s.provenance(req, a.ToolCall)
			p.Labels = a.Labels
			cp, err := s.o.Service.CheckpointWith(ctx, br, branch.CheckpointOptions{Name: a.Name, Message: a.Message, Provenance: p})
			if err != nil {
				return nil, nil, err
			}
			r, err := jsonText(cp)
			return r, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "checkpoint_list", Annotations: readOnly,
		Description: "The branch's checkpoints, newest first, with who made them."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			cps, err := s.o.Service.Log(ctx, br)
			if err != nil {
				return nil, nil, err
			}
			for i := range cps {
				cps[i].Paths = nil
			}
			r, err := jsonText(cps)
			return r, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "checkpoint_restore", Annotations: destructive,
		Description: "Discard the branch's current state and make it a checkpoint's state."},
		func(ctx context.Context, req *mcp.CallToolRequest, a restoreArgs) (*mcp.CallToolResult, any, error) {
			if err := s.o.Service.Rollback(ctx, br, a.Checkpoint); err != nil {
				return nil, nil, err
			}
			return text("Restored %s to %s", br, a.Checkpoint), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "diff", Annotations: readOnly,
		Description: "Paths added, modified and deleted between two refs (default: since the last checkpoint)."},
		func(ctx context.Context, req *mcp.CallToolRequest, a diffArgs) (*mcp.CallToolResult, any, error) {
			from, to := a.From, a.To
			if to == "" {
				to = br
			}
			if from == "" {
				cps, err := s.o.Service.Log(ctx, br)
				if err != nil {
					return nil, nil, err
				}
				if len(cps) == 0 {
					return nil, nil, fmt.Errorf("branch %s has no checkpoint to compare with", br)
				}
				from = cps[0].ID
			}
			ch, err := s.o.Service.Diff(ctx, from, to)
			if err != nil {
				return nil, nil, err
			}
			r, err := jsonText(ch)
			return r, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "branch_fork", Annotations: additive,
		Description: "Create a new branch from this branch (or another ref) in constant time."},
		func(ctx context.Context, req *mcp.CallToolRequest, a forkArgs) (*mcp.CallToolResult, any, error) {
			from := a.From
			if from == "" {
				from = br
			}
			b, err := s.o.Service.CreateBranch(ctx, a.Name, from)
			if err != nil {
				return nil, nil, err
			}
			r, err := jsonText(b)
			return r, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "merge", Annotations: destructive,
		Description: "Merge a branch or checkpoint into this branch (three-way); conflicts are listed per path."},
		func(ctx context.Context, req *mcp.CallToolRequest, a mergeArgs) (*mcp.CallToolResult, any, error) {
			res, err := s.o.Service.Merge(ctx, api.MergeRequest{Src: a.Source, Into: br, Strategy: a.Strategy, DryRun: a.DryRun,
				Message: "merge of " + a.Source + " through MCP"})
			if err != nil && len(res.Conflicts) == 0 {
				return nil, nil, err
			}
			r, jerr := jsonText(res)
			if err != nil && r != nil {
				r.IsError = true
			}
			return r, nil, jerr
		})
}

// unifiedDiff shows the change from a to b as one hunk around the lines that differ.
func unifiedDiff(name, a, b string) string {
	la, lb := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	pre := 0
	for pre < len(la) && pre < len(lb) && la[pre] == lb[pre] {
		pre++
	}
	suf := 0
	for suf < len(la)-pre && suf < len(lb)-pre && la[len(la)-1-suf] == lb[len(lb)-1-suf] {
		suf++
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", name, name)
	if a == b {
		return sb.String()
	}
	ctxLines := 3
	start := max(pre-ctxLines, 0)
	endA, endB := min(len(la)-suf+ctxLines, len(la)), min(len(lb)-suf+ctxLines, len(lb))
	fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", start+1, endA-start, start+1, endB-start)
	line := func(prefix, l string) {
		if l == "" {
			return
		}
		sb.WriteString(prefix + strings.TrimSuffix(l, "\n") + "\n")
	}
	for _, l := range la[start:pre] {
		line(" ", l)
	}
	for _, l := range la[pre : len(la)-suf] {
		line("-", l)
	}
	for _, l := range lb[pre : len(lb)-suf] {
		line("+", l)
	}
	for _, l := range la[len(la)-suf : endA] {
		line(" ", l)
	}
	return sb.String()
}
