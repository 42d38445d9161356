package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A branch with --bytes 10M refuses a 20 MB write with EDQUOT; what was written before the
// limit reads back intact; branch list shows usage against the quota; the daemon logs one
// line; other branches are not limited.
func TestBranchQuota(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "a\n"}))
	ok(t, repo, "fork", "main", "agent")
	d := startDaemon(t, repo)
	if out := ok(t, repo, "branch", "quota", "agent", "--bytes", "10M"); !strings.Contains(out, "of 10.0 MiB") {
		t.Fatalf("branch quota printed %q", out)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	ok(t, repo, "mount", "agent", mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })

	f, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var written []byte
	var werr error
	for len(written) < 20_000_000 {
		rand.Read(chunk)
		n, err := f.Write(chunk)
		written = append(written, chunk[:n]...)
		if err != nil {
			werr = err
			break
		}
	}
	f.Close()
	if !errors.Is(werr, syscall.EDQUOT) {
		t.Fatalf("20 MB write into a 10M quota: %d bytes, then %v; want EDQUOT", len(written), werr)
	}
	if len(written) > 10<<20 || len(written) < 8<<20 {
		t.Errorf("accepted %d bytes before EDQUOT, want close to 10 MiB", len(written))
	}
	got, err := os.ReadFile(filepath.Join(mnt, "big"))
	if err != nil || !bytes.Equal(got, written) {
		t.Fatalf("after EDQUOT the file holds %d bytes (%v), want the %d accepted", len(got), err, len(written))
	}
	// The checkpoint's tree and commit objects may take the branch a little past the limit:
	// the quota refuses data, not the metadata that records it.
	ok(t, repo, "checkpoint", "agent")
	var list []map[string]any
	json.Unmarshal([]byte(ok(t, repo, "branch", "list", "--space", "--json")), &list)
	for _, b := range list {
		if b["name"] == "agent" && (b["quota_bytes"] != float64(10<<20) || b["exclusive_bytes"].(float64) > 10<<20+64<<10) {
			t.Errorf("branch list: %v", b)
		}
	}
	if out := ok(t, repo, "branch", "list", "--space"); !strings.Contains(out, "of 10.0 MiB") {
		t.Errorf("branch list does not show the quota:\n%s", out)
	}
	if n := strings.Count(d.log.String(), "is at its quota"); n != 1 {
		t.Errorf("%d quota log lines, want 1:\n%s", n, d.log.String())
	}
	// Removing the quota lets the write through.
	ok(t, repo, "branch", "quota", "agent", "--bytes", "0")
	if err := os.WriteFile(filepath.Join(mnt, "more"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatalf("after removing the quota: %v", err)
	}
	if r := agentfs(t, repo, "branch", "quota", "agent", "--bytes", "ten"); r.code != 2 {
		t.Errorf("--bytes ten: exit %d %q", r.code, r.stderr)
	}
	if r := agentfs(t, repo, "branch", "quota", "nosuch", "--bytes", "1M"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("quota of a missing branch: exit %d %q", r.code, r.stderr)
	}
}

// A merge that would take the target over its quota fails with one line naming the quota
// and changes nothing; raising the quota lets it through.
func TestMergeQuotaCLI(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "a\n"}))
	ok(t, repo, "fork", "main", "agent")
	startDaemon(t, repo)
	ok(t, repo, "import", "agent", writeTree(t, map[string]string{"a.txt": "a\n", "big.bin": strings.Repeat("x", 3<<20)}))
	ok(t, repo, "branch", "quota", "main", "--bytes", "1M")
	before := ok(t, repo, "ls", "main")
	r := agentfs(t, repo, "merge", "agent", "--into", "main")
	if r.code != 1 || !strings.Contains(r.stderr, "quota") || !strings.Contains(r.stderr, "agentfs branch quota main") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("merge over the quota: exit %d, stderr %q; want exit 1 and one line naming the quota", r.code, r.stderr)
	}
	t.Logf("refused: %s", strings.TrimSpace(r.stderr))
	if after := ok(t, repo, "ls", "main"); after != before {
		t.Fatalf("a refused merge changed main:\n%s\nwas\n%s", after, before)
	}
	ok(t, repo, "branch", "quota", "main", "--bytes", "10M")
	ok(t, repo, "merge", "agent", "--into", "main")
	if out := ok(t, repo, "ls", "main"); !strings.Contains(out, "big.bin") {
		t.Fatalf("after raising the quota the merge did not bring big.bin:\n%s", out)
	}
}
