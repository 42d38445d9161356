package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requireFUSE skips where /dev/fuse is missing, and fails there when AGENTFS_REQUIRE_FUSE=1.
func requireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("AGENTFS_REQUIRE_FUSE=1 but FUSE is unavailable: %v", err)
		}
		t.Skipf("FUSE is unavailable (%v); set AGENTFS_REQUIRE_FUSE=1 to make this a failure", err)
	}
}

// crashFile models one file: what was fsynced is certain; a write that was under way when
// the daemon died may or may not have landed.
type crashFile struct {
	data    []byte
	certain []bool
}

func (f *crashFile) apply(off int, p []byte, certain bool) {
	if end := off + len(p); end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
		f.certain = append(f.certain, make([]bool, end-len(f.certain))...)
	}
	copy(f.data[off:], p)
	for i := off; i < off+len(p); i++ {
		f.certain[i] = certain
	}
}

// TestCrash kills the daemon (kill -9) at random moments while a writer does random
// fsynced writes through a FUSE mount; after each restart every fsynced byte is there and
// fsck is clean. AGENTFS_CRASH_KILLS sets the number of kills (default 4; make crash: 1000).
func TestCrash(t *testing.T) {
	requireFUSE(t)
	kills := 4
	if s := os.Getenv("AGENTFS_CRASH_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("AGENTFS_CRASH_KILLS=%q", s)
		}
		kills = n
	}
	repo := newRepo(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	model := map[string]*crashFile{}
	var synced, lost int
	for k := 0; k < kills; k++ {
		d := startDaemon(t, repo)
		// The daemon restores the mount it had (REPO/mounts.json); mount it on the first round.
		if res := agentfs(t, repo, "mount", "main", mnt); res.code != 0 && !(k > 0 && strings.Contains(res.stderr, "already mounted")) {
			t.Fatalf("kill %d: mount after restart: %s\n%s", k, res.stderr, d.log.String())
		}
		// Every fsynced byte survived the last kill.
		for name, f := range model {
			got, err := os.ReadFile(filepath.Join(mnt, name))
			if err != nil {
				t.Fatalf("kill %d: read %s: %v", k, name, err)
			}
			for i, c := range f.certain {
				if c && (i >= len(got) || got[i] != f.data[i]) {
					t.Fatalf("kill %d: %s: fsynced byte %d lost (file has %d bytes, model %d)", k, name, i, len(got), len(f.data))
				}
			}
			f.data = got
			f.certain = make([]bool, len(got))
			for i := range f.certain {
				f.certain[i] = true
			}
		}
		if res := agentfs(t, repo, "fsck"); res.code != 0 {
			t.Fatalf("kill %d: fsck: %s%s", k, res.stdout, res.stderr)
		}
		// Write until the daemon dies.
		var wg sync.WaitGroup
		wg.Add(1)
		stop := make(chan struct{})
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := "f" + strconv.Itoa(r.IntN(4))
				f := model[name]
				if f == nil {
					f = &crashFile{}
					model[name] = f
				}
				off, n := r.IntN(384<<10), 1+r.IntN(96<<10)
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(r.Uint32())
				}
				fh, err := os.OpenFile(filepath.Join(mnt, name), os.O_RDWR|os.O_CREATE, 0o644)
				if err == nil {
					_, err = fh.WriteAt(p, int64(off))
					if err == nil {
						err = fh.Sync()
					}
					fh.Close()
				}
				if err != nil {
					f.apply(off, p, false) // may or may not have landed
					lost++
					return
				}
				f.apply(off, p, true)
				synced++
			}
		}()
		time.Sleep(time.Duration(50+r.IntN(500)) * time.Millisecond)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		close(stop)
		wg.Wait()
		// The mount point now holds a dead FUSE mount. The daemon's stale-mount handling
		// (api/mounts.go) detaches it only when stat says ENOTCONN; detach it here.
		if _, err := os.Stat(mnt); k == 0 {
			t.Logf("stat of the dead mount: %v", err)
		}
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount -l %s: %v %s", mnt, err, out)
		}
	}
	// A last clean restart: fsck from the CLI without a daemon too.
	d := startDaemon(t, repo)
	if res := agentfs(t, repo, "mount", "main", mnt); res.code != 0 && !strings.Contains(res.stderr, "already mounted") {
		t.Fatalf("final mount: %s", res.stderr)
	}
	for name, f := range model {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil && slices.Contains(f.certain, true) {
			t.Fatalf("final: %s holds fsynced bytes but cannot be read: %v", name, err)
		}
		for i, c := range f.certain {
			if c && (i >= len(got) || got[i] != f.data[i]) {
				t.Fatalf("final: %s: fsynced byte %d lost", name, i)
			}
		}
	}
	ok(t, repo, "unmount", mnt)
	d.stop(t)
	if out := ok(t, repo, "fsck"); !strings.HasPrefix(out, "clean") {
		t.Fatalf("fsck: %s", out)
	}
	t.Logf("%d kills, %d fsynced writes verified, %d writes cut by a kill", kills, synced, lost)
}
