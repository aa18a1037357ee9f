package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/auditevent"
)

// Signing in, failing to, being locked out and signing out are each
// audited, naming the account only when it exists and never the password
// or an address typed for no account; lockouts are audited at most as
// often as the limit lets attempts through.
func TestSignInsAndSignOutsAudited(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")

	stranger := e.browser()
	stranger.get("/portal/sign-in")
	stranger.post("/portal/sign-in", url.Values{"email": {"nobody@example.org"}, "password": {"typed for no account"}})
	sam := e.browser()
	if p := sam.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	sam.get("/portal/referrals") // the page's form token, for signing out
	if p := sam.post("/portal/sign-out", url.Values{}); p.status != http.StatusOK {
		t.Fatalf("sign-out: %d", p.status)
	}
	guesser := e.browser()
	statuses := map[int]int{}
	for i := range 12 {
		guesser.get("/portal/sign-in")
		statuses[guesser.post("/portal/sign-in", url.Values{"email": {"sam@example.org"}, "password": {fmt.Sprintf("guess number %d", i)}}).status]++
	}
	// The address's allowance (signInBurst) was spent by the first two
	// sign-ins and two guesses.
	if statuses[http.StatusUnauthorized] != signInBurst-2 || statuses[http.StatusTooManyRequests] != 12-(signInBurst-2) {
		t.Fatalf("guesses answered %v", statuses)
	}

	entries, err := e.store.AuditTail(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var raw strings.Builder
	for _, en := range entries {
		r := en.Record
		got = append(got, fmt.Sprintf("%s %d %s %s", r.Interaction, r.Status, r.User, r.Client))
		raw.Write(auditevent.Render(r, e.srv.URL+"/fhir"))
	}
	want := []string{
		"login 401  ", // no such account: neither the address typed nor a client
		"login 303 sam@example.org walking",
		"search-type 200 sam@example.org walking", // the inbox seen
		"logout 200 sam@example.org walking",
		"login 401 sam@example.org walking",
		"login 401 sam@example.org walking",
	}
	// Then the lockouts: one per attempt the limit would let through
	// (signInBurst here), not one per refused guess.
	for range signInBurst {
		want = append(want, "login 429 sam@example.org walking")
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, secret := range []string{"nobody@example.org", "typed for no account", "guess number", password} {
		if strings.Contains(raw.String(), secret) {
			t.Errorf("the audit trail holds %q", secret)
		}
	}
	if !strings.Contains(raw.String(), `"code":"110122"`) || !strings.Contains(raw.String(), `"code":"110123"`) {
		t.Errorf("sign-in and sign-out are not DICOM Login and Logout events: %s", raw.String())
	}
}
