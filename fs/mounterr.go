package fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A mount that fails through fusermount3 (as a user other than root) fails with go-fuse's
// "fusermount exited with code 256": the cause is only in fusermount3's message on the
// daemon's stderr. mountCause finds it, so that the CLI's one line says what is wrong.

// stderrMark remembers where the daemon's stderr ended before a mount, when it is a file
// (agentfs mount starts the daemon with stderr on REPO/agentfs.log).
type stderrMark struct {
	path string
	off  int64
}

func markStderr() stderrMark {
	st, err := os.Stderr.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return stderrMark{}
	}
	return stderrMark{path: fmt.Sprintf("/proc/self/fd/%d", os.Stderr.Fd()), off: st.Size()}
}

// fusermountSaid returns the last fusermount line written to stderr since the mark.
// fusermount3 names itself by the path it was run as (go-fuse runs /usr/bin/fusermount3),
// so a line counts when its first word's base name starts with fusermount; the path is
// left out of the line returned.
func (m stderrMark) fusermountSaid() string {
	if m.path == "" {
		return ""
	}
	f, err := os.Open(m.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(m.off, io.SeekStart); err != nil {
		return ""
	}
	last := ""
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(l, ':'); i > 0 && strings.HasPrefix(filepath.Base(l[:i]), "fusermount") {
			last = filepath.Base(l[:i]) + l[i:]
		}
	}
	return last
}

// mountCause explains a failed mount at dir in one line: fusermount3's own message, else
// the cause found by checking what fusermount3 checks, else the error as it came.
func mountCause(dir string, err error, mark stderrMark) error {
	if !strings.Contains(err.Error(), "fusermount") {
		return fmt.Errorf("mount at %s: %w", dir, err)
	}
	if _, e3 := exec.LookPath("fusermount3"); e3 != nil {
		if _, e := exec.LookPath("fusermount"); e != nil {
			return fmt.Errorf("mount at %s: fusermount3 is not installed; install the fuse3 package (apt-get install fuse3), or run the daemon as root", dir)
		}
	}
	if said := mark.fusermountSaid(); said != "" {
		if strings.Contains(said, "/dev/fuse") && strings.Contains(said, "ermission denied") {
			said += fmt.Sprintf("; user %d needs read-write access to /dev/fuse (mode 0666, as udev sets it on most systems), or run the daemon as root", os.Geteuid())
		}
		return fmt.Errorf("mount at %s: %s", dir, said)
	}
	if e := unix.Access(dir, unix.W_OK); e != nil {
		return fmt.Errorf("mount at %s: user %d has no write access to the mount point, and fusermount3 mounts only there; use a directory you own", dir, os.Geteuid())
	}
	var st syscall.Stat_t
	if e := syscall.Stat("/dev/fuse", &st); errors.Is(e, syscall.ENOENT) {
		return fmt.Errorf("mount at %s: FUSE is not available (/dev/fuse is missing): load the fuse kernel module", dir)
	}
	return fmt.Errorf("mount at %s: %s (fusermount3 refused; its message is in the daemon's log)", dir, strings.TrimSpace(err.Error()))
}
