package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// post calls the TCP control API and returns the status and body.
func post(t *testing.T, addr, tok, call string, body map[string]any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/"+call, bytes.NewReader(b))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.String()
}

func createToken(t *testing.T, repo string, args ...string) (tok, id string) {
	t.Helper()
	tok = strings.TrimSpace(ok(t, repo, append([]string{"token", "create"}, args...)...))
	var list []struct {
		ID, Branch string
	}
	json.Unmarshal([]byte(ok(t, repo, "token", "list", "--json")), &list)
	for _, l := range list {
		if strings.HasPrefix(tok, "agentfs_"+l.ID+"_") {
			return tok, l.ID
		}
	}
	t.Fatalf("token %s not in token list", tok)
	return
}

// The checks over serve --listen, and every call of the control API: a token for
// branch a (read,write,checkpoint) checkpoints a; it gets 403 for every call that names b or
// needs a right it lacks; missing, garbage, expired and revoked tokens get 401.
func TestTokensOverTCP(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"f.txt": "main\n", "src/x.go": "x"}))
	ok(t, repo, "fork", "main", "a")
	ok(t, repo, "fork", "main", "b")
	bCP := strings.TrimSpace(ok(t, repo, "checkpoint", "b"))
	tok, id := createToken(t, repo, "a", "--rights", "read,write,checkpoint")
	addr := freeAddr(t)
	startDaemon(t, repo, "--listen", addr)

	if code, body := post(t, addr, tok, "checkpoint", map[string]any{"branch": "a", "message": "by token"}); code != 200 || !strings.Contains(body, `"caller":"token:`+id+`"`) {
		t.Fatalf("checkpoint a with its token: %d %s", code, body)
	}
	aCP := strings.TrimSpace(ok(t, repo, "checkpoint", "a"))
	// Allowed calls on a.
	for _, c := range []struct {
		call string
		body map[string]any
	}{
		{"log", map[string]any{"branch": "a"}},
		{"ls", map[string]any{"ref": "a", "path": "src"}},
		{"cat", map[string]any{"ref": "a", "path": "f.txt"}},
		{"cat", map[string]any{"ref": aCP, "path": "f.txt"}}, // a checkpoint of a, by id
		{"diff", map[string]any{"ref": aCP, "ref2": "a"}},
		{"file.write", map[string]any{"branch": "a", "path": "new.txt", "data": []byte("n")}},
		{"file.mkdir", map[string]any{"branch": "a", "path": "d/e"}},
		{"file.move", map[string]any{"branch": "a", "path": "new.txt", "path2": "d/new.txt"}},
	} {
		if code, body := post(t, addr, tok, c.call, c.body); code != 200 {
			t.Errorf("%s %v on a: %d %s", c.call, c.body, code, body)
		}
	}
	// Every call that names b, or that the token's rights do not cover, or that no token may
	// make, is 403.
	forbidden := []struct {
		call string
		body map[string]any
	}{
		{"checkpoint", map[string]any{"branch": "b"}},
		{"rollback", map[string]any{"branch": "a", "ref": aCP}}, // no rollback right
		{"rollback", map[string]any{"branch": "b", "ref": bCP}},
		{"log", map[string]any{"branch": "b"}},
		{"ls", map[string]any{"ref": "b"}},
		{"cat", map[string]any{"ref": "b", "path": "f.txt"}},
		{"cat", map[string]any{"ref": bCP, "path": "f.txt"}}, // checkpoint of b, by id
		{"cat", map[string]any{"ref": "b@x", "path": "f.txt"}},
		{"diff", map[string]any{"ref": "a", "ref2": "b"}},
		{"file.write", map[string]any{"branch": "b", "path": "x", "data": []byte("x")}},
		{"file.mkdir", map[string]any{"branch": "b", "path": "x"}},
		{"file.move", map[string]any{"branch": "b", "path": "f.txt", "path2": "g.txt"}},
		{"branch.create", map[string]any{"name": "c", "from": "a"}}, // no fork right
		{"branch.create", map[string]any{"name": "c", "from": "b"}},
		{"branch.delete", map[string]any{"name": "b"}},
		{"branch.delete", map[string]any{"name": "a"}},
		{"branches", map[string]any{}},
		{"merge", map[string]any{"merge": map[string]any{"src": "a", "into": "b"}}},
		{"merge", map[string]any{"merge": map[string]any{"src": "b", "into": "a"}}},
		{"push", map[string]any{"name": "origin", "branch": "b"}},
		{"push", map[string]any{"name": "origin", "branch": "a"}}, // no push right
		{"pull", map[string]any{"name": "origin", "branch": "a"}},
		{"import", map[string]any{"branch": "a", "dir": "/etc"}},
		{"export", map[string]any{"ref": "a", "dir": "/tmp/x"}},
		{"mount", map[string]any{"ref": "a", "dir": "/tmp/x"}},
		{"unmount", map[string]any{"dir": "/tmp/x"}},
		{"mounts", map[string]any{}},
		{"remote.add", map[string]any{"name": "r", "url": "file:///tmp/r"}},
		{"remote.list", map[string]any{}},
		{"remote.remove", map[string]any{"name": "r"}},
		{"remote.progress", map[string]any{}},
		{"gc", map[string]any{}},
		{"fsck", map[string]any{}},
		{"checkpoint.prune", map[string]any{"branch": "a", "keep_last": 1}},
		{"no.such.call", map[string]any{}},
	}
	for _, c := range forbidden {
		if code, body := post(t, addr, tok, c.call, c.body); code != 403 {
			t.Errorf("%s %v: %d %s, want 403", c.call, c.body, code, body)
		}
	}
	if got := ok(t, repo, "cat", "b:f.txt"); got != "main\n" {
		t.Fatalf("b changed: %q", got)
	}
	// A token limited to a path prefix.
	ptok, _ := createToken(t, repo, "a", "--path", "src")
	for _, c := range []struct {
		call string
		body map[string]any
		want int
	}{
		{"file.write", map[string]any{"branch": "a", "path": "src/y.go", "data": []byte("y")}, 200},
		{"cat", map[string]any{"ref": "a", "path": "/src/x.go"}, 200},
		{"file.write", map[string]any{"branch": "a", "path": "f.txt", "data": []byte("y")}, 403},
		{"file.write", map[string]any{"branch": "a", "path": "srcx/y", "data": []byte("y")}, 403},
		{"file.write", map[string]any{"branch": "a", "path": "src/../f.txt", "data": []byte("y")}, 403},
		{"ls", map[string]any{"ref": "a", "path": ""}, 403},
		{"file.move", map[string]any{"branch": "a", "path": "src/y.go", "path2": "y.go"}, 403},
		{"diff", map[string]any{"ref": aCP, "ref2": "a"}, 403},
	} {
		if code, body := post(t, addr, ptok, c.call, c.body); code != c.want {
			t.Errorf("path token: %s %v: %d %s, want %d", c.call, c.body, code, body, c.want)
		}
	}
	// 401: no token, garbage, expired, revoked.
	exp, _ := createToken(t, repo, "a", "--ttl", "1ms")
	time.Sleep(5 * time.Millisecond)
	for name, bad := range map[string]string{"missing": "", "garbage": "nonsense", "forged": tok[:len(tok)-4] + "AAAA", "expired": exp} {
		if code, body := post(t, addr, bad, "log", map[string]any{"branch": "a"}); code != 401 {
			t.Errorf("%s token: %d %s, want 401", name, code, body)
		}
	}
	ok(t, repo, "token", "revoke", id)
	if code, body := post(t, addr, tok, "checkpoint", map[string]any{"branch": "a"}); code != 401 {
		t.Fatalf("revoked token: %d %s, want 401", code, body)
	}
	if !strings.Contains(ok(t, repo, "token", "list"), "revoked") {
		t.Fatal("token list does not show the revocation")
	}
}

