package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway/disclosures"
	"github.com/signpost-health/signpost/gateway/worker"
)

// The referring practice reads, for its own referral, every disclosure:
// the delivery to the provider and each read of the provider (API and
// inbox), and nothing of other referrals; other practices and providers
// may not ask.
func TestReferrerReadsTheDisclosures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := newReceiver(t)
	e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret},
		"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
	a := as("practice-a")
	srID := e.post("/ServiceRequest", referral("DISC-1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	other := e.post("/ServiceRequest", referral("DISC-2", "710911006"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskID := e.referralTask(t, srID)["id"].(string)
	eventually(t, "the delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
	e.get("/ServiceRequest/"+srID, callerHeader, "walking").must(t, http.StatusOK)
	if _, err := e.svc.Portal.Referral(context.Background(), testCallers["walking"], taskID); err != nil {
		t.Fatal(err)
	}
	e.get("/ServiceRequest/"+other, callerHeader, "advice").must(t, http.StatusOK)

	for _, entity := range []string{"ServiceRequest/" + srID, "Task/" + taskID} {
		r := e.get("/AuditEvent?entity="+entity, a...).must(t, http.StatusOK)
		checkR4(t, "the disclosures Bundle", r.body)
		events := bundleEntries(t, r, "match")
		var delivered, read bool
		for _, ev := range events {
			s := string(mustJSON(ev))
			if strings.Contains(s, "advice") || strings.Contains(s, other) {
				t.Errorf("%s: a disclosure of another referral: %s", entity, s)
			}
			if !strings.Contains(s, `"walking"`) {
				t.Errorf("%s: a record with no provider: %s", entity, s)
			}
			delivered = delivered || strings.Contains(s, `"code":"110106"`) // DICOM Export
			read = read || strings.Contains(s, `"code":"read"`)
		}
		if !delivered || !read {
			t.Errorf("%s: delivery %v, provider's read %v in %d events: %s", entity, delivered, read, len(events), r.body)
		}
		if strings.Contains(string(r.body), nhsNumber) {
			t.Errorf("the disclosures carry the NHS number")
		}
	}
	e.get("/AuditEvent?entity=ServiceRequest/"+srID, as("practice-b")...).must(t, http.StatusNotFound)
	e.get("/AuditEvent?entity=ServiceRequest/"+srID, callerHeader, "walking").must(t, http.StatusForbidden)
	e.get("/AuditEvent", a...).must(t, http.StatusBadRequest)
	e.get("/AuditEvent?entity=ServiceRequest/"+srID+"&date=2026", a...).must(t, http.StatusBadRequest)
}

// Patient ids are each practice's own: when two practices both refer their
// Patient/p1, a provider's reads of one practice's referral and patient are
// not the other's disclosures, and a record that also names other
// referrals (a search page) shows the practice only its own, with the
// rest counted. Neither the provider's network address nor its users'
// e-mail addresses are the practice's to read.
func TestDisclosuresAreOnlyThisReferrals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, b := as("practice-a"), as("practice-b")
	e.put("/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`), a...).must(t, http.StatusCreated)
	e.put("/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`), b...).must(t, http.StatusCreated)
	subj := `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
	ra := strings.Replace(string(referral("DISC-3A", "390893007")), subj, `"subject":{"reference":"Patient/p1"}`, 1)
	rb := strings.ReplaceAll(strings.Replace(string(referral("DISC-3B", "390893007")), subj, `"subject":{"reference":"Patient/p1"}`, 1), practiceODS, "B82002")
	srA := e.post("/ServiceRequest", []byte(ra), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	srB := e.post("/ServiceRequest", []byte(rb), b...).must(t, http.StatusCreated).json(t)["id"].(string)
	ta := e.referralTask(t, srA)["id"].(string)
	tb := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srB, b...).must(t, http.StatusOK), "match")[0]["id"].(string)

	// walking reads practice B's referral and its patient ...
	e.get("/Task?_id="+tb+"&_include=Task:patient", callerHeader, "walking").must(t, http.StatusOK)
	d := e.get("/AuditEvent?entity=ServiceRequest/"+srA, a...).must(t, http.StatusOK)
	if n := len(bundleEntries(t, d, "match")); n != 0 {
		t.Errorf("practice A is shown %d disclosures of practice B's referral: %s", n, d.body)
	}
	// ... then both referrals in one search: A sees its own Task and
	// patient, B's counted and not named.
	e.get("/Task?_id="+ta+","+tb+"&_include=Task:patient", callerHeader, "walking").must(t, http.StatusOK)
	d = e.get("/AuditEvent?entity=ServiceRequest/"+srA, a...).must(t, http.StatusOK)
	checkR4(t, "the disclosures Bundle", d.body)
	events := bundleEntries(t, d, "match")
	if len(events) != 1 {
		t.Fatalf("%d disclosures, want the search: %s", len(events), d.body)
	}
	s := string(mustJSON(events[0]))
	if strings.Contains(s, tb) || !strings.Contains(s, "Task/"+ta) || !strings.Contains(s, "Patient/p1") || !strings.Contains(s, "more resources, not listed") {
		t.Errorf("the search's record as practice A sees it: %s", s)
	}
	if strings.Contains(s, `"type":"2"}`) { // an agent's network address given as an IP address
		t.Errorf("the provider's network address is shown to the practice: %s", s)
	}
}

// A question reads a bounded part of the trail (disclosures.MaxScanned
// records, 20,000), and says when it stopped before the referral's
// creation.
func TestDisclosuresReadABoundedPartOfTheTrail(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	srID := e.post("/ServiceRequest", referral("DISC-4", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	ctx := context.Background()
	rdb := e.rdb
	keys := e.keys(t, "*audit*")
	if len(keys) != 1 {
		t.Fatalf("audit stream keys %v", keys)
	}
	const written = 21_000
	if disclosures.MaxScanned >= written {
		t.Fatalf("MaxScanned %d: a question may read more than %d records", disclosures.MaxScanned, written)
	}
	for i := 0; i < written/1000; i++ {
		p := rdb.Pipeline()
		for j := 0; j < 1000; j++ {
			p.XAdd(ctx, &redis.XAddArgs{Stream: keys[0], Values: []any{"t", time.Now().UnixMilli(), "i", "search-type", "a", "E", "s", "200", "c", "advice",
				"w", "Task/0123456789abcdef0123456789abcdef/_history/1", "q", "Task?owner"}})
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	r := e.get("/AuditEvent?entity=ServiceRequest/"+srID, a...).must(t, http.StatusOK)
	t.Logf("a question over %d records: %v", written, time.Since(start))
	if !strings.Contains(string(r.body), `"too-costly"`) {
		t.Errorf("no word that older records were not read: %.300s", r.body)
	}
}
