package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/internal/metrics"
)

// The daemon's observability (docs/operations.md): structured logs with log/slog, one line
// per control call, and with --metrics ADDR an HTTP listener for Prometheus (/metrics) and
// health checks (/healthz).
type observability struct {
	metricsAddr string
	logFormat   string
	logLevel    string
}

var serveObs observability

func addObservabilityFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&serveObs.metricsAddr, "metrics", "", "serve Prometheus /metrics and /healthz on ADDR (e.g. 127.0.0.1:9090)")
	cmd.Flags().StringVar(&serveObs.logFormat, "log-format", "text", "log format on stderr: text or json")
	cmd.Flags().StringVar(&serveObs.logLevel, "log-level", "info", "least severe level logged: debug, info, warn or error")
}

// logger makes the daemon's slog logger the default (so the log package's output goes
// through it too) and returns a *log.Logger for the parts that take one (mounts, go-fuse).
func (o observability) logger() (*log.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level takes debug, info, warn or error, not %q", o.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, usageError{fmt.Errorf("--log-format takes text or json, not %q", o.logFormat)}
	}
	slog.SetDefault(slog.New(h))
	return slog.NewLogLogger(h, slog.LevelInfo), nil
}

// serveMetrics starts the metrics listener when --metrics is set; healthy reports whether
// the repository answers. The returned func stops the listener.
func (o observability) serveMetrics(db *pebble.DB, healthy func(context.Context) error) (stop func(), err error) {
	if o.metricsAddr == "" {
		return func() {}, nil
	}
	metrics.WatchStore(db)
	ln, err := net.Listen("tcp", o.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", o.metricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := healthy(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"status\":\"unhealthy\",\"error\":%q}\n", err.Error())
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	slog.Info("metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	return func() { srv.Close() }, nil
}

// logCalls logs one line per control API call (POST /v1/CALL) and counts it. Progress
// polls, which clients send several times a second, log at debug level.
func logCalls(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		call := callName(r.URL.Path)
		d := time.Since(t0)
		result := "ok"
		level := slog.LevelInfo
		if sw.status >= 400 {
			result, level = "error", slog.LevelWarn
		} else if strings.HasSuffix(call, "progress") {
			level = slog.LevelDebug
		}
		metrics.ControlCalls.WithLabelValues(call, result).Inc()
		metrics.ControlCallSecond.WithLabelValues(call).Observe(d.Seconds())
		slog.Log(r.Context(), level, "call", "call", call, "status", sw.status, "duration_ms", float64(d.Microseconds())/1000, "bytes", sw.bytes)
	})
}

// callName is the call of a control request path, or "other": a metric label must come
// from a small set, and a client can send any path.
func callName(path string) string {
	call := strings.TrimPrefix(path, "/v1/")
	if len(call) == 0 || len(call) > 32 || strings.Trim(call, "abcdefghijklmnopqrstuvwxyz._") != "" {
		return "other"
	}
	return call
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx are events ahead of the reply (api/events.go)
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush passes streaming replies (cat) through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
