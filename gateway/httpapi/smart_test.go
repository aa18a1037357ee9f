package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/httpapi"
)

var (
	keysOnce         sync.Once
	gpKey            *rsa.PrivateKey
	providerKey      *ecdsa.PrivateKey
	gpJWKS, provJWKS json.RawMessage
	jtiCounter       atomic.Int64
)

func testKeys(t *testing.T) {
	keysOnce.Do(func() {
		var err error
		if gpKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if providerKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		gpJWKS, provJWKS = jwks(&gpKey.PublicKey, "gp-1"), jwks(&providerKey.PublicKey, "prov-1")
	})
}

func jwks(pub any, kid string) json.RawMessage {
	k, err := jwk.Import(pub)
	if err != nil {
		panic(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	b, _ := json.Marshal(map[string]any{"keys": []jwk.Key{k}})
	return b
}

// smartClients are a GP system and a provider. The GP system may also
// store and change what its BaRS messages bring beside a referral (a
// Consent, an Encounter, …: gateway.SupportingTypes), as one sending them
// must.
func smartClients(t *testing.T) []auth.Client {
	testKeys(t)
	gp := []string{"system/ServiceRequest.crus", "system/Task.crus", "system/Patient.cru"}
	for _, typ := range gateway.SupportingTypes() {
		gp = append(gp, "system/"+typ+".cru")
	}
	return []auth.Client{
		{ID: "practice-a", Kind: auth.KindGP, Organization: auth.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS},
			JWKS: gpJWKS, Scopes: gp},
		{ID: "walking", Kind: auth.KindProvider, Organization: auth.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"},
			JWKS: provJWKS, Scopes: []string{"system/Task.rus", "system/ServiceRequest.rs", "system/Patient.r"}},
	}
}

// token gets an access token the way a client does: a signed assertion to
// POST /auth/token.
func (e *env) token(t *testing.T, client, scope string) string {
	t.Helper()
	claims, _ := json.Marshal(map[string]any{"iss": client, "sub": client, "aud": httpapi.TokenURL(e.srv.URL),
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": "jti-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+jtiCounter.Add(1)%26))})
	hdr := jws.NewHeaders()
	var signed []byte
	var err error
	if client == "walking" {
		_ = hdr.Set(jws.KeyIDKey, "prov-1")
		signed, err = jws.Sign(claims, jws.WithKey(jwa.ES384(), providerKey, jws.WithProtectedHeaders(hdr)))
	} else {
		_ = hdr.Set(jws.KeyIDKey, "gp-1")
		signed, err = jws.Sign(claims, jws.WithKey(jwa.RS384(), gpKey, jws.WithProtectedHeaders(hdr)))
	}
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {string(signed)}, "scope": {scope}}
	res, err := http.Post(e.srv.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&tok)
	if res.StatusCode != http.StatusOK || tok.AccessToken == "" || tok.ExpiresIn > 300 {
		t.Fatalf("token for %s: %d %+v", client, res.StatusCode, tok)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Error("token response may be cached")
	}
	return tok.AccessToken
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// SMART discovery advertises the scopes of what the API serves, read from
// its CapabilityStatement: every type, with the actions it takes.
func TestSMARTDiscoveryAdvertisesTheScopesServed(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.smart = smartClients(t) })
	var conf struct {
		Scopes []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(e.get(e.srv.URL+"/.well-known/smart-configuration").must(t, http.StatusOK).body, &conf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"system/ServiceRequest.crus", "system/Task.crus", "system/Patient.crus", "system/Subscription.cruds",
		"system/AuditEvent.s", "system/Provenance.rs", "system/Questionnaire.rs",
		"system/Consent.cru", "system/Encounter.cru", "system/QuestionnaireResponse.cru",
	} {
		if !slices.Contains(conf.Scopes, want) {
			t.Errorf("scopes_supported %v lacks %s", conf.Scopes, want)
		}
	}
	for _, s := range conf.Scopes {
		if _, err := auth.ParseScope(s); err != nil {
			t.Errorf("advertised scope %s does not parse: %v", s, err)
		}
	}
}

func TestSMARTBackendServicesEndToEnd(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.smart = smartClients(t) })

	// Discovery and the CapabilityStatement are public.
	var conf map[string]any
	if err := json.Unmarshal(e.get(e.srv.URL+"/.well-known/smart-configuration").must(t, http.StatusOK).body, &conf); err != nil || conf["token_endpoint"] != httpapi.TokenURL(e.srv.URL) {
		t.Errorf("smart-configuration: %v %v", conf, err)
	}
	e.get("/.well-known/smart-configuration").must(t, http.StatusOK)
	e.get("/metadata").must(t, http.StatusOK)

	// No token, a made-up token: 401 with WWW-Authenticate.
	res := e.get("/ServiceRequest").must(t, http.StatusUnauthorized)
	if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
	}
	e.get("/ServiceRequest", bearer("made-up-token")...).must(t, http.StatusUnauthorized)
	e.get("/ServiceRequest", "Authorization", "Bearer "+strings.Repeat("a", 10000)).must(t, http.StatusUnauthorized)

	// The GP system refers; the provider sees and accepts.
	gp := e.token(t, "practice-a", "system/ServiceRequest.crs system/Task.rs")
	sr := e.post("/ServiceRequest", referral("S-1", "390893007"), bearer(gp)...).must(t, http.StatusCreated).json(t)
	prov := e.token(t, "walking", "")
	tasks := bundleEntries(t, e.get("/Task?status=requested", bearer(prov)...).must(t, http.StatusOK), "match")
	if len(tasks) != 1 {
		t.Fatalf("the provider sees %d Tasks", len(tasks))
	}
	e.get("/ServiceRequest/"+sr["id"].(string), bearer(prov)...).must(t, http.StatusOK)
	tasks[0]["status"] = "accepted"
	b, _ := json.Marshal(tasks[0])
	e.put("/Task/"+tasks[0]["id"].(string), b, append(bearer(prov), "If-Match", `W/"1"`)...).must(t, http.StatusOK)

	// Scopes are enforced per interaction: this GP token has no Task.u, and
	// a transaction needs the scope of every entry.
	tasks[0]["status"] = "cancelled"
	tasks[0]["statusReason"] = map[string]any{"text": "synthetic"}
	b, _ = json.Marshal(tasks[0])
	res = e.put("/Task/"+tasks[0]["id"].(string), b, append(bearer(gp), "If-Match", `W/"2"`)...).must(t, http.StatusForbidden)
	if !strings.Contains(res.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`
	e.post("", []byte(tx), bearer(gp)...).must(t, http.StatusForbidden)
	e.post("/ServiceRequest", referral("S-2", "390893007"), bearer(prov)...).must(t, http.StatusForbidden)

	// Entry URLs may be absolute under the FHIR base; the scope check reads them so.
	pat := e.token(t, "practice-a", "system/Patient.c")
	abs := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"` + e.base + `/Patient"}}]}`
	e.post("", []byte(abs), bearer(pat)...).must(t, http.StatusOK)
	// _include reads ServiceRequests: a token that cannot read them cannot include them.
	onlyTasks := e.token(t, "walking", "system/Task.rs")
	e.get("/Task?_include=Task:focus", bearer(onlyTasks)...).must(t, http.StatusForbidden)
	e.get("/Task", bearer(onlyTasks)...).must(t, http.StatusOK)

	// Asking for a scope the client is not registered for is refused.
	form := url.Values{"grant_type": {"client_credentials"}}
	r2, err := http.Post(e.srv.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest {
		t.Errorf("token request without an assertion: %d", r2.StatusCode)
	}
}
