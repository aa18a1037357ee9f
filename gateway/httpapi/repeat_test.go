package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// A "repeat" that says something else is not applied silently: the same
// business identifier with another code is 409 naming the held referral
// and what differs; the same content is still 200.
func TestRepeatWithDifferentContentIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := e.post("/ServiceRequest", referral("R-REP", "390893007")).must(t, http.StatusCreated).json(t)
	e.post("/ServiceRequest", referral("R-REP", "390893007")).must(t, http.StatusOK)
	res := e.post("/ServiceRequest", referral("R-REP", "710913009")).must(t, http.StatusConflict)
	body := string(res.body)
	if !strings.Contains(body, "ServiceRequest/"+first["id"].(string)) || !strings.Contains(body, "differs from it in code") ||
		!strings.Contains(body, "If-Match") {
		t.Errorf("409 does not name the referral, what differs and how to change it: %s", body)
	}
	got := e.get("/ServiceRequest/" + first["id"].(string)).json(t)
	if c := got["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; c != "390893007" {
		t.Errorf("the held referral changed: code %v", c)
	}
}

// A client's own Task for a referral that already has its Task is the
// held Task only when it says nothing else; its identifier, status or
// priority are not dropped without a word.
func TestClientTaskThatDiffersIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-TASK-DIFF", "390893007")).must(t, http.StatusCreated).json(t)
	own := `{"resourceType":"Task","identifier":[{"system":"https://example-gp.nhs.uk/task-id","value":"T-9"}],"status":"requested","intent":"order",` +
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"ServiceRequest/` + sr["id"].(string) + `"}}`
	res := e.post("/Task", []byte(own)).must(t, http.StatusConflict)
	if !strings.Contains(string(res.body), "identifier") || !strings.Contains(string(res.body), "PUT Task/") {
		t.Errorf("409 does not say what differs: %s", res.body)
	}
	plain := strings.Replace(own, `"identifier":[{"system":"https://example-gp.nhs.uk/task-id","value":"T-9"}],`, "", 1)
	e.post("/Task", []byte(plain)).must(t, http.StatusOK)
}

// An update that changes nothing is answered with the current version: no
// new version, no Provenance, no notification to the GP.
func TestUpdateThatChangesNothingWritesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-NOOP", "390893007")).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	id := task["id"].(string)
	walking := as("walking")
	task["status"] = "accepted"
	b, _ := json.Marshal(task)
	e.put("/Task/"+id, b, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	cur := e.get("/Task/"+id, walking...).must(t, http.StatusOK)
	notify := func() int { return len(e.queued(t, gateway.QueueNotify)) }
	before, provs := notify(), total(t, e.get("/Provenance?target=Task/"+id))

	again := e.put("/Task/"+id, cur.body, with(walking, "If-Match", `W/"2"`)...).must(t, http.StatusOK)
	if again.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag %s, want the unchanged version 2", again.header.Get("ETag"))
	}
	e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"replace","path":"/status","value":"accepted"}]`),
		with(walking, "Content-Type", "application/json-patch+json")...).must(t, http.StatusOK)
	if v := e.get("/Task/" + id).header.Get("ETag"); v != `W/"2"` {
		t.Errorf("a new version was made: %s", v)
	}
	if n := total(t, e.get("/Provenance?target=Task/"+id)); n != provs {
		t.Errorf("Provenance %d -> %d", provs, n)
	}
	if n := notify(); n != before {
		t.Errorf("notifications %d -> %d", before, n)
	}
}
