package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Defaults for the zero fields of Options.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultDialTimeout      = 3 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultUserAgent        = "Signpost"
)

// Options configures NewClient. The zero value is usable: every zero or
// negative field takes its default.
type Options struct {
	// Allow lists destinations allowed even though they are private,
	// loopback or otherwise refused (config outbound_allow, for on-premises
	// deployments and tests).
	Allow []netip.Prefix
	// Timeout bounds the whole request: connection, request, response
	// headers and reading the body. Default 10s.
	Timeout time.Duration
	// DialTimeout bounds name resolution plus the TCP connect. Default 3s.
	DialTimeout time.Duration
	// MaxResponseBytes caps each response body read through the client
	// (after transparent gzip decoding); reading past it fails with
	// ErrResponseTooLarge. Default 1 MiB.
	MaxResponseBytes int64
	// UserAgent is sent when the request sets no User-Agent header.
	// Default "Signpost".
	UserAgent string
	// IdlePerHost is how many connections to one host are kept open
	// between calls. Set it to the calls a caller has in flight to one host
	// at most: with fewer, every burst closes the surplus and the next
	// opens new ones (a TCP and TLS handshake each, on both sides). Default
	// 8.
	IdlePerHost int
}

// ErrResponseTooLarge is returned (wrapped) by a response body read that
// goes past Options.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("outbound: response body too large")

// Transport limits. The idle pool is kept small per host unless a caller
// says otherwise (Options.IdlePerHost): Signpost talks to a modest number
// of providers and GP systems.
const (
	maxIdleConns           = 64
	defaultIdlePerHost     = 8
	maxConnsPerHost        = 64
	idleConnTimeout        = 90 * time.Second
	tlsHandshakeTimeout    = 5 * time.Second
	expectContinueTimeout  = 1 * time.Second
	maxResponseHeaderBytes = 64 << 10
	tcpKeepAlive           = 30 * time.Second
)

// NewClient returns an HTTP client for outbound calls that enforces the
// address rules on every connection it makes, follows no redirects, uses no
// proxy, requires TLS 1.2 or later and caps response bodies. Its Transport
// must not be replaced: the protection lives there. Clients are safe for
// concurrent use and should be shared, one per purpose, so that connections
// are pooled.
func NewClient(o Options) *http.Client {
	c, _ := newClient(o)
	return c
}

// newClient is NewClient, with the protecting transport inside the tracing
// one (for tests to inspect).
func newClient(o Options) (*http.Client, *transport) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.IdlePerHost <= 0 {
		o.IdlePerHost = defaultIdlePerHost
	}
	allow := slices.Clone(o.Allow)

	dialer := &net.Dialer{
		Timeout:   o.DialTimeout,
		KeepAlive: tcpKeepAlive,
		// Runs after resolution, just before connect(2), for every
		// address the dialer tries.
		ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
			return checkDial(network, address, allow)
		},
	}
	base := &http.Transport{
		// Never from the environment: a proxy would make the connection
		// on our behalf, beyond the reach of the address check.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    min(tlsHandshakeTimeout, o.Timeout),
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  expectContinueTimeout,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    o.IdlePerHost,
		MaxConnsPerHost:        maxConnsPerHost,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	protect := &transport{base: base, maxBody: o.MaxResponseBytes, userAgent: o.UserAgent}
	return &http.Client{
		// A client span per call, and the trace context in its headers so
		// the provider or GP system can continue the trace. Span names are
		// the method alone: a URL can hold identifiers.
		Transport: otelhttp.NewTransport(protect,
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method })),
		Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, protect
}

// checkDial is the dialer's control hook: address is the resolved
// "ip:port" about to be connected to.
func checkDial(network, address string, allow []netip.Prefix) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address", ErrForbiddenAddress)
	}
	return CheckAddr(ap.Addr(), allow)
}

// transport adds the default User-Agent and caps response bodies.
type transport struct {
	base      *http.Transport
	maxBody   int64
	userAgent string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	req, err := inMemoryBody(req)
	if err != nil {
		return nil, err
	}
	if _, set := req.Header["User-Agent"]; !set {
		// A RoundTripper must not modify the caller's request.
		r := req.Clone(req.Context())
		if r.Header == nil {
			r.Header = make(http.Header)
		}
		r.Header.Set("User-Agent", t.userAgent)
		req = r
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.maxBody, limit: t.maxBody}
	return resp, nil
}

// maxInMemoryBody bounds the request bodies inMemoryBody reads first:
// Signpost's webhook messages, write-backs and BaRS messages are a few
// kilobytes.
const maxInMemoryBody = 64 << 10

// inMemoryBody gives net/http a request body it can see is in memory, so
// that it writes the headers and the body together: one write(2) per
// request. net/http flushes the headers on their own unless the body is a
// bytes.Reader or the like, and otelhttp wraps every body (to count its
// bytes), so each webhook went out in two writes: a worker draining 10,000
// deliveries made 36,014 writes, and 26,123 with this. The body is read through the wrapper and
// closed, as net/http would, so the client metrics still count it. A body
// longer or shorter than its ContentLength is refused, as net/http
// refuses it.
func inMemoryBody(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength <= 0 || req.ContentLength > maxInMemoryBody {
		return req, nil
	}
	body := make([]byte, req.ContentLength+1)
	n, err := io.ReadFull(req.Body, body)
	req.Body.Close()
	switch {
	case n > int(req.ContentLength):
		return nil, fmt.Errorf("http: ContentLength=%d with a longer Body", req.ContentLength)
	case n < int(req.ContentLength):
		return nil, fmt.Errorf("http: ContentLength=%d with Body length %d: %w", req.ContentLength, n, err)
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body[:n]))
	return r, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// pool.
func (t *transport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// cappedBody lets through at most limit bytes and fails the read that would
// go past them, rather than silently truncating.
type cappedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	err   error
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for one byte more than is left, to tell "exactly at the cap"
	// from "past it".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		if err != nil {
			b.err = err
		}
		return n, err
	}
	n = int(b.left)
	b.left = 0
	b.err = fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, b.limit)
	return n, b.err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// Redact returns the error from a Client.Do (or Get, Post...) with the URL
// of its *url.Error cut down to scheme, host and path, so that it can be
// logged without the query string, which may carry identifiers. Call it
// before wrapping the error further; errors that are not a *url.Error are
// returned unchanged. The result still unwraps to the same cause, so
// errors.Is(err, ErrForbiddenAddress) keeps working.
func Redact(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	short := "(unparsable URL)"
	if u, perr := url.Parse(ue.URL); perr == nil {
		short = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	return &url.Error{Op: ue.Op, URL: short, Err: ue.Err}
}
