package main

import (
	"strings"
	"testing"
)

// Calls over serve --listen are counted in the daemon's metrics and logged like calls on
// the Unix socket: a checkpoint by a token holder adds to agentfs_checkpoints_total and to
// agentfs_api_calls_total for its call.
func TestTCPCallsAreCounted(t *testing.T) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"f": "f"}))
	tok, _ := createToken(t, repo, "main", "--rights", "read,write,checkpoint")
	addr := freeAddr(t)
	d := startDaemon(t, repo, "--listen", addr, "--metrics", "127.0.0.1:0")
	waitTCP(t, addr)
	maddr := metricsAddr(t, d)
	const calls = `agentfs_api_calls_total{call="checkpoint",result="ok"}`
	before := scrape(t, maddr)
	if code, body := post(t, addr, tok, "file.write", map[string]any{"branch": "main", "path": "g", "data": []byte("g")}); code != 200 {
		t.Fatalf("file.write over TCP: %d %s", code, body)
	}
	if code, body := post(t, addr, tok, "checkpoint", map[string]any{"branch": "main"}); code != 200 {
		t.Fatalf("checkpoint over TCP: %d %s", code, body)
	}
	after := scrape(t, maddr)
	if got := after["agentfs_checkpoints_total"] - before["agentfs_checkpoints_total"]; got != 1 {
		t.Errorf("agentfs_checkpoints_total grew by %v after a checkpoint over TCP, want 1", got)
	}
	if got := after[calls] - before[calls]; got != 1 {
		t.Errorf("%s grew by %v, want 1", calls, got)
	}
	d.stop(t)
	if !strings.Contains(d.log.String(), "call=checkpoint status=200") {
		t.Errorf("the daemon logged no line for the checkpoint over TCP:\n%s", d.log)
	}
}
