package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/jsonout"
	"github.com/agentfs/agentfs/remote"
	"github.com/agentfs/agentfs/store"
)

// Request carries the arguments of every call; each call reads the fields it documents in
// docs/api.md and ignores the rest.
type Request struct {
	Name       string `json:"name,omitempty"`
	From       string `json:"from,omitempty"`
	Branch     string `json:"branch,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Ref2       string `json:"ref2,omitempty"`
	Path       string `json:"path,omitempty"`
	Dir        string `json:"dir,omitempty"`
	Message    string `json:"message,omitempty"`
	ReadOnly   bool   `json:"read_only,omitempty"`
	Owner      string `json:"owner,omitempty"`       // mount: UID:GID
	AllowOther bool   `json:"allow_other,omitempty"` // mount
	URL        string `json:"url,omitempty"`         // remote.add
	Full       bool   `json:"full,omitempty"`        // pull: fetch file contents too
	NoMerge    bool   `json:"no_merge,omitempty"`    // pull: fail instead of merging

	Security *remote.Security `json:"security,omitempty"` // remote.add: key files, trusted keys; pull: trust; remote.rekey: the new key file

	Merge  *MergeRequest  `json:"merge,omitempty"`
	Review *ReviewRequest `json:"review,omitempty"` // api/review.go

	Provenance *branch.Provenance `json:"provenance,omitempty"` // checkpoint (the caller is set by the server)
	Path2      string             `json:"path2,omitempty"`      // file.move: the destination
	Data       []byte             `json:"data,omitempty"`       // file.write: the content (base64 in JSON)

	Space bool `json:"space,omitempty"` // branches: with the space accounting
	Run   bool `json:"run,omitempty"`   // maintenance: run retention and gc now

	Retention *RetentionRequest `json:"retention,omitempty"` // retention.set (api/maintenance.go)

	DryRun     bool   `json:"dry_run,omitempty"`     // gc
	KeepLast   int    `json:"keep_last,omitempty"`   // checkpoint.prune
	KeepWithin string `json:"keep_within,omitempty"` // checkpoint.prune, a Go duration
	FsckRemote bool   `json:"remote,omitempty"`      // fsck
	Repair     bool   `json:"repair,omitempty"`      // fsck
	VerifyData bool   `json:"verify_data,omitempty"` // fsck --remote
	Devices    bool   `json:"devices,omitempty"`     // export
	SetID      bool   `json:"setid,omitempty"`       // export

	QuotaBytes  *int64 `json:"quota_bytes,omitempty"`  // branch.quota: omitted = unchanged, 0 = none
	QuotaInodes *int64 `json:"quota_inodes,omitempty"` // branch.quota
}

func errMissing(call string) error {
	return fmt.Errorf("%w: %s needs its arguments", branch.ErrInvalidName, call)
}

func isConflict(err error) bool { return errors.Is(err, branch.ErrConflict) }

// errorBody is the JSON body of a failed call.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"` // not_found, exists, invalid, busy, ambiguous, read_only, quota, untrusted, error
}

var codes = []struct {
	code   string
	err    error
	status int
}{
	{"not_found", branch.ErrNotFound, http.StatusNotFound},
	{"exists", branch.ErrExists, http.StatusConflict},
	{"invalid", branch.ErrInvalidName, http.StatusBadRequest},
	{"busy", branch.ErrBusy, http.StatusConflict},
	{"ambiguous", branch.ErrAmbiguous, http.StatusBadRequest},
	{"read_only", branch.ErrReadOnly, http.StatusForbidden},
	{"quota", branch.ErrQuota, http.StatusInsufficientStorage},
	{"invalid", backends.ErrBadURL, http.StatusBadRequest},
	{"invalid", remote.ErrKey, http.StatusBadRequest},
	{"invalid", remote.ErrBadKey, http.StatusBadRequest},
	{"untrusted", remote.ErrUntrusted, http.StatusForbidden},
	{"remote_corrupt", store.ErrRemoteCorrupt, http.StatusBadGateway}, // the bucket's content, not ours
}

type call func(ctx context.Context, s Service, r Request) (any, error)

