// Package posixsuite is agentfs's POSIX regression suite: cases that run on any directory.
// The tests of this package run every case on an agentfs mount and on a plain directory of
// the host (ext4), so that a case that fails on ext4 is known to be a wrong test, not a bug.
//
// Cases that act as another user run child processes with other credentials
// (syscall.Credential), so the suite must run as root; they are skipped otherwise.
package posixsuite

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// OtherUID and OtherGID are the identity the cases use for "another user".
const OtherUID, OtherGID = 1000, 1000

// Case is one test; dir is a fresh, empty directory with mode 0755 that OtherUID can reach.
type Case func(t *testing.T, dir string)

// Cases are the suite, by name.
var Cases = map[string]Case{
	"Mode0000File":           mode0000File,
	"Mode0000Dir":            mode0000Dir,
	"Mode0000Fifo":           mode0000Fifo,
	"Mode0000Create":         mode0000Create,
	"Fchmod0000":             fchmod0000,
	"OtherUserCannotWrite":   otherUserCannotWrite,
	"OtherUserCreatesOwn":    otherUserCreatesOwn,
	"StickyDir":              stickyDir,
	"SetgidDirInherits":      setgidDirInherits,
	"ChownByNonOwner":        chownByNonOwner,
	"Umask":                  umaskModes,
	"SedInPlaceKeepsMode":    sedInPlaceKeepsMode,
	"ExecBitAfterRewrite":    execBitAfterRewrite,
	"ACLXattrConsistent":     aclXattrConsistent,
	"FileNamesAnyByte":       fileNamesAnyByte,
	"SuidClearedOnChown":     suidClearedOnChown,
	"SuidClearedOnWrite":     suidClearedOnWrite,
	"SuidClearedOnTruncate":  suidClearedOnTruncate,
	"CapabilityGoesOnWrite":  capabilityGoesOnWrite,
	"DirNeedsExecToTraverse": dirNeedsExec,
}

// Names returns the case names, sorted.
func Names() []string {
	out := make([]string, 0, len(Cases))
	for n := range Cases {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Run runs every case on a fresh subdirectory of dir.
func Run(t *testing.T, dir string) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			sub := filepath.Join(dir, name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			Cases[name](t, sub)
		})
	}
}

// needRoot skips cases that switch users when the suite does not run as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
}

// AsUser runs a command as uid:gid and returns its combined output and error.
func AsUser(uid, gid uint32, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// shAs runs a shell script as another user; it fails the test on error when must is set.
func shAs(t *testing.T, uid, gid uint32, script string) (string, error) {
	t.Helper()
	return AsUser(uid, gid, "/bin/sh", "-c", script)
}

func mode(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode
}

func wantMode(t *testing.T, p string, want uint32) {
	t.Helper()
	if got := mode(t, p) & 0o7777; got != want {
		t.Errorf("%s: mode %04o, want %04o", filepath.Base(p), got, want)
	}
}

// write creates p with content and mode perm (setuid, setgid and sticky bits included).
func write(t *testing.T, p, content string, perm uint32) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, perm)
}

// chmod sets the mode bits as chmod(2) does (os.Chmod maps Go's own mode bits).
func chmod(t *testing.T, p string, perm uint32) {
	t.Helper()
	if err := unix.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

func sh(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s required (AGENTFS_REQUIRE_TOOLS=1) but not installed", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// A root-owned file after chmod 000 cannot be read by another user; root still can.
func mode0000File(t *testing.T, dir string) {
	needRoot(t)
	p := filepath.Join(dir, "secret")
	write(t, p, "secret\n", 0o644)
	if out, err := AsUser(OtherUID, OtherGID, "/bin/cat", p); err != nil || out != "secret\n" {
		t.Fatalf("before chmod 000, uid %d cannot read: %v %q", OtherUID, err, out)
	}
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0)
	if out, err := AsUser(OtherUID, OtherGID, "/bin/cat", p); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid %d read a mode 0000 file: %v %q", OtherUID, err, out)
	}
	if out, err := AsUser(OtherUID, OtherGID, "/bin/sh", "-c", "echo x >> "+p); err == nil {
		t.Errorf("uid %d wrote a mode 0000 file: %q", OtherUID, out)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "secret\n" {
		t.Errorf("root reads %q %v", b, err)
	}
}

// A directory with mode 0000 cannot be listed or entered by another user.
func mode0000Dir(t *testing.T, dir string) {
	needRoot(t)
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d, "f"), "x", 0o644)
	if err := os.Chmod(d, 0); err != nil {
		t.Fatal(err)
	}
	wantMode(t, d, 0)
	if out, err := AsUser(OtherUID, OtherGID, "/bin/ls", d); err == nil {
		t.Errorf("uid %d listed a mode 0000 directory: %q", OtherUID, out)
	}
	if out, err := AsUser(OtherUID, OtherGID, "/bin/cat", filepath.Join(d, "f")); err == nil {
		t.Errorf("uid %d read a file inside a mode 0000 directory: %q", OtherUID, out)
	}
}

