package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/internal/repo"
)

// What agentfs mount and unmount do when things went wrong before them: create a missing
// mount point, stop a daemon that was started only for a mount that failed, and detach a
// mount whose daemon died.

// makeMountPoint creates dir (and its parents) when it does not exist, as mkdir -p would.
func makeMountPoint(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
	}
	return nil
}

// daemonAnswers reports whether a daemon serves the repository at dir.
func daemonAnswers(dir string) bool {
	c, err := net.DialTimeout("unix", repo.SocketPath(dir), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// daemonPID returns the pid of the process serving the repository's socket (SO_PEERCRED
// names the other end of a Unix socket), or 0 when none answers.
func daemonPID(dir string) (int, error) {
	c, err := net.DialTimeout("unix", repo.SocketPath(dir), time.Second)
	if err != nil {
		return 0, nil
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Pid), nil
}

// stopStartedDaemon stops the daemon serving dir, which this command started: SIGTERM, then
// wait for it to exit.
func stopStartedDaemon(dir string) error {
	pid, err := daemonPID(dir)
	if err != nil || pid == 0 {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	return fmt.Errorf("the daemon (pid %d) did not stop within 15s", pid)
}

// agentfsMountAt reports whether an agentfs FUSE filesystem is mounted at dir, from the
// kernel's mount table.
func agentfsMountAt(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != dir {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "fuse.agentfs" {
				return true
			}
		}
	}
	return false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space...) of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detachStaleMount detaches the agentfs mount at dir whose daemon is gone (reads fail with
// ENOTCONN, "transport endpoint is not connected"). It reports false when dir holds no
// stale agentfs mount.
func detachStaleMount(dir string) (bool, error) {
	if !agentfsMountAt(dir) {
		return false, nil
	}
	if _, err := os.ReadDir(dir); !errors.Is(err, syscall.ENOTCONN) {
		return false, nil // a live mount: its daemon answers
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
		return true, nil
	}
	// Not root: the setuid helper may unmount what this user mounted.
	if out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput(); err != nil {
		return false, fmt.Errorf("detach the stale mount at %s: %s", dir, strings.TrimSpace(string(out)))
	}
	return true, nil
}
