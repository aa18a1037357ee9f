package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/signpost-health/signpost/gateway/httpapi"
)

// postAssertion sends a token request with an assertion for iss, signed
// with the GP key under kid, and returns the status and body.
func (e *env) postAssertion(t *testing.T, iss, kid string, tamper bool) (int, []byte) {
	t.Helper()
	claims, _ := json.Marshal(map[string]any{"iss": iss, "sub": iss, "aud": httpapi.TokenURL(e.srv.URL),
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": "jti-ua-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+jtiCounter.Add(1)%26))})
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	signed, err := jws.Sign(claims, jws.WithKey(jwa.RS384(), gpKey, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	if tamper {
		signed[len(signed)-5] ^= 1
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {string(signed)}}
	res, err := http.Post(e.srv.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// The token endpoint tells a caller that did not authenticate nothing about
// which clients exist or how their keys are registered: an unknown client,
// an unknown kid and a bad signature get the same status and the same text.
// The detail is in the server's log, and the audit record of each names
// the registered client the assertion claimed (never the assertion).
func TestTokenEndpointRefusesUniformlyAndAuditsTheClient(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.smart = smartClients(t) })
	type answer struct {
		status int
		body   string
	}
	var answers []answer
	for _, tc := range []struct {
		iss, kid string
		tamper   bool
	}{
		{"practice-nobody", "gp-1", false}, // no such client
		{"practice-a", "rotated-away", false},
		{"practice-a", "gp-1", true}, // bad signature
		{"walking", "gp-1", false},   // a provider's id, the GP's key
	} {
		status, body := e.postAssertion(t, tc.iss, tc.kid, tc.tamper)
		answers = append(answers, answer{status, string(body)})
	}
	for i, a := range answers {
		if a != answers[0] {
			t.Errorf("answer %d = %d %s; answer 0 = %d %s: they must not differ", i, a.status, a.body, answers[0].status, answers[0].body)
		}
	}
	if answers[0].status != http.StatusUnauthorized || !strings.Contains(answers[0].body, `"invalid_client"`) {
		t.Errorf("answer %d %s, want 401 invalid_client", answers[0].status, answers[0].body)
	}
	for _, leak := range []string{"practice-nobody", "rotated-away", "registered client_id", "kid", "inline"} {
		if strings.Contains(answers[0].body, leak) {
			t.Errorf("the answer says %q: %s", leak, answers[0].body)
		}
	}
	if !strings.Contains(e.logs.String(), "rotated-away") {
		t.Error("the server log does not say what was wrong")
	}

	e.token(t, "practice-a", "system/Task.rs")
	entries, err := e.store.AuditTail(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, en := range entries {
		if en.Record.Interaction == "token" {
			clients = append(clients, en.Record.Client+"/"+http.StatusText(en.Record.Status))
		}
	}
	want := []string{"/Unauthorized", "practice-a/Unauthorized", "practice-a/Unauthorized", "walking/Unauthorized", "practice-a/OK"}
	if strings.Join(clients, " ") != strings.Join(want, " ") {
		t.Errorf("token records name %v, want %v", clients, want)
	}
}
