package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/internal/repo"
)

// newService opens a fresh repository with a checkpoint on main holding f.txt.
func newService(t *testing.T) *Local {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := repo.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	l := &Local{Engine: r.Engine, Mounter: &MountTable{RepoDir: dir}, Remotes: r.Remotes}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f.txt"), []byte("x"), 0o644)
	if _, err := l.Import(context.Background(), "main", src); err != nil {
		t.Fatal(err)
	}
	return l
}

func post(t *testing.T, h http.Handler, call string, r map[string]any) (int, errorBody) {
	t.Helper()
	b, _ := json.Marshal(r)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/"+call, bytes.NewReader(b)))
	var body errorBody
	json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// Every bad argument answers 400 with code invalid (404 not_found for what does not exist),
// never 500; import and export stay inside serve --allow-path.
func TestBadArgumentsAreInvalid(t *testing.T) {
	l := newService(t)
	allowed := t.TempDir()
	outside := t.TempDir()
	if err := l.AllowPaths([]string{allowed}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(allowed, "notadir"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(allowed, "full"), 0o755)
	os.WriteFile(filepath.Join(allowed, "full", "x"), []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(allowed, "escape"))
	os.Mkdir(filepath.Join(outside, "src"), 0o755)
	h := Handler(l)
	cases := []struct {
		call string
		req  map[string]any
		code string
	}{
		{"ls", map[string]any{"ref": "main", "path": "../etc"}, "invalid"},
		{"ls", map[string]any{"ref": "main", "path": "a/../../x"}, "invalid"},
		{"cat", map[string]any{"ref": "main", "path": "../etc/passwd"}, "invalid"},
		{"cat", map[string]any{"ref": "main", "path": ""}, "invalid"}, // the root is a directory
		{"ls", map[string]any{"ref": "main", "path": "nosuch"}, "not_found"},
		{"export", map[string]any{"ref": "main", "dir": "relative/out"}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": ""}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": outside + "/out"}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": allowed + "/escape/out"}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": allowed + "/../" + filepath.Base(outside) + "/out"}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": allowed + "/full"}, "invalid"},
		{"export", map[string]any{"ref": "main", "dir": allowed + "/notadir"}, "invalid"},
		{"import", map[string]any{"branch": "main", "dir": "rel"}, "invalid"},
		{"import", map[string]any{"branch": "main", "dir": outside + "/src"}, "invalid"},
		{"import", map[string]any{"branch": "main", "dir": allowed + "/escape/src"}, "invalid"},
		{"import", map[string]any{"branch": "main", "dir": allowed + "/notadir"}, "invalid"},
		{"import", map[string]any{"branch": "main", "dir": allowed + "/nosuch"}, "not_found"},
		{"import", map[string]any{"branch": "a\u202Eb", "dir": allowed}, "invalid"},
		{"branch.create", map[string]any{"name": "x\u202Egpj.exe"}, "invalid"},
		{"branch.create", map[string]any{"name": "x\xff"}, "invalid"},
		{"checkpoint", map[string]any{"branch": "main", "name": "v\u200B1"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": "rel/mnt"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": allowed + "/nosuch"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": allowed + "/full"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": allowed, "owner": "bob"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": allowed, "owner": "1000"}, "invalid"},
		{"mount", map[string]any{"ref": "main", "dir": allowed, "owner": "-1:5"}, "invalid"},
		{"checkpoint.prune", map[string]any{"branch": "main", "keep_within": "soon"}, "invalid"},
	}
	for _, c := range cases {
		status, body := post(t, h, c.call, c.req)
		want := http.StatusBadRequest
		if c.code == "not_found" {
			want = http.StatusNotFound
		}
		if status != want || body.Code != c.code {
			t.Errorf("%s %v: %d %q %q; want %d %s", c.call, c.req, status, body.Code, body.Error, want, c.code)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("something was written outside the allowed directory: %v", ents)
	}
	// Inside the allowed directory, export and import work.
	if status, body := post(t, h, "export", map[string]any{"ref": "main", "dir": allowed + "/out"}); status != 200 {
		t.Fatalf("export inside: %d %v", status, body)
	}
	if b, err := os.ReadFile(filepath.Join(allowed, "out", "f.txt")); err != nil || string(b) != "x" {
		t.Fatalf("exported %q %v", b, err)
	}
	if status, body := post(t, h, "import", map[string]any{"branch": "copy", "dir": allowed + "/out"}); status != 200 {
		t.Fatalf("import inside: %d %v", status, body)
	}
}

// Hostile values in every call never answer 500.
func TestNoCallAnswers500(t *testing.T) {
	l := newService(t)
	h := Handler(l)
	bad := []map[string]any{
		{},
		{"name": "..", "branch": "..", "ref": "..", "ref2": "..", "path": "..", "dir": "..", "from": ".."},
		{"name": "a\u202Eb", "branch": "a\u202Eb", "ref": "main@a\u202Eb", "path": "x\x00y", "dir": "\x00"},
		{"name": "nosuch", "branch": "nosuch", "ref": "nosuch", "ref2": "nosuch", "path": "/etc/passwd", "dir": "rel", "url": "bogus://x", "keep_within": "x", "keep_last": -1},
		{"name": "r", "branch": "main", "url": "file://" + t.TempDir(), "security": map[string]any{"key_files": []string{"/nonexistent-key-file", "rel"}, "trust": []string{"bogus", ""}}},
		{"name": "r2", "url": "file://" + t.TempDir(), "security": map[string]any{"key_files": []string{"/etc/passwd"}, "trust": []string{"ed25519:AAAA"}}},
	}
	for call := range calls {
		switch call {
		case "gc", "fsck", "branches", "mounts", "remote.list", "remote.progress":
			continue // no arguments to get wrong
		}
		for _, r := range bad {
			if status, body := post(t, h, call, r); status >= 500 {
				t.Errorf("%s %v: %d %v", call, r, status, body)
			}
		}
	}
}
