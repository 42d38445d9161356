package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// stop and remote.gc, served by handlers of their own, go through the same guard as every
// other call: a token (they are not among a token's calls) gets 403 and the daemon keeps
// running; both calls are in the audit log, refused or not.
func TestStopAndRemoteGCGuarded(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"a.txt": "one\n"}))
	ok(t, repo, "remote", "add", "origin", "file://"+t.TempDir())
	ok(t, repo, "push", "main")
	tok, _ := createToken(t, repo, "main")
	d := startDaemon(t, repo)
	sock := filepath.Join(repo, "agentfs.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	for _, call := range []string{"stop", "remote.gc"} {
		req, _ := http.NewRequest(http.MethodPost, "http://agentfs/v1/"+call, strings.NewReader(`{"name":"origin","grace":"0s"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with a token: %s, want 403", call, resp.Status)
		}
	}
	if got := ok(t, repo, "cat", "main:a.txt"); got != "one\n" {
		t.Fatalf("daemon after a refused stop: %q", got)
	}
	ok(t, repo, "remote", "gc", "origin", "--grace", "0")
	ok(t, repo, "stop")
	<-d.done
	var entries []struct {
		Who    string `json:"who"`
		What   string `json:"what"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok(t, repo, "audit", "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		if e.What == "stop" || e.What == "remote.gc" {
			seen[e.What+" "+http.StatusText(e.Status)]++
			if e.Status == http.StatusForbidden && !strings.HasPrefix(e.Who, "token:") {
				t.Errorf("refused %s logged as %q", e.What, e.Who)
			}
		}
	}
	for _, want := range []string{"stop Forbidden", "remote.gc Forbidden", "stop OK", "remote.gc OK"} {
		if seen[want] != 1 {
			t.Errorf("audit log: %d entries %q, want 1 (all: %v)", seen[want], want, seen)
		}
	}
	ok(t, repo, "audit", "--verify")
}
