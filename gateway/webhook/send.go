package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits and defaults of Send.
const (
	// UserAgent is sent with every delivery.
	UserAgent = "Signpost-Webhook/1"
	// DefaultContentType is used when Message.ContentType is empty.
	DefaultContentType = "application/json"
	// MaxResponseRead is the most of a response body Send reads.
	MaxResponseRead = 64 << 10
	// MaxRetryAfter caps Result.RetryAfter.
	MaxRetryAfter = 24 * time.Hour
	// DefaultTimeout is given to a client that has no Timeout of its own.
	DefaultTimeout = 10 * time.Second
	// drainTimeout bounds reading the response body once the status is
	// known, so a slow trickle cannot hold a worker.
	drainTimeout = 2 * time.Second
	// maxReasonDetail caps the error text carried into a Reason.
	maxReasonDetail = 160
)

// forbiddenText is the text of outbound.ErrForbiddenAddress, by which a
// refused destination is recognised when Sender.Permanent is not set.
const forbiddenText = "destination address not allowed"

// Message is one delivery to one endpoint.
type Message struct {
	// ID is sent as webhook-id. It must stay the same across retries of one
	// delivery: the receiver deduplicates on it. Required.
	ID string
	// URL is the endpoint: absolute http or https.
	URL string
	// Body is sent as is, and is what is signed.
	Body []byte
	// ContentType defaults to DefaultContentType.
	ContentType string
	// Secrets sign the message, one signature each (several during key
	// rotation). None: the message is sent unsigned (a FHIR endpoint, say).
	// An empty secret is refused.
	Secrets [][]byte
	// Headers are extra request headers (Authorization for a FHIR endpoint,
	// say). They cannot replace webhook-id, webhook-timestamp,
	// webhook-signature, Content-Type or User-Agent, which Send sets after
	// them.
	Headers map[string]string
	// Duplicate, when set, is asked about a 409 answer's body (up to
	// MaxResponseRead): true means the receiver holds this message already,
	// so the attempt counts as Delivered. NHS BaRS receivers answer a
	// repeated X-Request-Id so (409, OperationOutcome code duplicate), and
	// a retry after a lost answer must not end as a failure.
	Duplicate func(body []byte) bool
}

// Outcome is what the caller should do after an attempt. The zero value is
// not an outcome.
type Outcome int

// Outcomes. Values start at 1 so that a zero Result is not mistaken for a
// delivery.
const (
	// Delivered: the provider answered 2xx. Done.
	Delivered Outcome = iota + 1
	// Retry: schedule another attempt, no sooner than Result.RetryAfter.
	Retry
	// Permanent: do not retry this message (dead-letter it).
	Permanent
	// Gone: the provider answered 410; disable the endpoint.
	Gone
)

// String returns "delivered", "retry", "permanent" or "gone".
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Gone:
		return "gone"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result says what happened to one attempt.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status the provider answered, 0 if it did not.
	Status int
	// RetryAfter is the provider's Retry-After (delta-seconds or
	// HTTP-date), capped at MaxRetryAfter, on a Retry outcome from 408, 425,
	// 429 or 5xx; 0 if absent, invalid or in the past.
	RetryAfter time.Duration
	// Reason is a short sentence for Task.statusReason and logs, such as
	// "provider answered 503 Service Unavailable", "connection refused",
	// "timed out after 10s" or "destination address not allowed". It never
	// contains a request or response body or the URL's query; it may name
	// the host.
	Reason string
	// Elapsed is the wall time of the attempt, body drain included.
	Elapsed time.Duration
	// TimedOut is set when the attempt ran out of time before an answer
	// (a Retry outcome): the provider may have received and stored the
	// message, so the attempt's outcome is unknown, not a refusal.
	TimedOut bool
}

// Sender delivers messages. It is safe for concurrent use; do not change
// Permanent once Send may be running.
type Sender struct {
	client *http.Client
	now    func() time.Time

	// Permanent, if set, is asked about every error from the client; true
	// makes the outcome Permanent. The delivery worker sets it to
	// errors.Is(err, outbound.ErrForbiddenAddress). Whether or not it is
	// set, an error whose chain holds the text "destination address not
	// allowed" is Permanent.
	Permanent func(error) bool
}

