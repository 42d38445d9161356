// Package daemontest starts a real agentfs daemon (repository, mount table, control API on
// a Unix socket) inside a test process, for packages that drive the daemon as a client
// does: the CSI driver, the Docker volume plugin.
package daemontest

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

// RequireFUSE skips where /dev/fuse is missing, and fails there when AGENTFS_REQUIRE_FUSE=1.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err == nil && os.Geteuid() == 0 {
		return
	}
	if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
		t.Fatal("/dev/fuse or root is missing and AGENTFS_REQUIRE_FUSE=1")
	}
	t.Skip("needs /dev/fuse and root; set AGENTFS_REQUIRE_FUSE=1 to fail instead")
}

// Daemon is a daemon serving a fresh repository.
type Daemon struct {
	Dir    string      // the repository
	Socket string      // its control socket
	Client *api.Client // a client of that socket
}

// Start creates a repository in a temporary directory and serves it until the test ends,
// when every mount is unmounted and the repository closed.
func Start(t testing.TB) *Daemon {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := repo.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	logger := log.New(os.Stderr, "agentfs: ", log.LstdFlags)
	table := &api.MountTable{RepoDir: dir, Logger: logger}
	svc := &api.Local{Engine: r.Engine, Mounter: table, Remotes: r.Remotes}
	sock := repo.SocketPath(dir)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler(svc)}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if err := errors.Join(table.UnmountAll(), r.Close()); err != nil {
			t.Errorf("stopping the daemon: %v", err)
		}
	})
	c, err := api.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	return &Daemon{Dir: dir, Socket: sock, Client: c}
}