type bearer struct {
	tok string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.rt.RoundTrip(r)
}

// MCP over streamable HTTP takes the same tokens: the session works on the token's branch,
// its checkpoints name the token as caller, and a call beyond the token fails.
func TestMCPOverHTTPWithToken(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "fork", "main", "a")
	ok(t, repo, "fork", "main", "b")
	tok, id := createToken(t, repo, "a", "--rights", "read,write,checkpoint")
	addr := freeAddr(t)
	startDaemon(t, repo, "--listen", addr)
	ctx := context.Background()
	connect := func(tok string) (*mcp.ClientSession, error) {
		tr := &mcp.StreamableClientTransport{Endpoint: "http://" + addr + "/mcp", HTTPClient: &http.Client{Transport: bearer{tok, http.DefaultTransport}}}
		return mcp.NewClient(&mcp.Implementation{Name: "http-agent", Version: "1"}, nil).Connect(ctx, tr, nil)
	}
	if _, err := connect("nonsense"); err == nil {
		t.Fatal("MCP session with a bad token")
	}
	cs, err := connect(tok)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	callTool(t, cs, "write_file", map[string]any{"path": "/w.txt", "content": "over http"})
	callTool(t, cs, "checkpoint_create", map[string]any{"message": "http"})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "checkpoint_restore", Arguments: map[string]any{"checkpoint": "a"}})
	if err != nil || !res.IsError {
		t.Fatalf("restore without the rollback right: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "branch_fork", Arguments: map[string]any{"name": "c", "from": "b"}})
	if err != nil || !res.IsError {
		t.Fatalf("fork of b: %v %+v", err, res)
	}
	if got := ok(t, repo, "cat", "a:w.txt"); got != "over http" {
		t.Fatalf("cat: %q", got)
	}
	var log []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "log", "a", "--json")), &log)
	if log[0]["caller"] != "token:"+id || log[0]["via"] != "mcp" || log[0]["agent"] != "http-agent" {
		t.Fatalf("log: %v", log[0])
	}
}

