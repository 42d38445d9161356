package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// asUser runs a shell script as uid:gid.
func asUser(uid, gid uint32, script string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mountPoint makes an empty directory that another user can reach (t.TempDir is 0700).
func mountPoint(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "agentfs-owner-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(parent, 0o755)
	t.Cleanup(func() { os.RemoveAll(parent) })
	mnt := filepath.Join(parent, "mnt")
	os.Mkdir(mnt, 0o755)
	return mnt
}

// agentfs mount --owner 1000:1000 --allow-other: uid 1000 owns what root stored, creates,
// edits and deletes files; the checkpoint stores them as root's, and diff lists only the
// paths that uid 1000 changed.
func TestMountOwnerAndAllowOther(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "a\n", "dir/b.txt": "b\n", "dir/c.txt": "c\n", "keep.txt": "k\n"}))
	ok(t, repo, "fork", "main", "agent")
	startDaemon(t, repo)
	mnt := mountPoint(t)
	ok(t, repo, "mount", "agent", mnt, "--owner", "1000:1000", "--allow-other")
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })

	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "a.txt"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("a stored root file shows as %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
	}
	if out, err := asUser(1000, 1000, "cd "+mnt+" && echo new > new.txt && echo more >> a.txt && rm dir/b.txt && mkdir made && echo x > made/f && ls -ln new.txt"); err != nil {
		t.Fatalf("uid 1000 in an --owner 1000:1000 mount: %v\n%s", err, out)
	}
	if err := syscall.Stat(filepath.Join(mnt, "new.txt"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("new.txt shows as %d:%d (%v)", st.Uid, st.Gid, err)
	}
	ok(t, repo, "checkpoint", "agent", "--name", "work")
	got := strings.Split(strings.TrimSpace(ok(t, repo, "diff", "main", "agent@work")), "\n")
	sort.Strings(got)
	want := []string{"A made", "A new.txt", "D dir/b.txt", "M a.txt"}
	if strings.Join(got, "|") != strings.Join(want, "|") && strings.Join(got, "|") != "A made|A made/f|A new.txt|D dir/b.txt|M a.txt" {
		t.Fatalf("diff lists %q, want only the changed paths %q", got, want)
	}
	// Stored as root's: a mount without --owner shows uid 0.
	plain := mountPoint(t)
	ok(t, repo, "mount", "agent@work", plain)
	t.Cleanup(func() { agentfs(t, repo, "unmount", plain) })
	for _, p := range []string{"new.txt", "a.txt", "made/f"} {
		if err := syscall.Stat(filepath.Join(plain, p), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s is stored as %d:%d (%v), want 0:0", p, st.Uid, st.Gid, err)
		}
	}
	// Merged into main: no ownership change is carried.
	ok(t, repo, "merge", "agent", "--into", "main")
	if d := ok(t, repo, "diff", "main", "agent@work"); d != "" {
		t.Fatalf("after merge main differs from the work: %q", d)
	}
	if out := ok(t, repo, "mounts", "--json"); !strings.Contains(out, `"owner": "1000:1000"`) || !strings.Contains(out, `"allow_other": true`) {
		t.Errorf("mounts --json does not show the options: %s", out)
	}
	// A bad --owner is one clear line.
	other := mountPoint(t)
	if r := agentfs(t, repo, "mount", "main", other, "--owner", "bob"); r.code != 1 || !strings.Contains(r.stderr, "UID:GID") {
		t.Errorf("--owner bob: %d %q", r.code, r.stderr)
	}
}

// A mount is private to the daemon's user unless --allow-other: uid 1000 cannot list or
// read it, root can; with --allow-other uid 1000 reads what the modes allow.
func TestMountPrivateUnlessAllowOther(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"public.txt": "anyone may read\n"}))
	startDaemon(t, repo)
	private := mountPoint(t)
	ok(t, repo, "mount", "main", private, "--read-only")
	t.Cleanup(func() { agentfs(t, repo, "unmount", private) })
	if b, err := os.ReadFile(filepath.Join(private, "public.txt")); err != nil || string(b) != "anyone may read\n" {
		t.Fatalf("root reads %q %v", b, err)
	}
	for _, script := range []string{"ls " + private, "cat " + private + "/public.txt", "stat " + private + "/public.txt"} {
		if out, err := asUser(1000, 1000, script); err == nil {
			t.Errorf("uid 1000 ran %q on a private mount: %s", script, out)
		}
	}
	shared := mountPoint(t)
	ok(t, repo, "mount", "main", shared, "--read-only", "--allow-other")
	t.Cleanup(func() { agentfs(t, repo, "unmount", shared) })
	if out, err := asUser(1000, 1000, "cat "+shared+"/public.txt"); err != nil || out != "anyone may read\n" {
		t.Errorf("uid 1000 on an --allow-other mount: %v %q", err, out)
	}
}
