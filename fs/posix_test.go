package fs

import (
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// skipPosix lists go-fuse posixtest cases that cannot pass, with the reason.
var skipPosix = map[string]string{
	"FcntlFlockLocksFile": "expects a second descriptor of the same process to conflict with the " +
		"first one's F_SETLK lock; POSIX record locks belong to the process, so the same call " +
		"succeeds on ext4 and tmpfs too. agentfs leaves locks to the kernel's local locking, " +
		"which has exactly the local-filesystem semantics (SQLite relies on them)",
}

// TestPosix runs go-fuse's POSIX conformance suite, each case on a fresh mount.
func TestPosix(t *testing.T) {
	requireFUSE(t)
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := skipPosix[name]; ok {
				t.Skip(why)
			}
			_, m := mountMain(t)
			posixtest.All[name](t, m.Dir())
		})
	}
}
