package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// InProcess returns a Client whose calls are served by h in this process over in-memory
// connections: the CLI without a daemon and the MCP server use it, so that their calls pass
// the same Guard (audit, token checks) and handler as calls over the socket. token, if not
// empty, is sent as the bearer token. Close stops it.
func InProcess(h http.Handler, token string) *Client {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	uid := fmt.Sprintf("uid:%d", os.Getuid())
	srv := &http.Server{Handler: h, ConnContext: func(ctx context.Context, _ net.Conn) context.Context { return WithCaller(ctx, uid) }}
	go srv.Serve(l)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		select {
		case l.conns <- c2:
			return c1, nil
		case <-l.done:
			return nil, net.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	return &Client{http: &http.Client{Transport: tr}, sock: "this process", token: token, base: "http://agentfs", closeFn: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}}
}

type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }

// DialTCP returns a client of a daemon's TCP listener (agentfs serve --listen), sending token
// with every call.
func DialTCP(addr, token string) *Client {
	return &Client{http: &http.Client{}, sock: addr, token: token, base: "http://" + addr}
}

// Close releases an in-process client's server; it does nothing for other clients.
func (c *Client) Close() {
	if c.closeFn != nil {
		c.closeFn()
	}
}
