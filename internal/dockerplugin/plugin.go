// Package dockerplugin is the agentfs Docker volume plugin: the /Plugin.Activate and
// /VolumeDriver.* protocol over HTTP on a Unix socket. A volume is a branch;
// `docker volume create -d agentfs -o from=REF NAME` forks REF. Like the CSI driver it is
// a client of the daemon, which makes the mounts.
package dockerplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

// Plugin serves the volume plugin protocol.
type Plugin struct {
	Daemon    api.Service
	MountRoot string // volume NAME is mounted at MountRoot/NAME
	Logger    *log.Logger

	mu    sync.Mutex
	users map[string]map[string]bool // volume name -> ids of the containers that mounted it
}

type request struct {
	Name string
	ID   string
	Opts map[string]string
}

type volume struct {
	Name       string
	Mountpoint string         `json:",omitempty"`
	Status     map[string]any `json:",omitempty"`
}

type response struct {
	Err          string
	Mountpoint   string            `json:",omitempty"`
	Volume       *volume           `json:",omitempty"`
	Volumes      []volume          `json:",omitempty"`
	Capabilities map[string]string `json:",omitempty"`
}

// Handler returns the HTTP handler of the protocol.
func (p *Plugin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string][]string{"Implements": {"VolumeDriver"}})
	})
	calls := map[string]func(context.Context, request) (response, error){
		"Create": p.create, "Remove": p.remove, "Mount": p.mount, "Unmount": p.unmount,
		"Path": p.path, "Get": p.get, "List": p.list,
		"Capabilities": func(context.Context, request) (response, error) {
			return response{Capabilities: map[string]string{"Scope": "local"}}, nil
		},
	}
	for name, call := range calls {
		mux.HandleFunc("POST /VolumeDriver."+name, func(w http.ResponseWriter, r *http.Request) {
			var req request
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				reply(w, response{Err: "bad request body: " + err.Error()})
				return
			}
			res, err := call(r.Context(), req)
			if err != nil {
				if p.Logger != nil {
					p.Logger.Printf("%s %s: %v", name, req.Name, err)
				}
				res = response{Err: err.Error()}
			}
			reply(w, res)
		})
	}
	return mux
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	json.NewEncoder(w).Encode(v)
}

func (p *Plugin) mountpoint(name string) (string, error) {
	if err := branch.ValidateName("volume", name); err != nil {
		return "", err
	}
	return filepath.Join(p.MountRoot, name), nil
}

// create makes the branch, forked from Opts["from"] when given. Creating a volume that
// exists succeeds (docker run -v NAME:... creates it each time).
func (p *Plugin) create(ctx context.Context, r request) (response, error) {
	if _, err := p.mountpoint(r.Name); err != nil {
		return response{}, err
	}
	for k := range r.Opts {
		if k != "from" {
			return response{}, fmt.Errorf("unknown option %q: the agentfs volume driver takes -o from=REF", k)
		}
	}
	_, err := p.Daemon.CreateBranch(ctx, r.Name, r.Opts["from"])
	if errors.Is(err, branch.ErrExists) {
		err = nil
	}
	return response{}, err
}

func (p *Plugin) remove(ctx context.Context, r request) (response, error) {
	return response{}, p.Daemon.DeleteBranch(ctx, r.Name)
}

// mountedAt returns the daemon's mount at dir, or nil.
func (p *Plugin) mountedAt(ctx context.Context, dir string) (*api.MountInfo, error) {
	ms, err := p.Daemon.Mounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Dir == dir {
			return &m, nil
		}
	}
	return nil, nil
}

// mount mounts the branch at MountRoot/NAME once, however many containers use it.
func (p *Plugin) mount(ctx context.Context, r request) (response, error) {
	dir, err := p.mountpoint(r.Name)
	if err != nil {
		return response{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.mountedAt(ctx, dir)
	if err != nil {
		return response{}, err
	}
	if m == nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return response{}, err
		}
		if _, err := p.Daemon.Mount(ctx, r.Name, dir, api.MountOptions{AllowOther: true}); err != nil {
			return response{}, err
		}
	}
	if p.users == nil {
		p.users = map[string]map[string]bool{}
	}
	if p.users[r.Name] == nil {
		p.users[r.Name] = map[string]bool{}
	}
	p.users[r.Name][r.ID] = true
	return response{Mountpoint: dir}, nil
}

// unmount unmounts the branch when the last container using it is done.
func (p *Plugin) unmount(ctx context.Context, r request) (response, error) {
	dir, err := p.mountpoint(r.Name)
	if err != nil {
		return response{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.users[r.Name], r.ID)
	if len(p.users[r.Name]) > 0 {
		return response{}, nil
	}
	delete(p.users, r.Name)
	m, err := p.mountedAt(ctx, dir)
	if err != nil || m == nil {
		return response{}, err
	}
	if err := p.Daemon.Unmount(ctx, dir); err != nil {
		return response{}, err
	}
	os.Remove(dir)
	return response{}, nil
}

func (p *Plugin) path(ctx context.Context, r request) (response, error) {
	v, err := p.get(ctx, r)
	if err != nil {
		return response{}, err
	}
	return response{Mountpoint: v.Volume.Mountpoint}, nil
}

func (p *Plugin) get(ctx context.Context, r request) (response, error) {
	dir, err := p.mountpoint(r.Name)
	if err != nil {
		return response{}, err
	}
	if _, err := p.Daemon.Log(ctx, r.Name); err != nil {
		return response{}, err
	}
	v := volume{Name: r.Name}
	if m, err := p.mountedAt(ctx, dir); err != nil {
		return response{}, err
	} else if m != nil {
		v.Mountpoint = dir
	}
	return response{Volume: &v}, nil
}

func (p *Plugin) list(ctx context.Context, _ request) (response, error) {
	bs, err := p.Daemon.Branches(ctx)
	if err != nil {
		return response{}, err
	}
	ms, err := p.Daemon.Mounts(ctx)
	if err != nil {
		return response{}, err
	}
	at := map[string]bool{}
	for _, m := range ms {
		at[m.Dir] = true
	}
	out := response{Volumes: []volume{}}
	for _, b := range bs {
		v := volume{Name: b.Name}
		if dir := filepath.Join(p.MountRoot, b.Name); at[dir] {
			v.Mountpoint = dir
		}
		out.Volumes = append(out.Volumes, v)
	}
	sort.Slice(out.Volumes, func(i, j int) bool { return out.Volumes[i].Name < out.Volumes[j].Name })
	return out, nil
}
