package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

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
