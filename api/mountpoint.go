package api

import (
	"errors"
	"os"
	"syscall"
)

// MakeMountPoint creates dir for a mount. A directory still holding the mount of a daemon
// that died answers ENOTCONN instead of existing; it is left for Mount, which clears it.
func MakeMountPoint(dir string) error {
	err := os.MkdirAll(dir, 0o750)
	if err != nil && isStale(dir) {
		return nil
	}
	return err
}

// ClearStaleMount detaches a mount at dir left by a daemon that died (kill -9, OOM, an
// upgrade of its container): nobody can use it, and it keeps dir from being removed or
// mounted again. It reports whether there was one.
func ClearStaleMount(dir string) bool {
	if !isStale(dir) {
		return false
	}
	return syscall.Unmount(dir, syscall.MNT_DETACH) == nil
}

func isStale(dir string) bool {
	// stat may answer from the kernel's attribute cache; listing asks the (dead) daemon.
	_, err := os.ReadDir(dir)
	return errors.Is(err, syscall.ENOTCONN)
}
