package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// rawJWS builds a compact JWS from a literal header and claims with the given
// signature part, for shapes a JOSE library will not produce.
func rawJWS(header string, claims map[string]any, sig string) string {
	payload, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "." + sig
}

func TestTokenAttacks(t *testing.T) {
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	type build func(t *testing.T, f *fixture) url.Values
	// rs384 signs claims (modified by mod) for practice-a with rsaA / kid rsa-a.
	rs384 := func(mod func(c map[string]any)) build {
		return func(t *testing.T, f *fixture) url.Values {
			c := claimsFor("practice-a", f.clock.Now())
			mod(c)
			return form(sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: c}), "")
		}
	}
	withSpec := func(mod func(a *assertionSpec, now time.Time)) build {
		return func(t *testing.T, f *fixture) url.Values {
			a := assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: claimsFor("practice-a", f.clock.Now())}
			mod(&a, f.clock.Now())
			return form(sign(t, a), "")
		}
	}
	other := newJWKSServer(t, jwksJSON(t, jwkOf(t, rsaA, "remote-1", "")))

	cases := []struct {
		name   string
		build  build
		code   string
		status int
		desc   string // a fragment the description must contain
	}{
		{"alg none", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"alg":"none","kid":"rsa-a"}`, claimsFor("practice-a", f.clock.Now()), ""), "")
		}, CodeInvalidClient, 401, `alg "none"`},
		{"HS256 with the public key as secret", withSpec(func(a *assertionSpec, _ time.Time) {
			a.alg, a.key = jwa.HS256(), pubPEM
		}), CodeInvalidClient, 401, "HMAC"},
		{"HS512", withSpec(func(a *assertionSpec, _ time.Time) {
			a.alg, a.key = jwa.HS512(), []byte("a shared secret of reasonable length!!")
		}), CodeInvalidClient, 401, "HMAC"},
		{"RS256 not allowed", withSpec(func(a *assertionSpec, _ time.Time) { a.alg = jwa.RS256() }),
			CodeInvalidClient, 401, `alg "RS256" is not accepted`},
		{"ES256 not allowed", withSpec(func(a *assertionSpec, _ time.Time) { a.alg, a.key, a.kid = jwa.ES256(), ecA, "ec-a" }),
			CodeInvalidClient, 401, `alg "ES256" is not accepted`},
		{"no alg", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"kid":"rsa-a"}`, claimsFor("practice-a", f.clock.Now()), "c2ln"), "")
		}, CodeInvalidClient, 401, "no alg"},
		{"duplicate alg member", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"alg":"RS384","alg":"none","kid":"rsa-a"}`, claimsFor("practice-a", f.clock.Now()), "c2ln"), "")
		}, CodeInvalidClient, 401, "more than once"},
		{"case-variant alg member is not alg", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"ALG":"RS384","kid":"rsa-a"}`, claimsFor("practice-a", f.clock.Now()), "c2ln"), "")
		}, CodeInvalidClient, 401, "no alg"},
		{"crit header", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"alg":"RS384","kid":"rsa-a","crit":["exp"],"exp":1}`, claimsFor("practice-a", f.clock.Now()), "c2ln"), "")
		}, CodeInvalidClient, 401, `"crit"`},
		{"embedded jwk is refused", func(t *testing.T, f *fixture) url.Values {
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.KeyIDKey, "rsa-a")
			_ = hdr.Set(jws.JWKKey, jwkOf(t, rsaOther, "evil", ""))
			payload, _ := json.Marshal(claimsFor("practice-a", f.clock.Now()))
			out, err := jws.Sign(payload, jws.WithKey(jwa.RS384(), rsaOther, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			return form(string(out), "")
		}, CodeInvalidClient, 401, "embeds a key"},
		{"wrong signature (other key)", withSpec(func(a *assertionSpec, _ time.Time) { a.key = rsaOther }),
			CodeInvalidClient, 401, "signature does not verify"},
		{"signature of another assertion", func(t *testing.T, f *fixture) url.Values {
			good := f.valid(t)
			c := claimsFor("practice-a", f.clock.Now())
			forged := rawJWS(`{"alg":"RS384","kid":"rsa-a"}`, c, good[strings.LastIndex(good, ".")+1:])
			return form(forged, "")
		}, CodeInvalidClient, 401, "signature does not verify"},
		{"no signature", func(t *testing.T, f *fixture) url.Values {
			return form(rawJWS(`{"alg":"RS384","kid":"rsa-a"}`, claimsFor("practice-a", f.clock.Now()), ""), "")
		}, CodeInvalidClient, 401, "no signature"},
		{"not a JWT", func(t *testing.T, f *fixture) url.Values { return form("not-a-jwt", "") },
			CodeInvalidClient, 401, "compact form"},
		{"JWE", func(t *testing.T, f *fixture) url.Values { return form("a.b.c.d.e", "") },
			CodeInvalidClient, 401, "JWE"},
		{"padded base64", func(t *testing.T, f *fixture) url.Values {
			v := f.valid(t)
			return form(v[:strings.Index(v, ".")]+"=="+v[strings.Index(v, "."):], "")
		}, CodeInvalidClient, 401, "base64url"},
		{"exp missing", rs384(func(c map[string]any) { delete(c, "exp") }), CodeInvalidClient, 401, "exp claim is missing"},
		{"exp in the past", withSpec(func(a *assertionSpec, now time.Time) { a.claims["exp"] = now.Add(-2 * time.Minute).Unix() }),
			CodeInvalidClient, 401, "expired"},
		{"exp 10 minutes ahead", withSpec(func(a *assertionSpec, now time.Time) { a.claims["exp"] = now.Add(10 * time.Minute).Unix() }),
			CodeInvalidClient, 401, "more than 5m0s ahead"},
		{"exp a string", rs384(func(c map[string]any) { c["exp"] = "tomorrow" }), CodeInvalidClient, 401, "NumericDate"},
		{"exp null", rs384(func(c map[string]any) { c["exp"] = nil }), CodeInvalidClient, 401, "NumericDate"},
		{"nbf in the future", withSpec(func(a *assertionSpec, now time.Time) { a.claims["nbf"] = now.Add(2 * time.Minute).Unix() }),
			CodeInvalidClient, 401, "nbf"},
		{"iat in the future", withSpec(func(a *assertionSpec, now time.Time) { a.claims["iat"] = now.Add(2 * time.Minute).Unix() }),
			CodeInvalidClient, 401, "iat"},
		{"jti missing", rs384(func(c map[string]any) { delete(c, "jti") }), CodeInvalidClient, 401, "jti claim is missing"},
		{"jti not a string", rs384(func(c map[string]any) { c["jti"] = 42 }), CodeInvalidClient, 401, "jti"},
		{"jti too long", rs384(func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }), CodeInvalidClient, 401, "jti"},
		{"wrong aud", rs384(func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" }),
			CodeInvalidClient, 401, "is not this token endpoint"},
		{"aud array without the token URL", rs384(func(c map[string]any) { c["aud"] = []string{"https://a.example", "https://b.example"} }),
			CodeInvalidClient, 401, "does not contain"},
		{"aud missing", rs384(func(c map[string]any) { delete(c, "aud") }), CodeInvalidClient, 401, "aud claim is missing"},
		{"aud a number", rs384(func(c map[string]any) { c["aud"] = 7 }), CodeInvalidClient, 401, "neither a string"},
		{"iss != sub", rs384(func(c map[string]any) { c["sub"] = "practice-two" }), CodeInvalidClient, 401, "differ"},
		{"sub missing", rs384(func(c map[string]any) { delete(c, "sub") }), CodeInvalidClient, 401, "sub claim is missing"},
		{"unknown client", withSpec(func(a *assertionSpec, now time.Time) { a.claims = claimsFor("practice-z", now) }),
			CodeInvalidClient, 401, `"practice-z" is not a registered client_id`},
		{"client_id parameter differs", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Set("client_id", "practice-two")
			return v
		}, CodeInvalidClient, 401, "does not match"},
		{"unknown kid, inline JWKS", withSpec(func(a *assertionSpec, _ time.Time) { a.kid = "rotated-away" }),
			CodeInvalidClient, 401, `no key with kid "rotated-away"`},
		{"kid of a key of the wrong type", withSpec(func(a *assertionSpec, _ time.Time) { a.kid = "ec-a" }),
			CodeInvalidClient, 401, "cannot verify alg RS384"},
		{"missing kid with two usable keys", withSpec(func(a *assertionSpec, now time.Time) {
			a.kid = ""
			a.claims = claimsFor("practice-two", now)
		}), CodeInvalidClient, 401, "ambiguous"},
		{"jku on an inline client", withSpec(func(a *assertionSpec, _ time.Time) { a.jku = "https://attacker.example/jwks.json" }),
			CodeInvalidClient, 401, "registered its keys inline"},
		{"jku pointing elsewhere", func(t *testing.T, f *fixture) url.Values {
			a := assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", jku: other.URL + "/jwks.json",
				claims: claimsFor("leeds-walking", f.clock.Now())}
			return form(sign(t, a), "")
		}, CodeInvalidClient, 401, "is not the jwks_url registered"},
		{"scope not allowed", func(t *testing.T, f *fixture) url.Values { return form(f.valid(t), "system/Task.rs system/Task.u") },
			CodeInvalidScope, 400, `"system/Task.u" is not allowed`},
		{"patient scope", func(t *testing.T, f *fixture) url.Values { return form(f.valid(t), "patient/Task.read") },
			CodeInvalidScope, 400, "patient/ scopes"},
		{"wildcard scope beyond the allowed type", func(t *testing.T, f *fixture) url.Values { return form(f.valid(t), "system/*.rs") },
			CodeInvalidScope, 400, `"system/*.rs" is not allowed`},
		{"wrong grant_type", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Set("grant_type", "authorization_code")
			return v
		}, CodeUnsupportedGrantType, 400, "client_credentials"},
		{"grant_type missing", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Del("grant_type")
			return v
		}, CodeInvalidRequest, 400, "grant_type is missing"},
		{"missing assertion type", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Del("client_assertion_type")
			return v
		}, CodeInvalidRequest, 400, "client_assertion_type is missing"},
		{"wrong assertion type", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return v
		}, CodeInvalidRequest, 400, "not supported"},
		{"missing assertion", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Del("client_assertion")
			return v
		}, CodeInvalidRequest, 400, "client_assertion is missing"},
		{"assertion too long", func(t *testing.T, f *fixture) url.Values {
			return form(strings.Repeat("a", MaxAssertionBytes+1), "")
		}, CodeInvalidRequest, 400, "at most"},
		{"repeated parameter", func(t *testing.T, f *fixture) url.Values {
			v := form(f.valid(t), "")
			v.Add("client_assertion", f.valid(t))
			return v
		}, CodeInvalidRequest, 400, "more than once"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			v := tc.build(t, f)
			resp, err := f.srv.Token(context.Background(), v)
			if resp != nil {
				t.Fatalf("got a token, want %s", tc.code)
			}
			oe := wantOAuth(t, err, tc.code, tc.status)
			t.Logf("%d %s", oe.Status, oe.Error())
			if !strings.Contains(oe.Description, tc.desc) {
				t.Errorf("description %q does not contain %q", oe.Description, tc.desc)
			}
			if a := v.Get("client_assertion"); len(a) > 20 {
				for _, part := range strings.Split(a, ".") {
					if len(part) > 20 && strings.Contains(oe.Description, part) {
						t.Errorf("description echoes the assertion: %q", oe.Description)
					}
				}
			}
			if len(f.tokens.m) != 0 {
				t.Errorf("a token was stored")
			}
		})
	}
	if n := other.hits.Load(); n != 0 {
		t.Errorf("the foreign jku was fetched %d times", n)
	}
}

func TestTokenValid(t *testing.T) {
	cases := []struct {
		name   string
		client string
		alg    jwa.SignatureAlgorithm
		key    any
		kid    string
		scope  string
		want   []string
	}{
		{"RS384", "practice-a", jwa.RS384(), rsaA, "rsa-a", "", []string{"system/ServiceRequest.c", "system/Task.rs"}},
		{"ES384", "practice-a", jwa.ES384(), ecA, "ec-a", "", []string{"system/ServiceRequest.c", "system/Task.rs"}},
		{"RS512", "practice-a", jwa.RS512(), rsaA, "rsa-a", "", []string{"system/ServiceRequest.c", "system/Task.rs"}},
		{"RS384 without kid, one usable key", "practice-a", jwa.RS384(), rsaA, "", "", []string{"system/ServiceRequest.c", "system/Task.rs"}},
		{"ES384 without kid, one usable key", "practice-a", jwa.ES384(), ecA, "", "", []string{"system/ServiceRequest.c", "system/Task.rs"}},
		{"v1 read allowed by v2 rs", "practice-a", jwa.RS384(), rsaA, "rsa-a", "system/Task.read", []string{"system/Task.read"}},
		{"subset of actions", "practice-a", jwa.RS384(), rsaA, "rsa-a", "system/Task.r  system/Task.s system/Task.r", []string{"system/Task.r", "system/Task.s"}},
		{"v1 write under a wildcard", "all-access", jwa.RS384(), rsaA, "rsa-a", "system/Task.write system/*.rs", []string{"system/Task.write", "system/*.rs"}},
		{"remote JWKS", "leeds-walking", jwa.RS384(), rsaA, "remote-1", "system/Task.u", []string{"system/Task.u"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := sign(t, assertionSpec{alg: tc.alg, key: tc.key, kid: tc.kid, claims: claimsFor(tc.client, f.clock.Now())})
			resp, err := f.srv.Token(context.Background(), form(a, tc.scope))
			if err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "bearer" || resp.ExpiresIn != 300 || resp.Scope != strings.Join(tc.want, " ") {
				t.Errorf("response = %+v, want bearer, 300 s, scope %q", resp, strings.Join(tc.want, " "))
			}
			if len(resp.AccessToken) != 43 {
				t.Errorf("access token %q is not 43 base64url characters", resp.AccessToken)
			}
			if _, stored := f.tokens.m[resp.AccessToken]; stored {
				t.Error("the store holds the raw token; it must hold only a digest")
			}
			for _, ttl := range f.tokens.ttls {
				if ttl != 300*time.Second {
					t.Errorf("stored with ttl %s, want 300s", ttl)
				}
			}
			g, err := f.srv.Authenticate(context.Background(), "Bearer "+resp.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := f.srv.Client(tc.client)
			if g.ClientID != tc.client || g.Kind != c.Kind || g.Organization != c.Organization ||
				!slices.Equal(g.Scopes, tc.want) || !g.Expires.Equal(f.clock.Now().Add(300*time.Second)) {
				t.Errorf("grant = %+v", g)
			}
			// The jti is remembered until exp plus the clock skew.
			for _, until := range f.replay.seen {
				if want := f.clock.Now().Add(4*time.Minute + ClockSkew); !until.Equal(want) {
					t.Errorf("jti remembered until %s, want %s", until, want)
				}
			}
		})
	}
}

func TestTokenClaimVariants(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	for name, mod := range map[string]func(c map[string]any){
		"aud array containing the token URL": func(c map[string]any) { c["aud"] = []string{"https://other.example", testTokenURL} },
		"exp with a fraction":                func(c map[string]any) { c["exp"] = float64(now.Add(time.Minute).UnixMilli()) / 1000 },
		"exp just within skew past":          func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() },
		"exp 5 minutes ahead":                func(c map[string]any) { c["exp"] = now.Add(5 * time.Minute).Unix() },
		"nbf and iat within skew": func(c map[string]any) {
			c["nbf"], c["iat"] = now.Add(20*time.Second).Unix(), now.Add(20*time.Second).Unix()
		},
		"no iat": func(c map[string]any) { delete(c, "iat") },
	} {
		t.Run(name, func(t *testing.T) {
			c := claimsFor("practice-a", now)
			mod(c)
			a := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: c})
			if _, err := f.srv.Token(context.Background(), form(a, "")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTokenClaimsStricterThanLibrary covers claims the JWT library would
// accept (it reads a NumericDate from a string and keeps an empty jti) but
// RFC 7519 and the replay check do not: each is refused, naming the claim.
func TestTokenClaimsStricterThanLibrary(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	for _, tc := range []struct {
		name string
		mod  func(c map[string]any)
		desc string
	}{
		{"exp a numeric string", func(c map[string]any) { c["exp"] = strconv.FormatInt(now.Add(time.Minute).Unix(), 10) }, "the exp claim is not a NumericDate"},
		{"nbf a numeric string", func(c map[string]any) { c["nbf"] = strconv.FormatInt(now.Unix(), 10) }, "the nbf claim is not a NumericDate"},
		{"iat a numeric string", func(c map[string]any) { c["iat"] = strconv.FormatInt(now.Unix(), 10) }, "the iat claim is not a NumericDate"},
		{"exp negative", func(c map[string]any) { c["exp"] = -1 }, "the exp claim is not a NumericDate"},
		{"empty jti", func(c map[string]any) { c["jti"] = "" }, "the jti claim is not a non-empty string"},
		{"aud an array with a number", func(c map[string]any) { c["aud"] = []any{testTokenURL, 7} }, "neither a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claimsFor("practice-a", now)
			tc.mod(c)
			a := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: c})
			resp, err := f.srv.Token(context.Background(), form(a, ""))
			if resp != nil {
				t.Fatal("got a token")
			}
			oe := wantOAuth(t, err, CodeInvalidClient, 401)
			if !strings.Contains(oe.Description, tc.desc) {
				t.Errorf("description %q does not contain %q", oe.Description, tc.desc)
			}
		})
	}
	if len(f.tokens.m) != 0 || len(f.replay.seen) != 0 {
		t.Errorf("a refused assertion stored a token or recorded a jti")
	}
}

func TestTokenReplay(t *testing.T) {
	f := newFixture(t)
	a := f.valid(t)
	if _, err := f.srv.Token(context.Background(), form(a, "")); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := f.srv.Token(context.Background(), form(a, ""))
	oe := wantOAuth(t, err, CodeInvalidGrant, http.StatusBadRequest)
	if !strings.Contains(oe.Description, "jti already used") {
		t.Errorf("description %q", oe.Description)
	}

	// The same jti from another client is that client's own.
	c := claimsFor("all-access", f.clock.Now())
	c["jti"] = "shared"
	c2 := claimsFor("practice-a", f.clock.Now())
	c2["jti"] = "shared"
	for _, cl := range []map[string]any{c, c2} {
		if _, err := f.srv.Token(context.Background(), form(sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: cl}), "")); err != nil {
			t.Fatal(err)
		}
	}

	// Concurrent replays: exactly one wins.
	a = f.valid(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.srv.Token(context.Background(), form(a, "")); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent uses of one assertion succeeded, want 1", wins)
	}
}

func TestTokenInvalidAssertionDoesNotBurnJTI(t *testing.T) {
	f := newFixture(t)
	c := claimsFor("practice-a", f.clock.Now())
	forged := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaOther, kid: "rsa-a", claims: c})
	if _, err := f.srv.Token(context.Background(), form(forged, "")); err == nil {
		t.Fatal("forged assertion accepted")
	}
	if _, err := f.srv.Token(context.Background(), form(f.valid(t), "system/Task.u")); err == nil {
		t.Fatal("bad scope accepted")
	}
	if len(f.replay.seen) != 0 {
		t.Errorf("refused assertions recorded %d jti", len(f.replay.seen))
	}
	if _, err := f.srv.Token(context.Background(), form(sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: c}), "")); err != nil {
		t.Errorf("the genuine assertion with the forged one's jti: %v", err)
	}
}

func TestTokenRemoteJWKS(t *testing.T) {
	f := newFixture(t)
	try := func(kid string, key any, jku string) error {
		t.Helper()
		alg := jwa.RS384()
		if key == any(ecA) {
			alg = jwa.ES384()
		}
		a := sign(t, assertionSpec{alg: alg, key: key, kid: kid, jku: jku, claims: claimsFor("leeds-walking", f.clock.Now())})
		_, err := f.srv.Token(context.Background(), form(a, ""))
		return err
	}
	hits := func(want int32) {
		t.Helper()
		if got := f.remote.hits.Load(); got != want {
			t.Fatalf("jwks_url fetched %d times, want %d", got, want)
		}
	}
	registered := f.remote.URL + "/jwks.json"

	if err := try("remote-1", rsaA, ""); err != nil {
		t.Fatal(err)
	}
	hits(1)
	if err := try("remote-1", rsaA, registered); err != nil {
		t.Fatalf("jku equal to the registered jwks_url: %v", err)
	}
	hits(1) // cached

	// The client rotates in a new key: the unknown kid triggers one refetch.
	f.remote.set(jwksJSON(t, jwkOf(t, rsaA, "remote-1", ""), jwkOf(t, rsaB, "remote-2", "")))
	f.clock.Advance(61 * time.Second)
	if err := try("remote-2", rsaB, ""); err != nil {
		t.Fatalf("new kid after refetch: %v", err)
	}
	hits(2)

	// Another unknown kid within the interval: no fetch, refused.
	f.remote.set(jwksJSON(t, jwkOf(t, rsaA, "remote-1", ""), jwkOf(t, rsaB, "remote-2", ""), jwkOf(t, ecA, "remote-3", "")))
	f.clock.Advance(10 * time.Second)
	wantOAuth(t, try("remote-3", ecA, ""), CodeInvalidClient, 401)
	wantOAuth(t, try("random-kid", rsaA, ""), CodeInvalidClient, 401)
	hits(2)
	// After the interval the next unknown kid refetches.
	f.clock.Advance(time.Minute)
	if err := try("remote-3", ecA, ""); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	hits(3)

	// A withdrawn key stops working once the cached set expires (1 hour).
	f.remote.set(jwksJSON(t, jwkOf(t, rsaB, "remote-2", "")))
	if err := try("remote-1", rsaA, ""); err != nil {
		t.Fatalf("cached key: %v", err)
	}
	f.clock.Advance(time.Hour)
	err := try("remote-1", rsaA, "")
	oe := wantOAuth(t, err, CodeInvalidClient, 401)
	if !strings.Contains(oe.Description, `no key with kid "remote-1"`) {
		t.Errorf("description %q", oe.Description)
	}
	hits(4)

	// The endpoint fails: the cached set stays in use.
	f.remote.fail.Store(true)
	f.clock.Advance(2 * time.Hour)
	if err := try("remote-2", rsaB, ""); err != nil {
		t.Fatalf("stale set after a failed refresh: %v", err)
	}
	hits(5)
}

func TestTokenRemoteJWKSUnreachable(t *testing.T) {
	f := newFixture(t)
	f.remote.fail.Store(true)
	a := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", claims: claimsFor("leeds-walking", f.clock.Now())})
	_, err := f.srv.Token(context.Background(), form(a, ""))
	oe := wantOAuth(t, err, CodeInvalidClient, 401)
	if !strings.Contains(oe.Description, "HTTP 500") {
		t.Errorf("description %q", oe.Description)
	}
	// Within the interval the URL is not asked again.
	a = sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", claims: claimsFor("leeds-walking", f.clock.Now())})
	_, err = f.srv.Token(context.Background(), form(a, ""))
	wantOAuth(t, err, CodeInvalidClient, 401)
	if n := f.remote.hits.Load(); n != 1 {
		t.Errorf("fetched %d times, want 1", n)
	}
	f.remote.fail.Store(false)
	f.clock.Advance(time.Minute)
	a = sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", claims: claimsFor("leeds-walking", f.clock.Now())})
	if _, err := f.srv.Token(context.Background(), form(a, "")); err != nil {
		t.Fatal(err)
	}
}

// A client's JWKS host that keeps failing cannot keep a cached key usable
// for ever: the set serves for JWKSMaxStale after its last successful
// fetch, then the client is refused until a fetch, tried at most once a
// minute, succeeds. Each failure, the expiry and the recovery are logged by
// client id, without key material.
func TestTokenRemoteJWKSStaleBound(t *testing.T) {
	f := newFixture(t)
	var last string
	try := func() error {
		t.Helper()
		last = sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", claims: claimsFor("leeds-walking", f.clock.Now())})
		_, err := f.srv.Token(context.Background(), form(last, ""))
		return err
	}
	hits := func(want int32) {
		t.Helper()
		if got := f.remote.hits.Load(); got != want {
			t.Fatalf("jwks_url fetched %d times, want %d", got, want)
		}
	}
	logged := func(msg string, want int) {
		t.Helper()
		if got := strings.Count(f.logs.String(), msg); got != want {
			t.Fatalf("log has %q %d times, want %d:\n%s", msg, got, want, f.logs)
		}
	}

	if err := try(); err != nil {
		t.Fatal(err)
	}
	hits(1)

	// Every refresh fails: the cached set serves until the bound.
	f.remote.fail.Store(true)
	f.clock.Advance(time.Hour)
	if err := try(); err != nil {
		t.Fatalf("an hour after the last fetch, its refresh failing: %v", err)
	}
	hits(2)
	logged("jwks_url fetch failed; the client's cached key set stays in use until it expires", 1)
	f.clock.Advance(defaultJWKSMaxStale - time.Hour - time.Second)
	if err := try(); err != nil {
		t.Fatalf("a second before the bound: %v", err)
	}
	hits(3)
	logged("jwks_url fetch failed", 2)
	logged("key set expired", 0)

	// At the bound it expires, whether or not a fetch is due (the last try
	// was a second ago).
	f.clock.Advance(time.Second)
	oe := wantOAuth(t, try(), CodeInvalidClient, 401)
	for _, want := range []string{`client "leeds-walking"`, "24h0m0s ago", "HTTP 500", "refused until a fetch succeeds"} {
		if !strings.Contains(oe.Description, want) {
			t.Errorf("description %q lacks %q", oe.Description, want)
		}
	}
	if pub := oe.Public(); pub.Description != invalidClientAnswer {
		t.Errorf("the caller is told %q", pub.Description)
	}
	hits(3)
	logged("key set expired", 1)

	// Still refused; fetched again once a minute has passed, and logged once.
	f.clock.Advance(30 * time.Second)
	wantOAuth(t, try(), CodeInvalidClient, 401)
	hits(3)
	f.clock.Advance(30 * time.Second)
	wantOAuth(t, try(), CodeInvalidClient, 401)
	hits(4)
	logged("jwks_url fetch failed; the client has no usable key set", 1)
	logged("key set expired", 1)

	// The host answers again: the next fetch, a minute on, renews the set.
	f.remote.fail.Store(false)
	f.clock.Advance(time.Minute)
	if err := try(); err != nil {
		t.Fatalf("after the host recovered: %v", err)
	}
	hits(5)
	logged("jwks_url fetched again after failures", 1)

	logs := f.logs.String()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(line, "client_id=leeds-walking") {
			t.Errorf("log line names no client: %s", line)
		}
	}
	modulus := base64.RawURLEncoding.EncodeToString(rsaA.N.Bytes())
	if strings.Contains(logs, modulus[:32]) || strings.Contains(logs, last[:32]) {
		t.Errorf("the log holds key material or an assertion:\n%s", logs)
	}
}

// hangUp is a transport whose caller goes away while the answer is on its
// way, as a client does that closes its connection to the token endpoint
// while its request fetches a key set: the caller's context is cancelled
// (cancel), and a request still bound to it fails, as net/http's would.
type hangUp struct {
	cancel context.CancelFunc
	next   http.RoundTripper
}

func (h hangUp) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(r)
	h.cancel()
	if err == nil && r.Context().Err() != nil {
		resp.Body.Close()
		return nil, r.Context().Err()
	}
	return resp, err
}

// Anyone may name a client in an assertion and hang up: a fetch of the
// client's key set that such a request starts is not ended by it. Before,
// it failed and counted as the refresh (none tried again for a minute), so
// whoever did that once a minute made every refresh fail, and the client
// was locked out once its set expired (JWKSMaxStale).
func TestTokenRemoteJWKSFetchOutlivesItsCaller(t *testing.T) {
	f := newFixture(t)
	try := func(ctx context.Context) error {
		t.Helper()
		a := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "remote-1", claims: claimsFor("leeds-walking", f.clock.Now())})
		_, err := f.srv.Token(ctx, form(a, ""))
		return err
	}
	if err := try(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The refresh is due; the request that starts it goes away.
	f.clock.Advance(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	f.srv.httpClient = &http.Client{Transport: hangUp{cancel: cancel, next: f.remote.Client().Transport}}
	_ = try(ctx)
	f.srv.httpClient = f.remote.Client()
	if n := f.remote.hits.Load(); n != 2 {
		t.Fatalf("jwks_url fetched %d times, want 2", n)
	}
	if strings.Contains(f.logs.String(), "fetch failed") {
		t.Fatalf("the fetch failed with its caller gone:\n%s", f.logs)
	}

	// It renewed the set: a day after the first fetch, every refresh since
	// failing, the set is still in use.
	f.remote.fail.Store(true)
	f.clock.Advance(defaultJWKSMaxStale - time.Hour)
	if err := try(context.Background()); err != nil {
		t.Fatalf("a day after the first fetch, an hour less after the renewal: %v", err)
	}
}

func TestTokenStorageErrors(t *testing.T) {
	down := errors.New("connection refused")

	f := newFixture(t)
	f.replay.err = down
	_, err := f.srv.Token(context.Background(), form(f.valid(t), ""))
	var oe *OAuthError
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, down) || errors.As(err, &oe) {
		t.Errorf("replay cache down: err = %v, want ErrUnavailable wrapping the cause", err)
	}

	f = newFixture(t)
	f.tokens.saveErr = down
	_, err = f.srv.Token(context.Background(), form(f.valid(t), ""))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, down) || errors.As(err, &oe) {
		t.Errorf("token store down: err = %v, want ErrUnavailable wrapping the cause", err)
	}
}

func TestOAuthErrorJSON(t *testing.T) {
	b, err := json.Marshal(invalidScope("scope %s is not allowed", quote("system/Task.d")))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"error":"invalid_scope","error_description":"scope \"system/Task.d\" is not allowed"}`; string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	if e := (&OAuthError{Status: 401, Code: CodeInvalidClient}); e.Error() != "invalid_client" {
		t.Errorf("Error() = %q", e.Error())
	}
	if q := quote(strings.Repeat("é", 100)); !strings.HasSuffix(q, "…") || len(q) > 80 {
		t.Errorf("quote of a long value = %q", q)
	}
}

func TestSmartConfiguration(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(SmartConfiguration(testTokenURL), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"token_endpoint":                                   testTokenURL,
		"token_endpoint_auth_methods_supported":            []any{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []any{"RS384", "ES384", "RS512"},
		"grant_types_supported":                            []any{"client_credentials"},
		"capabilities":                                     []any{"client-confidential-asymmetric"},
	}
	for k, v := range want {
		got, _ := json.Marshal(doc[k])
		w, _ := json.Marshal(v)
		if string(got) != string(w) {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	scopes, _ := doc["scopes_supported"].([]any)
	if len(scopes) == 0 {
		t.Error("scopes_supported is empty")
	}
	for _, s := range scopes {
		if _, err := ParseScope(s.(string)); err != nil {
			t.Errorf("advertised scope %v does not parse: %v", s, err)
		}
	}
	if err := json.Unmarshal(SmartConfiguration(testTokenURL, "system/Task.rs"), &doc); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(doc["scopes_supported"]); string(got) != `["system/Task.rs"]` {
		t.Errorf("scopes_supported = %s", got)
	}
}
