package posixsuite

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	afs "github.com/agentfs/agentfs/fs"
	"golang.org/x/sys/unix"
)

// toolSteps are the tools agents run that set modes and ACLs. Each runs in a fresh target
// directory T with a source tree S on the host; its exit status is part of the result.
var toolSteps = []string{
	`install -m 0755 "$S/x755" sed.sh && sed -i s/a/b/ sed.sh`,
	`cp -a "$S" cpa`,
	`cp -p "$S/x755" cpp && cp -p "$S/s4755" cpps`,
	`cp -r "$S" cpr`,
	`cp "$S/x755" cpplain`,
	`rsync -a "$S/" rsynca/`,
	`rsync -aAX "$S/" rsyncaax/`,
	`install -m 0750 "$S/f644" inst && install -d -m 0711 instd && install -m 4755 "$S/f644" instsuid`,
	`(umask 027; touch um; mkdir umd; mkfifo umf)`,
	`(umask 0; touch um0; mkdir umd0)`,
	`touch chm && chmod 4711 chm && touch chm2 && chmod u=rw,g=,o=r chm2 && mkdir chmd && chmod 2750 chmd && chmod g-s chmd`,
	`touch chm0 && chmod 000 chm0`,
	`touch aclm && setfacl -m u::rwx,g::r,o::- aclm`,
	`touch aclu && setfacl -m u:1000:r aclu`,
	`touch aclb && chmod 640 aclb && setfacl -b aclb`,
	`mkdir acld && setfacl -d -m u::rwx,g::rx,o::- acld; touch acld/child; mkdir acld/sub`,
	`cp -a "$S" cpa2 && sed -i s/a/c/ cpa2/x755`,
	`touch sedacl && chmod 751 sedacl && setfacl -m u:1000:rw sedacl; sed -i s/x/y/ sedacl`,
}

// makeSource writes the source tree the tool steps copy from.
func makeSource(t *testing.T) string {
	s := reachableDir(t, "agentfs-tools-src-")
	for name, m := range map[string]uint32{"f644": 0o644, "x755": 0o755, "s4755": 0o4755, "p600": 0o600} {
		write(t, filepath.Join(s, name), "a x\n", m)
	}
	os.Mkdir(filepath.Join(s, "d"), 0o750)
	chmod(t, filepath.Join(s, "d"), 0o750)
	write(t, filepath.Join(s, "d", "g"), "a\n", 0o640)
	os.Symlink("f644", filepath.Join(s, "link"))
	return s
}

// runTools runs every step in a fresh subdirectory of target and describes the result: per
// step its exit status, then every path's type, mode and getfacl output.
func runTools(t *testing.T, target, src string) map[string]string {
	out := map[string]string{}
	for i, step := range toolSteps {
		dir := filepath.Join(target, fmt.Sprintf("step%02d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", "umask 022; "+step)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "S="+src)
		msg, err := cmd.CombinedOutput()
		status := "ok"
		if err != nil {
			status = "failed"
		}
		out[fmt.Sprintf("step%02d", i)] = status
		t.Logf("%s: %s %s", target, step, strings.TrimSpace(string(msg)))
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(target, p)
			var st unix.Stat_t
			unix.Lstat(p, &st)
			desc := fmt.Sprintf("%07o", st.Mode)
			if st.Mode&unix.S_IFMT != unix.S_IFLNK {
				acl, _ := exec.Command("getfacl", "-cpn", p).CombinedOutput()
				desc += " " + strings.Join(strings.Fields(string(acl)), " ")
			}
			out[rel] = desc
			return nil
		})
	}
	return out
}

// noaclFS mounts a small btrfs image with -o noacl: a local filesystem without ACL support,
// which is what agentfs must behave like. (ext4 lost its noacl option in Linux 6.x.)
func noaclFS(t *testing.T) string {
	for _, tool := range []string{"mkfs.btrfs", "mount", "umount"} {
		needTool(t, tool)
	}
	img := filepath.Join(t.TempDir(), "btrfs.img")
	dir := reachableDir(t, "agentfs-noacl-")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 128<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,noacl", img, dir).CombinedOutput(); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatalf("mount -o loop,noacl: %v %s", err, out)
		}
		t.Skipf("cannot loop-mount a btrfs image here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	os.Chmod(dir, 0o755)
	return dir
}

// TestToolModesDifferential runs sed -i, cp -a/-p/-r, rsync -a/-aAX, install, umask, chmod
// and setfacl on an agentfs mount and on a filesystem without ACLs (btrfs -o noacl): exit
// statuses, modes and getfacl output must be the same. It also compares with the host's ext4 (ACLs on) and
// requires the same wherever no named or default ACL is involved.
func TestToolModesDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop mount, setuid copies)")
	}
	for _, tool := range []string{"sed", "rsync", "setfacl", "getfacl", "install", "mkfifo"} {
		needTool(t, tool)
	}
	src := makeSource(t)
	mnt, _ := mountBranch(t, afs.Options{})
	noacl := noaclFS(t)
	host := reachableDir(t, "agentfs-tools-host-")

	got := runTools(t, mnt, src)
	want := runTools(t, noacl, src)
	withACL := runTools(t, host, src)
	// Steps whose result depends on ACL support: named-user and default ACLs.
	aclSteps := map[string]bool{}
	for i, s := range toolSteps {
		if strings.Contains(s, "u:1000") || strings.Contains(s, "-d -m") {
			aclSteps[fmt.Sprintf("step%02d", i)] = true
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: mount %q, btrfs -o noacl %q", k, got[k], w)
		}
		step, _, _ := strings.Cut(k, "/")
		if !aclSteps[step] && withACL[k] != got[k] {
			t.Errorf("%s: mount %q, ext4 with ACLs %q", k, got[k], withACL[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s exists on the mount only", k)
		}
	}
	for k := range withACL {
		if step, _, _ := strings.Cut(k, "/"); aclSteps[step] && withACL[k] != got[k] {
			t.Logf("differs from ext4 with ACLs (agentfs has no ACLs): %s: mount %q, ext4 %q", k, got[k], withACL[k])
		}
	}
	if m := got["step00/sed.sh"]; !strings.HasPrefix(m, "0100755") {
		t.Errorf("sed -i left %q, want 0755", m)
	}
}