// The audit log lists the checkpoint, the fork and the mount with their callers; --verify
// passes on the log as written and fails after one line is edited or removed.
func TestAuditLog(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "checkpoint", "main", "--agent", "x", "--tool-call", "tc-42")
	ok(t, repo, "fork", "main", "a")
	startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	ok(t, repo, "mount", "a", mnt)
	ok(t, repo, "unmount", mnt)
	var es []struct {
		Who, What, Branch, Result string
		Prev                      string
	}
	if err := json.Unmarshal([]byte(ok(t, repo, "audit", "--json")), &es); err != nil {
		t.Fatal(err)
	}
	uid := fmt.Sprintf("uid:%d", os.Getuid())
	seen := map[string]bool{}
	for _, e := range es {
		if e.Who != uid || e.Result != "ok" {
			t.Errorf("entry %+v: want who %s, result ok", e, uid)
		}
		seen[e.What+" "+e.Branch] = true
	}
	for _, want := range []string{"checkpoint main", "branch.create a", "mount a", "unmount "} {
		if !seen[want] {
			t.Errorf("audit lacks %q: %v", want, seen)
		}
	}
	if r := agentfs(t, repo, "audit", "--branch", "a", "--json"); r.code != 0 || strings.Contains(r.stdout, `"branch": "main"`) {
		t.Fatalf("audit --branch a: %d %s", r.code, r.stdout)
	}
	ok(t, repo, "audit", "--verify")
	path := filepath.Join(repo, "audit.log")
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(orig), "\n")
	for name, edited := range map[string]string{
		"edited":  strings.Replace(string(orig), `"branch.create"`, `"branch.delete"`, 1),
		"removed": strings.Join(append(append([]string{}, lines[:1]...), lines[2:]...), ""),
	} {
		os.WriteFile(path, []byte(edited), 0o600)
		if r := agentfs(t, repo, "audit", "--verify"); r.code != 1 || !strings.Contains(r.stderr, "broken") {
			t.Errorf("%s line: audit --verify exit %d %q", name, r.code, r.stderr)
		}
	}
}
