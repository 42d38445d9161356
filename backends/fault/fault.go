// Package fault is an HTTP reverse proxy that injects faults between an object storage client
// and a real server, for tests: it refuses requests with 500/503, drops connections before or
// after the server has applied a request (so the response is lost), cuts response bodies
// mid-way, and delays requests, each at a configurable rate.
//
//	p, _ := fault.Start("http://127.0.0.1:9000", fault.Config{Error5xx: 0.1, DropBefore: 0.05})
//	defer p.Close()
//	// point the client at p.URL
//
// The Host header is passed through unchanged, so signed requests (S3 SigV4) stay valid.
package fault

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the rate (0..1) of each fault. Each request gets at most one fault; they are
// tried in the order of the fields.
type Config struct {
	Error5xx   float64       // answer 500 or 503 without forwarding
	DropBefore float64       // close the connection without forwarding
	DropAfter  float64       // forward (the server applies the request), then close without answering
	CutBody    float64       // forward, send the headers and about half of the body, then close
	Delay      float64       // forward after sleeping DelayFor
	DelayFor   time.Duration // default 200ms
	Seed       uint64        // random seed; 0 = fixed default seed
}

// Stats counts what the proxy did.
type Stats struct {
	Requests, Forwarded, Error5xx, DropBefore, DropAfter, CutBody, Delayed int64
}

func (s Stats) String() string {
	return fmt.Sprintf("%d requests: %d forwarded, %d 5xx, %d dropped before, %d dropped after, %d bodies cut, %d delayed",
		s.Requests, s.Forwarded, s.Error5xx, s.DropBefore, s.DropAfter, s.CutBody, s.Delayed)
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL string // http://127.0.0.1:PORT, plus the target's path

	target *url.URL
	srv    *http.Server
	ln     net.Listener
	tr     *http.Transport

	mu  sync.Mutex
	cfg Config
	rnd *rand.Rand

	requests, forwarded, err5xx, dropBefore, dropAfter, cutBody, delayed atomic.Int64
}

// Start listens on a loopback port and forwards to target (scheme://host:port[/path]); the
// proxy URL keeps target's path, so http://127.0.0.1:10000/devstoreaccount1 works as is.
func Start(target string, cfg Config) (*Proxy, error) {
	t, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		URL:    "http://" + ln.Addr().String() + t.Path,
		target: t,
		ln:     ln,
		tr:     &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
	p.SetConfig(cfg)
	p.srv = &http.Server{Handler: p, ErrorLog: nil, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetConfig changes the fault rates for the following requests.
func (p *Proxy) SetConfig(cfg Config) {
	if cfg.DelayFor == 0 {
		cfg.DelayFor = 200 * time.Millisecond
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = 1
	}
	p.mu.Lock()
	p.cfg = cfg
	p.rnd = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	p.mu.Unlock()
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests: p.requests.Load(), Forwarded: p.forwarded.Load(), Error5xx: p.err5xx.Load(),
		DropBefore: p.dropBefore.Load(), DropAfter: p.dropAfter.Load(), CutBody: p.cutBody.Load(), Delayed: p.delayed.Load(),
	}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		err = p.srv.Close()
	}
	p.tr.CloseIdleConnections()
	return err
}

type fault int

const (
	none fault = iota
	err5xx
	dropBefore
	dropAfter
	cutBody
	delay
)

func (p *Proxy) pick() (fault, Config, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cfg
	x := p.rnd.Float64()
	code := 500
	if p.rnd.IntN(2) == 1 {
		code = 503
	}
	for _, f := range []struct {
		rate float64
		f    fault
	}{{c.Error5xx, err5xx}, {c.DropBefore, dropBefore}, {c.DropAfter, dropAfter}, {c.CutBody, cutBody}, {c.Delay, delay}} {
		if x < f.rate {
			return f.f, c, code
		}
		x -= f.rate
	}
	return none, c, code
}

// abort makes net/http close the connection without (finishing) a response.
func abort() { panic(http.ErrAbortHandler) }

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, cfg, code := p.pick()
	switch f {
	case err5xx:
		p.err5xx.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<Error><Code>InternalError</Code><Message>fault proxy: injected %d</Message></Error>", code)
		return
	case dropBefore:
		p.dropBefore.Add(1)
		abort()
	case delay:
		p.delayed.Add(1)
		select {
		case <-time.After(cfg.DelayFor):
		case <-r.Context().Done():
			return
		}
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	out.Host = r.Host // keep the signed Host header
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	p.forwarded.Add(1)
	if f == dropAfter {
		p.dropAfter.Add(1)
		_, _ = io.Copy(io.Discard, resp.Body)
		abort()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f == cutBody {
		p.cutBody.Add(1)
		n := resp.ContentLength / 2
		if resp.ContentLength < 0 {
			n = 512
		}
		_, _ = io.CopyN(w, resp.Body, n)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		abort()
	}
	_, _ = io.Copy(w, resp.Body)
}
