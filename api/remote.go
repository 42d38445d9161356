package api

import (
	"context"
	"errors"

	"github.com/agentfs/agentfs/remote"
)

// Remote calls (docs/api.md):
//
//	remote.add      name, url            -> remote.Remote
//	remote.remove   name                 -> {}
//	remote.list                          -> []remote.Remote
//	push            name (remote), branch -> remote.PushResult
//	pull            name (remote), branch, full, no_merge -> remote.PullResult
//	remote.progress                      -> []remote.Progress of operations in flight

// ErrNoRemotes: the service was built without a remote manager.
var ErrNoRemotes = errors.New("remotes are not available in this process")

func (l *Local) remotes() (*remote.Manager, error) {
	if l.Remotes == nil {
		return nil, ErrNoRemotes
	}
	return l.Remotes, nil
}

func (l *Local) RemoteAdd(ctx context.Context, name, url string) (remote.Remote, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.Remote{}, err
	}
	return m.Add(ctx, name, url)
}

func (l *Local) RemoteRemove(ctx context.Context, name string) error {
	m, err := l.remotes()
	if err != nil {
		return err
	}
	return m.Remove(ctx, name)
}

func (l *Local) RemoteList(ctx context.Context) ([]remote.Remote, error) {
	m, err := l.remotes()
	if err != nil {
		return nil, err
	}
	return m.List(ctx)
}

func (l *Local) Push(ctx context.Context, rem, br string) (remote.PushResult, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.PushResult{}, err
	}
	return m.Push(ctx, rem, br)
}

func (l *Local) Pull(ctx context.Context, rem, br string, o remote.PullOptions) (remote.PullResult, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.PullResult{}, err
	}
	return m.Pull(ctx, rem, br, o)
}

func (l *Local) RemoteProgress(ctx context.Context) ([]remote.Progress, error) {
	m, err := l.remotes()
	if err != nil {
		return nil, err
	}
	return m.InFlight(), nil
}

func (c *Client) RemoteAdd(ctx context.Context, name, url string) (remote.Remote, error) {
	return do[remote.Remote](ctx, c, "remote.add", Request{Name: name, URL: url})
}

func (c *Client) RemoteRemove(ctx context.Context, name string) error {
	_, err := do[struct{}](ctx, c, "remote.remove", Request{Name: name})
	return err
}

func (c *Client) RemoteList(ctx context.Context) ([]remote.Remote, error) {
	return do[[]remote.Remote](ctx, c, "remote.list", Request{})
}

func (c *Client) Push(ctx context.Context, rem, br string) (remote.PushResult, error) {
	return do[remote.PushResult](ctx, c, "push", Request{Name: rem, Branch: br})
}

func (c *Client) Pull(ctx context.Context, rem, br string, o remote.PullOptions) (remote.PullResult, error) {
	return do[remote.PullResult](ctx, c, "pull", Request{Name: rem, Branch: br, Full: o.Full, NoMerge: o.NoMerge})
}

func (c *Client) RemoteProgress(ctx context.Context) ([]remote.Progress, error) {
	return do[[]remote.Progress](ctx, c, "remote.progress", Request{})
}

// remoteCalls are the calls map entries of this file.
var (
	callRemoteAdd = func(ctx context.Context, s Service, r Request) (any, error) { return s.RemoteAdd(ctx, r.Name, r.URL) }
	callRemoteRm  = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.RemoteRemove(ctx, r.Name)
	}
	callRemoteList = func(ctx context.Context, s Service, r Request) (any, error) { return s.RemoteList(ctx) }
	callPush       = func(ctx context.Context, s Service, r Request) (any, error) { return s.Push(ctx, r.Name, r.Branch) }
	callPull       = func(ctx context.Context, s Service, r Request) (any, error) {
		return s.Pull(ctx, r.Name, r.Branch, remote.PullOptions{Full: r.Full, NoMerge: r.NoMerge})
	}
	callRemoteProgress = func(ctx context.Context, s Service, r Request) (any, error) { return s.RemoteProgress(ctx) }
)
