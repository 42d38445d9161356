package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/audit"
	"github.com/agentfs/agentfs/internal/token"
)

// Guard sits in front of Handler: it establishes who calls, refuses what a capability token
// does not cover, and appends every call to the audit log. Each listener gets one: the Unix
// socket (caller from peer credentials, a token optional), TCP (a token required) and the
// in-process connection of the CLI and the MCP server.
type Guard struct {
	Next         http.Handler
	Engine       *branch.Engine // resolves checkpoint ids to their branch for token checks
	Tokens       *token.Store   // nil: tokens are refused
	RequireToken bool
	Audit        *audit.Log // nil: no audit
	AuditError   func(error)
	Now          func() time.Time
}

// Wrap returns a guard like g in front of h: calls served outside Handler (stop, remote.gc)
// are then checked and audited like every other call. Tokens may not make them (allowed
// lists neither).
func (g *Guard) Wrap(h http.Handler) *Guard {
	c := *g
	c.Next = h
	return &c
}

// maxRequestBody bounds a request (a file.write carries the file).
const maxRequestBody = 256 << 20

type tokenKey struct{}

// TokenOf returns the verified token of the request, if it came with one.
func TokenOf(ctx context.Context) *token.Token {
	t, _ := ctx.Value(tokenKey{}).(*token.Token)
	return t
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Authenticate checks the request's bearer token, if any (or if one is required), and
// returns the context with its caller and token.
func (g *Guard) Authenticate(r *http.Request) (context.Context, error) {
	ctx := r.Context()
	auth := r.Header.Get("Authorization")
	if auth == "" && !g.RequireToken {
		return ctx, nil
	}
	str, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, fmt.Errorf("%w: send Authorization: Bearer TOKEN (make one with agentfs token create)", token.ErrUnauthorized)
	}
	if g.Tokens == nil {
		return nil, fmt.Errorf("%w: tokens are not accepted here", token.ErrUnauthorized)
	}
	t, err := g.Tokens.Verify(strings.TrimSpace(str), g.now())
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, tokenKey{}, t)
	return WithCaller(ctx, "token:"+t.ID), nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer // error bodies only
}

func (w *statusWriter) WriteHeader(s int) {
	if s >= 200 { // 1xx are events ahead of the reply (api/events.go)
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status != http.StatusOK && w.body.Len() < 4096 {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := strings.TrimPrefix(r.URL.Path, "/v1/")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body: %v", err))
		return
	}
	var req Request
	json.Unmarshal(body, &req) // a bad body is refused by the handler
	ctx, err := g.Authenticate(r)
	sw := &statusWriter{ResponseWriter: w}
	switch {
	case err != nil && errors.Is(err, token.ErrUnauthorized):
		writeStatus(sw, http.StatusUnauthorized, "unauthorized", err.Error())
	case err != nil:
		writeError(sw, err)
	default:
		if t := TokenOf(ctx); t != nil {
			if err := g.allowed(ctx, t, call, req); err != nil {
				writeStatus(sw, http.StatusForbidden, "forbidden", err.Error())
				break
			}
		}
		r = r.WithContext(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		g.Next.ServeHTTP(sw, r)
	}
	if g.Audit == nil {
		return
	}
	who := "unauthenticated" // a refused token proves nothing about who sent it
	if ctx != nil {
		who = CallerOf(ctx)
	}
	e := audit.Entry{Time: g.now().UTC(), Who: who, What: call, Branch: auditBranch(call, req), Status: sw.status, Result: "ok"}
	if sw.status != http.StatusOK {
		var eb errorBody
		json.Unmarshal(sw.body.Bytes(), &eb)
		e.Result = eb.Error
		if e.Result == "" {
			e.Result = http.StatusText(sw.status)
		}
	}
	n := len(req.Data)
	req.Data = nil // file contents stay out of the log; their size is kept
	e.Args, _ = json.Marshal(struct {
		Request
		DataBytes int `json:"data_bytes,omitempty"`
	}{req, n})
	if err := g.Audit.Append(e); err != nil && g.AuditError != nil {
		g.AuditError(err) // the call is done; the operator learns it from the daemon's log
	}
}

// auditBranch is the branch a call acts on, for audit --branch.
func auditBranch(call string, r Request) string {
	switch {
	case r.Branch != "":
		return r.Branch
	case r.Merge != nil:
		return r.Merge.Into
	case r.Review != nil && r.Review.Revert != nil:
		return r.Review.Revert.On
	case strings.HasPrefix(call, "branch."):
		return r.Name
	case call == "mount":
		return r.Ref
	}
	return ""
}

func writeStatus(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: msg, Code: code})
}

