// Package notify carries referral status back to GP record systems: the
// HTTP side of write-back (the GP system's FHIR server as Signpost sees it)
// and of subscription notifications. The caller passes an *http.Client made
// by gateway/outbound (refusing private addresses); notify imports outbound
// only to recognise that refusal.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/signpost-health/signpost/gateway/outbound"
)

// GPServer is a GP system's FHIR server that takes write-backs.
type GPServer struct {
	Base   string // FHIR base, e.g. https://gp.example/fhir
	Token  string // bearer token; "" for none
	Client *http.Client
}

// Result says what became of a write and what to do about it.
type Result struct {
	Status int
	ID     string // the id the GP server gave (from Location), on create
	ETag   string // the version the GP server now holds
	Retry  bool   // a transient failure: try again later
	Reason string // for logs; names the status, never a body
	found  struct{ id, etag string }
}

// OK reports a 2xx answer.
func (r Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Conflict reports a 412: the GP copy changed since Signpost last wrote it.
func (r Result) Conflict() bool { return r.Status == http.StatusPreconditionFailed }

// Create POSTs a resource and returns the id the server gave it.
// ifNoneExist makes it a conditional create, so a create retried after a
// lost answer finds the first rather than making a second.
func (g *GPServer) Create(ctx context.Context, typ string, body []byte, ifNoneExist string) Result {
	return g.do(ctx, http.MethodPost, g.Base+"/"+typ, body, "", ifNoneExist)
}

// Update PUTs a resource; ifMatch is the version Signpost last wrote.
func (g *GPServer) Update(ctx context.Context, typ, id string, body []byte, ifMatch string) Result {
	return g.do(ctx, http.MethodPut, g.Base+"/"+typ+"/"+id, body, ifMatch, "")
}

// Find looks a resource up by a search (identifier=system|value) and
// returns its id and version as Result.ID and Result.ETag: how a create
// whose answer carried no Location, or was lost, finds what it made.
func (g *GPServer) Find(ctx context.Context, typ, query string) Result {
	r := g.do(ctx, http.MethodGet, g.Base+"/"+typ+"?"+query, nil, "", "")
	if !r.OK() {
		return r
	}
	r.ID, r.ETag = r.found.id, r.found.etag
	if r.ID == "" {
		r.Status, r.Reason = http.StatusNotFound, "the GP server found no copy"
	}
	return r
}

// Version reads the version the GP server holds of a resource.
func (g *GPServer) Version(ctx context.Context, typ, id string) Result {
	return g.do(ctx, http.MethodGet, g.Base+"/"+typ+"/"+id, nil, "", "")
}

func (g *GPServer) do(ctx context.Context, method, url string, body []byte, ifMatch, ifNoneExist string) Result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Result{Reason: "the GP server's address is not a URL"}
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if ifNoneExist != "" {
		req.Header.Set("If-None-Exist", ifNoneExist)
	}
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	res, err := g.Client.Do(req)
	if err != nil {
		if errors.Is(err, outbound.ErrForbiddenAddress) {
			return Result{Reason: "the GP server's address is not allowed"}
		}
		return Result{Retry: true, Reason: "the GP server did not answer"}
	}
	defer res.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	r := Result{Status: res.StatusCode, ETag: res.Header.Get("ETag"), Reason: fmt.Sprintf("the GP server answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))}
	if method == http.MethodGet {
		var b struct {
			Entry []struct {
				Resource struct {
					ID   string `json:"id"`
					Meta struct {
						VersionID string `json:"versionId"`
					} `json:"meta"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if json.Unmarshal(respBody, &b) == nil && len(b.Entry) > 0 {
			r.found.id = b.Entry[0].Resource.ID
			if v := b.Entry[0].Resource.Meta.VersionID; v != "" {
				r.found.etag = `W/"` + v + `"`
			}
		}
	}
	if loc := res.Header.Get("Location"); loc != "" {
		r.ID = idFromLocation(loc)
	}
	switch {
	case r.OK(), r.Conflict():
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500:
		r.Retry = true
	}
	return r
}

// idFromLocation reads the id from a Location such as
// https://gp.example/fhir/Task/123/_history/1.
func idFromLocation(loc string) string {
	parts := strings.Split(strings.TrimSuffix(loc, "/"), "/")
	for i := len(parts) - 1; i > 0; i-- {
		if parts[i-1] == "_history" || parts[i] == "_history" {
			continue
		}
		if i >= 1 && (i+1 >= len(parts) || parts[i+1] == "_history") {
			return parts[i]
		}
	}
	return ""
}

// RetryAfter suggests a wait for a retried write (not used for 412s).
func RetryAfter(attempt int, schedule []time.Duration) (time.Duration, bool) {
	if attempt >= len(schedule) {
		return 0, false
	}
	return schedule[attempt], true
}

// Notify POSTs a subscription notification (a Bundle) to a rest-hook
// endpoint, with the subscriber's channel headers.
func Notify(ctx context.Context, client *http.Client, endpoint string, headers map[string]string, body []byte) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{Reason: "the endpoint is not a URL"}
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := client.Do(req)
	if err != nil {
		if errors.Is(err, outbound.ErrForbiddenAddress) {
			return Result{Reason: "the endpoint's address is not allowed"}
		}
		return Result{Retry: true, Reason: "the endpoint did not answer: " + unanswered(err)}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	r := Result{Status: res.StatusCode, Reason: fmt.Sprintf("the endpoint answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))}
	r.Retry = !r.OK() && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500)
	return r
}

// unanswered says, for the operator's log, why a request got no answer:
// the detail Subscription.error leaves out (see the worker's subscription
// errors), never the URL.
func unanswered(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "the name did not resolve"
	}
	return "the connection failed"
}

// SubscriberClients are the outbound clients of subscription
// notifications (gateway.SubscriberOrigins): chosen, for the endpoints GP
// systems chose, reaches public addresses only, whatever o.Allow says
// (outbound_allow is the operator's allowance for the endpoints it
// configured); registered, for endpoints under an origin the operator
// registered for the GP system, is held to o.Allow as configured endpoints
// are.
func SubscriberClients(o outbound.Options) (chosen, registered *http.Client) {
	registered = outbound.NewClient(o)
	o.Allow = nil
	return outbound.NewClient(o), registered
}

// BarsEndpoint is a GP system's BaRS receiver: where the
// servicerequest-response messages answering its referrals go.
type BarsEndpoint struct {
	Base   string // FHIR base; messages go to {Base}/$process-message
	Token  string // bearer token; "" for none
	Client *http.Client
}

// ProcessMessage POSTs a BaRS message. requestID is X-Request-Id (stable
// for one message, so the receiver recognises a resend), correlationID
// X-Correlation-Id (ties the answer to the request it answers). A 408, 429
// or 5xx, or no answer, is worth trying again; BaRS senders never retry a
// 409 (the receiver has the message already), so a 409 counts as done.
func (b *BarsEndpoint) ProcessMessage(ctx context.Context, requestID, correlationID string, body []byte) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.Base+"/$process-message", bytes.NewReader(body))
	if err != nil {
		return Result{Reason: "the BaRS endpoint is not a URL"}
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Request-Id", requestID)
	req.Header.Set("X-Correlation-Id", correlationID)
	if b.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.Token)
	}
	res, err := b.Client.Do(req)
	if err != nil {
		if errors.Is(err, outbound.ErrForbiddenAddress) {
			return Result{Reason: "the BaRS endpoint's address is not allowed"}
		}
		return Result{Retry: true, Reason: "the BaRS endpoint did not answer"}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	r := Result{Status: res.StatusCode, Reason: fmt.Sprintf("the BaRS endpoint answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))}
	if res.StatusCode == http.StatusConflict {
		r.Status = http.StatusOK // a duplicate: it holds this message already
	}
	r.Retry = !r.OK() && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500)
	return r
}
