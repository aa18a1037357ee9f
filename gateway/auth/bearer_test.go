package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.Token(context.Background(), form(f.valid(t), "system/Task.rs"))
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.AccessToken
	unknown := strings.Repeat("A", 43)

	cases := []struct {
		name   string
		header string
		want   error // nil: authenticates
	}{
		{"valid", "Bearer " + tok, nil},
		{"scheme in lower case", "bearer " + tok, nil},
		{"scheme in upper case, extra spaces", "BEARER   " + tok + " ", nil},
		{"no header", "", ErrNoToken},
		{"blank header", "   ", ErrNoToken},
		{"wrong scheme", "Basic " + tok, ErrNoToken},
		{"scheme glued to the token", "Bearer" + tok, ErrNoToken},
		{"scheme without token", "Bearer", ErrBadToken},
		{"scheme and space without token", "Bearer ", ErrBadToken},
		{"oversized header", "Bearer " + strings.Repeat("A", 9000), ErrBadToken},
		{"unknown token", "Bearer " + unknown, ErrBadToken},
		{"token with a bad character", "Bearer " + tok[:42] + ".", ErrBadToken},
		{"token too short", "Bearer " + tok[:42], ErrBadToken},
		{"token with a tail", "Bearer " + tok + " extra", ErrBadToken},
		{"JWT-looking token", "Bearer eyJhbGciOiJub25lIn0.e30.", ErrBadToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := f.srv.Authenticate(context.Background(), tc.header)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if g.ClientID != "practice-a" || !g.Allows("Task", ActionRead) || g.Allows("ServiceRequest", ActionCreate) {
					t.Errorf("grant = %+v", g)
				}
				return
			}
			if !errors.Is(err, tc.want) || g != nil {
				t.Errorf("got %v, %v; want %v", g, err, tc.want)
			}
		})
	}
}

func TestAuthenticateExpiry(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.Token(context.Background(), form(f.valid(t), ""))
	if err != nil {
		t.Fatal(err)
	}
	h := "Bearer " + resp.AccessToken
	f.clock.Advance(299 * time.Second)
	if _, err := f.srv.Authenticate(context.Background(), h); err != nil {
		t.Fatalf("at 299 s: %v", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.srv.Authenticate(context.Background(), h); !errors.Is(err, ErrBadToken) {
		t.Fatalf("at 300 s: err = %v, want ErrBadToken", err)
	}
}

func TestAuthenticateStoreDown(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.Token(context.Background(), form(f.valid(t), ""))
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("i/o timeout")
	f.tokens.loadErr = down
	_, err = f.srv.Authenticate(context.Background(), "Bearer "+resp.AccessToken)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, down) || errors.Is(err, ErrBadToken) {
		t.Errorf("err = %v, want ErrUnavailable wrapping the cause", err)
	}
}

func TestAuthenticateUnregisteredClient(t *testing.T) {
	f := newFixture(t)
	tok := strings.Repeat("B", 43)
	_ = f.tokens.Save(context.Background(), tokenKey(tok), Grant{ClientID: "removed-practice", Scopes: []string{"system/*.cruds"},
		Expires: f.clock.Now().Add(time.Minute)}, time.Minute)
	if _, err := f.srv.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("token of a client no longer registered: err = %v, want ErrBadToken", err)
	}
}

// An access token's grant is read back from the token store as it was
// issued. When an operator narrows a client's scopes (a key or a system
// found misbehaving), or changes its kind or organisation, and restarts or
// rolls out the new configuration, the tokens already issued must not keep
// what was taken away, on any replica, for the rest of their life.
func TestIssuedTokenHeldToTheClientsCurrentConfiguration(t *testing.T) {
	f := newFixture(t)
	a := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: claimsFor("practice-a", f.clock.Now())})
	res, err := f.srv.Token(context.Background(), form(a, "system/ServiceRequest.c system/Task.rs"))
	if err != nil {
		t.Fatal(err)
	}
	all := sign(t, assertionSpec{alg: jwa.RS384(), key: rsaA, kid: "rsa-a", claims: claimsFor("all-access", f.clock.Now())})
	resAll, err := f.srv.Token(context.Background(), form(all, ""))
	if err != nil {
		t.Fatal(err)
	}
	// The same deployment after a configuration change: practice-a may
	// now only read Tasks, and all-access is a GP system of another
	// organisation allowed Task.rs. The token store (Redis) is shared, as
	// it is.
	orgB := Identifier{System: orgA.System, Value: "B82002"}
	narrowed, err := New(Options{
		Clients: []Client{
			{ID: "practice-a", Kind: KindGP, Organization: orgA,
				JWKS: jwksJSON(t, jwkOf(t, rsaA, "rsa-a", "")), Scopes: []string{"system/Task.rs"}},
			{ID: "all-access", Kind: KindGP, Organization: orgB,
				JWKS: jwksJSON(t, jwkOf(t, rsaA, "rsa-a", "")), Scopes: []string{"system/Task.rs"}},
		},
		TokenURL: testTokenURL, Replay: f.replay, Tokens: f.tokens, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := narrowed.Authenticate(context.Background(), "Bearer "+res.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if g.Allows("ServiceRequest", ActionCreate) {
		t.Errorf("after the client's scopes were narrowed to system/Task.rs, its earlier token still allows ServiceRequest create (scopes %v)",
			slices.Clone(g.Scopes))
	}
	if !g.Allows("Task", ActionRead) || !g.Allows("Task", ActionSearch) {
		t.Errorf("the scopes still configured were lost: %v", g.Scopes)
	}
	g, err = narrowed.Authenticate(context.Background(), "Bearer "+resAll.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Scopes, []string{"system/Task.rs"}) || g.Kind != KindGP || g.Organization != orgB {
		t.Errorf("a system/*.cruds provider token, its client now a GP system of %s allowed system/Task.rs: grant %v %v %v",
			orgB.Value, g.Kind, g.Organization, g.Scopes)
	}
	// Narrowing is per request and leaves the stored grant alone: under
	// the configuration it was issued by, the token has what it was granted.
	if g, _ := f.srv.Authenticate(context.Background(), "Bearer "+res.AccessToken); !g.Allows("ServiceRequest", ActionCreate) {
		t.Errorf("the original configuration's server lost the grant: %v", g.Scopes)
	}
}

func TestAuthenticateHeaderLimit(t *testing.T) {
	f := newFixture(t)
	srv, err := New(Options{
		Clients:  []Client{{ID: "p", Kind: KindGP, Organization: orgA, JWKS: jwksJSON(t, jwkOf(t, rsaA, "k", "")), Scopes: []string{"system/Task.rs"}}},
		TokenURL: testTokenURL, Replay: f.replay, Tokens: f.tokens, MaxAuthorizationHeader: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Authenticate(context.Background(), "Bearer "+strings.Repeat("A", 43)+strings.Repeat(" ", 20)); !errors.Is(err, ErrBadToken) {
		t.Errorf("header over the configured limit: err = %v", err)
	}
}
