// Package egress builds the outgoing HTTP transport of one provider account:
// keep-alive tuned for a few busy upstream hosts, an optional local source
// address (multi-homed hosts whose fixed IP is not the default route) and an
// optional HTTP CONNECT proxy (a fixed-IP egress proxy).
package egress

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

// Options configures a Transport.
type Options struct {
	// SourceAddress is the local IP outgoing connections bind to.
	SourceAddress string
	// ProxyURL is an http:// or https:// proxy reached with CONNECT.
	ProxyURL string
	// DialTimeout bounds connection setup (default 5s).
	DialTimeout time.Duration
	// MaxConnsPerHost caps parallel connections to the provider (0: unlimited).
	MaxConnsPerHost int
}

// NewTransport builds an http.Transport for one account.
func NewTransport(o Options) (*http.Transport, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	if o.SourceAddress != "" {
		ip := net.ParseIP(o.SourceAddress)
		if ip == nil {
			return nil, fmt.Errorf("source_address %q is not an IP address", o.SourceAddress)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ExpectContinueTimeout: time.Second,
		// GMO requests are under 1 KiB and answers a few KiB: the default
		// 4 KiB buffers per connection only cost memory when thousands of
		// slow calls are open at once (the 5,000-in-flight benchmark).
		ReadBufferSize:  2 << 10,
		WriteBufferSize: 1 << 10,
	}
	if o.ProxyURL != "" {
		u, err := url.Parse(o.ProxyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("proxy_url %q must be an http:// or https:// URL", o.ProxyURL)
		}
		t.Proxy = http.ProxyURL(u)
	}
	return t, nil
}

// Sent tracks whether any byte of a request reached the network, so callers
// can tell "provably not sent" (safe to retry) from "maybe processed".
type Sent struct{ wrote atomic.Bool }

// Trace returns ctx instrumented to record the request write.
func (s *Sent) Trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { s.wrote.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { s.wrote.Store(true) },
	})
}

// Wrote reports whether the request (or part of it) was written.
func (s *Sent) Wrote() bool { return s.wrote.Load() }
