package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// flipByte flips one bit in the middle of the file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("flip %s: %d bytes, %v", path, len(b), err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// largest returns the largest file in dir whose name matches pattern.
func largest(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	sort.Slice(m, func(i, j int) bool {
		a, _ := os.Stat(m[i])
		b, _ := os.Stat(m[j])
		return a.Size() > b.Size()
	})
	if len(m) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	return m[0]
}

// currentManifest is the MANIFEST Pebble's marker names.
func currentManifest(t *testing.T, db string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(db, "marker.manifest.*"))
	if len(m) != 1 {
		t.Fatalf("manifest markers: %v", m)
	}
	name := filepath.Base(m[0])
	return filepath.Join(db, name[strings.Index(name, "MANIFEST"):])
}

// A flipped byte in each kind of file of a repository: what the user sees (fsck exits 1 with
// at most five lines naming the damage, no Pebble report) and what fsck --repair brings back
// with a file:// remote holding the pushed branch (every pushed file, byte for byte).
func TestDamageSurvivable(t *testing.T) {
	kinds := []string{"sst", "blob", "MANIFEST", "WAL", "FORMAT"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			repo := newRepo(t)
			src := t.TempDir()
			randomFile(t, src, "big", 1<<20)
			os.WriteFile(filepath.Join(src, "small.txt"), []byte("small\n"), 0o644)
			ok(t, repo, "import", "main", src)
			ok(t, repo, "checkpoint", "main", "--name", "v1")
			ok(t, repo, "remote", "add", "origin", "file://"+t.TempDir())
			ok(t, repo, "push", "main")
			ok(t, repo, "gc") // flushes to sstables and blob files, writes the metadata copies
			db := filepath.Join(repo, "db")
			var victim string
			switch kind {
			case "sst":
				victim = largest(t, db, "*.sst")
			case "blob":
				victim = largest(t, db, "*.blob")
			case "MANIFEST":
				victim = currentManifest(t, db)
			case "WAL":
				ok(t, repo, "branch", "create", "after-gc") // something in the log
				victim = largest(t, db, "*.log")
			case "FORMAT":
				victim = filepath.Join(repo, "FORMAT")
			}
			flipByte(t, victim)
			// An ordinary command says it in one line (it used to print the same damage
			// twice, once from Pebble's log and once as its error).
			if r := agentfs(t, repo, "cat", "main:small.txt"); r.code != 0 && kind != "blob" {
				if n := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; n != 1 {
					t.Errorf("cat with a damaged %s: exit %d, %d lines:\n%s", kind, r.code, n, r.stderr)
				}
			}
			r := agentfs(t, repo, "fsck")
			out := strings.TrimSpace(r.stdout + r.stderr)
			lines := strings.Split(out, "\n")
			t.Logf("%s damaged (%s): fsck exit %d, %d lines:\n%s", kind, filepath.Base(victim), r.code, len(lines), out)
			for _, bad := range []string{"stack trace", "Wraps:", "goroutine", "pebble/v2"} {
				if strings.Contains(out, bad) {
					t.Errorf("fsck printed Pebble's report (%q)", bad)
				}
			}
			if kind != "WAL" && r.code != 1 {
				t.Errorf("fsck of a repository with a damaged %s: exit %d", kind, r.code)
			}
			if (kind == "sst" || kind == "MANIFEST") && len(lines) > 5 {
				t.Errorf("fsck printed %d lines for a damaged %s", len(lines), kind)
			}
			r = agentfs(t, repo, "fsck", "--repair")
			t.Logf("fsck --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			if r.code != 0 {
				t.Fatalf("fsck --repair: exit %d", r.code)
			}
			want, _ := os.ReadFile(filepath.Join(src, "big"))
			for _, ref := range []string{"main:big", "main@v1:big"} {
				if got := ok(t, repo, "cat", ref); !bytes.Equal([]byte(got), want) {
					t.Errorf("after repair %s has %d bytes, differs from what was pushed", ref, len(got))
				}
			}
			if got := ok(t, repo, "cat", "main:small.txt"); got != "small\n" {
				t.Errorf("after repair main:small.txt = %q", got)
			}
			ok(t, repo, "fsck")
		})
	}
}
