package webhook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// marker stands for patient data: it must never reach a Reason.
const marker = "MARKER-pt-0001"

// newServer starts a loopback server closed when the test ends.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a plain client with its own connection pool.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// roundTripFunc lets a test stand in for the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func checkReason(t *testing.T, res Result) {
	t.Helper()
	if strings.Contains(res.Reason, marker) {
		t.Errorf("Reason %q contains data from a body or the query", res.Reason)
	}
	if res.Reason == "" {
		t.Errorf("empty Reason")
	}
}

func TestSendRequest(t *testing.T) {
	t.Parallel()
	type seen struct {
		h    http.Header
		body []byte
		meth string
	}
	tests := []struct {
		name   string
		msg    Message
		wantCT string
		check  func(t *testing.T, s seen)
	}{
		{
			name:   "signed with defaults",
			msg:    Message{ID: "dlv_req_1", Body: []byte(`{"resourceType":"Task"}`), Secrets: [][]byte{keyA}},
			wantCT: "application/json",
			check: func(t *testing.T, s seen) {
				if err := Verify(s.h, s.body, [][]byte{keyA}, testNow, 0); err != nil {
					t.Errorf("receiver's Verify: %v", err)
				}
				if got, want := s.h.Get(HeaderSignature), refSig(keyA, "dlv_req_1", testNow.Unix(), s.body); got != want {
					t.Errorf("signature %q, want %q", got, want)
				}
			},
		},
		{
			name:   "rotation sends two signatures",
			msg:    Message{ID: "dlv_req_2", Body: []byte(`{}`), Secrets: [][]byte{keyA, keyB}},
			wantCT: "application/json",
			check: func(t *testing.T, s seen) {
				if n := len(strings.Fields(s.h.Get(HeaderSignature))); n != 2 {
					t.Errorf("%d signatures, want 2", n)
				}
				for _, k := range [][]byte{keyA, keyB} {
					if err := Verify(s.h, s.body, [][]byte{k}, testNow, 0); err != nil {
						t.Errorf("Verify with one secret: %v", err)
					}
				}
			},
		},
		{
			name: "unsigned FHIR endpoint with extra headers",
			msg: Message{ID: "dlv_req_3", Body: []byte(`{"resourceType":"Bundle"}`), ContentType: "application/fhir+json",
				Headers: map[string]string{
					"Authorization":     "Bearer synthetic-token",
					"X-Request-Id":      "0b6c2f0e-2b1a-4d5e-9f00-000000000001",
					"webhook-id":        "spoofed",
					"Webhook-Signature": "v1,spoofed",
					"user-agent":        "spoofed",
					"Content-Type":      "text/plain",
				}},
			wantCT: "application/fhir+json",
			check: func(t *testing.T, s seen) {
				if v := s.h.Values(HeaderSignature); len(v) != 0 {
					t.Errorf("unsigned message carries webhook-signature %q", v)
				}
				if got := s.h.Get("Authorization"); got != "Bearer synthetic-token" {
					t.Errorf("Authorization %q", got)
				}
				if got := s.h.Get("X-Request-Id"); got != "0b6c2f0e-2b1a-4d5e-9f00-000000000001" {
					t.Errorf("X-Request-Id %q", got)
				}
				if got := s.h.Values(HeaderID); len(got) != 1 || got[0] != "dlv_req_3" {
					t.Errorf("webhook-id %q: extra headers must not replace it", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan seen, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{r.Header.Clone(), b, r.Method}
				w.WriteHeader(http.StatusNoContent)
			})
			m := tt.msg
			m.URL = srv.URL + "/hooks/signpost"
			res := NewSender(newClient(t, 5*time.Second), fixed(testNow)).Send(context.Background(), m)
			if res.Outcome != Delivered || res.Status != http.StatusNoContent {
				t.Fatalf("Send = %+v, want delivered 204", res)
			}
			s := <-got
			if s.meth != http.MethodPost {
				t.Errorf("method %s, want POST", s.meth)
			}
			if string(s.body) != string(m.Body) {
				t.Errorf("body %q, want %q", s.body, m.Body)
			}
			if got := s.h.Get(HeaderID); got != m.ID {
				t.Errorf("webhook-id %q, want %q", got, m.ID)
			}
			if got, want := s.h.Get(HeaderTimestamp), strconv.FormatInt(testNow.Unix(), 10); got != want {
				t.Errorf("webhook-timestamp %q, want the clock's %q", got, want)
			}
			if got := s.h.Get("Content-Type"); got != tt.wantCT {
				t.Errorf("Content-Type %q, want %q", got, tt.wantCT)
			}
			if got := s.h.Get("User-Agent"); got != UserAgent {
				t.Errorf("User-Agent %q, want %q", got, UserAgent)
			}
			tt.check(t, s)
		})
	}
}