var calls = map[string]call{
	"branches": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.Branches(ctx, ListOptions{Space: r.Space})
	},
	"branch.create": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.CreateBranch(ctx, r.Name, r.From)
	},
	"branch.delete": func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.DeleteBranch(ctx, r.Name)
	},
	"checkpoint": func(ctx context.Context, s Service, r Request) (any, error) {
		o := branch.CheckpointOptions{Name: r.Name, Message: r.Message}
		if r.Provenance != nil {
			o.Provenance = *r.Provenance
		}
		return s.CheckpointWith(ctx, r.Branch, o)
	},
	"rollback": func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.Rollback(ctx, r.Branch, r.Ref)
	},
	"diff": func(ctx context.Context, s Service, r Request) (any, error) { return s.Diff(ctx, r.Ref, r.Ref2) },
	"log":  func(ctx context.Context, s Service, r Request) (any, error) { return s.Log(ctx, r.Branch) },
	"ls":   func(ctx context.Context, s Service, r Request) (any, error) { return s.List(ctx, r.Ref, r.Path) },
	"import": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.Import(ctx, r.Branch, r.Dir)
	},
	"export": func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.Export(ctx, r.Ref, r.Dir, ExportOptions{Devices: r.Devices, SetID: r.SetID})
	},
	"mount": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.Mount(ctx, r.Ref, r.Dir, MountOptions{ReadOnly: r.ReadOnly, Owner: r.Owner, AllowOther: r.AllowOther})
	},
	"unmount": func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.Unmount(ctx, r.Dir)
	},
	"mounts": func(ctx context.Context, s Service, r Request) (any, error) { return s.Mounts(ctx) },

	// remotes (api/remote.go)
	"remote.add":      callRemoteAdd,
	"remote.rekey":    callRemoteRekey,
	"remote.remove":   callRemoteRm,
	"remote.list":     callRemoteList,
	"push":            callPush,
	"pull":            callPull,
	"remote.progress": callRemoteProgress,

	"gc": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.GC(ctx, GCOptions{DryRun: r.DryRun})
	},
	"fsck": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.Fsck(ctx, FsckOptions{Remote: r.FsckRemote, VerifyData: r.VerifyData, Repair: r.Repair})
	},
	"checkpoint.prune": pruneCall,
	"branch.quota": func(ctx context.Context, s Service, r Request) (any, error) {
		return s.SetQuota(ctx, r.Name, QuotaRequest{Bytes: r.QuotaBytes, Inodes: r.QuotaInodes})
	},
}

// Handler serves s over HTTP: POST /v1/CALL with a JSON Request body; the reply is the
// call's JSON result, or an errorBody with a 4xx/5xx status. /v1/cat streams file bytes.
func Handler(s Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{call}", func(w http.ResponseWriter, hr *http.Request) {
		var r Request
		if err := json.NewDecoder(hr.Body).Decode(&r); err != nil && err != io.EOF {
			writeError(w, fmt.Errorf("%w: bad request body: %v", branch.ErrInvalidName, err))
			return
		}
		name := hr.PathValue("call")
		if name == "cat" {
			serveCat(w, hr.Context(), s, r)
			return
		}
		c, ok := calls[name]
		if !ok {
			writeError(w, fmt.Errorf("%w: unknown call %q", branch.ErrNotFound, name))
			return
		}
		ctx, endEvents := serverEvents(hr.Context(), w, hr) // api/events.go
		res, err := c(ctx, s, r)
		endEvents()
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jsonout.EmptyLists(res)) // a list is [] even when empty
	})
	return mux
}

// serveCat streams a file. The status is sent with the first byte, so that an error found
// before any content (a bad path, a directory) gets a proper error reply.
func serveCat(w http.ResponseWriter, ctx context.Context, s Service, r Request) {
	if _, err := s.List(ctx, r.Ref, r.Path); err != nil {
		writeError(w, err)
		return
	}
	// An error after the first bytes went out travels in a trailer; before, as a reply.
	w.Header().Set("Trailer", catErrorTrailer)
	cw := &countingWriter{w: w}
	if err := s.Cat(ctx, r.Ref, r.Path, cw); err != nil {
		if cw.n == 0 {
			w.Header().Del("Trailer")
			writeError(w, err)
			return
		}
		w.Header().Set(catErrorTrailer, strings.ReplaceAll(err.Error(), "\n", " "))
	}
}

const catErrorTrailer = "Agentfs-Error"

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 {
		c.w.Header().Set("Content-Type", "application/octet-stream")
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeError(w http.ResponseWriter, err error) {
	err = store.Describe(err, "") // damaged data: one line, not Pebble's report
	body := errorBody{Error: err.Error(), Code: "error"}
	status := http.StatusInternalServerError
	for _, c := range codes {
		if errors.Is(err, c.err) {
			body.Code, status = c.code, c.status
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// remoteError is an error returned by the daemon; Is matches the sentinel of its code.
type remoteError struct{ errorBody }

func (e *remoteError) Error() string { return strings.TrimSpace(e.errorBody.Error) }

func (e *remoteError) Is(target error) bool {
	for _, c := range codes {
		if c.code == e.Code && c.err == target {
			return true
		}
	}
	return false
}
