package dockerplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfs/agentfs/internal/daemontest"
)

// serve runs the plugin on a Unix socket, as Docker finds it, and returns a function that
// posts one protocol call to it.
func serve(t *testing.T, d *daemontest.Daemon) (post func(call string, body any) map[string]any, root string) {
	root = filepath.Join(t.TempDir(), "volumes")
	sock := filepath.Join(t.TempDir(), "agentfs.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&Plugin{Daemon: d.Client, MountRoot: root}).Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post = func(call string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := hc.Post("http://plugin/"+call, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %s", call, resp.Status)
		}
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		return out
	}
	return post, root
}

func noErr(t *testing.T, call string, r map[string]any) map[string]any {
	t.Helper()
	if e, _ := r["Err"].(string); e != "" {
		t.Fatalf("%s: Err %q", call, e)
	}
	return r
}

// TestCreateFromMainThenMount is the check: Create {"Name":"v1","Opts":{"from":
// "main"}} then Mount returns a mountpoint that shows main's files; the volume is a fork,
// so writes to it leave main as it was; Unmount and Remove clean up.
func TestCreateFromMainThenMount(t *testing.T) {
	daemontest.RequireFUSE(t)
	d := daemontest.Start(t)
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("main's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Import(ctx, "main", src); err != nil {
		t.Fatal(err)
	}
	post, root := serve(t, d)

	if got := post("Plugin.Activate", nil)["Implements"]; len(got.([]any)) != 1 || got.([]any)[0] != "VolumeDriver" {
		t.Fatalf("Activate: Implements %v", got)
	}
	if c := noErr(t, "Capabilities", post("VolumeDriver.Capabilities", nil))["Capabilities"].(map[string]any); c["Scope"] != "local" {
		t.Fatalf("Capabilities: %v", c)
	}
	noErr(t, "Create", post("VolumeDriver.Create", map[string]any{"Name": "v1", "Opts": map[string]string{"from": "main"}}))
	noErr(t, "Create again", post("VolumeDriver.Create", map[string]any{"Name": "v1", "Opts": map[string]string{"from": "main"}}))
	m := noErr(t, "Mount", post("VolumeDriver.Mount", map[string]any{"Name": "v1", "ID": "c1"}))
	mp, _ := m["Mountpoint"].(string)
	if mp != filepath.Join(root, "v1") {
		t.Fatalf("Mount: Mountpoint %q, want %s", mp, filepath.Join(root, "v1"))
	}
	got, err := os.ReadFile(filepath.Join(mp, "README"))
	if err != nil || string(got) != "main's file\n" {
		t.Fatalf("main's file through the volume: %q, %v", got, err)
	}
	// A second container mounting the same volume shares the mount.
	if p := noErr(t, "Mount c2", post("VolumeDriver.Mount", map[string]any{"Name": "v1", "ID": "c2"}))["Mountpoint"]; p != mp {
		t.Fatalf("second Mount: %v", p)
	}
	if err := os.WriteFile(filepath.Join(mp, "README"), []byte("changed in v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := d.Client.Cat(ctx, "main", "README", &buf); err != nil || buf.String() != "main's file\n" {
		t.Fatalf("main after a write to v1: %q, %v", buf.String(), err)
	}
	if p := noErr(t, "Path", post("VolumeDriver.Path", map[string]any{"Name": "v1"}))["Mountpoint"]; p != mp {
		t.Fatalf("Path: %v", p)
	}
	if v := noErr(t, "Get", post("VolumeDriver.Get", map[string]any{"Name": "v1"}))["Volume"].(map[string]any); v["Name"] != "v1" || v["Mountpoint"] != mp {
		t.Fatalf("Get: %v", v)
	}
	names := map[string]bool{}
	for _, v := range noErr(t, "List", post("VolumeDriver.List", nil))["Volumes"].([]any) {
		names[v.(map[string]any)["Name"].(string)] = true
	}
	if !names["v1"] || !names["main"] {
		t.Fatalf("List: %v", names)
	}
	if e := post("VolumeDriver.Remove", map[string]any{"Name": "v1"})["Err"]; e == "" {
		t.Fatal("Remove of a mounted volume succeeded")
	}
	noErr(t, "Unmount c1", post("VolumeDriver.Unmount", map[string]any{"Name": "v1", "ID": "c1"}))
	if _, err := os.Stat(filepath.Join(mp, "README")); err != nil {
		t.Fatalf("volume unmounted while container c2 still uses it: %v", err)
	}
	noErr(t, "Unmount c2", post("VolumeDriver.Unmount", map[string]any{"Name": "v1", "ID": "c2"}))
	if ms, _ := d.Client.Mounts(ctx); len(ms) != 0 {
		t.Fatalf("mounts left after the last Unmount: %v", ms)
	}
	noErr(t, "Remove", post("VolumeDriver.Remove", map[string]any{"Name": "v1"}))
	if e, _ := post("VolumeDriver.Get", map[string]any{"Name": "v1"})["Err"].(string); e == "" {
		t.Fatal("Get after Remove succeeded")
	}
	if e, _ := post("VolumeDriver.Create", map[string]any{"Name": "bad", "Opts": map[string]string{"size": "1G"}})["Err"].(string); e == "" {
		t.Fatal("Create with an unknown option succeeded")
	}
	if e, _ := post("VolumeDriver.Create", map[string]any{"Name": "../etc"})["Err"].(string); e == "" {
		t.Fatal("Create of ../etc succeeded")
	}
}