// TestSendRetriesKeepID: repeated Sends of one Message carry the same
// webhook-id, each with the clock's time of that attempt.
func TestSendRetriesKeepID(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	type seen struct{ id, ts, sig string }
	got := make(chan seen, 3)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get(HeaderID), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	clk := &clock{t: testNow}
	s := NewSender(newClient(t, 5*time.Second), clk.now)
	m := Message{ID: "dlv_stable_7", URL: srv.URL, Body: []byte(`{"n":1}`), Secrets: [][]byte{keyA}}
	want := []Outcome{Retry, Retry, Delivered}
	for i, w := range want {
		if i > 0 {
			clk.add(5 * time.Minute)
		}
		res := s.Send(context.Background(), m)
		if res.Outcome != w {
			t.Fatalf("attempt %d: %v, want %v", i+1, res.Outcome, w)
		}
		g := <-got
		at := testNow.Add(time.Duration(i) * 5 * time.Minute)
		if g.id != m.ID {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, g.id, m.ID)
		}
		if g.ts != strconv.FormatInt(at.Unix(), 10) {
			t.Errorf("attempt %d: webhook-timestamp %s, want %d", i+1, g.ts, at.Unix())
		}
		if g.sig != refSig(keyA, m.ID, at.Unix(), m.Body) {
			t.Errorf("attempt %d: signature not over this attempt's timestamp", i+1)
		}
	}
}

