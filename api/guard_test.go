package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/agentfs/agentfs/internal/audit"
	"github.com/agentfs/agentfs/internal/token"
)

// Every call the API has (including calls added after the guard was written) is refused
// with 403 to a token for branch a when its arguments name branch b, and with 401 to a
// revoked token; each refusal is in the audit log with the token as caller.
func TestGuardEveryCall(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := testEngine(t) // events_test.go
	for _, b := range []string{"a", "b"} {
		if _, err := e.CreateBranch(ctx, b, ""); err != nil {
			t.Fatal(err)
		}
	}
	bCP, err := e.Checkpoint(ctx, "b", "x", "")
	if err != nil {
		t.Fatal(err)
	}
	tokens := token.Open(dir)
	str, tok, err := tokens.Create("a", token.Rights, "", 0, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := audit.Open(filepath.Join(dir, "audit.log"))
	g := &Guard{Next: Handler(&Local{Engine: e}), Engine: e, Tokens: tokens, RequireToken: true, Audit: log}
	srv := httptest.NewServer(g)
	defer srv.Close()
	post := func(call string, r Request, bearer string) int {
		body, _ := json.Marshal(r)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/"+call, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	names := []string{"cat"}
	for name := range calls {
		names = append(names, name)
	}
	sort.Strings(names)
	// Every argument that can name a branch or ref names b (or b's checkpoint).
	for _, ref := range []string{"b", "b@x", bCP.String()} {
		r := Request{Name: "b", From: ref, Branch: "b", Ref: ref, Ref2: ref, Path: "f", Path2: "g", Data: []byte("x"),
			Merge: &MergeRequest{Src: ref, Into: "b"}}
		for _, name := range names {
			if code := post(name, r, str); code != http.StatusForbidden {
				t.Errorf("%s naming %s: status %d, want 403", name, ref, code)
			}
		}
	}
	if code := post("checkpoint", Request{Branch: "a"}, str); code != http.StatusOK {
		t.Fatalf("checkpoint a: %d", code)
	}
	tokens.Revoke(tok.ID)
	for _, name := range names {
		if code := post(name, Request{Branch: "a", Ref: "a"}, str); code != http.StatusUnauthorized {
			t.Errorf("%s with a revoked token: %d, want 401", name, code)
		}
	}
	es, err := audit.Read(filepath.Join(dir, "audit.log"), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 3*len(names) + 1 + len(names); len(es) != want {
		t.Fatalf("%d audit entries, want %d", len(es), want)
	}
	for _, en := range es[:3*len(names)] {
		if en.Who != "token:"+tok.ID || en.Status != http.StatusForbidden {
			t.Fatalf("audit entry %+v", en)
		}
	}
	for _, en := range es[3*len(names)+1:] {
		if en.Who != "unauthenticated" || en.Status != http.StatusUnauthorized {
			t.Fatalf("audit entry of a revoked token: %+v", en)
		}
	}
	if n, err := audit.Verify(filepath.Join(dir, "audit.log")); err != nil || n != len(es) {
		t.Fatalf("verify: %d %v", n, err)
	}
}
