package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
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