func TestSendClassification(t *testing.T) {
	t.Parallel()
	// A redirect target that must never be reached.
	var followed atomic.Int64
	elsewhere := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	})
	t.Cleanup(func() {
		if n := followed.Load(); n != 0 {
			t.Errorf("a redirect was followed %d times", n)
		}
	})
	httpDate := func(d time.Duration) string { return testNow.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		status     int
		retryAfter string
		outcome    Outcome
		wantAfter  time.Duration
		reason     string
	}{
		{200, "", Delivered, 0, "provider answered 200 OK"},
		{201, "", Delivered, 0, "provider answered 201 Created"},
		{204, "", Delivered, 0, "provider answered 204 No Content"},
		{202, "30", Delivered, 0, "provider answered 202 Accepted"},
		{301, "", Retry, 0, "provider answered 301 Moved Permanently (redirects are not followed)"},
		{302, "", Retry, 0, "provider answered 302 Found (redirects are not followed)"},
		{307, "60", Retry, 0, "provider answered 307 Temporary Redirect (redirects are not followed)"},
		{308, "", Retry, 0, "provider answered 308 Permanent Redirect (redirects are not followed)"},
		{400, "", Permanent, 0, "provider answered 400 Bad Request"},
		{401, "", Permanent, 0, "provider answered 401 Unauthorized"},
		{404, "", Permanent, 0, "provider answered 404 Not Found"},
		{408, "", Retry, 0, "provider answered 408 Request Timeout"},
		{409, "", Permanent, 0, "provider answered 409 Conflict"},
		{410, "", Gone, 0, "provider answered 410 Gone"},
		{413, "", Permanent, 0, "provider answered 413 Request Entity Too Large"},
		{422, "", Permanent, 0, "provider answered 422 Unprocessable Entity"},
		{425, "3", Retry, 3 * time.Second, "provider answered 425 Too Early"},
		{429, "7", Retry, 7 * time.Second, "provider answered 429 Too Many Requests"},
		{429, httpDate(90 * time.Second), Retry, 90 * time.Second, "provider answered 429 Too Many Requests"},
		{429, "0", Retry, 0, "provider answered 429 Too Many Requests"},
		{429, "-5", Retry, 0, "provider answered 429 Too Many Requests"},
		{429, "soon", Retry, 0, "provider answered 429 Too Many Requests"},
		{429, "2.5", Retry, 0, "provider answered 429 Too Many Requests"},
		{500, "", Retry, 0, "provider answered 500 Internal Server Error"},
		{502, "", Retry, 0, "provider answered 502 Bad Gateway"},
		{503, "120", Retry, 2 * time.Minute, "provider answered 503 Service Unavailable"},
		{503, httpDate(-time.Hour), Retry, 0, "provider answered 503 Service Unavailable"},
		{503, httpDate(72 * time.Hour), Retry, 24 * time.Hour, "provider answered 503 Service Unavailable"},
		{503, "604800", Retry, 24 * time.Hour, "provider answered 503 Service Unavailable"},
		{503, "99999999999999999999999", Retry, 24 * time.Hour, "provider answered 503 Service Unavailable"},
		{504, "", Retry, 0, "provider answered 504 Gateway Timeout"},
		{400, "7", Permanent, 0, "provider answered 400 Bad Request"},
		{599, "", Retry, 0, "provider answered 599"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", tt.status, tt.retryAfter), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				// Echo patient-like data in the response, as a chatty
				// provider might.
				b, _ := io.ReadAll(r.Body)
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", elsewhere.URL+"/?nhs="+marker)
				}
				w.Header().Set("X-Echo", marker)
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, "error for %s: %s", marker, b)
			})
			m := Message{ID: "dlv_class", URL: srv.URL + "/hook?patient=" + marker, Body: []byte(`{"patient":"` + marker + `"}`), Secrets: [][]byte{keyA}}
			res := NewSender(newClient(t, 5*time.Second), fixed(testNow)).Send(context.Background(), m)
			if res.Outcome != tt.outcome || res.Status != tt.status || res.RetryAfter != tt.wantAfter {
				t.Errorf("Send = %v status %d retry-after %s, want %v %d %s", res.Outcome, res.Status, res.RetryAfter, tt.outcome, tt.status, tt.wantAfter)
			}
			if res.Reason != tt.reason {
				t.Errorf("Reason %q, want %q", res.Reason, tt.reason)
			}
			checkReason(t, res)
			if res.Elapsed <= 0 {
				t.Errorf("Elapsed %s", res.Elapsed)
			}
		})
	}
}

