package mcpserver

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

// session starts a server for branch "b" of a fresh repository and connects the SDK's
// client to it in process.
func session(t *testing.T, auto bool) (*mcp.ClientSession, *api.Local) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	l := &api.Local{Engine: r.Engine}
	if _, err := l.CreateBranch(ctx, "b", "main"); err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Service: l, Branch: "b", AutoCheckpoint: auto})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := srv.Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, l
}

// call calls a tool and returns its text; wantErr says whether the tool must fail.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, wantErr bool) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	if res.IsError != wantErr {
		t.Fatalf("%s(%v): isError=%v, want %v: %s", name, args, res.IsError, wantErr, sb.String())
	}
	return sb.String()
}

// The tools have the reference filesystem server's names and annotations, plus the version
// tools, with readOnlyHint on reads and destructiveHint on restore and merge.
func TestToolsAndAnnotations(t *testing.T) {
	cs, _ := session(t, false)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		tools[tl.Name] = tl
	}
	for _, name := range []string{"read_text_file", "read_multiple_files", "list_directory", "directory_tree", "search_files", "get_file_info", "checkpoint_list", "diff"} {
		if tl := tools[name]; tl == nil || tl.Annotations == nil || !tl.Annotations.ReadOnlyHint {
			t.Errorf("%s: missing or not readOnlyHint", name)
		}
	}
	for _, name := range []string{"write_file", "edit_file", "move_file", "checkpoint_restore", "merge"} {
		if tl := tools[name]; tl == nil || tl.Annotations == nil || tl.Annotations.ReadOnlyHint || tl.Annotations.DestructiveHint == nil || !*tl.Annotations.DestructiveHint {
			t.Errorf("%s: missing or not destructiveHint", name)
		}
	}
	for _, name := range []string{"create_directory", "checkpoint_create", "branch_fork"} {
		if tl := tools[name]; tl == nil || tl.Annotations == nil || tl.Annotations.ReadOnlyHint {
			t.Errorf("%s: missing or marked read-only", name)
		}
	}
	edit, _ := json.Marshal(tools["edit_file"].InputSchema)
	for _, field := range []string{"oldText", "newText", "dryRun", "edits"} {
		if !strings.Contains(string(edit), `"`+field+`"`) {
			t.Errorf("edit_file schema lacks %s: %s", field, edit)
		}
	}
}

// The file tools work on the branch, rooted at it: what one writes the others read, and no
// path leaves the branch.
func TestFileTools(t *testing.T) {
	cs, l := session(t, false)
	ctx := context.Background()
	call(t, cs, "create_directory", map[string]any{"path": "/src/pkg"}, false)
	call(t, cs, "create_directory", map[string]any{"path": "src/pkg"}, false) // exists: fine
	call(t, cs, "write_file", map[string]any{"path": "/src/pkg/a.go", "content": "one\ntwo\nthree\n"}, false)
	call(t, cs, "write_file", map[string]any{"path": "/notes.md", "content": "n"}, false)
	if got := call(t, cs, "read_text_file", map[string]any{"path": "/src/pkg/a.go"}, false); got != "one\ntwo\nthree\n" {
		t.Fatalf("read: %q", got)
	}
	if got := call(t, cs, "read_text_file", map[string]any{"path": "src/pkg/a.go", "head": 1}, false); got != "one\n" {
		t.Fatalf("head: %q", got)
	}
	if got := call(t, cs, "read_text_file", map[string]any{"path": "src/pkg/a.go", "tail": 2}, false); got != "two\nthree\n" {
		t.Fatalf("tail: %q", got)
	}
	// A dry run shows the diff and writes nothing; then the edit applies.
	d := call(t, cs, "edit_file", map[string]any{"path": "/src/pkg/a.go", "edits": []map[string]any{{"oldText": "two", "newText": "TWO"}}, "dryRun": true}, false)
	if !strings.Contains(d, "-two") || !strings.Contains(d, "+TWO") {
		t.Fatalf("dry-run diff: %q", d)
	}
	var buf strings.Builder
	l.Cat(ctx, "b", "src/pkg/a.go", &buf)
	if buf.String() != "one\ntwo\nthree\n" {
		t.Fatalf("dry run wrote: %q", buf.String())
	}
	call(t, cs, "edit_file", map[string]any{"path": "/src/pkg/a.go", "edits": []map[string]any{{"oldText": "two", "newText": "TWO"}}}, false)
	call(t, cs, "edit_file", map[string]any{"path": "/src/pkg/a.go", "edits": []map[string]any{{"oldText": "absent", "newText": "x"}}}, true)
	buf.Reset()
	l.Cat(ctx, "b", "src/pkg/a.go", &buf)
	if buf.String() != "one\nTWO\nthree\n" {
		t.Fatalf("after edit: %q", buf.String())
	}
	multi := call(t, cs, "read_multiple_files", map[string]any{"paths": []string{"/notes.md", "/missing"}}, false)
	if !strings.Contains(multi, "/notes.md:\nn") || !strings.Contains(multi, "/missing: Error") {
		t.Fatalf("read_multiple_files: %q", multi)
	}
	if got := call(t, cs, "list_directory", map[string]any{"path": "/"}, false); got != "[FILE] notes.md\n[DIR] src" {
		t.Fatalf("list_directory: %q", got)
	}
	tree := call(t, cs, "directory_tree", map[string]any{"path": "/"}, false)
	if !strings.Contains(tree, `"name": "a.go"`) || !strings.Contains(tree, `"type": "directory"`) {
		t.Fatalf("directory_tree: %s", tree)
	}
	if got := call(t, cs, "search_files", map[string]any{"path": "/", "pattern": "**/*.go"}, false); got != "/src/pkg/a.go" {
		t.Fatalf("search_files: %q", got)
	}
	if got := call(t, cs, "search_files", map[string]any{"path": "/", "pattern": "*.go", "excludePatterns": []string{"src"}}, false); got != "No matches found" {
		t.Fatalf("search_files with exclude: %q", got)
	}
	info := call(t, cs, "get_file_info", map[string]any{"path": "/src/pkg/a.go"}, false)
	if !strings.Contains(info, "size: 14") || !strings.Contains(info, "type: file") {
		t.Fatalf("get_file_info: %q", info)
	}
	call(t, cs, "move_file", map[string]any{"source": "/notes.md", "destination": "/src/notes.md"}, false)
	call(t, cs, "move_file", map[string]any{"source": "/src/notes.md", "destination": "/src/pkg/a.go"}, true) // exists
	if got := call(t, cs, "read_text_file", map[string]any{"path": "/src/notes.md"}, false); got != "n" {
		t.Fatalf("moved file: %q", got)
	}
	// Nothing escapes the branch root.
	for _, bad := range []string{"../x", "/../../etc/passwd", "src/../../x"} {
		call(t, cs, "write_file", map[string]any{"path": bad, "content": "x"}, true)
		call(t, cs, "read_text_file", map[string]any{"path": bad}, true)
	}
	call(t, cs, "read_text_file", map[string]any{"path": "/src"}, true)
}

