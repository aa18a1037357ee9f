package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/web"
)

// The inbox's forms are no way round the API's rate limit: each change a
// provider's staff send counts against the allowance their provider's own
// system has on the API (one count for both), and over it nothing is
// changed, no GP notification queued and nothing audited; the page says
// so, with Retry-After.
func TestInboxChangesShareTheProvidersAPIAllowance(t *testing.T) {
	t.Parallel()
	const burst = 6
	e := setupSharedAllowance(t, burst)
	e.user("walking", "sam@example.org")
	task := e.refer("RL-1", "390893007", "Alex Example")

	// The provider's own system reads the referral twice over the API.
	fromSystem := func() int {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/fhir/Task/"+task, nil)
		req.Header.Set("Accept", "application/fhir+json")
		req.Header.Set(httpapi.LocalClientHeader, "walking")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for range 2 {
		if got := fromSystem(); got != http.StatusOK {
			t.Fatalf("the provider's system reading its referral: %d", got)
		}
	}
	notifications := func() int {
		jobs, _ := e.store.Queues(gateway.QueueNotify).List(context.Background())
		n := 0
		for _, j := range jobs {
			if j.Fields["event"] == "task-changed" {
				n++
			}
		}
		return n
	}
	updates := func() int {
		n := 0
		for _, r := range e.audited() {
			if r.Interaction == "update" && r.User == "sam@example.org" {
				n++
			}
		}
		return n
	}
	queued := notifications()

	// Staff open the referral (a page view counts too) and record contact
	// ten times, as fast as they can: the allowance left (burst - 3) goes
	// through, the rest is refused.
	b := e.browser()
	b.signIn("sam@example.org")
	b.get("/portal/referrals/" + task)
	statuses := map[int]int{}
	var refused page
	for range 10 {
		p := b.post("/portal/referrals/"+task, url.Values{"action": {"contact"}, "version": {fmt.Sprint(e.version(task))}})
		statuses[p.status]++
		if p.status == http.StatusTooManyRequests {
			refused = p
		}
	}
	made := burst - 3
	if statuses[http.StatusSeeOther] != made || statuses[http.StatusTooManyRequests] != 10-made {
		t.Errorf("ten contacts answered %v; want %d made and %d refused with 429", statuses, made, 10-made)
	}
	if refused.header.Get("Retry-After") == "" || !strings.Contains(refused.body, "Nothing was changed") || !strings.Contains(refused.body, "too many changes") {
		t.Errorf("a refused change's page: Retry-After %q\n%s", refused.header.Get("Retry-After"), refused.body)
	}
	if v := e.version(task); v != 1+made {
		t.Errorf("the Task is at version %d after %d changes, want %d", v, made, 1+made)
	}
	if got := notifications() - queued; got != made {
		t.Errorf("%d GP notifications queued for %d changes", got, made)
	}
	if got := updates(); got != made {
		t.Errorf("%d update audit records for %d changes made (refused ones did nothing and are not audited)", got, made)
	}
	// Recording a measure is a change too, and the system's allowance is
	// the same one, now spent.
	if p := b.post("/portal/referrals/"+task+"/measures/ons4/first-contact", url.Values{}); p.status != http.StatusTooManyRequests {
		t.Errorf("a measure's answers over the limit: %d", p.status)
	}
	if got := fromSystem(); got != http.StatusTooManyRequests {
		t.Errorf("the provider's system after its staff spent the allowance: %d", got)
	}
}

// Pages that show referrals read Redis for the provider as its own
// system's reads do, and share its allowance: over it a page is refused
// (429, Retry-After, words saying to wait and reload), reads nothing and
// shows no one, and is not audited. Signing in, the stylesheet and
// signing out are not counted, so a provider's system that spends the
// allowance cannot lock its staff out of signing in.
func TestInboxPagesShareTheProvidersAPIAllowance(t *testing.T) {
	t.Parallel()
	const burst = 3
	e := setupSharedAllowance(t, burst)
	e.user("walking", "sam@example.org")
	task := e.refer("RL-2", "390893007", "Alex Example")
	b := e.browser()
	if p := b.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	views := func() int {
		n := 0
		for _, r := range e.audited() {
			if r.User == "sam@example.org" && (r.Interaction == "read" || r.Interaction == "search-type") {
				n++
			}
		}
		return n
	}
	// The allowance, spent on the pages alone.
	for _, path := range []string{"/portal/referrals", "/portal/referrals/" + task, "/portal/referrals?list=closed"} {
		if p := b.get(path); p.status != http.StatusOK {
			t.Fatalf("%s within the allowance: %d", path, p.status)
		}
	}
	seen := views()
	for _, path := range []string{"/portal/referrals", "/portal/referrals/" + task, "/portal/referrals/" + task + "/measures/ons4/first-contact"} {
		p := b.get(path)
		if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "reload the page") {
			t.Errorf("%s over the allowance: %d, Retry-After %q\n%s", path, p.status, p.header.Get("Retry-After"), p.body)
		}
		if strings.Contains(p.body, "Alex Example") {
			t.Errorf("%s over the allowance shows the person", path)
		}
	}
	if got := views(); got != seen {
		t.Errorf("%d views audited for pages refused over the allowance", got-seen)
	}
	// The provider's own system shares it.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/fhir/Task/"+task, nil)
	req.Header.Set(httpapi.LocalClientHeader, "walking")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the provider's system after its staff's pages spent the allowance: %d", res.StatusCode)
	}
	// Nobody is locked out: the stylesheet, the sign-in page, signing in
	// from another browser and signing out all work.
	other := e.browser()
	if p := other.get("/portal/static/signpost.css"); p.status != http.StatusOK {
		t.Errorf("the stylesheet over the allowance: %d", p.status)
	}
	if p := other.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Errorf("signing in over the allowance: %d", p.status)
	}
	if p := other.get("/portal/"); p.status != http.StatusSeeOther {
		t.Errorf("the portal's home over the allowance: %d", p.status)
	}
	// (from the refused page's own sign-out form)
	if p := b.post("/portal/sign-out", url.Values{}); p.status != http.StatusOK || !strings.Contains(p.body, "You have signed out") {
		t.Errorf("signing out over the allowance: %d", p.status)
	}
}

// setupSharedAllowance is the pages and the API over one per-client
// allowance of burst requests, then one an hour (none comes back during a
// test), with the API calling the provider "walking" as its own system.
func setupSharedAllowance(t *testing.T, burst int) *env {
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider, Organization: providers[0].Organization}
	return setupWith(t, func(e *env, pages *web.Options, api *httpapi.Options) {
		perClient := e.store.Limiter(1.0/3600, burst)
		api.Limiter, pages.ClientLimits = perClient, httpapi.ClientLimits(perClient)
		api.Caller = func(r *http.Request) (gateway.Caller, error) {
			if r.Header.Get(httpapi.LocalClientHeader) == "walking" {
				return walking, nil
			}
			return practice, nil
		}
	})
}
