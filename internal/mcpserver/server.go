// Package mcpserver serves one agentfs branch as a Model Context Protocol server: the file
// tools of the reference filesystem server (same names, arguments and annotations), rooted
// at the branch, and version tools (checkpoint, restore, diff, fork, merge). It works through
// an api.Service, so a tool call goes through the same control API, access checks and audit
// log as any other call, with a daemon (mounted or not) or without one.
package mcpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

// Options configure a server.
type Options struct {
	Service api.Service
	Branch  string
	// Agent names the agent in checkpoints; default $AGENTFS_AGENT, else the client's name
	// from initialize.
	Agent string
	// AutoCheckpoint checkpoints the branch after every tool call that changed it, with
	// the tool call as provenance: one checkpoint per tool call.
	AutoCheckpoint bool
	Version        string
}

// maxReadBytes bounds a file read into a tool result (the whole text goes to the model).
const maxReadBytes = 16 << 20

type server struct {
	o     Options
	calls atomic.Uint64
	sid   string // session id for transports that have none (stdio)
}

func bptr(b bool) *bool { return &b }

var (
	readOnly    = &mcp.ToolAnnotations{ReadOnlyHint: true}
	idempotent  = &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: bptr(false)}
	overwrites  = &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: bptr(true)}
	destructive = &mcp.ToolAnnotations{DestructiveHint: bptr(true)}
	additive    = &mcp.ToolAnnotations{DestructiveHint: bptr(false)}
)

// New returns an MCP server for o.Branch.
func New(o Options) *mcp.Server {
	if o.Agent == "" {
		o.Agent = os.Getenv("AGENTFS_AGENT")
	}
	s := &server{o: o}
	var b [8]byte
	rand.Read(b[:])
	s.sid = hex.EncodeToString(b[:])
	srv := mcp.NewServer(&mcp.Implementation{Name: "agentfs", Version: o.Version},
		&mcp.ServerOptions{Instructions: "Files of agentfs branch " + o.Branch + ", rooted at /. Every change can be checkpointed and restored."})
	s.fileTools(srv)
	s.versionTools(srv)
	return srv
}

func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

func jsonText(v any) (*mcp.CallToolResult, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return text("%s", b), nil
}

// provenance of a checkpoint made for the tool call req.
func (s *server) provenance(req *mcp.CallToolRequest, toolCall string) branch.Provenance {
	p := branch.Provenance{Agent: s.o.Agent, Via: "mcp", ToolCall: toolCall}
	if req != nil && req.Session != nil {
		if p.Agent == "" {
			if ip := req.Session.InitializeParams(); ip != nil && ip.ClientInfo != nil {
				p.Agent = ip.ClientInfo.Name
			}
		}
		p.Session = req.Session.ID()
	}
	if p.Session == "" {
		p.Session = s.sid
	}
	if p.ToolCall == "" && req != nil && req.Params != nil {
		for _, k := range []string{"toolCallId", "tool_call", "agentfs/tool_call"} {
			if v, ok := req.Params.Meta[k].(string); ok && v != "" {
				p.ToolCall = v
				break
			}
		}
	}
	if p.ToolCall == "" {
		p.ToolCall = fmt.Sprintf("mcp-%s-%d", p.Session, s.calls.Add(1))
	}
	if len(p.Agent) > 256 {
		p.Agent = p.Agent[:256]
	}
	if len(p.ToolCall) > 256 {
		p.ToolCall = p.ToolCall[:256]
	}
	return p
}

// changed follows a tool's change of the branch, whose error is err: when the change
// succeeded and AutoCheckpoint is on, it checkpoints the branch with the message what.
func (s *server) changed(ctx context.Context, req *mcp.CallToolRequest, what string, err error) error {
	if err != nil || !s.o.AutoCheckpoint {
		return err
	}
	_, err = s.o.Service.CheckpointWith(ctx, s.o.Branch, branch.CheckpointOptions{Message: what, Provenance: s.provenance(req, "")})
	return err
}

