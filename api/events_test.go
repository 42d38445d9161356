package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/audit"
	"github.com/agentfs/agentfs/store"
)

// recorder collects the events of the calls made with its context.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) ctx() context.Context {
	return WithEvents(context.Background(), func(e Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	})
}

func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// last is the last progress event of phase, and whether there was one.
func last(ev []Event, phase string) (Event, bool) {
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].Phase == phase {
			return ev[i], true
		}
	}
	return Event{}, false
}

// Import, export, gc and fsck report their progress, and export its warnings, to a client
// that asks, over HTTP through the guard as from the daemon: the byte counts end at the
// totals the scan found; a warning naming a non-ASCII path arrives intact; an error keeps
// its code; the audit log records each call's real status; a client that does not ask gets
// no informational responses.
func TestEventsOverHTTP(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := testEngine(t)
	logPath := filepath.Join(dir, "audit.log")
	g := &Guard{Next: Handler(&Local{Engine: e}), Engine: e, Audit: audit.Open(logPath)}
	c := InProcess(g, "")
	defer c.Close()

	// A tree: 3 MiB + 1 byte in one file, small files in a subdirectory, a hard link (counted
	// once), and a setuid file with a non-ASCII name (export leaves the bit out, with a warning).
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	big = append(big, 'x')
	want := int64(len(big))
	must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
	for _, n := range []string{"a", "b", "c"} {
		must(t, os.WriteFile(filepath.Join(src, "sub", n), []byte(n+n), 0o644))
		want += 2
	}
	must(t, os.Link(filepath.Join(src, "big"), filepath.Join(src, "big.link")))
	suid := filepath.Join(src, "sétuid-日本-\U0001F600")
	must(t, os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Chmod(suid, os.ModeSetuid|0o755))
	want += 10

	var rec recorder
	if _, err := c.Import(rec.ctx(), "main", src); err != nil {
		t.Fatal(err)
	}
	ev := rec.take()
	scan, ok1 := last(ev, "scan")
	imp, ok2 := last(ev, "import")
	if !ok1 || !ok2 || scan.Done < 1 || imp.Unit != "bytes" || imp.Done != want || imp.Total != want {
		t.Fatalf("import events: want a scan and import ending at %d of %d bytes, got %+v", want, want, ev)
	}

	out := filepath.Join(t.TempDir(), "out")
	if err := c.Export(rec.ctx(), "main", out); err != nil {
		t.Fatal(err)
	}
	ev = rec.take()
	exp, ok := last(ev, "export")
	if !ok || exp.Done != want || exp.Total != want {
		t.Fatalf("export events: want export ending at %d of %d bytes, got %+v", want, want, ev)
	}
	var warnings []string
	for _, e := range ev {
		if e.Warning != "" {
			warnings = append(warnings, e.Warning)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], filepath.Join(out, filepath.Base(suid))) || !strings.Contains(warnings[0], "setuid") {
		t.Fatalf("export warnings: want one naming %s, got %q", filepath.Base(suid), warnings)
	}

	if _, err := c.GC(rec.ctx(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := last(rec.take(), "mark"); !ok {
		t.Error("gc sent no mark progress")
	}
	if _, err := c.Fsck(rec.ctx(), FsckOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := last(rec.take(), "check"); !ok {
		t.Error("fsck sent no check progress")
	}

	// An error after events keeps its code: export into the now non-empty directory.
	err := c.Export(rec.ctx(), "main", out)
	if !errors.Is(err, branch.ErrInvalidName) {
		t.Fatalf("export into a non-empty directory: %v, want an invalid-argument error", err)
	}

	// A client that does not ask gets the plain reply and no 1xx.
	var informational int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { informational++; return nil }}
	body, _ := json.Marshal(Request{Ref: "main", Dir: filepath.Join(t.TempDir(), "plain")})
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, "http://agentfs/v1/export", bytes.NewReader(body))
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || informational != 0 {
		t.Fatalf("export without events: status %d, %d informational responses; want 200 and none", resp.StatusCode, informational)
	}

	// The audit log has the real status of every call, not the 102s.
	entries, err := audit.Read(logPath, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for _, en := range entries {
		statuses = append(statuses, en.Status)
	}
	wantStatus := []int{200, 200, 200, 200, 400, 200}
	if len(statuses) != len(wantStatus) {
		t.Fatalf("audit statuses %v, want %v", statuses, wantStatus)
	}
	for i := range wantStatus {
		if statuses[i] != wantStatus[i] {
			t.Fatalf("audit statuses %v, want %v", statuses, wantStatus)
		}
	}
}

// Called on Local directly (no HTTP), the same events reach the listener.
func TestEventsLocal(t *testing.T) {
	l := &Local{Engine: testEngine(t)}
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o644))
	var rec recorder
	if _, err := l.Import(rec.ctx(), "main", src); err != nil {
		t.Fatal(err)
	}
	if imp, ok := last(rec.take(), "import"); !ok || imp.Done != 5 || imp.Total != 5 {
		t.Fatalf("import: last event %+v, want 5 of 5 bytes", imp)
	}
	// Without a listener nothing is scanned or reported, and the import still works.
	if _, err := l.Import(context.Background(), "main", src); err != nil {
		t.Fatal(err)
	}
}

// Header values carry only ASCII: everything else is a JSON escape that decodes back.
func TestASCIIOnly(t *testing.T) {
	for _, s := range []string{"plain", "é", "日本", "\U0001F600", "a\x7fb", "tab\tnl\n", string([]byte{0xff, 'x'})} {
		b, _ := json.Marshal(Event{Warning: s})
		enc := asciiOnly(b)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] >= 0x7f {
				t.Fatalf("%q: byte %#x in %q", s, enc[i], enc)
			}
		}
		var back, direct Event
		if err := json.Unmarshal([]byte(enc), &back); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		json.Unmarshal(b, &direct)
		if back != direct {
			t.Fatalf("%q: decoded %q, want %q", s, back.Warning, direct.Warning)
		}
	}
}

// testEngine opens a new repository's engine, closed when the test ends.
func testEngine(t *testing.T) *branch.Engine {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
