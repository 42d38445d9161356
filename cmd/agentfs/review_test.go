package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatalf("AGENTFS_REQUIRE_TOOLS=1 but %s is not installed", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// mountBranch starts a daemon and mounts branch; both go away at cleanup.
func mountBranch(t *testing.T, repo, branch string) (string, *daemon) {
	t.Helper()
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("mount tests run as root")
	}
	d := startDaemon(t, repo)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	ok(t, repo, "mount", branch, mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })
	return mnt, d
}

func mustRun(t *testing.T, dir string, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDiffPatchApplies: a one-line edit, an added, a deleted and a renamed file, a mode
// change and a renamed directory, made through a mount; `diff --patch` of the two
// checkpoints applied with patch -p1 (and git apply) to an export of the first gives an
// export of the second.
func TestDiffPatchApplies(t *testing.T) {
	requireTool(t, "patch")
	repo := newRepo(t)
	var long strings.Builder
	for i := 0; i < 30; i++ {
		long.WriteString("line " + string(rune('a'+i%26)) + "\n")
	}
	ok(t, repo, "import", "main", writeTree(t, map[string]string{
		"edit.txt": long.String(), "gone.txt": "bye\n", "old-name.txt": "moving\n",
		"tool.sh": "#!/bin/sh\necho hi\n", "pkg/x.go": "package x\n", "pkg/sub/y.go": "package y\n",
		"noeol.txt": "no newline",
	}))
	a := strings.TrimSpace(ok(t, repo, "checkpoint", "main", "--name", "a"))
	mnt, _ := mountBranch(t, repo, "main")
	m := func(p string) string { return filepath.Join(mnt, p) }
	edited := strings.Replace(long.String(), "line k\n", "line K (edited)\n", 1)
	for _, err := range []error{
		os.WriteFile(m("edit.txt"), []byte(edited), 0o644),
		os.WriteFile(m("added.txt"), []byte("fresh\nfile\n"), 0o644),
		os.Remove(m("gone.txt")),
		os.Rename(m("old-name.txt"), m("new-name.txt")),
		os.Chmod(m("tool.sh"), 0o755),
		os.Rename(m("pkg"), m("lib")),
		os.WriteFile(m("noeol.txt"), []byte("no newline, changed"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	b := strings.TrimSpace(ok(t, repo, "checkpoint", "main", "--name", "b"))
	patch := ok(t, repo, "diff", "main@a", "main@b", "--patch")
	t.Logf("patch:\n%s", patch)
	for _, want := range []string{"-line k\n+line K (edited)\n", "rename from old-name.txt\nrename to new-name.txt\n",
		"old mode 100644\nnew mode 100755\n", "deleted file mode 100644\n", "new file mode 100644\n", "rename from pkg/sub/y.go\n"} {
		if !strings.Contains(patch, want) {
			t.Errorf("patch lacks %q", want)
		}
	}
	tmp := t.TempDir()
	expB := filepath.Join(tmp, "b")
	ok(t, repo, "export", b, expB)
	tools := []string{"patch"}
	if _, err := exec.LookPath("git"); err == nil {
		tools = append(tools, "git")
	}
	for _, tool := range tools {
		dir := filepath.Join(tmp, "a-"+tool)
		ok(t, repo, "export", a, dir)
		if tool == "patch" {
			mustRun(t, dir, patch, "patch", "-p1", "--batch", "--quiet")
		} else {
			mustRun(t, dir, patch, "git", "apply", "-")
		}
		if out, err := exec.Command("diff", "-r", dir, expB).CombinedOutput(); err != nil {
			t.Fatalf("%s: export of a patched differs from export of b:\n%s", tool, out)
		}
		if st, err := os.Stat(filepath.Join(dir, "tool.sh")); err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("%s: the mode change was not applied: %v %v", tool, st.Mode(), err)
		}
	}

	// --stat, -- PATH and --json carry the same changes.
	stat := ok(t, repo, "diff", "main@a", "main@b", "--stat")
	if !strings.Contains(stat, "edit.txt") || !strings.Contains(stat, "old-name.txt => new-name.txt") {
		t.Errorf("--stat:\n%s", stat)
	}
	if got := ok(t, repo, "diff", "main@a", "main@b", "--", "edit.txt", "lib"); got != "R pkg -> lib\nR pkg/sub -> lib/sub\nR pkg/sub/y.go -> lib/sub/y.go\nR pkg/x.go -> lib/x.go\nM edit.txt\n" &&
		!strings.Contains(got, "M edit.txt") {
		t.Errorf("diff -- edit.txt lib:\n%s", got)
	}
	one := ok(t, repo, "diff", "main@a", "main@b", "--patch", "--", "edit.txt")
	if !strings.HasPrefix(one, "diff --git a/edit.txt b/edit.txt\n") || strings.Count(one, "diff --git") != 1 {
		t.Errorf("diff --patch -- edit.txt:\n%s", one)
	}
	var files []map[string]any
	if err := json.Unmarshal([]byte(ok(t, repo, "diff", "main@a", "main@b", "--json")), &files); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]map[string]any{}
	for _, f := range files {
		byPath[f["path"].(string)] = f
	}
	if f := byPath["edit.txt"]; f == nil || f["added"] != 1.0 || f["deleted"] != 1.0 {
		t.Errorf("--json edit.txt: %v", f)
	}
	if f := byPath["tool.sh"]; f == nil || f["old_mode"] != "100644" || f["new_mode"] != "100755" {
		t.Errorf("--json tool.sh: %v", f)
	}
	if f := byPath["new-name.txt"]; f == nil || f["kind"] != "renamed" || f["old_path"] != "old-name.txt" {
		t.Errorf("--json rename: %v", f)
	}
}

// Changes to a directory's own mode, owner or xattrs show as modified, the root's too.
func TestDiffDirectoryMetadata(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"d/f.txt": "x\n", "e/g.txt": "y\n"}))
	ok(t, repo, "checkpoint", "main", "--name", "a")
	mnt, _ := mountBranch(t, repo, "main")
	if err := os.Chmod(filepath.Join(mnt, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(mnt, "e"), 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	got := ok(t, repo, "diff", "main@a", "main")
	for _, want := range []string{"M .\n", "M d\n", "M e\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

// Three checkpoints each edit a different file; `agentfs revert` of the second removes
// exactly its edit and keeps the other two.
func TestRevertCLI(t *testing.T) {
	repo := newRepo(t)
	files := map[string]string{"a.txt": "a1\n", "b.txt": "b1\n", "c.txt": "c1\n"}
	src := writeTree(t, files)
	ok(t, repo, "import", "main", src)
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		os.WriteFile(filepath.Join(src, f), []byte(f[:1]+"2 edited\n"), 0o644)
		ok(t, repo, "import", "main", src)
	}
	var log []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "log", "main", "--json")), &log)
	second := log[1]["id"].(string) // newest first: c, b, a
	if !strings.Contains(log[1]["message"].(string), "import") {
		t.Fatalf("log: %v", log)
	}
	if got := ok(t, repo, "diff", second[:12], log[0]["id"].(string)); got != "M c.txt\n" {
		t.Fatalf("setup: checkpoints do not edit one file each: %q", got)
	}
	out := ok(t, repo, "revert", second[:12])
	if id := strings.TrimSpace(out); len(id) != 64 {
		t.Fatalf("revert printed %q", out)
	}
	for f, want := range map[string]string{"a.txt": "a2 edited\n", "b.txt": "b1\n", "c.txt": "c2 edited\n"} {
		if got := ok(t, repo, "cat", "main:"+f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// Through the API as JSON, a dry run of reverting the first lists a.txt only.
	var res map[string]any
	json.Unmarshal([]byte(ok(t, repo, "revert", log[2]["id"].(string), "--dry-run", "--json")), &res)
	if ch, _ := res["changes"].([]any); len(ch) != 1 || ch[0].(map[string]any)["path"] != "a.txt" {
		t.Fatalf("revert --dry-run --json: %v", res)
	}
}

// A same-line conflict merged with --conflicts=markers leaves <<<<<<< markers in the
// mounted file; after editing it there, merge --continue makes a checkpoint with two
// parents.
func TestMergeMarkersThroughMount(t *testing.T) {
	repo := newRepo(t)
	src := writeTree(t, map[string]string{"t.txt": "one\ntwo\nthree\n"})
	ok(t, repo, "import", "main", src)
	ok(t, repo, "fork", "main", "agent")
	os.WriteFile(filepath.Join(src, "t.txt"), []byte("one\ntwo by agent\nthree\n"), 0o644)
	ok(t, repo, "import", "agent", src)
	mnt, _ := mountBranch(t, repo, "main")
	if err := os.WriteFile(filepath.Join(mnt, "t.txt"), []byte("one\ntwo by main\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := agentfs(t, repo, "merge", "agent", "--into", "main", "--conflicts=markers")
	if r.code != 1 || !strings.Contains(r.stderr, "CONFLICT (both modified): t.txt") || !strings.Contains(r.stdout, "merge --continue main") {
		t.Fatalf("merge: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got, _ := os.ReadFile(filepath.Join(mnt, "t.txt"))
	if want := "one\n<<<<<<< main\ntwo by main\n=======\ntwo by agent\n>>>>>>> agent\nthree\n"; string(got) != want {
		t.Fatalf("mounted file:\n%s\nwant:\n%s", got, want)
	}
	if st := ok(t, repo, "merge", "--status", "main"); !strings.Contains(st, "unresolved: t.txt") {
		t.Fatalf("merge --status:\n%s", st)
	}
	if r := agentfs(t, repo, "merge", "--continue", "main"); r.code == 0 || !strings.Contains(r.stderr, "conflict markers") {
		t.Fatalf("continue with markers: exit %d %s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "t.txt"), []byte("one\ntwo by both\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(ok(t, repo, "merge", "--continue", "main"))
	var log []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "log", "main", "--json")), &log)
	if len(log) == 0 || log[0]["id"] != id || len(log[0]["parents"].([]any)) != 2 {
		t.Fatalf("log after --continue: %v", log[:min(len(log), 2)])
	}
	if got := ok(t, repo, "cat", "main:t.txt"); got != "one\ntwo by both\nthree\n" {
		t.Fatalf("merged file: %q", got)
	}
	if st := ok(t, repo, "merge", "--status", "main"); !strings.Contains(st, "no merge into main is pending") {
		t.Fatalf("status after continue: %s", st)
	}
}

// A tag made from a branch's checkpoint still resolves after the branch is deleted and gc
// has run; deleting the tag lets gc collect what only it kept.
func TestTagOutlivesBranch(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "main\n"}))
	ok(t, repo, "fork", "main", "feature")
	dir := writeTree(t, map[string]string{"a.txt": "main\n"})
	randomFile(t, dir, "big.bin", 1<<20)
	ok(t, repo, "import", "feature", dir)
	id := strings.TrimSpace(ok(t, repo, "checkpoint", "feature", "-m", "feature done"))
	if out := ok(t, repo, "tag", "v1", "feature"); !strings.Contains(out, id[:12]) {
		t.Fatalf("tag printed %q, want the checkpoint %s", out, id[:12])
	}
	if r := agentfs(t, repo, "tag", "v1", "main"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second tag v1: exit %d %s", r.code, r.stderr)
	}
	ok(t, repo, "branch", "delete", "feature")
	if s := gcStats(t, repo); s.Deleted != 0 {
		t.Fatalf("gc deleted %d blocks that the tag keeps", s.Deleted)
	}
	if got := ok(t, repo, "cat", "v1:a.txt"); got != "main\n" {
		t.Fatalf("cat v1:a.txt = %q", got)
	}
	out := filepath.Join(t.TempDir(), "out")
	ok(t, repo, "export", "v1", out)
	if b, err := os.ReadFile(filepath.Join(out, "big.bin")); err != nil || len(b) != 1<<20 {
		t.Fatalf("export of the tag after gc: %d bytes, %v", len(b), err)
	}
	ok(t, repo, "fork", "v1", "revived")
	if got := ok(t, repo, "diff", "main", "v1"); !strings.Contains(got, "A big.bin\n") {
		t.Fatalf("diff main v1: %q", got)
	}
	var tags []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "tag", "list", "--json")), &tags)
	if len(tags) != 1 || tags[0]["name"] != "v1" || tags[0]["checkpoint"].(map[string]any)["id"] != id {
		t.Fatalf("tag list --json: %v", tags)
	}
	ok(t, repo, "tag", "delete", "v1")
	ok(t, repo, "branch", "delete", "revived")
	if s := gcStats(t, repo); s.DeletedBytes < 1<<20 {
		t.Fatalf("after the tag is gone gc freed only %d bytes", s.DeletedBytes)
	}
	if r := agentfs(t, repo, "cat", "v1:a.txt"); r.code == 0 {
		t.Fatal("a deleted tag still resolves")
	}
}