// allowed decides whether token t covers call with arguments r. Calls that are not listed
// are refused: a new call is closed to tokens until someone decides what it needs.
func (g *Guard) allowed(ctx context.Context, t *token.Token, call string, r Request) error {
	own := func(br string) error {
		if br != t.Branch {
			return fmt.Errorf("token %s covers branch %s, not %q", t.ID, t.Branch, br)
		}
		return nil
	}
	need := func(right string) error {
		if !t.Has(right) {
			return fmt.Errorf("token %s lacks the %s right (it has: %s)", t.ID, right, strings.Join(t.Rights, ","))
		}
		return nil
	}
	readable := func(ref string) error { return g.readable(ctx, t, ref) }
	inPrefix := func(p string) error {
		clean, err := CleanPath(p)
		if err != nil {
			return err
		}
		if t.Path != "" && clean != t.Path && !strings.HasPrefix(clean, t.Path+"/") {
			return fmt.Errorf("token %s covers %s:%s only, not %q", t.ID, t.Branch, t.Path, p)
		}
		return nil
	}
	switch call {
	case "log":
		return errors.Join(need("read"), own(r.Branch))
	case "ls", "cat", "blame":
		return errors.Join(need("read"), readable(r.Ref), inPrefix(r.Path))
	case "diff":
		if t.Path != "" {
			return fmt.Errorf("token %s covers %s:%s only; diff spans the whole tree", t.ID, t.Branch, t.Path)
		}
		return errors.Join(need("read"), readable(r.Ref), readable(r.Ref2))
	case "file.write", "file.mkdir":
		return errors.Join(need("write"), own(r.Branch), inPrefix(r.Path))
	case "file.move":
		return errors.Join(need("write"), own(r.Branch), inPrefix(r.Path), inPrefix(r.Path2))
	case "checkpoint":
		return errors.Join(need("checkpoint"), own(r.Branch))
	case "rollback":
		return errors.Join(need("rollback"), own(r.Branch), readable(r.Ref))
	case "branch.create":
		if r.From == "" {
			return fmt.Errorf("token %s can fork only from its branch: give --from", t.ID)
		}
		return errors.Join(need("fork"), readable(r.From))
	case "merge":
		if r.Merge == nil {
			return errMissing("merge")
		}
		return errors.Join(need("merge-into"), own(r.Merge.Into), readable(r.Merge.Src))
	case "push":
		return errors.Join(need("push"), own(r.Branch))
	// Review calls (api/review.go).
	case "diff.files":
		if r.Review == nil || r.Review.Diff == nil {
			return errMissing(call)
		}
		if t.Path != "" {
			return fmt.Errorf("token %s covers %s:%s only; diff spans the whole tree", t.ID, t.Branch, t.Path)
		}
		return errors.Join(need("read"), readable(r.Review.Diff.A), readable(r.Review.Diff.B))
	case "history":
		if r.Review == nil || r.Review.Log == nil {
			return errMissing(call)
		}
		return errors.Join(need("read"), readable(r.Review.Log.Ref))
	case "resolve":
		return errors.Join(need("read"), readable(r.Ref))
	case "revert":
		if r.Review == nil || r.Review.Revert == nil {
			return errMissing(call)
		}
		return errors.Join(need("rollback"), own(r.Review.Revert.On), readable(r.Review.Revert.Checkpoint))
	case "merge.status":
		return errors.Join(need("read"), own(r.Branch))
	case "merge.continue", "merge.abort":
		return errors.Join(need("merge-into"), own(r.Branch))
	}
	return fmt.Errorf("token %s may not call %s (tokens reach their own branch only)", t.ID, call)
}

// readable: ref is the token's branch, one of its named checkpoints, or a checkpoint made on
// it; checkpoints of other branches only if the token says so.
func (g *Guard) readable(ctx context.Context, t *token.Token, ref string) error {
	if ref == t.Branch || strings.HasPrefix(ref, t.Branch+"@") {
		return nil
	}
	if g.Engine != nil {
		if rr, err := g.Engine.Resolve(ctx, ref); err == nil && rr.Branch == "" {
			if t.ReadOther {
				return nil
			}
			if c, err := g.Engine.ReadCommit(ctx, rr.Commit); err == nil && c.Branch == t.Branch {
				return nil
			}
		}
	}
	return fmt.Errorf("token %s covers branch %s; it may not read %q", t.ID, t.Branch, ref)
}

// Errors of the Guard, matched by errors.Is on the client side too.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
)

func init() {
	codes = append(codes,
		struct {
			code   string
			err    error
			status int
		}{"unauthorized", ErrUnauthorized, http.StatusUnauthorized},
		struct {
			code   string
			err    error
			status int
		}{"forbidden", ErrForbidden, http.StatusForbidden})
}
