package api

import (
	"context"
	"errors"

	"github.com/agentfs/agentfs/remote"
)

// Remote calls (docs/api.md):
//
//	remote.add      name, url, security  -> remote.Remote
//	remote.rekey    name, security.key_files[0] -> remote.RekeyResult
//	remote.remove   name                 -> {}
//	remote.list                          -> []remote.Remote
//	push            name (remote), branch -> remote.PushResult
//	pull            name (remote), branch, full, no_merge, security.trust -> remote.PullResult
//	remote.progress                      -> []remote.Progress of operations in flight

// ErrNoRemotes: the service was built without a remote manager.
var ErrNoRemotes = errors.New("remotes are not available in this process")

func (l *Local) remotes() (*remote.Manager, error) {
	if l.Remotes == nil {
		return nil, ErrNoRemotes
	}
	return l.Remotes, nil
}

func (l *Local) RemoteAdd(ctx context.Context, name, url string, sec remote.Security) (remote.Remote, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.Remote{}, err
	}
	return m.Add(ctx, name, url, sec)
}

func (l *Local) RemoteRekey(ctx context.Context, name, keyFile string) (remote.RekeyResult, error) {
	m, err := l.remotes()
	if err != nil {
		return remote.RekeyResult{}, err
	}
	return m.Rekey(ctx, name, keyFile)
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

func (c *Client) RemoteAdd(ctx context.Context, name, url string, sec remote.Security) (remote.Remote, error) {
	return do[remote.Remote](ctx, c, "remote.add", Request{Name: name, URL: url, Security: &sec})
}

func (c *Client) RemoteRekey(ctx context.Context, name, keyFile string) (remote.RekeyResult, error) {
	return do[remote.RekeyResult](ctx, c, "remote.rekey", Request{Name: name, Security: &remote.Security{KeyFiles: []string{keyFile}}})
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
	var sec *remote.Security
	if o.Trust != nil {
		sec = &remote.Security{Trust: o.Trust}
	}
	return do[remote.PullResult](ctx, c, "pull", Request{Name: rem, Branch: br, Full: o.Full, NoMerge: o.NoMerge, Security: sec})
}

func (c *Client) RemoteProgress(ctx context.Context) ([]remote.Progress, error) {
	return do[[]remote.Progress](ctx, c, "remote.progress", Request{})
}

// remoteCalls are the calls map entries of this file.
var (
	callRemoteAdd = func(ctx context.Context, s Service, r Request) (any, error) {
		var sec remote.Security
		if r.Security != nil {
			sec = *r.Security
		}
		return s.RemoteAdd(ctx, r.Name, r.URL, sec)
	}
	callRemoteRekey = func(ctx context.Context, s Service, r Request) (any, error) {
		if r.Security == nil || len(r.Security.KeyFiles) != 1 {
			return nil, errMissing("remote.rekey")
		}
		return s.RemoteRekey(ctx, r.Name, r.Security.KeyFiles[0])
	}
	callRemoteRm = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.RemoteRemove(ctx, r.Name)
	}
	callRemoteList = func(ctx context.Context, s Service, r Request) (any, error) { return s.RemoteList(ctx) }
	callPush       = func(ctx context.Context, s Service, r Request) (any, error) { return s.Push(ctx, r.Name, r.Branch) }
	callPull       = func(ctx context.Context, s Service, r Request) (any, error) {
		o := remote.PullOptions{Full: r.Full, NoMerge: r.NoMerge}
		if r.Security != nil && r.Security.Trust != nil {
			o.Trust = r.Security.Trust
		}
		return s.Pull(ctx, r.Name, r.Branch, o)
	}
	callRemoteProgress = func(ctx context.Context, s Service, r Request) (any, error) { return s.RemoteProgress(ctx) }
)
