package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The repository lock, REPO/agentfs.lock, says who owns the repository: a daemon (agentfs
// serve) or a CLI command that opened it directly. It is an flock on the file, so the kernel
// drops it when its process dies, and the file names its holder so that others can tell a
// daemon that is still starting (wait for its socket) from another command (say who).
// A daemon takes it before anything slow, before it listens and opens the database.

const lockFile = "agentfs.lock"

// Holder roles written into the lock file.
const (
	RoleDaemon = "daemon"
	RoleCLI    = "cli"
)

// Lock is a held repository lock.
type Lock struct{ f *os.File }

// Holder describes who holds a repository's lock.
type Holder struct {
	Role string // RoleDaemon or RoleCLI
	PID  int
}

func (h Holder) String() string {
	switch h.Role {
	case RoleDaemon:
		return fmt.Sprintf("the agentfs daemon (pid %d)", h.PID)
	case RoleCLI:
		return fmt.Sprintf("another agentfs command (pid %d)", h.PID)
	}
	return "another agentfs process"
}

// ErrLocked is returned by TryLock when another process holds the lock.
var ErrLocked = errors.New("repository lock held")

// TryLock takes dir's lock for role without waiting. When another process holds it, the
// error wraps ErrLocked and the Holder says who.
func TryLock(dir, role string) (*Lock, Holder, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, Holder{}, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := ReadHolder(dir) // Role "" while the holder is still writing its name
			return nil, h, fmt.Errorf("%w by %s", ErrLocked, h)
		}
		return nil, Holder{}, err
	}
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("%s %d\n", role, os.Getpid())), 0)
	return &Lock{f: f}, Holder{Role: role, PID: os.Getpid()}, nil
}

// ReadHolder reads who holds (or last held) dir's lock.
func ReadHolder(dir string) (Holder, error) {
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		return Holder{}, err
	}
	role, pid, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, _ := strconv.Atoi(pid)
	return Holder{Role: role, PID: n}, nil
}

// Held reports whether some process holds dir's lock (without taking it for long).
func Held(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// WaitUnlocked waits until nobody holds dir's lock, or timeout.
func WaitUnlocked(dir string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if !Held(dir) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Unlock releases the lock. The file stays (removing it would race with a process that has
// just opened it) but is emptied, so that nobody reads a past holder's name.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	return err
}
