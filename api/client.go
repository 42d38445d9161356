package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/agentfs/agentfs/branch"
)

// Client calls a daemon over its Unix socket.
type Client struct {
	http    *http.Client
	sock    string // where the daemon is, for messages
	base    string // URL prefix; "" means http://agentfs (the Unix socket)
	token   string // bearer token sent with every call, if any
	closeFn func()
}

var _ Service = (*Client)(nil)

// Dial connects to the daemon listening on sock; it fails fast when none is listening.
func Dial(sock string) (*Client, error) {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, err
	}
	conn.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{http: &http.Client{Transport: tr}, sock: sock}, nil
}

func (c *Client) post(ctx context.Context, call string, r Request) (*http.Response, error) {
	return c.postJSON(ctx, call, r)
}

// postJSON sends any JSON body (calls with their own request type, e.g. remote.gc).
func (c *Client) postJSON(ctx context.Context, call string, r any) (*http.Response, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	base := c.base
	if base == "" {
		base = "http://agentfs"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/"+call, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(clientEvents(req)) // api/events.go
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", c.sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e errorBody
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return nil, fmt.Errorf("daemon at %s answered %s", c.sock, resp.Status)
		}
		return nil, &remoteError{e}
	}
	return resp, nil
}

func do[T any](ctx context.Context, c *Client, call string, r Request) (T, error) {
	var out T
	resp, err := c.post(ctx, call, r)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func (c *Client) Branches(ctx context.Context, o ...ListOptions) ([]BranchInfo, error) {
	return do[[]BranchInfo](ctx, c, "branches", Request{Space: listOptions(o).Space})
}

func (c *Client) CreateBranch(ctx context.Context, name, from string) (BranchInfo, error) {
	return do[BranchInfo](ctx, c, "branch.create", Request{Name: name, From: from})
}

func (c *Client) DeleteBranch(ctx context.Context, name string) error {
	_, err := do[struct{}](ctx, c, "branch.delete", Request{Name: name})
	return err
}

func (c *Client) Checkpoint(ctx context.Context, br, name, message string) (CheckpointInfo, error) {
	return c.CheckpointWith(ctx, br, branch.CheckpointOptions{Name: name, Message: message})
}

func (c *Client) Rollback(ctx context.Context, br, ref string) error {
	_, err := do[struct{}](ctx, c, "rollback", Request{Branch: br, Ref: ref})
	return err
}

func (c *Client) Diff(ctx context.Context, a, b string) ([]branch.Change, error) {
	return do[[]branch.Change](ctx, c, "diff", Request{Ref: a, Ref2: b})
}

func (c *Client) Log(ctx context.Context, br string) ([]CheckpointInfo, error) {
	return do[[]CheckpointInfo](ctx, c, "log", Request{Branch: br})
}

func (c *Client) List(ctx context.Context, ref, path string) ([]Entry, error) {
	return do[[]Entry](ctx, c, "ls", Request{Ref: ref, Path: path})
}

func (c *Client) Cat(ctx context.Context, ref, path string, w io.Writer) error {
	resp, err := c.post(ctx, "cat", Request{Ref: ref, Path: path})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return err
	}
	if msg := resp.Trailer.Get(catErrorTrailer); msg != "" {
		return errors.New(msg)
	}
	return nil
}

func (c *Client) Import(ctx context.Context, br, dir string) (ImportResult, error) {
	return do[ImportResult](ctx, c, "import", Request{Branch: br, Dir: dir})
}

func (c *Client) Export(ctx context.Context, ref, dir string, o ...ExportOptions) error {
	r := Request{Ref: ref, Dir: dir}
	if len(o) > 0 {
		r.Devices, r.SetID = o[0].Devices, o[0].SetID
	}
	_, err := do[struct{}](ctx, c, "export", r)
	return err
}

func (c *Client) Mount(ctx context.Context, ref, dir string, o MountOptions) (MountInfo, error) {
	return do[MountInfo](ctx, c, "mount", Request{Ref: ref, Dir: dir, ReadOnly: o.ReadOnly, Owner: o.Owner, AllowOther: o.AllowOther})
}

func (c *Client) Unmount(ctx context.Context, dir string) error {
	_, err := do[struct{}](ctx, c, "unmount", Request{Dir: dir})
	return err
}

func (c *Client) Mounts(ctx context.Context) ([]MountInfo, error) {
	return do[[]MountInfo](ctx, c, "mounts", Request{})
}
