package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// flipStoredByte corrupts the stored copy of block id in a closed repository.
func flipStoredByte(t *testing.T, repo string, id store.ID) {
	t.Helper()
	st, err := store.Open(filepath.Join(repo, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := append([]byte{'b'}, id[:]...)
	v, c, err := st.DB().Get(key)
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	c.Close()
	v[len(v)/2] ^= 0x80
	if err := st.DB().Set(key, v, nil); err != nil {
		t.Fatal(err)
	}
}

// A corrupt local block is reported by fsck and restored from the remote by fsck --repair;
// a corrupt copy in the bucket is reported by fsck --remote.
func TestFsckRepairFromRemote(t *testing.T) {
	repo := newRepo(t)
	src := t.TempDir()
	randomFile(t, src, "victim", 200<<10)
	ok(t, repo, "import", "main", src)
	bucket := t.TempDir()
	ok(t, repo, "remote", "add", "origin", "file://"+bucket)
	ok(t, repo, "push", "origin", "main")
	data, _ := os.ReadFile(filepath.Join(src, "victim"))
	id := store.Sum(data[64<<10 : 128<<10])
	flipStoredByte(t, repo, id)

	if r := agentfs(t, repo, "fsck"); r.code != 1 || !strings.Contains(r.stdout, id.String()) {
		t.Fatalf("fsck: exit %d %q", r.code, r.stdout)
	}
	r := agentfs(t, repo, "fsck", "--repair")
	if r.code != 0 || !strings.Contains(r.stdout, "repaired from the remote") {
		t.Fatalf("fsck --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := ok(t, repo, "fsck"); !strings.HasPrefix(out, "clean") {
		t.Fatalf("fsck after repair: %q", out)
	}
	if got := ok(t, repo, "cat", "main:victim"); got != string(data) {
		t.Fatal("the repaired file reads back wrong")
	}

	// Now break the bucket's copy: every pack gets a flipped byte near its end (data).
	packs, _ := filepath.Glob(filepath.Join(bucket, "packs", "*"))
	for _, p := range packs {
		b, _ := os.ReadFile(p)
		b[len(b)*3/4] ^= 0x40
		os.WriteFile(p, b, 0o644)
	}
	r = agentfs(t, repo, "fsck", "--remote", "--verify-data")
	if r.code != 1 || !strings.Contains(r.stdout, "the remote's copy is broken") {
		t.Fatalf("fsck --remote of a corrupt bucket: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without a remote, --repair says what is needed.
	other := newRepo(t)
	if r := agentfs(t, other, "fsck", "--repair"); r.code != 1 || !strings.Contains(r.stderr, "remote add") {
		t.Fatalf("fsck --repair without a remote: exit %d %q", r.code, r.stderr)
	}
}