// readFile reads a file of the branch, at most maxReadBytes.
func (s *server) readFile(ctx context.Context, p string) ([]byte, error) {
	clean, err := api.CleanPath(p)
	if err != nil {
		return nil, err
	}
	es, err := s.o.Service.List(ctx, s.o.Branch, clean)
	if err != nil {
		return nil, err
	}
	if len(es) != 1 || es[0].Type == "dir" || clean == "" {
		return nil, fmt.Errorf("%s is a directory", p)
	}
	if es[0].Size > maxReadBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a tool result may carry", p, es[0].Size, maxReadBytes)
	}
	var buf bytes.Buffer
	err = s.o.Service.Cat(ctx, s.o.Branch, clean, &buf)
	return buf.Bytes(), err
}

type pathArg struct {
	Path string `json:"path" jsonschema:"path inside the branch; / is the branch root"`
}

type readTextArgs struct {
	Path string `json:"path" jsonschema:"path inside the branch"`
	Head int    `json:"head,omitempty" jsonschema:"if set, return only the first N lines"`
	Tail int    `json:"tail,omitempty" jsonschema:"if set, return only the last N lines"`
}

type readMultipleArgs struct {
	Paths []string `json:"paths" jsonschema:"paths inside the branch"`
}

type writeArgs struct {
	Path    string `json:"path" jsonschema:"path inside the branch"`
	Content string `json:"content" jsonschema:"the whole new content"`
}

type edit struct {
	OldText string `json:"oldText" jsonschema:"text to search for; must match exactly"`
	NewText string `json:"newText" jsonschema:"text to replace it with"`
}

type editArgs struct {
	Path   string `json:"path"`
	Edits  []edit `json:"edits"`
	DryRun bool   `json:"dryRun,omitempty" jsonschema:"preview the changes as a diff without writing"`
}

type moveArgs struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

type searchArgs struct {
	Path            string   `json:"path" jsonschema:"directory to start from"`
	Pattern         string   `json:"pattern" jsonschema:"glob pattern, matched against the path relative to the start and against the name (** spans directories)"`
	ExcludePatterns []string `json:"excludePatterns,omitempty"`
}

type treeArgs struct {
	Path            string   `json:"path"`
	ExcludePatterns []string `json:"excludePatterns,omitempty"`
}

func lines(s string, head, tail int) string {
	ls := strings.SplitAfter(s, "\n")
	if len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	switch {
	case head > 0 && head < len(ls):
		ls = ls[:head]
	case tail > 0 && tail < len(ls):
		ls = ls[len(ls)-tail:]
	}
	return strings.Join(ls, "")
}

