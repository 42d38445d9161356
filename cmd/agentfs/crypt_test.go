package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/store"
)

// oneLine checks that a failed command printed exactly one line that contains every want.
func oneErrLine(t *testing.T, r result, what string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 1 || len(lines) != 1 {
		t.Fatalf("%s: exit %d, want 1 with one line; stderr:\n%s", what, r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Fatalf("%s: %q does not say %q", what, lines[0], w)
		}
	}
	t.Logf("%s: %s", what, lines[0])
}

func writeKey(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomKey(t *testing.T) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// secretTree is a tree with the marker in a small file, in a large compressible file (several
// blocks) and twice in identical files (so that equal content would show as equal ids).
func secretTree(t *testing.T) string {
	big := strings.Repeat("line with AGENTFS-PLAINTEXT-MARKER in it\n", 8000)
	return writeTree(t, map[string]string{
		"secret.txt":        "the password is AGENTFS-PLAINTEXT-MARKER\n",
		"dir/big.log":       big,
		"dir/copy1.txt":     "same AGENTFS-PLAINTEXT-MARKER content\n",
		"dir/sub/copy2.txt": "same AGENTFS-PLAINTEXT-MARKER content\n",
		"README":            "hello\n",
	})
}

// blockIDs lists every block id of a repository's store (the repository must be closed).
func blockIDs(t *testing.T, dir string) []store.ID {
	t.Helper()
	r, err := repo.Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ids []store.ID
	if err := r.Store.Blocks(context.Background(), func(id store.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) < 5 {
		t.Fatalf("only %d blocks in %s", len(ids), dir)
	}
	return ids
}

// idsInBucket returns the block ids that appear in a bucket directory: as an object name (or
// part of one), or in an object's bytes, raw or as hex.
func idsInBucket(t *testing.T, bucket string, ids []store.ID) []string {
	t.Helper()
	var found []string
	err := filepath.Walk(bucket, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(bucket, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, id := range ids {
			h := id.String()
			switch {
			case strings.Contains(rel, h):
				found = append(found, rel+" is named by block "+h)
			case bytes.Contains(data, id[:]):
				found = append(found, rel+" holds block id "+h+" (raw)")
			case bytes.Contains(bytes.ToLower(data), []byte(h)):
				found = append(found, rel+" holds block id "+h+" (hex)")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEncryptedRemote is the done-when scenario of the zero-trust bucket: a tree holding a
// marker, pushed to an encrypted file:// remote, leaves neither the marker nor any block id in
// the bucket (names, indexes, contents); a clone with the key exports it identically; a clone
// without the key, or with another, fails with one line. The same push to a plaintext remote
// shows that the scans find what they look for.
func TestEncryptedRemote(t *testing.T) {
	t.Setenv("AGENTFS_REMOTE_KEY", "")
	t.Setenv("AGENTFS_REMOTE_KEY_ORIGIN", "")
	tmp := t.TempDir()
	tree := secretTree(t)
	key := writeKey(t, tmp, "key", randomKey(t))
	wrong := writeKey(t, tmp, "wrong", randomKey(t))
	bucket := filepath.Join(tmp, "bucket")
	plainBucket := filepath.Join(tmp, "plain")
	url := "file://" + bucket

	origin := newRepo(t)
	ok(t, origin, "import", "main", tree)
	ok(t, origin, "remote", "add", "origin", url, "--key-file", key)
	ok(t, origin, "remote", "add", "plain", "file://"+plainBucket)
	ok(t, origin, "push", "origin", "main")
	ok(t, origin, "push", "plain", "main")

	// grep -r finds the marker nowhere in the bucket.
	out, err := exec.Command("grep", "-r", "-c", "AGENTFS-PLAINTEXT-MARKER", bucket).CombinedOutput()
	if code := procExit(err); code != 1 {
		t.Fatalf("grep -r of the encrypted bucket: exit %d (want 1: no match)\n%s", code, out)
	}
	// No object name, index entry or object content equals a block id.
	ids := blockIDs(t, origin)
	if found := idsInBucket(t, bucket, ids); len(found) > 0 {
		t.Fatalf("the encrypted bucket reveals block ids:\n%s", strings.Join(found, "\n"))
	}
	if found := idsInBucket(t, plainBucket, ids); len(found) < len(ids) {
		t.Fatalf("the scan finds only %d block ids in the plaintext bucket (of %d): it cannot fail", len(found), len(ids))
	}
	t.Logf("%d block ids: none in the encrypted bucket, all in the plaintext one", len(ids))

	// A clone with the key exports the tree identically.
	clone := filepath.Join(tmp, "clone")
	ok(t, clone, "clone", url, "--key-file", key)
	exp := filepath.Join(tmp, "export")
	ok(t, clone, "export", "main", exp)
	if out, err := exec.Command("diff", "-r", tree, exp).CombinedOutput(); err != nil {
		t.Fatalf("export of the clone differs from the tree:\n%s", out)
	}
	// Lazily: the clone fetched file contents on read, through the encrypted packs.
	if got := ok(t, clone, "cat", "main:secret.txt"); got != "the password is AGENTFS-PLAINTEXT-MARKER\n" {
		t.Fatalf("cat: %q", got)
	}

	// Without the key: one line naming it. With another key: one line.
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "nokey"), "clone", url), "clone without a key",
		"remote origin is encrypted", "no key", "--key-file", "AGENTFS_REMOTE_KEY_ORIGIN")
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "wrongkey"), "clone", url, "--key-file", wrong), "clone with a wrong key",
		"remote origin", "is not it", "--key-file")
	for _, d := range []string{"nokey", "wrongkey"} {
		if _, err := os.Stat(filepath.Join(tmp, d)); err == nil {
			t.Errorf("a failed clone left %s behind", d)
		}
	}

	// The key from the environment, as hex.
	t.Setenv("AGENTFS_REMOTE_KEY_ORIGIN", hex.EncodeToString(mustRead(t, key)))
	envClone := filepath.Join(tmp, "envclone")
	ok(t, envClone, "clone", url)
	if got := ok(t, envClone, "cat", "main:dir/sub/copy2.txt"); !strings.Contains(got, "AGENTFS-PLAINTEXT-MARKER") {
		t.Fatalf("cat through the environment's key: %q", got)
	}
	t.Setenv("AGENTFS_REMOTE_KEY_ORIGIN", "")

	// New work flows both ways through the encrypted remote.
	ok(t, clone, "import", "main", writeTree(t, map[string]string{"new.txt": "more AGENTFS-PLAINTEXT-MARKER\n"}))
	ok(t, clone, "push", "origin", "main")
	ok(t, origin, "pull", "origin", "main")
	if got := ok(t, origin, "cat", "main:new.txt"); got != "more AGENTFS-PLAINTEXT-MARKER\n" {
		t.Fatalf("pulled file: %q", got)
	}
	if out, err := exec.Command("grep", "-r", "-c", "AGENTFS-PLAINTEXT-MARKER", bucket).CombinedOutput(); procExit(err) != 1 {
		t.Fatalf("grep -r after the second push:\n%s", out)
	}
	// fsck --remote --verify-data reads every object back through the key.
	ok(t, origin, "fsck", "--remote", "--verify-data")
}

func procExit(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncryptedRemotePassphraseAndRekey: a passphrase key (Argon2id with the bucket's salt),
// a wrong passphrase, then remote rekey to a new key: afterwards only the new key opens the
// bucket (everything was rewritten), the old clone's key is refused with one line, and the
// repository that rekeyed keeps pushing.
func TestEncryptedRemotePassphraseAndRekey(t *testing.T) {
	t.Setenv("AGENTFS_REMOTE_KEY", "")
	t.Setenv("AGENTFS_REMOTE_KEY_ORIGIN", "")
	tmp := t.TempDir()
	pass := writeKey(t, tmp, "pass", []byte("correct horse battery staple\n"))
	badPass := writeKey(t, tmp, "badpass", []byte("correct horse battery stable\n"))
	newKey := writeKey(t, tmp, "new", randomKey(t))
	url := "file://" + filepath.Join(tmp, "bucket")
	tree := secretTree(t)

	origin := newRepo(t)
	ok(t, origin, "import", "main", tree)
	ok(t, origin, "remote", "add", "origin", url, "--key-file", pass)
	ok(t, origin, "push", "origin", "main")
	ok(t, origin, "fork", "main", "second")
	ok(t, origin, "push", "origin", "second")

	ok(t, filepath.Join(tmp, "c1"), "clone", url, "--key-file", pass)
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c2"), "clone", url, "--key-file", badPass), "wrong passphrase", "is not it")

	var rk struct {
		Rewritten int `json:"packs_rewritten"`
		Packs     int `json:"packs"`
		Refs      int `json:"refs_rewritten"`
	}
	if err := json.Unmarshal([]byte(ok(t, origin, "remote", "rekey", "origin", "--key-file", newKey, "--json")), &rk); err != nil {
		t.Fatal(err)
	}
	if rk.Rewritten == 0 || rk.Rewritten != rk.Packs || rk.Refs != 2 {
		t.Fatalf("rekey rewrote %d of %d packs and %d refs; want all packs and 2 refs", rk.Rewritten, rk.Packs, rk.Refs)
	}
	// Run again: nothing left to do.
	if err := json.Unmarshal([]byte(ok(t, origin, "remote", "rekey", "origin", "--key-file", newKey, "--json")), &rk); err != nil {
		t.Fatal(err)
	}
	if rk.Rewritten != 0 || rk.Refs != 0 {
		t.Fatalf("a second rekey rewrote %d packs and %d refs", rk.Rewritten, rk.Refs)
	}
	// Only the new key opens the bucket now.
	c3 := filepath.Join(tmp, "c3")
	ok(t, c3, "clone", url, "--key-file", newKey, "--full")
	exp := filepath.Join(tmp, "export")
	ok(t, c3, "export", "main", exp)
	if out, err := exec.Command("diff", "-r", tree, exp).CombinedOutput(); err != nil {
		t.Fatalf("export after rekey differs:\n%s", out)
	}
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c4"), "clone", url, "--key-file", pass), "clone with the old key after rekey", "is not it")
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c1"), "pull", "origin", "main"), "pull with the old key after rekey", "is not it")
	// The repository that rekeyed pushes with the new key; the new clone pulls it.
	ok(t, origin, "import", "main", writeTree(t, map[string]string{"after.txt": "after rekey\n"}))
	ok(t, origin, "push", "origin", "main")
	ok(t, c3, "pull", "origin", "main")
	if got := ok(t, c3, "cat", "main:after.txt"); got != "after rekey\n" {
		t.Fatalf("cat after rekey: %q", got)
	}
	ok(t, origin, "fsck", "--remote", "--verify-data")
}

// TestSignedRefs: pushes of a repository with a signing key sign their refs; clone and pull
// with --trust accept them, and refuse with one line a branch signed by another key, an
// unsigned one, and refs rewritten by hand in the bucket (a plaintext ref naming another
// commit; an encrypted ref replaced by another branch's). The trust is remembered, also by a
// daemon; log shows who signed each checkpoint.
func TestSignedRefs(t *testing.T) {
	t.Setenv("AGENTFS_REMOTE_KEY", "")
	t.Setenv("AGENTFS_REMOTE_KEY_ORIGIN", "")
	ctx := context.Background()
	tmp := t.TempDir()
	bucket := filepath.Join(tmp, "bucket")
	url := "file://" + bucket
	encBucket := filepath.Join(tmp, "enc")
	encURL := "file://" + encBucket
	key := writeKey(t, tmp, "key", randomKey(t))

	origin := newRepo(t)
	pub := strings.TrimSpace(ok(t, origin, "keygen"))
	if fi, err := os.Stat(filepath.Join(origin, "signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v %v", fi, err)
	}
	if again := strings.TrimSpace(ok(t, origin, "keygen")); again != pub {
		t.Fatalf("keygen replaced the key without --force: %s, then %s", pub, again)
	}
	ok(t, origin, "import", "main", writeTree(t, map[string]string{"a.txt": "one\n"}))
	first := lastCheckpoint(t, origin, "main")
	ok(t, origin, "import", "main", writeTree(t, map[string]string{"a.txt": "two\n"}))
	ok(t, origin, "fork", "main", "second")
	ok(t, origin, "remote", "add", "origin", url)
	ok(t, origin, "remote", "add", "enc", encURL, "--key-file", key)
	for _, r := range []string{"origin", "enc"} {
		ok(t, origin, "push", r, "main")
		ok(t, origin, "push", r, "second")
	}
	other := newRepo(t)
	otherPub := strings.TrimSpace(ok(t, other, "keygen"))
	ok(t, other, "import", "main", writeTree(t, map[string]string{"b.txt": "foreign\n"}))
	ok(t, other, "remote", "add", "origin", url)
	ok(t, other, "fork", "main", "foreign")
	ok(t, other, "push", "origin", "foreign")
	unsigned := newRepo(t)
	ok(t, unsigned, "import", "main", writeTree(t, map[string]string{"c.txt": "unsigned\n"}))
	ok(t, unsigned, "remote", "add", "origin", url)
	ok(t, unsigned, "fork", "main", "unsigned")
	ok(t, unsigned, "push", "origin", "unsigned")

	// The pusher's key: accepted; log names the signer.
	clone := filepath.Join(tmp, "clone")
	ok(t, clone, "clone", url, "--branch", "main", "--trust", pub)
	var log []struct {
		ID        string `json:"id"`
		SignedBy  string `json:"signed_by"`
		SignedVia string `json:"signed_via"`
	}
	if err := json.Unmarshal([]byte(ok(t, clone, "log", "main", "--json")), &log); err != nil {
		t.Fatal(err)
	}
	if len(log) < 2 || log[0].SignedBy != pub || log[1].SignedVia != log[0].ID {
		t.Fatalf("log of the clone: %+v; want the head signed by %s and the older ones signed via it", log, pub)
	}
	if text := ok(t, clone, "log", "main"); !strings.Contains(text, "signed by "+pub) {
		t.Fatalf("log does not show the signer:\n%s", text)
	}
	if err := json.Unmarshal([]byte(ok(t, origin, "log", "main", "--json")), &log); err != nil || log[0].SignedBy != pub {
		t.Fatalf("log of the pushing repository: %+v %v", log, err)
	}
	// A trust file works the same.
	trustFile := writeKey(t, tmp, "trusted", []byte("# the fleet\n"+pub+"\n"))
	ok(t, filepath.Join(tmp, "clone2"), "clone", url, "--branch", "main", "--trust-file", trustFile)

	// Another key, or none: one line.
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c3"), "clone", url, "--branch", "main", "--trust", otherPub),
		"clone trusting another key", "branch main is signed by "+pub, "not a trusted key")
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c4"), "clone", url, "--branch", "unsigned", "--trust", pub),
		"clone of an unsigned branch", "branch unsigned is not signed")
	// The trust is remembered: a pull of the foreign branch without --trust is refused, here
	// through a daemon.
	d := startDaemon(t, clone)
	oneErrLine(t, agentfs(t, clone, "pull", "origin", "foreign"), "pull of a branch signed by another key",
		"branch foreign is signed by "+otherPub, "not a trusted key")
	oneErrLine(t, agentfs(t, clone, "pull", "origin", "unsigned"), "pull of an unsigned branch", "is not signed")
	ok(t, clone, "pull", "origin", "foreign", "--trust", pub, "--trust", otherPub) // trusting both
	d.stop(t)

	// A plaintext ref rewritten by hand to name an older commit: the signature no longer
	// matches.
	refPath := filepath.Join(bucket, "refs", "heads", "main")
	var rec map[string]any
	if err := json.Unmarshal(mustRead(t, refPath), &rec); err != nil {
		t.Fatal(err)
	}
	rec["commit"] = first
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(refPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c5"), "clone", url, "--branch", "main", "--trust", pub),
		"clone of a ref rewritten by hand", "signature of branch main does not match")
	oneErrLine(t, agentfs(t, clone, "pull", "origin", "main"), "pull of a ref rewritten by hand", "does not match")

	// An encrypted ref replaced by another branch's sealed ref: the seal binds it to its name.
	encRef := filepath.Join(encBucket, "refs", "heads", "main")
	if err := os.WriteFile(encRef, mustRead(t, filepath.Join(encBucket, "refs", "heads", "second")), 0o644); err != nil {
		t.Fatal(err)
	}
	oneErrLine(t, agentfs(t, filepath.Join(tmp, "c6"), "clone", encURL, "--branch", "main", "--key-file", key, "--trust", pub),
		"clone of an encrypted ref swapped by hand", "ref main fails its authentication check")
	_ = ctx
}

// lastCheckpoint returns the id of the newest checkpoint of br.
func lastCheckpoint(t *testing.T, repo, br string) string {
	t.Helper()
	var log []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(ok(t, repo, "log", br, "--json")), &log); err != nil || len(log) == 0 {
		t.Fatalf("log %s: %v", br, err)
	}
	return log[0].ID
}
