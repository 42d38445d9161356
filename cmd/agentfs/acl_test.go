package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sh runs a shell script as root and fails the test with its output if it fails.
func shell(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// acls is `getfacl -cpn` of p, one line per entry joined with spaces.
func acls(t *testing.T, p string) string {
	t.Helper()
	return strings.Join(strings.Fields(shell(t, "getfacl -cpn '"+p+"'")), " ")
}

// POSIX ACLs go wherever xattrs go: import reads them, checkpoints keep them, diff sees
// them, rollback and merge bring them back into a mounted branch and the kernel applies the
// new ones at once, export writes them (and nothing inherited from the destination), and an
// --owner mount shows and stores the named users and groups through its identity map.
func TestACLsThroughVersions(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (acting as uid 1000)")
	}
	requireTool(t, "setfacl")
	requireTool(t, "getfacl")
	src := writeTree(t, map[string]string{"secret": "s\n", "open.txt": "o\n", "d/in": "i\n"})
	shell(t, "cd "+src+" && chmod 640 secret && setfacl -m u:1000:r secret && setfacl -m d:u:1000:rx,u:1000:rx d")
	repo := newRepo(t)
	ok(t, repo, "import", "main", src)
	startDaemon(t, repo)
	mnt := mountPoint(t)
	ok(t, repo, "mount", "main", mnt, "--allow-other")
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })

	secret := filepath.Join(mnt, "secret")
	for _, p := range []string{"secret", "d", "open.txt", "d/in"} {
		if got, want := acls(t, filepath.Join(mnt, p)), acls(t, filepath.Join(src, p)); got != want {
			t.Errorf("imported %s: %q, on the host %q", p, got, want)
		}
	}
	reads := func() bool { _, err := asUser(1000, 1000, "cat "+secret); return err == nil }
	if !reads() {
		t.Fatal("uid 1000 cannot read secret with u:1000:r")
	}
	ok(t, repo, "checkpoint", "main", "--name", "with")
	shell(t, "setfacl -x u:1000 "+secret)
	if reads() {
		t.Fatal("uid 1000 reads secret after setfacl -x u:1000")
	}
	ok(t, repo, "checkpoint", "main", "--name", "without")
	if d := strings.TrimSpace(ok(t, repo, "diff", "main@with", "main@without")); d != "M secret" {
		t.Errorf("diff of an ACL change: %q, want M secret", d)
	}
	// The kernel cached the ACLs of the mounted files; rollback must drop them at once.
	ok(t, repo, "rollback", "main", "main@with")
	if !reads() {
		t.Error("after rollback to a checkpoint with u:1000:r, uid 1000 cannot read")
	}
	ok(t, repo, "rollback", "main", "main@without")
	if reads() {
		t.Error("after rollback to a checkpoint without the entry, uid 1000 reads")
	}

	// merge: an agent adds the entry on its branch; main's mount applies it after the merge
	ok(t, repo, "fork", "main", "agent")
	amnt := mountPoint(t)
	ok(t, repo, "mount", "agent", amnt)
	shell(t, "setfacl -m u:1000:r "+filepath.Join(amnt, "secret"))
	ok(t, repo, "checkpoint", "agent")
	agentfs(t, repo, "unmount", amnt)
	ok(t, repo, "merge", "agent", "--into", "main")
	if !reads() {
		t.Error("after merging u:1000:r into the mounted main, uid 1000 cannot read")
	}
	ok(t, repo, "checkpoint", "main", "--name", "merged")

	// export into a directory whose default ACL would give everything to uid 1001
	parent := t.TempDir()
	shell(t, "setfacl -d -m u:1001:rwx "+parent)
	out := filepath.Join(parent, "out")
	ok(t, repo, "export", "main@merged", out)
	for _, p := range []string{"secret", "open.txt", "d", "d/in"} {
		if got, want := acls(t, filepath.Join(out, p)), acls(t, filepath.Join(mnt, p)); got != want {
			t.Errorf("exported %s: %q, in the mount %q", p, got, want)
		}
	}

	// --owner 1000:1000 swaps uid 0 and 1000 in ACL entries too, both ways
	ok(t, repo, "fork", "main", "owned")
	omnt := mountPoint(t)
	ok(t, repo, "mount", "owned", omnt, "--owner", "1000:1000")
	t.Cleanup(func() { agentfs(t, repo, "unmount", omnt) })
	if got := acls(t, filepath.Join(omnt, "secret")); !strings.Contains(got, "user:0:r--") || strings.Contains(got, "user:1000") {
		t.Errorf("stored u:1000:r through --owner 1000:1000 shows %q, want user:0:r--", got)
	}
	shell(t, "setfacl -m u:1000:rw,g:1000:r,u:7:x "+filepath.Join(omnt, "open.txt"))
	ok(t, repo, "checkpoint", "owned", "--name", "o")
	plain := mountPoint(t)
	ok(t, repo, "mount", "owned@o", plain)
	t.Cleanup(func() { agentfs(t, repo, "unmount", plain) })
	if got := acls(t, filepath.Join(plain, "open.txt")); !strings.Contains(got, "user:0:rw-") || !strings.Contains(got, "group:0:r--") || !strings.Contains(got, "user:7:--x") {
		t.Errorf("u:1000:rw,g:1000:r,u:7:x set through --owner 1000:1000 is stored as %q, want user:0, group:0, user:7", got)
	}
}
