package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/internal/transfer"
)

// Events of a long call (import, export, gc, fsck): progress, and warnings meant for the
// user. A caller that wants them puts a listener in the context (WithEvents). Local calls
// it directly; over HTTP the client asks for events with a request header and the server
// sends each one as an informational "102 Processing" response ahead of the final reply,
// carrying the event as JSON in a header. The final status and body are unchanged, so a
// client that does not ask (curl, scripts) sees the same replies as before, and the
// guard's audit and the daemon's call log still record the call's real status.
//
//	POST /v1/import            Agentfs-Events: 1
//	HTTP/1.1 102 Processing    Agentfs-Event: {"phase":"import","done":1048576,"total":4194304,"unit":"bytes"}
//	HTTP/1.1 102 Processing    Agentfs-Event: {"warning":"export: /x/dev: device node left out ..."}
//	HTTP/1.1 200 OK            {...the call's result...}

// Event is one report of a call in progress: a phase with a count, or a warning.
type Event struct {
	Phase   string `json:"phase,omitempty"`
	Done    int64  `json:"done,omitempty"`
	Total   int64  `json:"total,omitempty"` // 0: not known
	Unit    string `json:"unit,omitempty"`  // "bytes", or empty for a count of objects
	Warning string `json:"warning,omitempty"`
}

const (
	eventsHeader = "Agentfs-Events" // request: "1" asks for events
	eventHeader  = "Agentfs-Event"  // each 102 response: one Event as JSON
	// eventEvery bounds how often progress is sent; a new phase, the end of a phase and
	// warnings go at once.
	eventEvery = 100 * time.Millisecond
)

type eventsKey struct{}

// WithEvents returns ctx with f listening to the events of the calls made with it.
func WithEvents(ctx context.Context, f func(Event)) context.Context {
	return context.WithValue(ctx, eventsKey{}, f)
}

func eventsOf(ctx context.Context) func(Event) {
	f, _ := ctx.Value(eventsKey{}).(func(Event))
	return f
}

// report sends e to the listener of ctx, if there is one.
func report(ctx context.Context, e Event) {
	if f := eventsOf(ctx); f != nil {
		f(e)
	}
}

// gcProgress turns gc and fsck progress into events (nil when nobody listens).
func gcProgress(ctx context.Context, f func(gc.Progress)) func(gc.Progress) {
	if f != nil {
		return f
	}
	if eventsOf(ctx) == nil {
		return nil
	}
	return func(p gc.Progress) { report(ctx, Event{Phase: p.Phase, Done: p.Done, Total: p.Total}) }
}

// copyProgress turns import and export progress into events (nil when nobody listens).
func copyProgress(ctx context.Context) func(transfer.Progress) {
	if eventsOf(ctx) == nil {
		return nil
	}
	return func(p transfer.Progress) {
		e := Event{Phase: p.Phase, Done: p.Done, Total: p.Total}
		if p.Phase != transfer.PhaseScan {
			e.Unit = "bytes"
		}
		report(ctx, e)
	}
}

// serverEvents returns ctx with a listener that sends events as 102 responses on w when the
// request asked for them, and the func to call before the final reply is written.
func serverEvents(ctx context.Context, w http.ResponseWriter, hr *http.Request) (context.Context, func()) {
	if hr.Header.Get(eventsHeader) != "1" {
		return ctx, func() {}
	}
	var mu sync.Mutex
	closed := false
	var last time.Time
	var lastPhase string
	send := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		finished := e.Total > 0 && e.Done >= e.Total
		if e.Warning == "" && !finished {
			if e.Phase == lastPhase && time.Since(last) < eventEvery {
				return
			}
			last, lastPhase = time.Now(), e.Phase
		}
		b, err := json.Marshal(e)
		if err != nil {
			return
		}
		w.Header().Set(eventHeader, asciiOnly(b))
		w.WriteHeader(http.StatusProcessing)
		w.Header().Del(eventHeader)
	}
	return WithEvents(ctx, send), func() {
		mu.Lock()
		closed = true
		mu.Unlock()
	}
}

// asciiOnly escapes what a header value cannot carry (non-ASCII, DEL) in JSON text, whose
// control characters encoding/json has already escaped.
func asciiOnly(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r < 0x7f:
			sb.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&sb, `\u%04x`, r)
		}
	}
	return sb.String()
}

// clientEvents makes req ask for events and hands them to the listener of its context.
func clientEvents(req *http.Request) *http.Request {
	f := eventsOf(req.Context())
	if f == nil {
		return req
	}
	req.Header.Set(eventsHeader, "1")
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		var e Event
		if v := h.Get(eventHeader); code == http.StatusProcessing && v != "" && json.Unmarshal([]byte(v), &e) == nil {
			f(e)
		}
		return nil
	}}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
}