// The version tools: a checkpoint made through MCP records the client as agent, the tool
// call and "via": "mcp"; diff, restore, fork and merge act on the branch.
func TestVersionTools(t *testing.T) {
	cs, l := session(t, false)
	ctx := context.Background()
	call(t, cs, "write_file", map[string]any{"path": "/a.txt", "content": "v1"}, false)
	out := call(t, cs, "checkpoint_create", map[string]any{"message": "first", "tool_call": "tc-1", "labels": map[string]string{"step": "1"}}, false)
	var cp api.CheckpointInfo
	if err := json.Unmarshal([]byte(out), &cp); err != nil {
		t.Fatal(err)
	}
	if cp.Agent != "test-agent" || cp.ToolCall != "tc-1" || cp.Via != "mcp" || cp.Labels["step"] != "1" || cp.Files.Created != 1 || cp.Caller == "" {
		t.Fatalf("checkpoint provenance: %+v", cp)
	}
	call(t, cs, "write_file", map[string]any{"path": "/a.txt", "content": "v2"}, false)
	if d := call(t, cs, "diff", map[string]any{}, false); !strings.Contains(d, `"path": "a.txt"`) || !strings.Contains(d, "modified") {
		t.Fatalf("diff: %s", d)
	}
	call(t, cs, "checkpoint_restore", map[string]any{"checkpoint": cp.ID}, false)
	if got := call(t, cs, "read_text_file", map[string]any{"path": "/a.txt"}, false); got != "v1" {
		t.Fatalf("after restore: %q", got)
	}
	call(t, cs, "branch_fork", map[string]any{"name": "b2"}, false)
	if _, err := l.Log(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	l.WriteFile(ctx, "b2", "from-b2.txt", []byte("x"))
	if res := call(t, cs, "merge", map[string]any{"source": "b2"}, false); !strings.Contains(res, "from-b2.txt") {
		t.Fatalf("merge: %s", res)
	}
	if got := call(t, cs, "read_text_file", map[string]any{"path": "/from-b2.txt"}, false); got != "x" {
		t.Fatalf("merged file: %q", got)
	}
	list := call(t, cs, "checkpoint_list", map[string]any{}, false)
	if !strings.Contains(list, `"tool_call": "tc-1"`) {
		t.Fatalf("checkpoint_list: %s", list)
	}
}

// --checkpoint-each: every changing tool call makes one checkpoint with its tool call.
func TestCheckpointEachToolCall(t *testing.T) {
	cs, l := session(t, true)
	ctx := context.Background()
	before, _ := l.Log(ctx, "b")
	call(t, cs, "write_file", map[string]any{"path": "/a", "content": "1"}, false)
	call(t, cs, "create_directory", map[string]any{"path": "/d"}, false)
	call(t, cs, "read_text_file", map[string]any{"path": "/a"}, false)
	after, _ := l.Log(ctx, "b")
	if len(after) != len(before)+2 {
		t.Fatalf("%d checkpoints after 2 changing calls, want %d", len(after), len(before)+2)
	}
	if after[0].Via != "mcp" || after[0].ToolCall == "" || after[0].ToolCall == after[1].ToolCall || after[0].Message != "create_directory /d" {
		t.Fatalf("checkpoints: %+v / %+v", after[0], after[1])
	}
}
