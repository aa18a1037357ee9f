package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auditevent"
)

// A stranger without a token is limited per address before any work, and
// what it may write into the audit trail is bounded: a few small records,
// no parameter lists, then 429s that write nothing. A client with a valid
// token from the same address is not held up by the stranger's count.
func TestAnonymousRequestsLimitedPerAddress(t *testing.T) {
	t.Parallel()
	const burst = 5
	e := setup(t, func(o *options) { o.smart, o.addrRate, o.addrBurst = smartClients(t), 0.001, burst })
	// Get the token first: the token endpoint shares the address's count.
	gp := e.token(t, "practice-a", "system/ServiceRequest.crs")
	long := strings.Repeat("x", 20000)
	statuses := map[int]int{}
	var retry string
	for i := 0; i < 40; i++ {
		var res *response
		switch i % 3 {
		case 0:
			res = e.get("/ServiceRequest?" + long + "=1&identifier=" + nhsNumber)
		case 1:
			res = e.get("/ServiceRequest/"+long, bearer("made-up-token")...)
		default:
			res = e.post("/ServiceRequest", referral("ANON-1", "390893007"))
		}
		statuses[res.status]++
		if res.status == http.StatusTooManyRequests {
			retry = res.header.Get("Retry-After")
		}
	}
	// The burst is shared with the token request made above.
	if statuses[http.StatusUnauthorized] != burst-1 || statuses[http.StatusTooManyRequests] != 40-(burst-1) {
		t.Errorf("40 requests without a valid token answered %v; want %d 401s, then 429s", statuses, burst-1)
	}
	if retry == "" || retry == "0" {
		t.Errorf("Retry-After = %q", retry)
	}
	// The client with a token is counted by its client id, not the address.
	e.get("/ServiceRequest", bearer(gp)...).must(t, http.StatusOK)

	entries, err := e.store.AuditTail(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	anonymous := 0
	for _, en := range entries {
		r := en.Record
		for _, f := range append([]string{r.Query, r.Client, r.Address, r.User, r.Org.Value}, r.What...) {
			if len(f) > gateway.MaxAuditField+len("…") {
				t.Errorf("an audit field of %d bytes: %.60s…", len(f), f)
			}
		}
		if r.Client == "" && r.Interaction != "token" {
			anonymous++
			if r.Query != "" {
				t.Errorf("an unauthenticated request's record lists its parameters: %.80s", r.Query)
			}
		}
	}
	if anonymous != burst-1 {
		t.Errorf("%d records of unauthenticated requests, want %d (one per request let through)", anonymous, burst-1)
	}
	_, raw := e.audit(t)
	if strings.Contains(raw, nhsNumber) {
		t.Error("an NHS number reached the audit trail")
	}
}

// A search's record names the resources it returned, as a read's does.
func TestSearchAuditListsWhatItReturned(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	var ids []string
	for _, ident := range []string{"SA-1", "SA-2"} {
		ids = append(ids, e.post("/ServiceRequest", referral(ident, "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string))
	}
	e.get("/ServiceRequest?status=active", a...).must(t, http.StatusOK)
	events, raw := e.audit(t)
	ev := events[len(events)-1]
	if ev.Subtype[0].Code != "search-type" {
		t.Fatalf("last event %+v, want the search", ev)
	}
	var refs []string
	for _, en := range ev.Entity {
		if en.What.Reference != "" {
			refs = append(refs, en.What.Reference)
		}
	}
	for _, id := range ids {
		want := "ServiceRequest/" + id + "/_history/1"
		found := false
		for _, r := range refs {
			found = found || r == want
		}
		if !found {
			t.Errorf("the search's record names %v, not %s:\n%s", refs, want, raw)
		}
	}
}

// At most gateway.MaxAuditWhat references are listed in one record; the
// rest are counted, so a record stays small however large the page.
func TestAuditRecordBounded(t *testing.T) {
	t.Parallel()
	what := make([]string, 0, 300)
	for range 300 {
		what = append(what, "Task/"+strings.Repeat("t", 1000))
	}
	r := gateway.AuditRecord{Interaction: "search-type", Client: strings.Repeat("c", 5000), What: what, Query: strings.Repeat("q", 5000)}
	fields := r.Fields()
	size := 0
	for _, f := range fields {
		size += len(f)
	}
	if size > (gateway.MaxAuditWhat+12)*(gateway.MaxAuditField+4) {
		t.Errorf("a record of %d bytes", size)
	}
	m := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	back := gateway.ReadAuditRecord(m)
	if len(back.What) != gateway.MaxAuditWhat || back.Unlisted != 300-gateway.MaxAuditWhat {
		t.Errorf("%d listed, %d counted; want %d and %d", len(back.What), back.Unlisted, gateway.MaxAuditWhat, 300-gateway.MaxAuditWhat)
	}
	if !strings.Contains(string(auditevent.Render(back, "http://signpost.test/fhir")), "200 more resources, not listed") {
		t.Error("the AuditEvent does not say how many were left out")
	}
}
