package posixsuite

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	afs "github.com/agentfs/agentfs/fs"
	"golang.org/x/sys/unix"
)

// toolSteps are the tools agents run that set modes and ACLs. Each runs in a fresh target
// directory T with a source tree S on the host (which holds ACLs); its exit status is part
// of the result. Every step starts with umask 022.
var toolSteps = []string{
	`install -m 0755 "$S/x755" sed.sh && sed -i s/a/b/ sed.sh`,
	`cp -a "$S" cpa`,
	`cp -p "$S/x755" cpp && cp -p "$S/s4755" cpps && cp -p "$S/facl" cppacl`,
	`cp -r "$S" cpr`,
	`cp "$S/x755" cpplain && cp "$S/facl" cpplainacl`,
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
	// named entries, the mask, chmod after setfacl, removal
	`touch mask && setfacl -m u:1000:rwx,g:1000:rw,m::r mask`,
	`touch chmacl && setfacl -m u:1000:rw chmacl && chmod 700 chmacl && touch chmacl2 && setfacl -m u:1000:rw chmacl2 && chmod g+x,o+w chmacl2`,
	`touch x && setfacl -m u:1000:rx,g:1000:w x && setfacl -x u:1000 x && setfacl -x g:1000 x`,
	`touch bb && setfacl -m u:1000:rx,g:0:r bb && setfacl -b bb`,
	`mkdir dd && setfacl -m u:1000:rwx dd && setfacl -d -m u:1000:rx,g:1000:rwx dd && setfacl -k dd && setfacl -k dd`,
	`touch ra rb && setfacl -m u:1000:rwx,g:1000:r ra && getfacl ra | setfacl --set-file=- rb`,
	`mkdir sd && setfacl -m u::rwx,g::rx,o::rx,u:1000:rwx,m::rwx sd && touch sd/f && mkdir sd/d`,
	// default ACLs: inheritance with every kind of node, umask ignored, directories inherit
	`mkdir da && setfacl -d -m u:1000:rwx,g::rx,o::- da && (umask 077; touch da/f; mkdir da/s; mkfifo da/p; ln -s f da/l; install -m 0755 "$S/f644" da/i; mkdir -p da/s/t/u; touch da/s/t/u/v)`,
	`mkdir db && setfacl -d -m u::rw,g::r,o::r db && (umask 0; touch db/f; mkdir db/s); chmod 777 db/f`,
	`mkdir dc && setfacl -m d:u:1000:r,d:m::rwx dc && cp -a "$S" dc/cpa && cp "$S/x755" dc/cpplain && rsync -a "$S/" dc/rs/ && rsync -aAX "$S/" dc/rsx/ && sed -i s/a/b/ dc/cpa/x755`,
	`mkdir dg && chmod 2775 dg && setfacl -d -m g:1000:rwx dg && mkdir dg/s && touch dg/f`,
	`cp -a "$S/dacl" cpdacl && touch cpdacl/new && setfacl -R -m u:1000:rw cpdacl && setfacl -R -b cpdacl`,
}

// makeSource writes the source tree the tool steps copy from, on the host.
func makeSource(t *testing.T) string {
	s := reachableDir(t, "agentfs-tools-src-")
	for name, m := range map[string]uint32{"f644": 0o644, "x755": 0o755, "s4755": 0o4755, "p600": 0o600, "facl": 0o640} {
		write(t, filepath.Join(s, name), "a x\n", m)
	}
	os.Mkdir(filepath.Join(s, "d"), 0o750)
	chmod(t, filepath.Join(s, "d"), 0o750)
	write(t, filepath.Join(s, "d", "g"), "a\n", 0o640)
	os.Symlink("f644", filepath.Join(s, "link"))
	os.Mkdir(filepath.Join(s, "dacl"), 0o755)
	sh(t, s, "setfacl -m u:1000:rw,g:1000:r facl && setfacl -m u:1000:rwx,d:u:1000:rx,d:g::r dacl && touch dacl/in")
	return s
}

// runTools runs every step in a fresh subdirectory of target and describes the result: per
// step its exit status, then every path's type, mode, getfacl output and content digest.
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
			status = "failed: " + strings.TrimSpace(strings.ReplaceAll(string(msg), target, "T"))
		}
		out[fmt.Sprintf("step%02d", i)] = status
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(target, p)
			var st unix.Stat_t
			unix.Lstat(p, &st)
			desc := fmt.Sprintf("%07o %d:%d", st.Mode, st.Uid, st.Gid)
			if st.Mode&unix.S_IFMT != unix.S_IFLNK {
				acl, _ := exec.Command("getfacl", "-cpn", p).CombinedOutput()
				desc += " " + strings.Join(strings.Fields(string(acl)), " ")
			}
			if st.Mode&unix.S_IFMT == unix.S_IFREG {
				b, _ := os.ReadFile(p)
				desc += fmt.Sprintf(" %x", sha256.Sum256(b))
			}
			out[rel] = desc
			return nil
		})
	}
	return out
}

// TestToolModesDifferential runs sed -i, cp -a/-p/-r, rsync -a/-aAX, install, umask, chmod
// and setfacl/getfacl (named entries, masks, -x, -b, -k, default ACLs and their inheritance)
// on an agentfs mount and on the host's ext4 with ACLs: exit statuses, modes, owners,
// getfacl output and contents must be the same.
func TestToolModesDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (setuid copies, ACLs naming other users)")
	}
	for _, tool := range []string{"sed", "rsync", "setfacl", "getfacl", "install", "mkfifo"} {
		needTool(t, tool)
	}
	src := makeSource(t)
	mnt, _ := mountBranch(t, afs.Options{})
	host := reachableDir(t, "agentfs-tools-host-")
	if b, err := exec.Command("setfacl", "-m", "u:1000:r", host).CombinedOutput(); err != nil {
		t.Fatalf("the host directory %s has no ACL support, so it cannot be the reference: %v %s", host, err, b)
	}
	exec.Command("setfacl", "-b", host).Run()

	got := runTools(t, mnt, src)
	want := runTools(t, host, src)
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			t.Errorf("%s:\n  mount %q\n  ext4  %q", k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s exists on the mount only", k)
		}
	}
	if m := got["step00/sed.sh"]; !strings.HasPrefix(m, "0100755") {
		t.Errorf("sed -i left %q, want 0755", m)
	}
	t.Logf("%d paths and %d steps compared", len(want)-len(toolSteps), len(toolSteps))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
