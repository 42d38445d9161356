package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A mount refused by fusermount3 reports fusermount3's own message, which it writes on
// the daemon's stderr (a log file) under the path it was run as; a message from before
// the mount is not taken for this one's.
func TestMountCauseFromFusermount(t *testing.T) {
	requireTool(t, "fusermount3")
	logPath := filepath.Join(t.TempDir(), "agentfs.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = saved }()

	f.WriteString("/usr/bin/fusermount3: an old refusal\n")
	dir := t.TempDir()
	goFuseErr := errors.New("fusermount exited with code 256\n")
	mark := markStderr()
	err = mountCause(dir, goFuseErr, mark)
	if strings.Contains(err.Error(), "old refusal") {
		t.Fatalf("nothing new in the log: %q; the old line is not this mount's cause", err)
	}

	mark = markStderr()
	f.WriteString("time=2026-12-05T02:51:42Z level=INFO msg=serving\n")
	f.WriteString("/usr/bin/fusermount3: failed to open /dev/fuse: Permission denied\n")
	f.WriteString("time=2026-12-05T02:51:42Z level=WARN msg=call call=mount status=500\n")
	err = mountCause(dir, goFuseErr, mark)
	want := "mount at " + dir + ": fusermount3: failed to open /dev/fuse: Permission denied; user " +
		strconv.Itoa(os.Geteuid()) + " needs read-write access to /dev/fuse"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("mountCause: %q, want %q", err, want)
	}

	// Not through fusermount: the error as it came, with the mount point.
	if err := mountCause(dir, errors.New("no such device"), markStderr()); err.Error() != "mount at "+dir+": no such device" {
		t.Fatalf("a direct mount's error: %q", err)
	}
}