// A fifo made with mode 0 keeps it.
func mode0000Fifo(t *testing.T, dir string) {
	p := filepath.Join(dir, "fifo")
	old := unix.Umask(0)
	err := unix.Mkfifo(p, 0)
	unix.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, p); m&unix.S_IFMT != unix.S_IFIFO || m&0o7777 != 0 {
		t.Errorf("fifo mode %o, want fifo with 0000", m)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0o640)
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0)
}

// open(O_CREAT, 0) creates a file with mode 0000, and the descriptor still writes.
func mode0000Create(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte("data")); err != nil {
		t.Errorf("write through the creating descriptor: %v", err)
	}
	unix.Close(fd)
	wantMode(t, p, 0)
	d := filepath.Join(dir, "d")
	if err := unix.Mkdir(d, 0); err != nil {
		t.Fatal(err)
	}
	wantMode(t, d, 0)
}

// fchmod to 0 shows in fstat and stat.
func fchmod0000(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fchmod(int(f.Fd()), 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0 {
		t.Errorf("fstat after fchmod 0: %04o", st.Mode&0o7777)
	}
	wantMode(t, p, 0)
	if err := unix.Fchmod(int(f.Fd()), 0o4755); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0o4755)
}

// Another user cannot write a root-owned 0644 file or create in a root-owned 0755 directory.
func otherUserCannotWrite(t *testing.T, dir string) {
	needRoot(t)
	p := filepath.Join(dir, "f")
	write(t, p, "root's\n", 0o644)
	if _, err := shAs(t, OtherUID, OtherGID, "echo x >> "+p); err == nil {
		t.Error("another user appended to a root-owned 0644 file")
	}
	if _, err := shAs(t, OtherUID, OtherGID, "touch "+filepath.Join(dir, "new")); err == nil {
		t.Error("another user created a file in a root-owned 0755 directory")
	}
	if _, err := shAs(t, OtherUID, OtherGID, "rm -f "+p); err == nil {
		if _, serr := os.Stat(p); serr != nil {
			t.Error("another user removed a file from a root-owned 0755 directory")
		}
	}
	if b, _ := os.ReadFile(p); string(b) != "root's\n" {
		t.Errorf("content %q", b)
	}
}

// Another user creates, edits and deletes its own files in a directory it may write; they
// are owned by it.
func otherUserCreatesOwn(t *testing.T, dir string) {
	needRoot(t)
	d := filepath.Join(dir, "open")
	if err := os.Mkdir(d, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o777)
	p := filepath.Join(d, "mine")
	if out, err := shAs(t, OtherUID, OtherGID, "umask 022; echo one > "+p+" && echo two >> "+p+" && mkdir "+d+"/sub && touch "+d+"/sub/x && rm "+d+"/sub/x && rmdir "+d+"/sub"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != OtherUID || st.Gid != OtherGID || st.Mode&0o777 != 0o644 {
		t.Errorf("created file: uid %d gid %d mode %04o", st.Uid, st.Gid, st.Mode&0o777)
	}
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo\n" {
		t.Errorf("content %q", b)
	}
}

// In a sticky 1777 directory another user cannot remove or rename root's file.
func stickyDir(t *testing.T, dir string) {
	needRoot(t)
	d := filepath.Join(dir, "tmp")
	os.Mkdir(d, 0o777)
	chmod(t, d, 0o1777)
	wantMode(t, d, 0o1777)
	p := filepath.Join(d, "roots")
	write(t, p, "x", 0o666)
	if _, err := shAs(t, OtherUID, OtherGID, "rm -f "+p); err != nil {
		_ = err // expected
	}
	if _, err := os.Stat(p); err != nil {
		t.Error("another user removed root's file from a sticky directory")
	}
	if _, err := shAs(t, OtherUID, OtherGID, "mv "+p+" "+d+"/moved"); err == nil {
		t.Error("another user renamed root's file in a sticky directory")
	}
	if out, err := shAs(t, OtherUID, OtherGID, "touch "+d+"/own && rm "+d+"/own"); err != nil {
		t.Errorf("another user cannot remove its own file in a sticky directory: %v %s", err, out)
	}
}