// `agentfs blame b:file.txt --json` names, for a line edited in the second of three
// checkpoints, that checkpoint.
func TestBlameCLI(t *testing.T) {
	repo := newRepo(t)
	src := writeTree(t, map[string]string{"file.txt": "one\ntwo\nthree\n"})
	ok(t, repo, "import", "main", src)
	ok(t, repo, "fork", "main", "b")
	var ids []string
	for _, content := range []string{"one\ntwo\nthree\nfour\n", "one\nTWO\nthree\nfour\n", "one\nTWO\nthree\nfour\nfive\n"} {
		os.WriteFile(filepath.Join(src, "file.txt"), []byte(content), 0o644)
		ids = append(ids, strings.TrimSpace(ok(t, repo, "import", "b", src)))
	}
	var res struct {
		Lines []struct {
			Line       int    `json:"line"`
			Text       string `json:"text"`
			Checkpoint string `json:"checkpoint"`
			Branch     string `json:"branch"`
		} `json:"lines"`
	}
	if err := json.Unmarshal([]byte(ok(t, repo, "blame", "b:file.txt", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) != 5 {
		t.Fatalf("blame: %+v", res)
	}
	if l := res.Lines[1]; l.Text != "TWO\n" || l.Checkpoint != ids[1] || l.Branch != "b" {
		t.Fatalf("line 2 = %+v, want checkpoint %s (the second)", l, ids[1])
	}
	if res.Lines[3].Checkpoint != ids[0] || res.Lines[4].Checkpoint != ids[2] {
		t.Fatalf("lines 4 and 5: %+v", res.Lines[3:])
	}
	if text := ok(t, repo, "blame", "b:file.txt"); !strings.Contains(text, ids[1][:12]) {
		t.Fatalf("blame text:\n%s", text)
	}
}
