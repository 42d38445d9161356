package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/daemontest"
)

// TestAgentContainerWithoutPrivileges shows the container model: the daemon mounts each
// agent's branch on the host; the agent runs in a new user and mount namespace as host
// uid 1000 (root only inside the namespaces it made itself, as in a rootless container), in
// a root of its own with its branch bind-mounted at /work. It needs no
// /dev/fuse and no privilege on the host. It sees one agentfs mount, its own; it works in
// it; and the daemon checkpoints that work.
func TestAgentContainerWithoutPrivileges(t *testing.T) {
	daemontest.RequireFUSE(t)
	for _, tool := range []string{"mount", "setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is missing and AGENTFS_REQUIRE_TOOLS=1", tool)
			}
			t.Skipf("needs %s (util-linux)", tool)
		}
	}
	d := daemontest.Start(t)
	ctx := context.Background()
	// Directories uid 1000 can reach (t.TempDir is private to root).
	base, err := os.MkdirTemp("", "agentfs-userns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	host, root := filepath.Join(base, "host"), filepath.Join(base, "root")
	for _, dir := range []string{base, host, root, filepath.Join(host, "agent1"), filepath.Join(host, "agent2")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
	}
	for _, b := range []string{"agent1", "agent2"} {
		if _, err := d.Client.CreateBranch(ctx, b, "main"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client.Mount(ctx, b, filepath.Join(host, b), api.MountOptions{AllowOther: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "agent2", "secret"), []byte("agent2's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The agent's uid owns its branch's root, as --owner will arrange.
	if err := os.Chown(filepath.Join(host, "agent1"), 1000, 1000); err != nil {
		t.Fatal(err)
	}

	// The agent's root is a fresh tmpfs holding the system's programs (read-only binds) and
	// its branch at /work; pivot_root drops the host's tree, so the namespace's mount table
	// lists exactly one agentfs mount.
	script := `set -e
mount --make-rprivate /
mount -t tmpfs none "$ROOT"
for d in bin sbin lib lib64 usr etc; do
  if [ -L "/$d" ]; then cp -P "/$d" "$ROOT/$d"
  elif [ -d "/$d" ]; then mkdir "$ROOT/$d"; mount --rbind "/$d" "$ROOT/$d"; fi
done
mkdir "$ROOT/work" "$ROOT/proc" "$ROOT/old"
mount --bind "$HOST/agent1" "$ROOT/work"
cd "$ROOT"
pivot_root . old
mount -t proc proc /proc
umount -l /old
rmdir /old
test "$(grep -c agentfs /proc/self/mounts)" = 1
grep agentfs /proc/self/mounts | grep -q " /work "
test ! -e "$HOST"
echo "done by the agent" > /work/work.txt
mkdir /work/src
echo 'int main(void){return 0;}' > /work/src/main.c
mv /work/src/main.c /work/src/prog.c
cat /proc/self/uid_map
`
	// As a rootless container runtime does: uid 1000 itself creates the user and mount
	// namespaces (no help from root), in which it is root over its own mounts only.
	cmd := exec.Command("setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
		"unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "HOST="+host, "ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("agent in its namespace: %v\n%s", err, out)
	}
	if f := strings.Fields(string(out)); len(f) < 2 || f[0] != "0" || f[1] != "1000" {
		t.Fatalf("the agent did not run as host uid 1000: uid_map %q", out)
	}

	// On the host, the agent's files are owned by uid 1000 and the daemon checkpoints them.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(host, "agent1", "work.txt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("work.txt is owned by %d:%d, want 1000:1000", st.Uid, st.Gid)
	}
	cp, err := d.Client.Checkpoint(ctx, "agent1", "agent-done", "the agent's work")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"work.txt": "done by the agent\n", "src/prog.c": "int main(void){return 0;}\n"} {
		var buf bytes.Buffer
		if err := d.Client.Cat(ctx, cp.ID, path, &buf); err != nil || buf.String() != want {
			t.Fatalf("checkpoint %s:%s = %q, %v; want %q", cp.ID, path, buf.String(), err, want)
		}
	}
	if changes, err := d.Client.Diff(ctx, "agent2", "main"); err != nil || len(changes) != 1 {
		t.Fatalf("agent2 differs from main by %v (%v); want only its secret, nothing of agent1", changes, err)
	}
}