// A setgid directory passes its group (and, to subdirectories, the setgid bit) on.
func setgidDirInherits(t *testing.T, dir string) {
	needRoot(t)
	d := filepath.Join(dir, "shared")
	os.Mkdir(d, 0o775)
	if err := os.Chown(d, 0, 4242); err != nil {
		t.Fatal(err)
	}
	chmod(t, d, 0o2775)
	f := filepath.Join(d, "f")
	write(t, f, "x", 0o644)
	sub := filepath.Join(d, "sub")
	os.Mkdir(sub, 0o755)
	var st unix.Stat_t
	unix.Stat(f, &st)
	if st.Gid != 4242 {
		t.Errorf("file in setgid dir: gid %d, want 4242", st.Gid)
	}
	unix.Stat(sub, &st)
	if st.Gid != 4242 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("subdirectory of setgid dir: gid %d mode %04o", st.Gid, st.Mode&0o7777)
	}
}

// Only root chowns; a non-owner's chmod fails.
func chownByNonOwner(t *testing.T, dir string) {
	needRoot(t)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o666)
	if _, err := AsUser(OtherUID, OtherGID, "/bin/chown", "1000", p); err == nil {
		t.Error("another user chowned root's file")
	}
	if _, err := AsUser(OtherUID, OtherGID, "/bin/chmod", "777", p); err == nil {
		t.Error("another user chmodded root's file")
	}
	wantMode(t, p, 0o666)
}

// The umask shapes the modes of new files and directories.
func umaskModes(t *testing.T, dir string) {
	sh(t, dir, "umask 077; touch a; mkdir b; umask 002; touch c; mkdir d; umask 0; touch e; mkfifo f")
	for name, want := range map[string]uint32{"a": 0o600, "b": 0o700, "c": 0o664, "d": 0o775, "e": 0o666, "f": 0o666} {
		wantMode(t, filepath.Join(dir, name), want)
	}
}

// sed -i on a 0755 script leaves it 0755 (GNU sed copies the mode through ACLs or fchmod).
func sedInPlaceKeepsMode(t *testing.T, dir string) {
	needTool(t, "sed")
	p := filepath.Join(dir, "script.sh")
	write(t, p, "#!/bin/sh\necho a\n", 0o755)
	sh(t, dir, "sed -i s/a/b/ script.sh")
	wantMode(t, p, 0o755)
	if out := sh(t, dir, "./script.sh"); out != "b\n" {
		t.Errorf("script printed %q", out)
	}
	write(t, p, "#!/bin/sh\necho a\n", 0o4710)
	sh(t, dir, "sed -i s/a/b/ script.sh")
	if got := mode(t, p) & 0o777; got != 0o710 {
		t.Errorf("sed -i on 4710: %04o", mode(t, p)&0o7777)
	}
}

// Rewriting a file by rename (what editors do) with cp -p keeps the x bit.
func execBitAfterRewrite(t *testing.T, dir string) {
	p := filepath.Join(dir, "run")
	write(t, p, "#!/bin/sh\n", 0o750)
	sh(t, dir, "cp -p run run.new && echo 'echo ok' >> run.new && mv run.new run")
	wantMode(t, p, 0o750)
	if out := sh(t, dir, "./run"); out != "ok\n" {
		t.Errorf("%q", out)
	}
}

// An ACL xattr either works (and sets the mode) or is unsupported as a whole; it is never
// stored without effect.
func aclXattrConsistent(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o640)
	buf := make([]byte, 256)
	_, err := unix.Getxattr(p, "system.posix_acl_access", buf)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		// no ACLs: setting one fails too, and the mode is untouched
		acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 7, 0, 0xff, 0xff, 0xff, 0xff}
		if err := unix.Setxattr(p, "system.posix_acl_access", acl, 0); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("setting an ACL where reading one is unsupported: %v", err)
		}
		wantMode(t, p, 0o640)
		if names := listXattr(t, p); strings.Contains(names, "posix_acl") {
			t.Errorf("listxattr shows %q", names)
		}
	case errors.Is(err, unix.ENODATA):
		// ACLs supported, none set: a minimal ACL set through the xattr changes the mode
		acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 7, 0, 0xff, 0xff, 0xff, 0xff}
		if err := unix.Setxattr(p, "system.posix_acl_access", acl, 0); err != nil {
			t.Fatal(err)
		}
		wantMode(t, p, 0o777)
	default:
		t.Errorf("getxattr system.posix_acl_access: %v", err)
	}
}