// NewSender returns a Sender that sends through a shallow copy of client
// (which must not be nil; pass the client from gateway/outbound) with
// redirects disabled, no cookie jar, and DefaultTimeout if client.Timeout
// is zero. now is the clock for webhook-timestamp and for Retry-After
// dates; nil means time.Now.
func NewSender(client *http.Client, now func() time.Time) *Sender {
	if client == nil {
		panic("webhook: NewSender with nil client")
	}
	if now == nil {
		now = time.Now
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Jar = nil
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return &Sender{client: &c, now: now}
}

// Send makes one delivery attempt of m and classifies what happened. It
// never returns without an Outcome.
func (s *Sender) Send(ctx context.Context, m Message) Result {
	start := time.Now()
	res := s.send(ctx, m, start)
	res.Elapsed = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, m Message, start time.Time) Result {
	req, reason := s.request(ctx, m)
	if req == nil {
		return Result{Outcome: Permanent, Reason: reason}
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	req = req.WithContext(ctx)

	resp, err := s.client.Do(req)
	if err != nil {
		outcome, reason := s.classifyError(ctx, err, req.URL, time.Since(start))
		return Result{Outcome: outcome, Reason: reason, TimedOut: outcome == Retry && timedOut(ctx, err)}
	}
	// Only the status matters. Read a little of the body so that a small
	// answer leaves the connection reusable; bound the time it may take.
	stop := time.AfterFunc(drainTimeout, cancel)
	var kept bytes.Buffer
	sink := io.Discard
	if m.Duplicate != nil && resp.StatusCode == http.StatusConflict {
		sink = &kept
	}
	_, _ = io.Copy(sink, io.LimitReader(resp.Body, MaxResponseRead))
	stop.Stop()
	_ = resp.Body.Close()

	res := Result{Status: resp.StatusCode}
	res.Outcome, res.Reason = classifyStatus(resp.StatusCode)
	if sink == &kept && m.Duplicate(kept.Bytes()) {
		res.Outcome, res.Reason = Delivered, res.Reason+" (duplicate: the receiver has this message already)"
	}
	if res.Outcome == Retry && retryAfterApplies(resp.StatusCode) {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return res
}

// request builds the POST for m, or returns nil and the reason m cannot be
// sent.
func (s *Sender) request(ctx context.Context, m Message) (*http.Request, string) {
	if m.ID == "" {
		return nil, "message has no webhook-id"
	}
	if !validValue(m.ID) {
		return nil, "message webhook-id is not a valid header value"
	}
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// Never repeat the URL or url.Parse's error, which quotes it.
		return nil, "invalid endpoint URL: must be an absolute http or https URL without user information"
	}
	for i, key := range m.Secrets {
		if len(key) == 0 {
			return nil, "signing secret " + strconv.Itoa(i+1) + " is empty"
		}
	}
	ct := m.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	if !validValue(ct) {
		return nil, "invalid content type"
	}
	h := make(http.Header, len(m.Headers)+5)
	for k, v := range m.Headers {
		if !validName(k) {
			return nil, "invalid extra header name"
		}
		if !validValue(v) {
			return nil, "invalid value for extra header " + strconv.Quote(k)
		}
		h.Set(k, v)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(m.Body))
	if err != nil {
		return nil, "invalid endpoint URL"
	}
	ts := s.now()
	h.Set(HeaderID, m.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(m.Secrets) > 0 {
		h.Set(HeaderSignature, Sign(m.ID, ts, m.Body, m.Secrets...))
	} else {
		h.Del(HeaderSignature)
	}
	h.Set("Content-Type", ct)
	h.Set("User-Agent", UserAgent)
	req.Header = h
	return req, ""
}

// classifyStatus maps an HTTP status to an outcome and reason.
func classifyStatus(code int) (Outcome, string) {
	reason := "provider answered " + strconv.Itoa(code)
	if text := http.StatusText(code); text != "" {
		reason += " " + text
	}
	switch {
	case code >= 200 && code <= 299:
		return Delivered, reason
	case code == http.StatusGone:
		return Gone, reason
	case code >= 300 && code <= 399:
		return Retry, reason + " (redirects are not followed)"
	case retryAfterApplies(code):
		return Retry, reason
	case code >= 400 && code <= 499:
		return Permanent, reason
	}
	// 1xx as a final answer, or outside 100-599: a broken server; try again.
	return Retry, reason
}

// retryAfterApplies reports whether a status is one we retry and whose
// Retry-After we honour.
func retryAfterApplies(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code <= 599
}

// parseRetryAfter reads delta-seconds or an HTTP-date (relative to now),
// capped at MaxRetryAfter; 0 if absent, invalid or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter // all digits, so only overflow fails
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// classifyError maps an error from the client to an outcome and a reason
// safe to store: fixed sentences for the known kinds, and otherwise the
// error text with the URL, its query and anything quoted removed.
func (s *Sender) classifyError(ctx context.Context, err error, u *url.URL, elapsed time.Duration) (Outcome, string) {
	forbidden := hasText(err, forbiddenText)
	if forbidden || (s.Permanent != nil && s.Permanent(err)) {
		if forbidden {
			return Permanent, forbiddenText + " (" + u.Hostname() + ")"
		}
		return Permanent, "request refused: " + detail(err, u)
	}
	var (
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		invErr   x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		protoErr textproto.ProtocolError
	)
	switch {
	case errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled):
		return Retry, "cancelled before the provider answered"
	case timedOut(ctx, err):
		return Retry, "timed out after " + s.budget(ctx, elapsed).String()
	case errors.Is(err, syscall.ECONNREFUSED):
		return Retry, "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return Retry, "connection reset by the provider"
	case errors.Is(err, syscall.EPIPE):
		return Retry, "connection closed by the provider while sending"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return Retry, "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return Retry, "network unreachable"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return Retry, "host name not found (" + u.Hostname() + ")"
		}
		return Retry, "DNS lookup failed (" + u.Hostname() + ")"
	case errors.As(err, &hostErr):
		return Retry, "TLS certificate does not match the host name (" + u.Hostname() + ")"
	case errors.As(err, &authErr):
		return Retry, "TLS certificate signed by an unknown authority"
	case errors.As(err, &invErr):
		if invErr.Reason == x509.Expired {
			return Retry, "TLS certificate expired or not yet valid"
		}
		return Retry, "TLS certificate invalid"
	case errors.As(err, &certErr):
		return Retry, "TLS certificate not accepted"
	case hasText(err, "server gave HTTP response to HTTPS client"):
		return Retry, "TLS handshake failed: the endpoint answered in plain HTTP"
	case errors.As(err, &recErr):
		return Retry, "TLS handshake failed: the endpoint does not seem to speak TLS"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return Retry, "connection closed by the provider before it answered"
	case errors.As(err, &protoErr) || hasText(err, "malformed") || hasText(err, "transport connection broken"):
		// net/http quotes what it read; say nothing of it.
		return Retry, "provider sent a malformed HTTP response"
	}
	return Retry, "request failed: " + detail(err, u)
}

// timedOut reports whether an attempt failed because its time ran out.
func timedOut(ctx context.Context, err error) bool {
	var netErr net.Error
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// budget is the time limit that expired, for "timed out after": the
// context deadline when that was it, else the client's Timeout when the
// attempt lasted that long, else the time spent, rounded.
func (s *Sender) budget(ctx context.Context, elapsed time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok && ctx.Err() != nil {
		if d := elapsed - time.Since(dl); d > 0 {
			return roundDuration(d)
		}
	}
	if s.client.Timeout > 0 && elapsed >= s.client.Timeout {
		return s.client.Timeout
	}
	return roundDuration(elapsed)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d
}

// hasText reports whether an error in err's chain, other than a *url.Error
// (whose text includes the whole URL), has text containing s.
func hasText(err error, s string) bool {
	for _, e := range chain(err) {
		if _, ok := e.(*url.Error); ok {
			continue
		}
		if strings.Contains(e.Error(), s) {
			return true
		}
	}
	return false
}

// chain lists err and everything it wraps, depth first, bounded.
func chain(err error) []error {
	var out []error
	stack := []error{err}
	for len(stack) > 0 && len(out) < 64 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		out = append(out, e)
		switch w := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, w.Unwrap())
		case interface{ Unwrap() []error }:
			errs := w.Unwrap()
			for i := len(errs) - 1; i >= 0; i-- {
				stack = append(stack, errs[i])
			}
		}
	}
	return out
}

// detail is err's text made safe for a Reason: without the *url.Error
// wrapper (which repeats the URL), with any remaining copy of the URL or
// its query removed, with quoted parts (where net/http puts data it read
// or was given) elided, and cut short.
func detail(err error, u *url.URL) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	text := err.Error()
	for _, s := range []string{u.String(), u.RawQuery, u.Fragment} {
		if s != "" {
			text = strings.ReplaceAll(text, s, "…")
		}
	}
	text = elideQuoted(text)
	var b strings.Builder
	for _, r := range text {
		if b.Len() >= maxReasonDetail {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// elideQuoted replaces the inside of every double- or back-quoted part of
// s with an ellipsis, honouring backslash escapes inside double quotes (as
// %q writes them); an unterminated quote runs to the end.
func elideQuoted(s string) string {
	var b strings.Builder
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case quote == 0:
			b.WriteRune(r)
			if r == '"' || r == '`' {
				quote = r
				b.WriteString("…")
			}
		case escaped:
			escaped = false
		case quote == '"' && r == '\\':
			escaped = true
		case r == quote:
			quote = 0
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validName reports whether s is an HTTP header field name (RFC 9110 token).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s may be sent as a header field value: no
// control characters other than horizontal tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