func TestSendNetworkFailures(t *testing.T) {
	t.Parallel()

	// A port with nothing listening: open a listener, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/hook?nhs=" + marker
	ln.Close()

	// A provider that never answers until the client gives up.
	release := make(chan struct{})
	hang := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before hang.Close

	// A provider that drops the connection with a reset.
	reset := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	})

	// TLS with a certificate the plain client does not trust.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	plain := newServer(t, func(w http.ResponseWriter, r *http.Request) {})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		url     string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
		reason  []string // any of
		// timedOut: the provider may have the message (an unknown outcome)
		timedOut bool
	}{
		{name: "connection refused", url: closedURL, reason: []string{"connection refused"}},
		{name: "client timeout", url: hang.URL + "/?nhs=" + marker, timeout: 50 * time.Millisecond, reason: []string{"timed out after 50ms"}, timedOut: true},
		{name: "context deadline", url: hang.URL, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 40*time.Millisecond)
		}, reason: deadlineReasons(30, 40), timedOut: true},
		{name: "context cancelled", url: hang.URL, ctx: func() (context.Context, context.CancelFunc) {
			return cancelled, func() {}
		}, reason: []string{"cancelled before the provider answered"}},
		{name: "untrusted TLS certificate", url: tlsSrv.URL + "/?nhs=" + marker, reason: []string{"TLS certificate signed by an unknown authority"}},
		{name: "https to a plain HTTP server", url: strings.Replace(plain.URL, "http://", "https://", 1), reason: []string{"TLS handshake failed: the endpoint answered in plain HTTP"}},
		{name: "connection reset", url: reset.URL, reason: []string{"connection reset by the provider", "connection closed by the provider before it answered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			m := Message{ID: "dlv_net", URL: tt.url, Body: []byte(marker), Secrets: [][]byte{keyA}}
			sender := NewSender(newClient(t, timeout), fixed(testNow))
			// The deadline starts just before the send: the reason names the
			// budget the send had, which is the context's time left then.
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			res := sender.Send(ctx, m)
			if res.Outcome != Retry || res.Status != 0 || res.RetryAfter != 0 {
				t.Errorf("Send = %+v, want retry with no status", res)
			}
			if res.TimedOut != tt.timedOut {
				t.Errorf("TimedOut = %v, want %v", res.TimedOut, tt.timedOut)
			}
			ok := false
			for _, r := range tt.reason {
				ok = ok || res.Reason == r
			}
			if !ok {
				t.Errorf("Reason %q, want one of %q", res.Reason, tt.reason)
			}
			checkReason(t, res)
		})
	}
}

// TestSendMalformedResponses: a provider that does not speak HTTP properly
// gets a Retry whose Reason repeats nothing of what it sent.
func TestSendMalformedResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		response string
	}{
		{"not HTTP", marker + " this is not HTTP\r\n\r\n"},
		{"bad status code", "HTTP/1.1 2x0 " + marker + "\r\n\r\n"},
		{"bad version", "HTTP/9." + marker + " 200 OK\r\n\r\n"},
		{"bad header line", "HTTP/1.1 200 OK\r\n" + marker + " no colon\r\n\r\n"},
		{"quote games", "HTTP/1.1 200 OK\r\nContent-Length: \"\\\"" + marker + "\r\n\r\n"},
		{"bad content length", "HTTP/1.1 200 OK\r\nContent-Length: " + marker + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				for { // read the request head
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(conn, tt.response)
			}()
			m := Message{ID: "dlv_bad", URL: "http://" + ln.Addr().String() + "/", Body: []byte("{}")}
			res := NewSender(newClient(t, 5*time.Second), fixed(testNow)).Send(context.Background(), m)
			if res.Outcome != Retry || res.Status != 0 {
				t.Errorf("Send = %+v, want retry with no status", res)
			}
			checkReason(t, res)
			t.Logf("Reason: %s", res.Reason)
		})
	}
}

// errForbidden stands in for outbound.ErrForbiddenAddress, which this
// package does not import: same text.
var errForbidden = errors.New("outbound: destination address not allowed")

type forbiddenAddrError struct{ addr string }

func (e *forbiddenAddrError) Error() string {
	return "outbound call to a private (RFC 1918) address (" + e.addr + ") refused"
}
func (e *forbiddenAddrError) Unwrap() error { return errForbidden }