func listXattr(t *testing.T, p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// File names may hold any byte but '/' and NUL, including what branch names refuse.
func fileNamesAnyByte(t *testing.T, dir string) {
	for _, name := range []string{"rlo\u202Etxt.exe", "zw\u200Bsp", "bad\xffutf8", "tab\tnl\nname", "\x01ctl", "..."} {
		p := filepath.Join(dir, name)
		write(t, p, name, 0o644)
		if b, err := os.ReadFile(p); err != nil || string(b) != name {
			t.Errorf("%q: %q %v", name, b, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 6 {
		t.Errorf("readdir: %d entries, %v", len(ents), err)
	}
}

// chown of a setuid file clears setuid (and setgid with group x).
func suidClearedOnChown(t *testing.T, dir string) {
	needRoot(t)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o6755)
	if err := os.Chown(p, OtherUID, OtherGID); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0o755)
}

// A directory without x cannot be traversed by another user, even if readable.
func dirNeedsExec(t *testing.T, dir string) {
	needRoot(t)
	d := filepath.Join(dir, "d")
	os.Mkdir(d, 0o755)
	write(t, filepath.Join(d, "f"), "x", 0o644)
	if err := os.Chmod(d, 0o744); err != nil {
		t.Fatal(err)
	}
	if _, err := AsUser(OtherUID, OtherGID, "/bin/cat", filepath.Join(d, "f")); err == nil {
		t.Error("another user traversed a directory without x")
	}
}

// A write by another user (no CAP_FSETID) clears setuid, and setgid where group execute is
// set or the writer is not in the file's group; a write by root keeps both. (With
// FUSE_HANDLE_KILLPRIV_V2 agentfs drops them itself.)
func suidClearedOnWrite(t *testing.T, dir string) {
	needRoot(t)
	for _, c := range []struct {
		name      string
		perm      uint32
		gid       int // the file's group
		uid       uint32
		wantAfter uint32
	}{
		{"suid-sgid-gx", 0o6777, 0, OtherUID, 0o777},
		{"sgid-no-gx-other-group", 0o2767, 0, OtherUID, 0o767},
		{"sgid-no-gx-own-group", 0o2767, OtherGID, OtherUID, 0o2767},
		{"by-root", 0o6777, 0, 0, 0o6777},
	} {
		p := filepath.Join(dir, c.name)
		write(t, p, "x", c.perm)
		if err := os.Chown(p, 0, c.gid); err != nil {
			t.Fatal(err)
		}
		chmod(t, p, c.perm) // chown cleared the set-ID bits
		for range 2 {       // the second write finds nothing to drop
			if out, err := AsUser(c.uid, OtherGID, "/bin/sh", "-c", "echo more >> "+p); err != nil {
				t.Fatalf("%s: append as %d: %v: %s", c.name, c.uid, err, out)
			}
		}
		wantMode(t, p, c.wantAfter)
	}
}

// Truncation by another user (open with O_TRUNC, and truncate(2)) clears setuid and setgid.
func suidClearedOnTruncate(t *testing.T, dir string) {
	needRoot(t)
	for i, script := range []string{": > %s", "truncate -s 1 %s"} {
		p := filepath.Join(dir, "f"+string(rune('0'+i)))
		write(t, p, "content", 0o6777)
		if out, err := AsUser(OtherUID, OtherGID, "/bin/sh", "-c", strings.ReplaceAll(script, "%s", p)); err != nil {
			t.Fatalf("%q: %v: %s", script, err, out)
		}
		wantMode(t, p, 0o777)
	}
}

// A write, even by root, removes a file's capabilities (security.capability).
func capabilityGoesOnWrite(t *testing.T, dir string) {
	needRoot(t)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o755)
	// struct vfs_cap_data, revision 2: CAP_NET_BIND_SERVICE permitted.
	capv := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Setxattr(p, "security.capability", capv, 0); err != nil {
		t.Skipf("this filesystem takes no file capabilities: %v", err)
	}
	if n, err := unix.Getxattr(p, "security.capability", nil); err != nil || n == 0 {
		t.Fatalf("capability not set: %d, %v", n, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.WriteString("more")
	if err := errors.Join(werr, f.Close()); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Getxattr(p, "security.capability", nil); !errors.Is(err, unix.ENODATA) {
		t.Errorf("after a write security.capability is still there (getxattr: %v)", err)
	}
	wantMode(t, p, 0o755)
}
