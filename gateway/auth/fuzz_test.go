package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"system/Task.rs", "system/*.cruds", "system/Task.read", "system/Task.write",
		"system/Task.*", "patient/Task.read", "user/*.*", "launch", "system/Task.rs?x=1", "system/Task.sr", "", "/", ".", "system/.", "system/é.r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		if sc.Raw != s || sc.Actions == 0 || sc.Actions >= 1<<5 || !validResource(sc.Resource) {
			t.Fatalf("ParseScope(%q) = %+v", s, sc)
		}
		// The canonical v2 form parses to the same meaning.
		again, err := ParseScope(sc.String())
		if err != nil || again.Resource != sc.Resource || again.Actions != sc.Actions {
			t.Fatalf("canonical form %q of %q: %+v, %v", sc.String(), s, again, err)
		}
	})
}

// FuzzTokenAssertion feeds arbitrary client assertions to the token endpoint:
// it must never panic and must answer with an OAuth error (never a token).
func FuzzTokenAssertion(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.valid(f))
	f.Add(sign(f, assertionSpec{alg: jwa.ES384(), key: ecA, kid: "ec-a", claims: claimsFor("practice-a", fx.clock.Now())}))
	f.Add(rawJWS(`{"alg":"none"}`, claimsFor("practice-a", fx.clock.Now()), ""))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzM4NCJ9.e30.AAAA")
	f.Fuzz(func(t *testing.T, a string) {
		fx.replay.seen = nil // the seeds are valid; let them succeed each time
		resp, err := fx.srv.Token(context.Background(), form(a, ""))
		if err == nil {
			if resp == nil || len(resp.AccessToken) != 43 {
				t.Fatalf("no error and no token")
			}
			return
		}
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code == "" || (oe.Status != 400 && oe.Status != 401) {
			t.Fatalf("error %v is not an OAuth error", err)
		}
	})
}
