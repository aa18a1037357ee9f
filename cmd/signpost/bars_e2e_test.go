package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// barsEndpoint is a test server standing for a BaRS system's FHIR base: it
// hands every $process-message it receives to the test, and answers 200.
type barsEndpoint struct {
	srv   *httptest.Server
	calls chan barsReceived
}

type barsReceived struct {
	path, auth, requestID, correlationID string
	body                                 []byte
}

func newBarsEndpoint(t *testing.T) *barsEndpoint {
	e := &barsEndpoint{calls: make(chan barsReceived, 16)}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.calls <- barsReceived{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Request-Id"), r.Header.Get("X-Correlation-Id"), b}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// next is the next message the endpoint received, read as a valid R4
// message Bundle.
func (e *barsEndpoint) next(t *testing.T, what string) (barsReceived, barsBundle) {
	t.Helper()
	select {
	case c := <-e.calls:
		for _, is := range structure.Validate(c.body).Issues {
			t.Errorf("%s is not valid R4: %s %v: %s", what, is.Code, is.Expression, is.Diagnostics)
		}
		var b barsBundle
		if err := json.Unmarshal(c.body, &b); err != nil || b.Type != "message" || len(b.Entry) == 0 {
			t.Fatalf("%s is not a message Bundle: %s", what, c.body)
		}
		return c, b
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never came", what)
	}
	panic("unreachable")
}

type barsBundle struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
	} `json:"entry"`
}

// header's MessageHeader event, reason and response code.
func (b barsBundle) header() (event, reason, responseTo string) {
	h := b.Entry[0].Resource
	event, _ = h["eventCoding"].(map[string]any)["code"].(string)
	if r, ok := h["reason"].(map[string]any); ok {
		reason, _ = r["coding"].([]any)[0].(map[string]any)["code"].(string)
	}
	if r, ok := h["response"].(map[string]any); ok {
		responseTo, _ = r["identifier"].(string)
	}
	return event, reason, responseTo
}

func (b barsBundle) resource(typ string) map[string]any {
	for _, e := range b.Entry {
		if e.Resource["resourceType"] == typ {
			return e.Resource
		}
	}
	return nil
}

// smartClient is a client of Signpost authenticating as SMART Backend
// Services asks: a signed assertion, exchanged for an access token.
type smartClient struct {
	id  string
	key *rsa.PrivateKey
	set string // its JWKS, for the configuration
	n   int
}

func newSMARTClient(t *testing.T, id string) *smartClient {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	pub, err := jwk.Import(&key.PublicKey)
	must(t, err)
	_ = pub.Set(jwk.KeyIDKey, id+"-1")
	set, _ := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	return &smartClient{id: id, key: key, set: string(set)}
}

func (c *smartClient) token(t *testing.T, base, publicURL, scope string) string {
	t.Helper()
	c.n++
	claims, _ := json.Marshal(map[string]any{"iss": c.id, "sub": c.id, "aud": publicURL + "/auth/token",
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": c.id + "-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+c.n))})
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, c.id+"-1")
	signed, err := jws.Sign(claims, jws.WithKey(jwa.RS384(), c.key, jws.WithProtectedHeaders(hdr)))
	must(t, err)
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {string(signed)}, "scope": {scope}}
	res, err := http.Post(base+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	must(t, err)
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(res.Body).Decode(&tok)
	if res.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token for %s: %d", c.id, res.StatusCode)
	}
	return tok.AccessToken
}

// processMessage POSTs a message to Signpost's $process-message with a
// bearer token and a fresh X-Request-Id, and returns the status and body.
func processMessage(t *testing.T, base, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/fhir/$process-message", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", newUUID(t))
	req.Header.Set("X-Correlation-Id", newUUID(t))
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func newUUID(t *testing.T) string {
	var b [16]byte
	_, err := rand.Read(b[:])
	must(t, err)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := []byte("0123456789abcdef")
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, h[x>>4], h[x&0xf])
	}
	return string(out)
}

