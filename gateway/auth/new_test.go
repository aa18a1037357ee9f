package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestNewRejects(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := jwk.Import(rsaA)
	if err != nil {
		t.Fatal(err)
	}
	octJWK, err := jwk.Import([]byte("a shared secret that must never be a client key"))
	if err != nil {
		t.Fatal(err)
	}
	encKey := jwkOf(t, rsaB, "enc", "")
	_ = encKey.Set(jwk.KeyUsageKey, "enc")

	good := func() Client {
		return Client{ID: "practice-a", Kind: KindGP, Organization: orgA,
			JWKS: jwksJSON(t, jwkOf(t, rsaA, "k1", "")), Scopes: []string{"system/Task.rs"}}
	}
	base := func() Options {
		return Options{TokenURL: testTokenURL, Replay: &memReplay{}, Tokens: &memTokens{}, Clients: []Client{good()}}
	}
	withClient := func(mod func(c *Client)) Options {
		o := base()
		mod(&o.Clients[0])
		return o
	}
	cases := []struct {
		name string
		o    Options
		want []string
	}{
		{"JWKS not JSON", withClient(func(c *Client) { c.JWKS = json.RawMessage(`{"keys":`) }), []string{`client "practice-a"`, "not a JWK Set"}},
		{"a single JWK, not a set", withClient(func(c *Client) {
			b, _ := json.Marshal(jwkOf(t, rsaA, "k1", ""))
			c.JWKS = b
		}), []string{`"keys" array`}},
		{"empty set", withClient(func(c *Client) { c.JWKS = json.RawMessage(`{"keys":[]}`) }), []string{"no keys"}},
		{"garbage key", withClient(func(c *Client) { c.JWKS = json.RawMessage(`{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`) }), []string{"not a usable JWK Set"}},
		{"private key", withClient(func(c *Client) { c.JWKS = jwksJSON(t, privJWK) }), []string{"private key material"}},
		{"symmetric key", withClient(func(c *Client) { c.JWKS = jwksJSON(t, octJWK) }), []string{"symmetric"}},
		{"RSA 1024", withClient(func(c *Client) {
			c.JWKS = json.RawMessage(`{"keys":[{"kty":"RSA","kid":"small","e":"AQAB","n":"` +
				base64.RawURLEncoding.EncodeToString(small.N.Bytes()) + `"}]}`)
		}), []string{"1024 bits", "2048"}},
		{"EC P-256", withClient(func(c *Client) { c.JWKS = jwksJSON(t, jwkOf(t, p256, "p256", "")) }), []string{"P-256", "P-384"}},
		{"key alg RS256", withClient(func(c *Client) { c.JWKS = jwksJSON(t, jwkOf(t, rsaA, "k", "RS256")) }), []string{`alg "RS256" is not accepted`}},
		{"key alg ES384 on an RSA key", withClient(func(c *Client) { c.JWKS = jwksJSON(t, jwkOf(t, rsaA, "k", "ES384")) }), []string{"does not fit"}},
		{"encryption key", withClient(func(c *Client) { c.JWKS = jwksJSON(t, encKey) }), []string{`use is "enc"`}},
		{"duplicate kid", withClient(func(c *Client) { c.JWKS = jwksJSON(t, jwkOf(t, rsaA, "same", ""), jwkOf(t, rsaB, "same", "")) }), []string{"more than one key"}},
		{"both jwks and jwks_url", withClient(func(c *Client) { c.JWKSURL = "https://gp.example/jwks.json" }), []string{"exactly one"}},
		{"neither", withClient(func(c *Client) { c.JWKS = nil }), []string{"needs jwks"}},
		{"jwks_url without an HTTP client", withClient(func(c *Client) { c.JWKS, c.JWKSURL = nil, "https://gp.example/jwks.json" }), []string{"HTTPClient"}},
		{"jwks_url relative", withClient(func(c *Client) { c.JWKS, c.JWKSURL = nil, "/jwks.json" }), []string{"absolute"}},
		{"jwks_url with credentials", withClient(func(c *Client) { c.JWKS, c.JWKSURL = nil, "https://u:p@gp.example/jwks.json" }), []string{"without credentials"}},
		{"patient scope", withClient(func(c *Client) { c.Scopes = []string{"patient/Task.read"} }), []string{"auth.scopes", "patient/"}},
		{"no scopes", withClient(func(c *Client) { c.Scopes = nil }), []string{"auth.scopes is empty"}},
		{"no kind", withClient(func(c *Client) { c.Kind = "" }), []string{"kind"}},
		{"no organization", withClient(func(c *Client) { c.Organization = Identifier{} }), []string{"organization"}},
		{"no id", withClient(func(c *Client) { c.ID = "" }), []string{"client #1", "id is required"}},
		{"duplicate id", func() Options { o := base(); o.Clients = append(o.Clients, good()); return o }(), []string{"registered twice"}},
		{"no token URL", func() Options { o := base(); o.TokenURL = ""; return o }(), []string{"TokenURL"}},
		{"relative token URL", func() Options { o := base(); o.TokenURL = "/auth/token"; return o }(), []string{"TokenURL"}},
		{"no replay cache", func() Options { o := base(); o.Replay = nil; return o }(), []string{"Replay"}},
		{"no token store", func() Options { o := base(); o.Tokens = nil; return o }(), []string{"Tokens"}},
		{"TTL over 300 s", func() Options { o := base(); o.TokenTTL = 10 * time.Minute; return o }(), []string{"TokenTTL"}},
		{"negative refresh interval", func() Options { o := base(); o.JWKSRefreshInterval = -time.Second; return o }(), []string{"JWKSRefreshInterval"}},
		{"max staleness below the cache TTL", func() Options { o := base(); o.JWKSMaxStale = 30 * time.Minute; return o }(), []string{"JWKSMaxStale", "JWKSCacheTTL"}},
		{"default max staleness below a longer cache TTL", func() Options { o := base(); o.JWKSCacheTTL = 48 * time.Hour; return o }(), []string{"JWKSMaxStale 24h0m0s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.o)
			if err == nil {
				t.Fatalf("New succeeded (%v), want an error", s)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Options{
		TokenURL: testTokenURL, Replay: &memReplay{}, Tokens: &memTokens{},
		Clients: []Client{
			{ID: "bad-1", Kind: KindGP, Organization: orgA, JWKS: json.RawMessage(`[]`), Scopes: []string{"system/Task.rs"}},
			{ID: "bad-2", Kind: KindProvider, Organization: orgA, JWKS: jwksJSON(t, jwkOf(t, rsaA, "k", "")), Scopes: []string{"user/Task.rs"}},
		},
	})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, w := range []string{`client "bad-1"`, `client "bad-2"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

func TestNewAcceptsMixedKeys(t *testing.T) {
	// A fetched set may publish keys this server cannot use: they are skipped.
	keys, err := parseJWKS(jwksJSON(t, jwkOf(t, rsaA, "sig", ""), func() jwk.Key {
		k := jwkOf(t, rsaB, "enc", "")
		_ = k.Set(jwk.KeyUsageKey, "enc")
		return k
	}()), false)
	if err != nil || len(keys) != 1 || keys[0].kid != "sig" {
		t.Fatalf("lenient parse = %v, %v; want the one signing key", keys, err)
	}
	s, err := New(Options{
		TokenURL: testTokenURL, Replay: &memReplay{}, Tokens: &memTokens{}, HTTPClient: http.DefaultClient,
		Clients: []Client{
			{ID: "gp", Kind: KindGP, Organization: orgA, JWKS: jwksJSON(t, jwkOf(t, rsaA, "r", "RS512"), jwkOf(t, ecA, "e", "ES384")), Scopes: []string{"system/Task.rs"}},
			{ID: "vcs", Kind: KindProvider, Organization: orgWalk, JWKSURL: "https://vcs.example/jwks.json", Scopes: []string{"system/Task.u"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := s.Client("vcs"); !ok || c.Kind != KindProvider {
		t.Errorf("Client(vcs) = %+v, %v", c, ok)
	}
	if _, ok := s.Client("nobody"); ok {
		t.Error("Client(nobody) found")
	}
}
