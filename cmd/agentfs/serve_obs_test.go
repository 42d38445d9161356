package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsAddr waits for the daemon's log line that names its metrics listener.
func metricsAddr(t *testing.T, d *daemon) string {
	t.Helper()
	re := regexp.MustCompile(`msg=metrics addr=(\S+)`)
	for i := 0; i < 200; i++ {
		if m := re.FindStringSubmatch(d.log.String()); m != nil {
			return m[1]
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("the daemon logged no metrics address:\n%s", d.log.String())
	return ""
}

// scrape reads /metrics and returns the value of every sample, by its full name.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// While files are written in a mount, the agentfs_ counters on /metrics grow; /healthz
// answers ok.
func TestMetricsGrowWithWrites(t *testing.T) {
	requireFUSE(t)
	repo := newRepo(t)
	d := startDaemon(t, repo, "--metrics", "127.0.0.1:0")
	addr := metricsAddr(t, d)
	mnt := filepath.Join(t.TempDir(), "mnt")
	ok(t, repo, "mount", "main", mnt)
	t.Cleanup(func() { agentfs(t, repo, "unmount", mnt) })

	written := `agentfs_fuse_written_bytes_total`
	writes := `agentfs_fuse_request_seconds_count{op="write"}`
	before := scrape(t, addr)
	if before["agentfs_mounts_total"] != 1 || before["agentfs_mounts"] != 1 {
		t.Fatalf("mounts: total %v, now %v; want 1 and 1", before["agentfs_mounts_total"], before["agentfs_mounts"])
	}
	last := before
	for round := 0; round < 3; round++ {
		data := make([]byte, 256<<10)
		if err := os.WriteFile(filepath.Join(mnt, "f"+strconv.Itoa(round)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		now := scrape(t, addr)
		if now[written]-last[written] < float64(len(data)) || now[writes] <= last[writes] {
			t.Fatalf("round %d: written bytes %v -> %v, write requests %v -> %v; want growth by at least %d bytes",
				round, last[written], now[written], last[writes], now[writes], len(data))
		}
		last = now
	}
	ok(t, repo, "checkpoint", "main")
	ok(t, repo, "fork", "main", "other")
	after := scrape(t, addr)
	for _, name := range []string{"agentfs_checkpoints_total", "agentfs_forks_total", `agentfs_api_calls_total{call="checkpoint",result="ok"}`} {
		if after[name] != before[name]+1 {
			t.Errorf("%s: %v -> %v, want +1", name, before[name], after[name])
		}
	}
	if after[`agentfs_fuse_request_seconds_count{op="create"}`] < 3 {
		t.Errorf("create requests: %v, want at least 3", after[`agentfs_fuse_request_seconds_count{op="create"}`])
	}
	for name := range after {
		if strings.Contains(name, "branch=") {
			t.Errorf("a per-branch label: %s", name)
		}
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("/healthz: %d %s", resp.StatusCode, body)
	}
}

// With --log-format json every line the daemon writes is one JSON object, and each control
// call is logged exactly once with its name and status.
func TestServeLogsOneJSONLinePerCall(t *testing.T) {
	repo := newRepo(t)
	d := startDaemon(t, repo, "--log-format", "json", "--log-level", "info")
	ok(t, repo, "branch", "create", "x")
	ok(t, repo, "checkpoint", "main")
	ok(t, repo, "branch", "list")
	ok(t, repo, "diff", "main", "x")
	if r := agentfs(t, repo, "branch", "delete", "nosuch"); r.code != 1 {
		t.Fatalf("branch delete nosuch: exit %d", r.code)
	}
	d.stop(t)
	calls := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(d.log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if rec["level"] == nil || rec["time"] == nil || rec["msg"] == nil {
			t.Fatalf("a log line lacks level, time or msg: %q", line)
		}
		if rec["msg"] == "call" {
			name, _ := rec["call"].(string)
			calls[name] = append(calls[name], rec)
		}
	}
	want := map[string]float64{"branch.create": 200, "checkpoint": 200, "branches": 200, "diff.files": 200, "branch.delete": 404}
	for name, status := range want {
		recs := calls[name]
		if len(recs) != 1 || recs[0]["status"] != status {
			t.Errorf("call %s: logged %d times (%v); want once with status %v", name, len(recs), recs, status)
		}
	}
	if len(calls) != len(want) {
		t.Errorf("calls logged: %v; want exactly %v", calls, want)
	}
	if rec := calls["branch.delete"]; len(rec) == 1 && rec[0]["level"] != "WARN" {
		t.Errorf("a failed call logs at %v, want WARN", rec[0]["level"])
	}
}
