package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/remote"
)

// Gate serves the control API of a daemon that is still starting: serve listens on its
// socket before it opens the database (which can take a while), so that commands run at
// once find the daemon and wait for it instead of opening the repository behind its back.
// Calls wait until Open is called; if the daemon fails to start, they get its error.
type Gate struct {
	ready chan struct{}
	once  sync.Once
	h     http.Handler
	err   error
}

func NewGate() *Gate { return &Gate{ready: make(chan struct{})} }

// Open lets the waiting and later calls through to h, or fails them with err.
func (g *Gate) Open(h http.Handler, err error) {
	g.once.Do(func() {
		g.h, g.err = h, err
		close(g.ready)
	})
}

func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-g.ready:
	case <-r.Context().Done():
		return
	}
	if g.err != nil {
		writeError(w, g.err)
		return
	}
	g.h.ServeHTTP(w, r)
}

// StopHandler answers the "stop" call (agentfs stop): it replies, then calls stop, which
// shuts the daemon down as SIGTERM does.
func StopHandler(stop func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}\n"))
		go stop()
	})
}

// Stop asks the daemon to stop (flush, unmount, exit); it returns once the daemon has
// accepted. The mounts it served come back at its next start.
func (c *Client) Stop(ctx context.Context) error {
	_, err := do[struct{}](ctx, c, "stop", Request{})
	return err
}

// RemoteGC collects the garbage of a remote's bucket (remote.Manager.GC). With a daemon
// serving the repository, it runs inside the daemon, so the daemon need not be stopped.
type RemoteGCer interface {
	RemoteGC(ctx context.Context, name string, o remote.GCOptions) (remote.GCResult, error)
}

func (l *Local) RemoteGC(ctx context.Context, name string, o remote.GCOptions) (remote.GCResult, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.GCResult{}, err
	}
	return m.GC(ctx, name, o)
}

// remoteGCRequest is the body of the remote.gc call.
type remoteGCRequest struct {
	Name   string `json:"name"`
	DryRun bool   `json:"dry_run,omitempty"`
	Grace  string `json:"grace,omitempty"` // Go duration; negative: none
}

func (c *Client) RemoteGC(ctx context.Context, name string, o remote.GCOptions) (remote.GCResult, error) {
	var res remote.GCResult
	resp, err := c.postJSON(ctx, "remote.gc", remoteGCRequest{Name: name, DryRun: o.DryRun, Grace: o.Grace.String()})
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

// RemoteGCHandler serves remote.gc for s.
func RemoteGCHandler(s RemoteGCer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req remoteGCRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, fmt.Errorf("%w: bad request body: %v", branch.ErrInvalidName, err))
			return
		}
		grace, err := time.ParseDuration(req.Grace)
		if err != nil {
			writeError(w, fmt.Errorf("%w: grace: %v", branch.ErrInvalidName, err))
			return
		}
		res, err := s.RemoteGC(r.Context(), req.Name, remote.GCOptions{DryRun: req.DryRun, Grace: grace})
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})
}
