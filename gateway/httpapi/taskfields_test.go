package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The fields that describe where a Task stands stay true when its status
// changes over the API: lastModified is the change's time, and a
// businessStatus the change left alone ("delivered to ...") gives way to
// the new status's; what the caller sets itself is kept.
func TestTaskFieldsStayTrueWhenTheStatusChanges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-FIELDS", "390893007")).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	id := task["id"].(string)
	walking := as("walking")
	put := func(m map[string]any, version string) map[string]any {
		t.Helper()
		b, _ := json.Marshal(m)
		return e.put("/Task/"+id, b, with(walking, "If-Match", version)...).must(t, http.StatusOK).json(t)
	}
	business := func(m map[string]any) string {
		bs, _ := m["businessStatus"].(map[string]any)
		cs, _ := bs["coding"].([]any)
		if len(cs) == 0 {
			return ""
		}
		return cs[0].(map[string]any)["code"].(string)
	}
	// As delivery leaves it.
	task["businessStatus"] = map[string]any{"text": "delivered to Walking for Health"}
	task = put(task, `W/"1"`)

	task["status"] = "accepted"
	task = put(task, `W/"2"`)
	if got := business(task); got != "accepted" {
		t.Errorf("businessStatus after acceptance: %q, %v", got, task["businessStatus"])
	}
	if task["lastModified"] != task["meta"].(map[string]any)["lastUpdated"] {
		t.Errorf("lastModified %v, want the change's time %v", task["lastModified"], task["meta"].(map[string]any)["lastUpdated"])
	}

	// The provider's own businessStatus wins.
	task["status"] = "in-progress"
	task["businessStatus"] = map[string]any{"text": "First session booked"}
	task = put(task, `W/"3"`)
	if bs := task["businessStatus"].(map[string]any); bs["text"] != "First session booked" || bs["coding"] != nil {
		t.Errorf("the provider's businessStatus was replaced: %v", bs)
	}

	// A reason is the status's it was given for: on hold for a reason, then
	// in progress again, the Task has no reason; and a status that needs one
	// needs its own, not the one left from before.
	task["status"] = "on-hold"
	task["statusReason"] = map[string]any{"text": "Away for two weeks"}
	task = put(task, `W/"4"`)
	if task["statusReason"].(map[string]any)["text"] != "Away for two weeks" {
		t.Fatalf("statusReason of on-hold: %v", task["statusReason"])
	}
	task["status"] = "in-progress"
	task = put(task, `W/"5"`)
	if task["statusReason"] != nil {
		t.Errorf("statusReason %v kept from on-hold after returning to in-progress", task["statusReason"])
	}
	task["status"] = "on-hold"
	task["statusReason"] = map[string]any{"text": "Unwell"}
	task = put(task, `W/"6"`)
	task["status"] = "failed"
	b, _ := json.Marshal(task)
	r := e.put("/Task/"+id, b, with(walking, "If-Match", `W/"7"`)...).must(t, http.StatusUnprocessableEntity)
	if issues := readOutcome(t, r); len(issues) != 1 || issues[0].Expression[0] != "Task.statusReason.text" {
		t.Errorf("failed with the on-hold reason left over: %s", r.body)
	}
}

// A change made without authentication (an operator's, on a loopback
// deployment) is not recorded as the referring practice's.
func TestOperatorsChangeIsNotAttributedToThePractice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-PROV-OP", "390893007")).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	task["status"] = "accepted"
	b, _ := json.Marshal(task)
	e.put("/Task/"+task["id"].(string), b, "If-Match", `W/"1"`).must(t, http.StatusOK)
	provs := bundleEntries(t, e.get("/Provenance?target=Task/"+task["id"].(string)), "match")
	if len(provs) != 1 {
		t.Fatalf("%d Provenance", len(provs))
	}
	who := provs[0]["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)
	if id, ok := who["identifier"].(map[string]any); ok && id["value"] == practiceODS {
		t.Errorf("an operator's change is recorded as the practice's: %v", who)
	}
}
