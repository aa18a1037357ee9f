package outbound

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var allowLoopback = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// server starts a loopback test server that is closed when the test ends.
func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func TestClientAddressCheck(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		ok(w, r)
	})
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name  string
		url   string
		allow []netip.Prefix
		ok    bool
	}{
		{"IP literal refused by default", srv.URL + "/hook?patient=9434765919", nil, false},
		{"IP literal reached when allowed", srv.URL + "/hook", allowLoopback, true},
		{"localhost refused by default", "http://localhost:" + strconv.Itoa(port) + "/hook?patient=9434765919", nil, false},
		{"localhost reached when allowed", "http://localhost:" + strconv.Itoa(port) + "/hook", allowLoopback, true},
		{"other allow list does not help", srv.URL + "/hook", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewClient(Options{Allow: tt.allow})
			defer c.CloseIdleConnections()
			resp, err := c.Get(tt.url)
			if tt.ok {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != "ok" {
					t.Fatalf("body %q, %v", body, err)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("Get succeeded with status %d, want refusal", resp.StatusCode)
			}
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("Get error %v, want ErrForbiddenAddress", err)
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("Get error %T, want *url.Error", err)
			}
			var fe *ForbiddenAddressError
			if !errors.As(err, &fe) || !strings.Contains(fe.Error(), "loopback") {
				t.Fatalf("Get error %v, want a loopback ForbiddenAddressError", err)
			}
			red := Redact(err)
			if strings.Contains(red.Error(), "9434765919") || !strings.Contains(red.Error(), "loopback") {
				t.Errorf("Redact(err) = %q, want no query but the class", red)
			}
			if !errors.Is(red, ErrForbiddenAddress) {
				t.Errorf("Redact(err) lost ErrForbiddenAddress: %v", red)
			}
		})
	}
	// Every refused attempt must have been stopped before connecting.
	t.Cleanup(func() {
		if n := hits.Load(); n != 2 {
			t.Errorf("server saw %d requests, want 2 (the allowed ones)", n)
		}
	})
}

func TestClientNoRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Int64
	target := server(t, func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		ok(w, r)
	})
	for _, code := range []int{
		http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
	} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", code)
			})
			c := NewClient(Options{Allow: allowLoopback})
			defer c.CloseIdleConnections()
			resp, err := c.Post(srv.URL+"/hook", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatalf("Post: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != code {
				t.Fatalf("status %d, want %d", resp.StatusCode, code)
			}
			if loc := resp.Header.Get("Location"); loc != target.URL+"/elsewhere" {
				t.Fatalf("Location %q", loc)
			}
		})
	}
	t.Cleanup(func() {
		if n := followed.Load(); n != 0 {
			t.Errorf("redirect target saw %d requests, want 0", n)
		}
	})
}

func TestClientMaxResponseBytes(t *testing.T) {
	t.Parallel()
	const limit = 1000
	gz := func(n int) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(make([]byte, n))
		_ = zw.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name    string
		size    int
		chunked bool
		gzip    bool
		ok      bool
	}{
		{"under", limit - 1, false, false, true},
		{"exactly", limit, false, false, true},
		{"exactly chunked", limit, true, false, true},
		{"one over", limit + 1, false, false, false},
		{"streamed far over", 64 * limit, true, false, false},
		{"gzip under", limit, false, true, true},
		{"gzip bomb", 1 << 20, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				body := bytes.Repeat([]byte("x"), tt.size)
				if tt.gzip {
					body = gz(tt.size)
					w.Header().Set("Content-Encoding", "gzip")
				}
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				for len(body) > 0 {
					n := min(len(body), 512)
					if _, err := w.Write(body[:n]); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					body = body[n:]
				}
			})
			c := NewClient(Options{Allow: allowLoopback, MaxResponseBytes: limit})
			defer c.CloseIdleConnections()
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if tt.ok {
				if err != nil || len(body) != tt.size {
					t.Fatalf("read %d bytes, %v; want %d bytes", len(body), err, tt.size)
				}
				return
			}
			if !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("read error %v, want ErrResponseTooLarge", err)
			}
			if len(body) != limit {
				t.Fatalf("read %d bytes before failing, want %d", len(body), limit)
			}
			if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("second read error %v, want ErrResponseTooLarge again", err)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		sendHeaders bool
	}{
		{"stalls before headers", false},
		{"stalls in the body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.sendHeaders {
					_, _ = io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) }) // runs before srv.Close
			c := NewClient(Options{Allow: allowLoopback, Timeout: 100 * time.Millisecond})
			defer c.CloseIdleConnections()
			start := time.Now()
			resp, err := c.Get(srv.URL)
			if err == nil {
				defer resp.Body.Close()
				_, err = io.ReadAll(resp.Body)
			}
			var te interface{ Timeout() bool }
			if err == nil || !errors.As(err, &te) || !te.Timeout() {
				t.Fatalf("error %v, want a timeout", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s to time out", d)
			}
		})
	}
}

