package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Client calls the daemon's control API (HTTP/JSON on the repository's Unix socket, see
// docs/api.md). The suite speaks the wire protocol itself instead of importing package api,
// so it measures what any orchestrator sees and builds while api/ is being changed.
type Client struct {
	http *http.Client
	sock string
}

// Dial connects to the daemon listening on sock.
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

type request struct {
	Name     string `json:"name,omitempty"`
	From     string `json:"from,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Ref      string `json:"ref,omitempty"`
	Dir      string `json:"dir,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

func (c *Client) call(ctx context.Context, name string, r request, out any) error {
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agentfs/v1/"+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: daemon answered %s: %s", name, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) CreateBranch(ctx context.Context, name, from string) error {
	return c.call(ctx, "branch.create", request{Name: name, From: from}, nil)
}

// Checkpoint returns the id of the new checkpoint.
func (c *Client) Checkpoint(ctx context.Context, br, name string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.call(ctx, "checkpoint", request{Branch: br, Name: name}, &out)
	return out.ID, err
}

func (c *Client) Rollback(ctx context.Context, br, ref string) error {
	return c.call(ctx, "rollback", request{Branch: br, Ref: ref}, nil)
}

func (c *Client) Mount(ctx context.Context, ref, dir string) error {
	return c.call(ctx, "mount", request{Ref: ref, Dir: dir}, nil)
}

func (c *Client) Unmount(ctx context.Context, dir string) error {
	return c.call(ctx, "unmount", request{Dir: dir}, nil)
}