func (s *server) fileTools(srv *mcp.Server) {
	mcp.AddTool(srv, &mcp.Tool{Name: "read_text_file", Annotations: readOnly,
		Description: "Read a file of the branch as UTF-8 text. Use head or tail to read only the first or last N lines."},
		func(ctx context.Context, req *mcp.CallToolRequest, a readTextArgs) (*mcp.CallToolResult, any, error) {
			if a.Head > 0 && a.Tail > 0 {
				return nil, nil, fmt.Errorf("give head or tail, not both")
			}
			b, err := s.readFile(ctx, a.Path)
			if err != nil {
				return nil, nil, err
			}
			return text("%s", lines(string(b), a.Head, a.Tail)), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "read_multiple_files", Annotations: readOnly,
		Description: "Read several files of the branch at once; a file that cannot be read is reported in place and does not stop the others."},
		func(ctx context.Context, req *mcp.CallToolRequest, a readMultipleArgs) (*mcp.CallToolResult, any, error) {
			var parts []string
			for _, p := range a.Paths {
				b, err := s.readFile(ctx, p)
				if err != nil {
					parts = append(parts, fmt.Sprintf("%s: Error - %v", p, err))
					continue
				}
				parts = append(parts, fmt.Sprintf("%s:\n%s\n", p, b))
			}
			return text("%s", strings.Join(parts, "\n---\n")), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "write_file", Annotations: overwrites,
		Description: "Create a file or replace its whole content. Its directory must exist."},
		func(ctx context.Context, req *mcp.CallToolRequest, a writeArgs) (*mcp.CallToolResult, any, error) {
			err := s.o.Service.WriteFile(ctx, s.o.Branch, a.Path, []byte(a.Content))
			if err = s.changed(ctx, req, "write_file "+a.Path, err); err != nil {
				return nil, nil, err
			}
			return text("Successfully wrote to %s", a.Path), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "edit_file", Annotations: destructive,
		Description: "Replace exact text in a file; each edit's oldText must occur in the file. Returns a diff; dryRun previews it without writing."},
		func(ctx context.Context, req *mcp.CallToolRequest, a editArgs) (*mcp.CallToolResult, any, error) {
			b, err := s.readFile(ctx, a.Path)
			if err != nil {
				return nil, nil, err
			}
			old := string(b)
			cur := old
			for i, e := range a.Edits {
				if e.OldText == "" || !strings.Contains(cur, e.OldText) {
					return nil, nil, fmt.Errorf("edit %d: could not find the exact oldText in %s", i+1, a.Path)
				}
				cur = strings.Replace(cur, e.OldText, e.NewText, 1)
			}
			d := unifiedDiff(a.Path, old, cur)
			if !a.DryRun {
				err := s.o.Service.WriteFile(ctx, s.o.Branch, a.Path, []byte(cur))
				if err = s.changed(ctx, req, "edit_file "+a.Path, err); err != nil {
					return nil, nil, err
				}
			}
			return text("```diff\n%s```\n", d), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "create_directory", Annotations: idempotent,
		Description: "Create a directory and any missing parents; an existing directory is fine."},
		func(ctx context.Context, req *mcp.CallToolRequest, a pathArg) (*mcp.CallToolResult, any, error) {
			err := s.o.Service.MakeDir(ctx, s.o.Branch, a.Path)
			if err = s.changed(ctx, req, "create_directory "+a.Path, err); err != nil {
				return nil, nil, err
			}
			return text("Successfully created directory %s", a.Path), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_directory", Annotations: readOnly,
		Description: "List a directory of the branch, each entry prefixed with [FILE] or [DIR]."},
		func(ctx context.Context, req *mcp.CallToolRequest, a pathArg) (*mcp.CallToolResult, any, error) {
			es, err := s.list(ctx, a.Path)
			if err != nil {
				return nil, nil, err
			}
			var out []string
			for _, e := range es {
				kind := "[FILE]"
				if e.Type == "dir" {
					kind = "[DIR]"
				}
				out = append(out, kind+" "+e.Name)
			}
			return text("%s", strings.Join(out, "\n")), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "directory_tree", Annotations: readOnly,
		Description: "A recursive JSON tree of a directory: name, type (file or directory) and children for directories."},
		func(ctx context.Context, req *mcp.CallToolRequest, a treeArgs) (*mcp.CallToolResult, any, error) {
			t, err := s.tree(ctx, a.Path, "", a.ExcludePatterns, 0)
			if err != nil {
				return nil, nil, err
			}
			r, err := jsonText(t)
			return r, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "move_file", Annotations: destructive,
		Description: "Move or rename a file or directory; fails if the destination exists."},
		func(ctx context.Context, req *mcp.CallToolRequest, a moveArgs) (*mcp.CallToolResult, any, error) {
			err := s.o.Service.Move(ctx, s.o.Branch, a.Source, a.Destination)
			if err = s.changed(ctx, req, "move_file "+a.Source+" "+a.Destination, err); err != nil {
				return nil, nil, err
			}
			return text("Successfully moved %s to %s", a.Source, a.Destination), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "search_files", Annotations: readOnly,
		Description: "Find files and directories under a path whose name or relative path matches a glob pattern."},
		func(ctx context.Context, req *mcp.CallToolRequest, a searchArgs) (*mcp.CallToolResult, any, error) {
			var found []string
			err := s.walk(ctx, a.Path, "", 0, func(rel string, e api.Entry) bool {
				if matchAny(a.ExcludePatterns, rel, e.Name) {
					return false
				}
				if matchAny([]string{a.Pattern}, rel, e.Name) {
					found = append(found, path.Join("/", strings.TrimPrefix(a.Path, "/"), rel))
				}
				return true
			})
			if err != nil {
				return nil, nil, err
			}
			if len(found) == 0 {
				return text("No matches found"), nil, nil
			}
			return text("%s", strings.Join(found, "\n")), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "get_file_info", Annotations: readOnly,
		Description: "Size, modification time, type and permissions of a file or directory."},
		func(ctx context.Context, req *mcp.CallToolRequest, a pathArg) (*mcp.CallToolResult, any, error) {
			clean, err := api.CleanPath(a.Path)
			if err != nil {
				return nil, nil, err
			}
			if clean == "" {
				return text("type: directory"), nil, nil
			}
			dir, name := path.Split(clean)
			es, err := s.o.Service.List(ctx, s.o.Branch, dir)
			if err != nil {
				return nil, nil, err
			}
			for _, e := range es {
				if e.Name == name {
					typ := e.Type
					if typ == "dir" {
						typ = "directory"
					}
					return text("size: %d\nmodified: %s\ntype: %s\npermissions: %s", e.Size, e.Mtime.Format("2006-01-02T15:04:05Z07:00"), typ, e.Mode[1:]), nil, nil
				}
			}
			return nil, nil, fmt.Errorf("%s: no such file or directory", a.Path)
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_allowed_directories", Annotations: readOnly,
		Description: "The directories this server may access: the branch root, /."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return text("Allowed directories:\n/"), nil, nil
		})
}