func TestClientUserAgent(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.UserAgent())
	})
	tests := []struct {
		name, option, header, want string
		set                        bool
	}{
		{"default", "", "", "Signpost", false},
		{"from options", "Signpost/1.4 (+ops@example.org)", "", "Signpost/1.4 (+ops@example.org)", false},
		{"request wins", "Signpost", "Custom/2", "Custom/2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewClient(Options{Allow: allowLoopback, UserAgent: tt.option})
			defer c.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.set {
				req.Header.Set("User-Agent", tt.header)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.want {
				t.Fatalf("server saw User-Agent %q, want %q", body, tt.want)
			}
			if !tt.set && req.Header.Get("User-Agent") != "" {
				t.Fatalf("client modified the caller's request headers")
			}
		})
	}
}

// tlsClient returns a client trusting srv's certificate.
func tlsClient(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	c, tr := newClient(Options{Allow: allowLoopback})
	base := tr.base
	base.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxTLS    uint16
		http2     bool
		ok        bool
		wantProto int
	}{
		{"TLS 1.3 over HTTP/2", tls.VersionTLS13, true, true, 2},
		{"TLS 1.2 over HTTP/1.1", tls.VersionTLS12, false, true, 1},
		{"TLS 1.1 refused", tls.VersionTLS11, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
			srv.EnableHTTP2 = tt.http2
			srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tt.maxTLS}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c := tlsClient(t, srv)
			resp, err := c.Get(srv.URL)
			if !tt.ok {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("handshake with a TLS %x-only server succeeded", tt.maxTLS)
				}
				if errors.Is(err, ErrForbiddenAddress) {
					t.Fatalf("error %v is the address check, want a TLS failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != tt.wantProto {
				t.Fatalf("protocol %s, want HTTP/%d", resp.Proto, tt.wantProto)
			}
		})
	}
}

func TestNewClientSettings(t *testing.T) {
	t.Parallel()
	c, tr := newClient(Options{})
	if c.Timeout != DefaultTimeout {
		t.Errorf("Timeout %s, want %s", c.Timeout, DefaultTimeout)
	}
	if c.CheckRedirect == nil || !errors.Is(c.CheckRedirect(nil, nil), http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect does not stop redirects")
	}
	if tr.maxBody != DefaultMaxResponseBytes || tr.userAgent != DefaultUserAgent {
		t.Errorf("defaults: maxBody %d, userAgent %q", tr.maxBody, tr.userAgent)
	}
	b := tr.base
	if b.Proxy != nil {
		t.Errorf("Proxy is set; an environment proxy would bypass the address check")
	}
	if b.TLSClientConfig == nil || b.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS minimum is not 1.2")
	}
	if b.DialContext == nil || b.DialTLSContext != nil || b.Dial != nil || b.DialTLS != nil {
		t.Errorf("dial hooks: every connection must go through the checking dialer")
	}
	for name, v := range map[string]int{
		"MaxIdleConnsPerHost": b.MaxIdleConnsPerHost, "MaxIdleConns": b.MaxIdleConns,
		"MaxConnsPerHost": b.MaxConnsPerHost,
	} {
		if v <= 0 {
			t.Errorf("%s = %d, want a limit", name, v)
		}
	}
	for name, v := range map[string]time.Duration{
		"IdleConnTimeout": b.IdleConnTimeout, "ResponseHeaderTimeout": b.ResponseHeaderTimeout,
		"TLSHandshakeTimeout": b.TLSHandshakeTimeout,
	} {
		if v <= 0 {
			t.Errorf("%s = %s, want a limit", name, v)
		}
	}
}

