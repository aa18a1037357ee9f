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
	const burst = 5
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider, Organization: providers[0].Organization}
	e := setupWith(t, func(e *env, pages *web.Options, api *httpapi.Options) {
		// burst requests, then one an hour: none comes back during the test.
		perClient := e.store.Limiter(1.0/3600, burst)
		api.Limiter, pages.ClientLimits = perClient, httpapi.ClientLimits(perClient)
		api.Caller = func(r *http.Request) (gateway.Caller, error) {
			if r.Header.Get(httpapi.LocalClientHeader) == "walking" {
				return walking, nil
			}
			return practice, nil
		}
	})
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

	// Staff record contact ten times, as fast as they can: the allowance
	// left (burst - 2) goes through, the rest is refused.
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
	made := burst - 2
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
	// Pages that only show are not counted.
	if p := b.get("/portal/referrals/" + task); p.status != http.StatusOK {
		t.Errorf("the referral's page over the limit: %d", p.status)
	}
}