func TestSendPermanentErrors(t *testing.T) {
	t.Parallel()
	errPolicy := errors.New("synthetic policy refusal")
	var hits atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("server saw %d requests for messages that must not be sent", n)
		}
	})
	failing := func(err error) *http.Client {
		return &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, err })}
	}
	dialErr := func(inner error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: inner}
	}
	good := Message{ID: "dlv_perm", URL: "https://provider.example/hook?nhs=" + marker, Body: []byte("{}"), Secrets: [][]byte{keyA}}
	with := func(f func(*Message)) Message { m := good; f(&m); return m }

	tests := []struct {
		name      string
		client    *http.Client
		permanent func(error) bool
		msg       Message
		outcome   Outcome
		reason    string
	}{
		{"refused address, recognised by its text", failing(dialErr(&forbiddenAddrError{"10.0.0.7"})), nil, good,
			Permanent, "destination address not allowed (provider.example)"},
		{"refused address, sentinel wrapped by fmt", failing(fmt.Errorf("dial: %w", errForbidden)), nil, good,
			Permanent, "destination address not allowed (provider.example)"},
		{"refused address, also with a Permanent hook", failing(dialErr(&forbiddenAddrError{"10.0.0.7"})),
			func(err error) bool { return errors.Is(err, errForbidden) }, good,
			Permanent, "destination address not allowed (provider.example)"},
		{"caller's Permanent hook", failing(fmt.Errorf("blocked %q: %w", marker, errPolicy)),
			func(err error) bool { return errors.Is(err, errPolicy) }, good,
			Permanent, `request refused: blocked "…": synthetic policy refusal`},
		{"hook says no: network error retried", failing(dialErr(errors.New("synthetic network failure"))),
			func(err error) bool { return errors.Is(err, errPolicy) }, good,
			Retry, "request failed: dial tcp: synthetic network failure"},
		{"no webhook-id", newClient(t, time.Second), nil, with(func(m *Message) { m.ID = "" }),
			Permanent, "message has no webhook-id"},
		{"webhook-id with a line break", newClient(t, time.Second), nil, with(func(m *Message) { m.ID = "a\r\nX-Injected: 1" }),
			Permanent, "message webhook-id is not a valid header value"},
		{"relative URL", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = "/hook?nhs=" + marker }),
			Permanent, "invalid endpoint URL: must be an absolute http or https URL without user information"},
		{"ftp URL", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = "ftp://provider.example/?nhs=" + marker }),
			Permanent, "invalid endpoint URL: must be an absolute http or https URL without user information"},
		{"unparsable URL", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = "http://[::1/?nhs=" + marker }),
			Permanent, "invalid endpoint URL: must be an absolute http or https URL without user information"},
		{"user info in URL", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = "http://u:" + marker + "@provider.example/" }),
			Permanent, "invalid endpoint URL: must be an absolute http or https URL without user information"},
		{"empty secret", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = srv.URL; m.Secrets = [][]byte{keyA, nil} }),
			Permanent, "signing secret 2 is empty"},
		{"bad extra header value", newClient(t, time.Second), nil, with(func(m *Message) {
			m.URL = srv.URL
			m.Headers = map[string]string{"Authorization": "Bearer " + marker + "\n"}
		}), Permanent, `invalid value for extra header "Authorization"`},
		{"bad extra header name", newClient(t, time.Second), nil, with(func(m *Message) {
			m.URL = srv.URL
			m.Headers = map[string]string{"Bad Name": "x"}
		}), Permanent, "invalid extra header name"},
		{"bad content type", newClient(t, time.Second), nil, with(func(m *Message) { m.URL = srv.URL; m.ContentType = "a\x00b" }),
			Permanent, "invalid content type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewSender(tt.client, fixed(testNow))
			s.Permanent = tt.permanent
			res := s.Send(context.Background(), tt.msg)
			if res.Outcome != tt.outcome || res.Status != 0 {
				t.Errorf("Send = %+v, want %v", res, tt.outcome)
			}
			if res.Reason != tt.reason {
				t.Errorf("Reason %q, want %q", res.Reason, tt.reason)
			}
			checkReason(t, res)
		})
	}
}

// countingBody counts the bytes read through it.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestSendReadsAtMost64KiB: a 10 MB answer is not read past 64 KiB.
func TestSendReadsAtMost64KiB(t *testing.T) {
	t.Parallel()
	const total = 10 << 20
	var written atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(total))
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat(marker, 32<<10/len(marker)+1))[:32<<10]
		for written.Load() < total {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	var read atomic.Int64
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Timeout: 5 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(r)
		if err == nil {
			resp.Body = countingBody{resp.Body, &read}
		}
		return resp, err
	})}
	res := NewSender(client, fixed(testNow)).Send(context.Background(), Message{ID: "dlv_big", URL: srv.URL, Body: []byte("{}")})
	if res.Outcome != Delivered || res.Status != http.StatusOK {
		t.Fatalf("Send = %+v, want delivered 200", res)
	}
	if n := read.Load(); n > MaxResponseRead || n == 0 {
		t.Errorf("read %d bytes of the response body, want 1 to %d", n, MaxResponseRead)
	}
	if res.Elapsed > 2*time.Second {
		t.Errorf("Elapsed %s: the body was not abandoned", res.Elapsed)
	}
	checkReason(t, res)
	t.Logf("client read %d bytes; handler had written %d of %d when Send returned", read.Load(), written.Load(), total)
}

