package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const testTokenURL = "https://signpost.example/auth/token"

// Keys generated once for the whole package's tests.
var (
	rsaA, rsaB, rsaOther *rsa.PrivateKey
	ecA                  *ecdsa.PrivateKey
)

func TestMain(m *testing.M) {
	gen := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	rsaA, rsaB, rsaOther = gen(), gen(), gen()
	var err error
	if ecA, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// jwkOf is the public JWK of a private key, with kid (and alg if given).
func jwkOf(t testing.TB, priv any, kid, alg string) jwk.Key {
	t.Helper()
	var pub any
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	default:
		pub = priv
	}
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	if alg != "" {
		if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// jwksJSON is a JWK Set document of the given keys.
func jwksJSON(t testing.TB, keys ...jwk.Key) json.RawMessage {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logSink collects a Server's log lines as text.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// memReplay is an in-memory ReplayCache.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
	err  error
}

func (r *memReplay) Remember(_ context.Context, clientID, jti string, until time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return false, r.err
	}
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	k := clientID + "\x00" + jti
	if _, ok := r.seen[k]; ok {
		return false, nil
	}
	r.seen[k] = until
	return true, nil
}

// memTokens is an in-memory TokenStore (expiry is left to Authenticate).
type memTokens struct {
	mu      sync.Mutex
	m       map[string]Grant
	ttls    map[string]time.Duration
	saveErr error
	loadErr error
}

func (s *memTokens) Save(_ context.Context, key string, g Grant, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveErr != nil {
		return s.saveErr
	}
	if s.m == nil {
		s.m, s.ttls = map[string]Grant{}, map[string]time.Duration{}
	}
	s.m[key], s.ttls[key] = g, ttl
	return nil
}

func (s *memTokens) Load(_ context.Context, key string) (*Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	g, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	return &g, nil
}

// jwksServer serves a JWK Set that a test can change, counting requests.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	doc  json.RawMessage
	hits atomic.Int32
	fail atomic.Bool // answer 500
}

func newJWKSServer(t testing.TB, doc json.RawMessage) *jwksServer {
	js := &jwksServer{doc: doc}
	js.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.hits.Add(1)
		if js.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		js.mu.Lock()
		defer js.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(js.doc)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(doc json.RawMessage) { js.mu.Lock(); js.doc = doc; js.mu.Unlock() }

// fixture is a Server with a fake clock, fake stores and four clients:
//   - practice-a (GP): inline JWKS {rsa-a: rsaA, ec-a: ecA}; ServiceRequest.c, Task.rs
//   - practice-two (GP): inline JWKS {one: rsaA, two: rsaB}; Task.rs
//   - leeds-walking (provider): jwks_url on a test server serving {remote-1: rsaA}; Task.rs, Task.u
//   - all-access (provider): inline {rsa-a: rsaA}; system/*.cruds
type fixture struct {
	srv    *Server
	clock  *fakeClock
	replay *memReplay
	tokens *memTokens
	remote *jwksServer
	logs   *logSink
}

var orgA = Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "A81001"}
var orgWalk = Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		clock:  &fakeClock{t: time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)},
		replay: &memReplay{},
		tokens: &memTokens{},
		logs:   &logSink{},
	}
	f.remote = newJWKSServer(t, jwksJSON(t, jwkOf(t, rsaA, "remote-1", "")))
	srv, err := New(Options{
		Clients: []Client{
			{ID: "practice-a", Kind: KindGP, Organization: orgA,
				JWKS:   jwksJSON(t, jwkOf(t, rsaA, "rsa-a", ""), jwkOf(t, ecA, "ec-a", "")),
				Scopes: []string{"system/ServiceRequest.c", "system/Task.rs"}},
			{ID: "practice-two", Kind: KindGP, Organization: orgA,
				JWKS:   jwksJSON(t, jwkOf(t, rsaA, "one", ""), jwkOf(t, rsaB, "two", "")),
				Scopes: []string{"system/Task.rs"}},
			{ID: "leeds-walking", Kind: KindProvider, Organization: orgWalk,
				JWKSURL: f.remote.URL + "/jwks.json",
				Scopes:  []string{"system/Task.rs", "system/Task.u"}},
			{ID: "all-access", Kind: KindProvider, Organization: orgWalk,
				JWKS:   jwksJSON(t, jwkOf(t, rsaA, "rsa-a", "")),
				Scopes: []string{"system/*.cruds"}},
		},
		TokenURL:   testTokenURL,
		Replay:     f.replay,
		Tokens:     f.tokens,
		HTTPClient: f.remote.Client(),
		Now:        f.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(f.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return f
}

// assertionSpec describes a client assertion to sign.
type assertionSpec struct {
	alg    jwa.SignatureAlgorithm
	key    any    // signing key
	kid    string // "" for none
	jku    string
	claims map[string]any
}

var jtiSeq atomic.Int64

// claimsFor gives valid claims for client id at now.
func claimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id, "sub": id, "aud": testTokenURL,
		"exp": now.Add(4 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1)),
	}
}

func sign(t testing.TB, a assertionSpec) string {
	t.Helper()
	payload, err := json.Marshal(a.claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if a.kid != "" {
		if err := hdr.Set(jws.KeyIDKey, a.kid); err != nil {
			t.Fatal(err)
		}
	}
	if a.jku != "" {
		if err := hdr.Set(jws.JWKSetURLKey, a.jku); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(a.alg, a.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// form is a token request with the given assertion and scope.
func form(assertion, scope string) url.Values {
	v := url.Values{
		"grant_type":            {GrantTypeClientCredentials},
		"client_assertion_type": {ClientAssertionTypeJWT},
		"client_assertion":      {assertion},
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

// valid is a valid RS384 assertion for practice-a.
func (f *fixture) valid(t testing.TB) string {
	return sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: claimsFor("practice-a", f.clock.Now())})
}

// wantOAuth checks that err is an *OAuthError with code and status.
func wantOAuth(t testing.TB, err error, code string, status int) *OAuthError {
	t.Helper()
	var oe *OAuthError
	if !errors.As(err, &oe) {
		t.Fatalf("error = %v (%T), want *OAuthError %s", err, err, code)
	}
	if oe.Code != code || oe.Status != status {
		t.Fatalf("error = %d %s (%s), want %d %s", oe.Status, oe.Code, oe.Description, status, code)
	}
	return oe
}
