package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/mcpserver"
)

// listenFlag is serve --listen: the control API and MCP on TCP, for token holders only.
var listenFlag string

// serveTCP serves, on addr, the control API at /v1/ and the MCP server at /mcp (streamable
// HTTP). Every request needs a capability token; the Guard refuses what it does not cover,
// and the MCP server of a token works on the token's branch through that same Guard.
func serveTCP(addr, dir string, svc *api.Local, logf func(string, ...any)) (*http.Server, error) {
	g := guard(dir, svc, true, logf)
	g.Next = api.Handler(api.Instrument(svc)) // counted in the metrics like calls on the socket
	var mu sync.Mutex
	clients := map[string]*api.Client{} // in-process clients by token, for MCP sessions
	mcpHandler := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		t := api.TokenOf(r.Context())
		if t == nil {
			return nil
		}
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		c := clients[bearer]
		if c == nil {
			c = api.InProcess(g, bearer)
			clients[bearer] = c
		}
		mu.Unlock()
		return mcpserver.New(mcpserver.Options{Service: c, Branch: t.Branch, Version: Version})
	}, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/", logCalls(g)) // one log line per call (serve_obs.go)
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		ctx, err := g.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r.WithContext(ctx))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("serving %s: %v", addr, err)
		}
	}()
	logf("serving the control API (/v1/) and MCP (/mcp) on %s for token holders", ln.Addr())
	return srv, nil
}