// TestSendReusesConnection: a small answer is read to its end, so the
// next delivery to the same host reuses the connection.
func TestSendReusesConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("{}", 2<<10))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := NewSender(newClient(t, 5*time.Second), fixed(testNow))
	for i := range 3 {
		if res := s.Send(context.Background(), Message{ID: "dlv_reuse_" + strconv.Itoa(i), URL: srv.URL, Body: []byte("{}")}); res.Outcome != Delivered {
			t.Fatalf("Send %d = %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 deliveries, want 1", n)
	}
}

// TestNewSenderDoesNotChangeClient: the caller's client keeps its settings;
// the Sender's copy follows no redirects and has a time limit.
func TestNewSenderDoesNotChangeClient(t *testing.T) {
	t.Parallel()
	c := &http.Client{}
	s := NewSender(c, nil)
	if c.CheckRedirect != nil || c.Timeout != 0 {
		t.Error("NewSender changed the caller's client")
	}
	if s.client.Timeout != DefaultTimeout {
		t.Errorf("Sender client Timeout %s, want %s", s.client.Timeout, DefaultTimeout)
	}
	if err := s.client.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("Sender client follows redirects")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewSender(nil) did not panic")
		}
	}()
	NewSender(nil, nil)
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    Outcome
		want string
	}{
		{Delivered, "delivered"}, {Retry, "retry"}, {Permanent, "permanent"}, {Gone, "gone"},
		{0, "Outcome(0)"}, {Outcome(9), "Outcome(9)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(tt.o), got, tt.want)
		}
	}
	var zero Result
	if zero.Outcome == Delivered {
		t.Error("a zero Result reads as delivered")
	}
}

// deadlineReasons are the reasons a send under a context deadline of hi ms
// may give: the budget it had when it started, which a loaded machine may
// have cut by a few ms between the deadline being set and the send (lo ms
// at the least), never the client's own timeout.
func deadlineReasons(lo, hi int) []string {
	var out []string
	for ms := hi; ms >= lo; ms-- {
		out = append(out, "timed out after "+strconv.Itoa(ms)+"ms")
	}
	return out
}

// TestSendDuplicate counts a 409 the message's Duplicate recognises as
// delivered (a BaRS receiver that has the message already), and any other
// 409 as the refusal it is.
func TestSendDuplicate(t *testing.T) {
	t.Parallel()
	body := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate"}]}`
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-Id") == "" {
			t.Error("extra header not sent")
		}
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, body)
	})
	s := NewSender(newClient(t, time.Second), fixed(testNow))
	dup := func(b []byte) bool { return strings.Contains(string(b), `"duplicate"`) }
	m := Message{ID: "m1", URL: srv.URL, Body: []byte("{}"), Headers: map[string]string{"X-Request-Id": "r1"}, Duplicate: dup}
	if res := s.Send(context.Background(), m); res.Outcome != Delivered || res.Status != http.StatusConflict {
		t.Errorf("409 duplicate = %v %d (%s), want delivered", res.Outcome, res.Status, res.Reason)
	}
	m.Duplicate = func([]byte) bool { return false }
	if res := s.Send(context.Background(), m); res.Outcome != Permanent {
		t.Errorf("409 not a duplicate = %v, want permanent", res.Outcome)
	}
	m.Duplicate = nil
	if res := s.Send(context.Background(), m); res.Outcome != Permanent {
		t.Errorf("409 without Duplicate = %v, want permanent", res.Outcome)
	}
}