// A body reader that hands out data in awkward sizes.
type trickle struct {
	data []byte
	step int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestCappedBody(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, 9, 10, 11, 100} {
		for _, step := range []int{1, 3, 10, 64} {
			t.Run(fmt.Sprintf("size %d step %d", size, step), func(t *testing.T) {
				t.Parallel()
				b := &cappedBody{rc: io.NopCloser(&trickle{bytes.Repeat([]byte("y"), size), step}), left: 10, limit: 10}
				got, err := io.ReadAll(b)
				if size <= 10 {
					if err != nil || len(got) != size {
						t.Fatalf("read %d, %v; want %d bytes", len(got), err, size)
					}
					return
				}
				if !errors.Is(err, ErrResponseTooLarge) || len(got) != 10 {
					t.Fatalf("read %d, %v; want 10 bytes then ErrResponseTooLarge", len(got), err)
				}
			})
		}
	}
}

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A request goes out in one write, headers and body together, through the
// tracing transport that wraps its body; the server gets the body whole,
// and a body longer or shorter than its ContentLength is refused.
func TestClientWritesARequestAtOnce(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	})
	c, tr := newClient(Options{Allow: allowLoopback})
	t.Cleanup(c.CloseIdleConnections)
	var writes atomic.Int64
	dial := tr.base.DialContext
	tr.base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: conn, writes: &writes}, nil
	}
	message := strings.Repeat(`{"resourceType":"Bundle"}`, 40)
	for i := 0; i < 3; i++ {
		before := writes.Load()
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(message))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		echoed, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(echoed) != message {
			t.Fatalf("server got %d bytes, want the %d sent", len(echoed), len(message))
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("request %d went out in %d writes, want 1 (headers and body together)", i+1, n)
		}
	}

	for _, tc := range []struct {
		name   string
		body   string
		length int64
	}{
		{"longer than its ContentLength", "0123456789", 5},
		{"shorter than its ContentLength", "01234", 10},
	} {
		req, err := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader(tc.body)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = tc.length
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("a body %s was sent", tc.name)
		}
	}
}

// The client's metrics still count a request body the client read first
// (inMemoryBody reads it through the tracing transport's wrapper).
// Not parallel: it installs the global meter provider the client reads.
func TestClientMetricsCountTheRequestBody(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	previous := otel.GetMeterProvider()
	otel.SetMeterProvider(provider)
	t.Cleanup(func() { otel.SetMeterProvider(previous); _ = provider.Shutdown(context.Background()) })

	srv := server(t, ok)
	c := NewClient(Options{Allow: allowLoopback})
	t.Cleanup(c.CloseIdleConnections)
	message := strings.Repeat("x", 417)
	resp, err := c.Post(srv.URL, "application/fhir+json", strings.NewReader(message))
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.client.request.body.size" {
				continue
			}
			if h, ok := m.Data.(metricdata.Histogram[int64]); ok {
				for _, p := range h.DataPoints {
					sizes = append(sizes, p.Sum)
				}
			}
		}
	}
	if len(sizes) != 1 || sizes[0] != int64(len(message)) {
		t.Fatalf("request body sizes recorded %v, want [%d]", sizes, len(message))
	}
}
