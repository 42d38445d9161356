// Package repo opens and creates agentfs repositories: a directory holding a format file,
// the Pebble database of the block store and version model, and the daemon's socket.
package repo

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
)

// Format is the repository format this build reads and writes.
const Format = 1

const formatFile = "FORMAT"

// EnvRepo names the environment variable that sets the repository directory.
const EnvRepo = "AGENTFS_REPO"

// DefaultPath returns $AGENTFS_REPO, else ~/.agentfs.
func DefaultPath() string {
	if p := os.Getenv(EnvRepo); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ".agentfs"
	}
	return filepath.Join(home, ".agentfs")
}

// SocketPath is where the daemon of the repository at dir listens.
func SocketPath(dir string) string { return filepath.Join(dir, "agentfs.sock") }

// Errors a user can act on.
var (
	ErrNoRepo     = errors.New("no agentfs repository")
	ErrExists     = errors.New("repository already exists")
	ErrFormat     = errors.New("unsupported repository format")
	ErrInUse      = errors.New("repository is in use by another agentfs process")
	ErrNotRepoDir = errors.New("not an agentfs repository")
)

// Repo is an open repository.
type Repo struct {
	Dir    string
	Store  *store.Store
	Engine *branch.Engine
	// Remotes runs push/pull/clone and fetches blocks missing locally (lazy clones).
	Remotes *remote.Manager
}

// Init creates a repository at dir with an empty branch "main".
func Init(ctx context.Context, dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, formatFile)); err == nil {
		return nil, fmt.Errorf("%w at %s", ErrExists, dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && !onlyDaemonFiles(entries) {
		return nil, fmt.Errorf("%s is not empty and holds no agentfs repository; choose an empty or new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := open(dir, false)
	if err != nil {
		return nil, err
	}
	if _, err := r.Engine.CreateBranch(ctx, "main", ""); err != nil {
		r.Close()
		return nil, err
	}
	// The format file goes last: a repository without it was never finished.
	if err := writeFileSync(filepath.Join(dir, formatFile), fmt.Appendf(nil, "agentfs repository format %d\n", Format)); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// onlyDaemonFiles: a directory holding nothing but the files of a daemon that is starting
// on it (serve --init takes the lock and listens before it creates the repository).
func onlyDaemonFiles(entries []os.DirEntry) bool {
	for _, e := range entries {
		switch e.Name() {
		case lockFile, "agentfs.sock", "agentfs.log":
		default:
			return false
		}
	}
	return true
}

// Exists reports whether dir holds a repository (its format file).
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, formatFile))
	return err == nil
}

// Open opens the repository at dir.
func Open(dir string, readOnly bool) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(dir, formatFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run 'agentfs init' first, or pass --repo", ErrNoRepo, dir)
	}
	if err != nil {
		return nil, err
	}
	var v int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(data)), "agentfs repository format %d", &v); err != nil {
		return nil, fmt.Errorf("%w: %s has a malformed FORMAT file", ErrNotRepoDir, dir)
	}
	if v != Format {
		return nil, fmt.Errorf("%w: %s has format %d, this agentfs reads format %d; use a matching agentfs version", ErrFormat, dir, v, Format)
	}
	return open(dir, readOnly)
}

func open(dir string, readOnly bool) (*Repo, error) {
	st, err := store.Open(filepath.Join(dir, "db"), store.Options{ReadOnly: readOnly, Logger: log.New(os.Stderr, "agentfs: ", 0)})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w (%s); stop it, or run this command while its daemon serves the socket", ErrInUse, dir)
	}
	if err != nil {
		return nil, err
	}
	e, err := branch.Open(st, branch.Options{Logger: log.New(os.Stderr, "agentfs: ", 0)})
	if err != nil {
		st.Close()
		return nil, err
	}
	e.SetUsageFunc(gc.BranchUsage) // exact counts for quotas
	rm := remote.New(e, remote.Options{Logger: log.New(os.Stderr, "agentfs: ", 0), Dir: dir})
	return &Repo{Dir: dir, Store: st, Engine: e, Remotes: rm}, nil
}

// Close flushes buffered data and closes the repository.
func (r *Repo) Close() error {
	ferr := r.Engine.Flush(context.Background())
	rerr := r.Remotes.Close()
	return errors.Join(ferr, rerr, r.Store.Close())
}

func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
