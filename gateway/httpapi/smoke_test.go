package httpapi_test

import (
	"net/http"
	"testing"
)

func TestCreateReferralMakesTask(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testCreateReferralMakesTask)
}

func testCreateReferralMakesTask(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	res := e.post("/ServiceRequest", referral("R-1", "390893007")).must(t, http.StatusCreated)
	sr := res.json(t)
	id := sr["id"].(string)
	if got := res.header.Get("Location"); got != e.base+"/ServiceRequest/"+id+"/_history/1" {
		t.Errorf("Location = %q", got)
	}
	tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+id).must(t, http.StatusOK), "match")
	if len(tasks) != 1 {
		t.Fatalf("want 1 referral Task, got %d", len(tasks))
	}
	owner := tasks[0]["owner"].(map[string]any)
	if owner["reference"] != "Organization/walking" || tasks[0]["status"] != "requested" {
		t.Errorf("task owner/status = %v / %v", owner["reference"], tasks[0]["status"])
	}
}