// A referral travels by BaRS end to end through serve, every party a
// separate system on loopback: the GP system sends a servicerequest-request;
// Signpost routes it by its destination to the provider whose delivery kind
// is bars, which receives it at its $process-message; the provider answers
// with a servicerequest-response accepting it, which moves the referral
// Task; the GP system receives Signpost's servicerequest-response for the
// acceptance. Then the GP system cancels (an update, ServiceRequest
// revoked) and the provider receives the cancellation.
func TestServeExchangesABaRSReferralEndToEnd(t *testing.T) {
	t.Parallel()
	gpSystem, providerSystem := newBarsEndpoint(t), newBarsEndpoint(t)
	gp, provider := newSMARTClient(t, "practice-a"), newSMARTClient(t, "walking")
	const publicURL = "http://127.0.0.1:8080"
	// The GP system may store what its messages bring beside a referral
	// (the example's Consent, Encounter, …), and change it by a later one.
	var entryScopes, entryCreates []string
	for _, typ := range gateway.SupportingTypes() {
		entryScopes = append(entryScopes, "system/"+typ+".cu")
		entryCreates = append(entryCreates, "system/"+typ+".c")
	}
	conf := `listen: "127.0.0.1:0"
metrics_listen: "127.0.0.1:0"
public_url: "` + publicURL + `"
auth: { mode: smart }
delivery_timeout: "2s"
delivery_retry: ["50ms", "50ms", "50ms"]
nhs_number: warn
outbound_allow: ["127.0.0.0/8"]
clients:
  - id: practice-a
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "A81001" }
    auth: { jwks: '` + gp.set + `', scopes: [system/ServiceRequest.cru, system/Task.rs, ` + strings.Join(entryScopes, ", ") + `] }
    bars: { endpoint: "` + gpSystem.srv.URL + `/fhir", bearer_token_env: "GP_A_BARS_TOKEN" }
providers:
  - id: walking
    name: "Walking for Health"
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1A2B" }
    categories: [physical-activity]
    services: ["http://fhir.nhs.uk/Id/dos-service-id|111111111"]
    auth: { jwks: '` + provider.set + `', scopes: [system/Task.rus] }
    delivery: { kind: bars, url: "` + providerSystem.srv.URL + `/fhir", bearer_token_env: "PROVIDER_TOKEN" }
`
	cfg := writeFile(t, "signpost.yaml", conf)
	r := redistest.Start(t)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL(), "GP_A_BARS_TOKEN": "synthetic-gp-token", "PROVIDER_TOKEN": "synthetic-provider-token"})
	srv := startSignpost(t, []string{"serve", "-config", cfg}, getenv)

	// 1. The GP system sends the published BaRS example referral.
	example, err := os.ReadFile(filepath.Join("..", "..", "fhir", "testdata", "conformance", "bars", "servicerequest-request-ValidationRequest.json"))
	must(t, err)
	gpToken := gp.token(t, srv.base, publicURL, "system/ServiceRequest.c system/Task.r "+strings.Join(entryCreates, " "))
	status, body := processMessage(t, srv.base, gpToken, example)
	if status != http.StatusOK {
		t.Fatalf("the GP's message: %d %s", status, body)
	}

	// 2. The provider's system receives it as a BaRS request at $process-message.
	got, sent := providerSystem.next(t, "the referral message to the provider")
	if got.path != "/fhir/$process-message" || got.auth != "Bearer synthetic-provider-token" || got.requestID != sent.ID || got.correlationID == "" {
		t.Errorf("the provider got %s, Authorization %q, X-Request-Id %q (Bundle.id %s), X-Correlation-Id %q", got.path, got.auth, got.requestID, sent.ID, got.correlationID)
	}
	if ev, reason, _ := sent.header(); ev != "servicerequest-request" || reason != "new" {
		t.Errorf("the provider got %s %s, want servicerequest-request new", ev, reason)
	}
	sr := sent.resource("ServiceRequest")
	if sr == nil || sent.resource("Patient") == nil {
		t.Fatalf("the message lacks the ServiceRequest or the Patient: %s", got.body)
	}
	taskRef := ""

	// 3. The provider accepts, by a servicerequest-response naming that message.
	accept, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": newUUID(t), "type": "message", "timestamp": time.Now().UTC().Format(time.RFC3339),
		"entry": []map[string]any{
			{"fullUrl": "urn:uuid:6b5a4f3e-2d1c-4b0a-9f8e-7d6c5b4a3f2e", "resource": map[string]any{
				"resourceType": "MessageHeader",
				"eventCoding":  map[string]string{"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-response"},
				"source":       map[string]string{"endpoint": providerSystem.srv.URL + "/fhir"},
				"response":     map[string]string{"identifier": sent.ID, "code": "ok"},
				"focus":        []map[string]string{{"reference": "urn:uuid:7c6b5a4f-3e2d-4c1b-8a9f-8e7d6c5b4a3f"}},
			}},
			{"fullUrl": "urn:uuid:7c6b5a4f-3e2d-4c1b-8a9f-8e7d6c5b4a3f", "resource": map[string]any{
				"resourceType": "Task", "status": "accepted", "intent": "order",
				"businessStatus": map[string]any{"text": "Accepted: a walk leader will call"}}},
		},
	})
	provToken := provider.token(t, srv.base, publicURL, "system/Task.rus")
	status, body = processMessage(t, srv.base, provToken, accept)
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"accepted"`) {
		t.Fatalf("the provider's response: %d %s", status, body)
	}
	var answer barsBundle
	must(t, json.Unmarshal(body, &answer))
	if task := answer.resource("Task"); task != nil {
		taskRef = "Task/" + task["id"].(string)
	}

	// 4. The GP system receives Signpost's response for the acceptance,
	// naming the message it sent. (The delivery itself may be answered
	// first: each Task version the GP side hears of is answered.)
	for {
		_, resp := gpSystem.next(t, "the response to the GP system")
		ev, _, to := resp.header()
		if ev != "servicerequest-response" || to != "86e3371d-1c15-4862-9552-d9560f8292ba" {
			t.Fatalf("the GP system got %s answering %q", ev, to)
		}
		if task := resp.resource("Task"); task != nil && task["status"] == "accepted" {
			if "Task/"+task["id"].(string) != taskRef {
				t.Errorf("the response is about %v, want %s", task["id"], taskRef)
			}
			break
		}
	}

	// 5. The GP system cancels: an update whose ServiceRequest is revoked.
	var revoke map[string]any
	must(t, json.Unmarshal(example, &revoke))
	revoke["id"] = newUUID(t)
	for _, e := range revoke["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		switch res["resourceType"] {
		case "MessageHeader":
			res["reason"] = map[string]any{"coding": []map[string]string{{"system": "https://fhir.nhs.uk/CodeSystem/message-reason-bars", "code": "update"}}}
		case "ServiceRequest":
			res["status"] = "revoked"
		}
	}
	revokeBody, _ := json.Marshal(revoke)
	status, body = processMessage(t, srv.base, gp.token(t, srv.base, publicURL, "system/ServiceRequest.cu"), revokeBody)
	if status != http.StatusOK {
		t.Fatalf("the GP's cancellation: %d %s", status, body)
	}

	// 6. The provider's system receives the cancellation.
	got, cancel := providerSystem.next(t, "the cancellation to the provider")
	if ev, reason, _ := cancel.header(); ev != "servicerequest-request" || reason != "update" {
		t.Errorf("the cancellation is %s %s, want servicerequest-request update", ev, reason)
	}
	if c := cancel.resource("ServiceRequest"); c == nil || c["status"] != "revoked" || c["id"] != sr["id"] {
		t.Errorf("the cancellation's ServiceRequest is %v, want %v revoked", c, sr["id"])
	}
	if got.requestID == sent.ID {
		t.Error("the cancellation reuses the referral's X-Request-Id")
	}

	// The sends are counted.
	res, err := http.Get(srv.metrics + "/metrics")
	must(t, err)
	m, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range [][]string{{"signpost_bars_responses_total{", `outcome="sent"`}, {"signpost_jobs_total{", `outcome="delivered"`, `queue="delivery"`}} {
		if !hasLine(string(m), want...) {
			t.Errorf("/metrics lacks %v:\n%s", want, grepLines(string(m), "signpost_"))
		}
	}
	must(t, srv.stop())
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// hasLine reports whether one line of text holds every part.
func hasLine(text string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}