// list lists a directory (ls of a file lists the file; refuse that here).
func (s *server) list(ctx context.Context, p string) ([]api.Entry, error) {
	clean, err := api.CleanPath(p)
	if err != nil {
		return nil, err
	}
	es, err := s.o.Service.List(ctx, s.o.Branch, clean)
	if err != nil {
		return nil, err
	}
	if clean != "" && len(es) == 1 && es[0].Type != "dir" && es[0].Name == path.Base(clean) {
		parent, _ := s.o.Service.List(ctx, s.o.Branch, path.Dir(clean))
		for _, e := range parent {
			if e.Name == es[0].Name && e.Type != "dir" {
				return nil, fmt.Errorf("%s is not a directory", p)
			}
		}
	}
	return es, nil
}

// maxDepth bounds recursion (a directory tree is finite, but a tool result is not free).
const maxDepth = 64

// walk calls fn for every entry under root (rel is the path relative to root); fn returns
// whether to descend into a directory.
func (s *server) walk(ctx context.Context, root, rel string, depth int, fn func(rel string, e api.Entry) bool) error {
	if depth > maxDepth {
		return nil
	}
	es, err := s.list(ctx, path.Join(root, rel))
	if err != nil {
		return err
	}
	for _, e := range es {
		r := path.Join(rel, e.Name)
		if fn(r, e) && e.Type == "dir" {
			if err := s.walk(ctx, root, r, depth+1, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

type treeEntry struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Children []*treeEntry `json:"children,omitempty"`
}

func (s *server) tree(ctx context.Context, root, rel string, exclude []string, depth int) ([]*treeEntry, error) {
	out := []*treeEntry{}
	if depth > maxDepth {
		return out, nil
	}
	es, err := s.list(ctx, path.Join(root, rel))
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		r := path.Join(rel, e.Name)
		if matchAny(exclude, r, e.Name) {
			continue
		}
		t := &treeEntry{Name: e.Name, Type: "file"}
		if e.Type == "dir" {
			t.Type = "directory"
			if t.Children, err = s.tree(ctx, root, r, exclude, depth+1); err != nil {
				return nil, err
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// matchAny reports whether a glob matches rel or name; "**/" also matches no directory and
// "**" any run of path elements.
func matchAny(patterns []string, rel, name string) bool {
	for _, p := range patterns {
		if p == "" {
			continue
		}
		if globMatch(p, rel) || globMatch(p, name) {
			return true
		}
	}
	return false
}

func globMatch(pattern, p string) bool {
	if !strings.Contains(pattern, "**") {
		ok, _ := path.Match(pattern, p)
		return ok
	}
	pp, ps := strings.Split(pattern, "/"), strings.Split(p, "/")
	var m func(i, j int) bool
	m = func(i, j int) bool {
		if i == len(pp) {
			return j == len(ps)
		}
		if pp[i] == "**" {
			for k := j; k <= len(ps); k++ {
				if m(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(ps) {
			return false
		}
		ok, _ := path.Match(pp[i], ps[j])
		return ok && m(i+1, j+1)
	}
	return m(0, 0)
}
