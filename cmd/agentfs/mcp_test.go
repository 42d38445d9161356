package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioSession runs `agentfs mcp --branch BR` as a child process and talks to it over its
// stdin and stdout, as an agent framework does.
func stdioSession(t *testing.T, repo, br string) *mcp.ClientSession {
	t.Helper()
	cmd := exec.Command(agentfsBin, "--repo", repo, "mcp", "--branch", br)
	cmd.Stderr = os.Stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-agent", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("initialize over stdio: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
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
	if res.IsError {
		t.Fatalf("%s: tool error: %s", name, sb.String())
	}
	return sb.String()
}

// The check: initialize, tools/list with read_text_file and checkpoint_create,
// write_file then checkpoint_create over stdio; `agentfs log b --json` then lists the
// checkpoint, marked as made through MCP.
func TestMCPStdio(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "fork", "main", "b")
	cs := stdioSession(t, repo, "b")
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["read_text_file"] || !names["checkpoint_create"] {
		t.Fatalf("tools/list: %v", names)
	}
	callTool(t, cs, "write_file", map[string]any{"path": "/hello.txt", "content": "hi from mcp\n"})
	callTool(t, cs, "checkpoint_create", map[string]any{"message": "after write", "tool_call": "call-7"})
	cs.Close()

	var log []map[string]any
	if err := json.Unmarshal([]byte(ok(t, repo, "log", "b", "--json")), &log); err != nil {
		t.Fatal(err)
	}
	top := log[0]
	if top["via"] != "mcp" || top["agent"] != "stdio-agent" || top["tool_call"] != "call-7" || top["message"] != "after write" {
		t.Fatalf("log --json top entry: %v", top)
	}
	if files, _ := top["files"].(map[string]any); files["created"] != 1.0 {
		t.Fatalf("files: %v", top["files"])
	}
	if got := ok(t, repo, "cat", "b:hello.txt"); got != "hi from mcp\n" {
		t.Fatalf("cat: %q", got)
	}
	if r := agentfs(t, repo, "mcp"); r.code != 2 || !strings.Contains(r.stderr, "--branch") {
		t.Fatalf("mcp without --branch: exit %d %q", r.code, r.stderr)
	}
}

// With the branch mounted by the daemon, MCP tool calls go through the daemon and the mount
// sees each change at once; a rollback through MCP shows in the mount too.
func TestMCPWhileMounted(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "v1\n"}))
	ok(t, repo, "fork", "main", "b")
	startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	ok(t, repo, "mount", "b", mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })
	// The kernel caches a.txt's content and the absence of new.txt before MCP changes them.
	if b, _ := os.ReadFile(filepath.Join(mnt, "a.txt")); string(b) != "v1\n" {
		t.Fatalf("a.txt = %q", b)
	}
	os.Stat(filepath.Join(mnt, "new.txt"))

	cs := stdioSession(t, repo, "b")
	cpJSON := callTool(t, cs, "checkpoint_create", map[string]any{})
	callTool(t, cs, "write_file", map[string]any{"path": "/a.txt", "content": "v2 from mcp\n"})
	callTool(t, cs, "write_file", map[string]any{"path": "/new.txt", "content": "new"})
	if b, err := os.ReadFile(filepath.Join(mnt, "a.txt")); err != nil || string(b) != "v2 from mcp\n" {
		t.Fatalf("mount shows a.txt = %q %v after write_file", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "new.txt")); err != nil || string(b) != "new" {
		t.Fatalf("mount shows new.txt = %q %v", b, err)
	}
	// And the other way: what the mount writes, MCP reads.
	os.WriteFile(filepath.Join(mnt, "from-mount.txt"), []byte("m"), 0o644)
	if got := callTool(t, cs, "read_text_file", map[string]any{"path": "/from-mount.txt"}); got != "m" {
		t.Fatalf("read through MCP: %q", got)
	}
	var cp struct{ ID string }
	json.Unmarshal([]byte(cpJSON), &cp)
	callTool(t, cs, "checkpoint_restore", map[string]any{"checkpoint": cp.ID})
	if b, _ := os.ReadFile(filepath.Join(mnt, "a.txt")); string(b) != "v1\n" {
		t.Fatalf("after restore the mount shows a.txt = %q", b)
	}
	if _, err := os.Stat(filepath.Join(mnt, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("new.txt survived the restore: %v", err)
	}
}
