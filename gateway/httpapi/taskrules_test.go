package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// issueExpressions lists the expression of every issue of an OperationOutcome.
func issueExpressions(t *testing.T, r *response) []string {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", r.body)
	}
	var out []string
	for _, is := range oo.Issue {
		out = append(out, is.Expression...)
	}
	slices.Sort(out)
	return out
}

// mustName fails unless the response has the status and names exactly these
// elements.
func (r *response) mustName(t *testing.T, status int, exprs ...string) {
	t.Helper()
	r.must(t, status)
	slices.Sort(exprs)
	if got := issueExpressions(t, r); !slices.Equal(got, exprs) {
		t.Fatalf("issues name %v, want %v; body: %s", got, exprs, r.body)
	}
}

// referralTask sends a referral as practice-a and returns its Task as read.
func referralTask(t *testing.T, e *env, ident string) map[string]any {
	t.Helper()
	sr := e.post("/ServiceRequest", referral(ident, "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)
	return bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), as("practice-a")...), "match")[0]
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func clone(m map[string]any) map[string]any {
	var out map[string]any
	_ = json.Unmarshal(jsonBody(m), &out)
	return out
}

var (
	contacted = map[string]any{"coding": []any{map[string]any{"system": "https://signpost.health/fhir/CodeSystem/referral-business-status", "code": "contacted"}}}
	outcome   = []any{map[string]any{
		"type":                 map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes", "code": "resulting-activity"}}},
		"valueCodeableConcept": map[string]any{"text": "attended six walking sessions"}}}
)

// With the status unchanged, each side still changes only its own Task
// elements: the referrer cannot write the provider's business status,
// outcome or lastModified, nor the provider the referral's priority, when
// it was made or what it was routed on. Every element refused is named in
// one answer, and nothing is stored.
func TestTaskElementsBelongToOneSide(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, walking := as("practice-a"), as("walking")
	task := referralTask(t, e, "SIDE-1")
	id := task["id"].(string)

	forged := clone(task)
	forged["businessStatus"] = contacted
	forged["output"] = outcome
	forged["lastModified"] = "2026-11-21T10:00:00Z"
	e.put("/Task/"+id, jsonBody(forged), with(a, "If-Match", `W/"1"`)...).
		mustName(t, http.StatusForbidden, "Task.businessStatus", "Task.lastModified", "Task.output")
	// The same through JSON Patch.
	e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"add","path":"/businessStatus","value":{"text":"contacted"}}]`),
		with(a, "Content-Type", "application/json-patch+json")...).mustName(t, http.StatusForbidden, "Task.businessStatus")

	rewritten := clone(task)
	rewritten["priority"] = "urgent"
	rewritten["authoredOn"] = "2020-01-01T00:00:00Z"
	rewritten["input"] = []any{map[string]any{"type": map[string]any{"text": "Social prescribing category"},
		"valueCoding": map[string]any{"system": "https://signpost.health/fhir/CodeSystem/social-prescribing-category", "code": "housing"}}}
	e.put("/Task/"+id, jsonBody(rewritten), with(walking, "If-Match", `W/"1"`)...).
		mustName(t, http.StatusForbidden, "Task.authoredOn", "Task.input", "Task.priority")
	// An element's extensions ("_priority") count as the element; so does
	// a member a typed model would drop.
	ext := clone(task)
	ext["_priority"] = map[string]any{"extension": []any{map[string]any{"url": "https://example.org/x", "valueString": "y"}}}
	ext["owner"].(map[string]any)["extension"] = []any{map[string]any{"url": "https://example.org/x", "valueString": "y"}}
	e.put("/Task/"+id, jsonBody(ext), with(walking, "If-Match", `W/"1"`)...).
		mustName(t, http.StatusForbidden, "Task.owner", "Task.priority")
	// A statusReason only changes with the status it explains.
	reason := clone(task)
	reason["statusReason"] = map[string]any{"text": "made up"}
	e.put("/Task/"+id, jsonBody(reason), with(a, "If-Match", `W/"1"`)...).mustName(t, http.StatusUnprocessableEntity, "Task.statusReason")
	if v := e.get("/Task/"+id, a...).json(t); v["meta"].(map[string]any)["versionId"] != "1" || v["businessStatus"] != nil {
		t.Fatalf("a refused change was stored: %v", v)
	}

	// Each side's own elements, and the same bytes in another order or
	// spacing, are accepted.
	own := clone(task)
	own["priority"] = "urgent"
	e.put("/Task/"+id, jsonBody(own), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"add","path":"/businessStatus","value":{"text":"contacted"}},{"op":"replace","path":"/status","value":"accepted"}]`),
		with(walking, "Content-Type", "application/json-patch+json")...).must(t, http.StatusOK)
}

// A terminal Task's outcome is not rewritten, by either side; the referrer
// may still mark it entered in error.
func TestTerminalTaskOutcomeIsKept(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, walking := as("practice-a"), as("walking")
	task := referralTask(t, e, "SIDE-2")
	id := task["id"].(string)
	patch := func(ops string, who []string) *response {
		return e.do(http.MethodPatch, "/Task/"+id, []byte(ops), with(who, "Content-Type", "application/json-patch+json")...)
	}
	patch(`[{"op":"replace","path":"/status","value":"accepted"}]`, walking).must(t, http.StatusOK)
	done, _ := json.Marshal(outcome)
	patch(`[{"op":"replace","path":"/status","value":"completed"},{"op":"add","path":"/output","value":`+string(done)+`}]`, walking).must(t, http.StatusOK)

	patch(`[{"op":"replace","path":"/output/0/valueCodeableConcept/text","value":"did nothing"}]`, walking).mustName(t, http.StatusUnprocessableEntity, "Task.output")
	patch(`[{"op":"add","path":"/businessStatus","value":{"text":"contacted"}}]`, walking).mustName(t, http.StatusUnprocessableEntity, "Task.businessStatus")
	patch(`[{"op":"remove","path":"/output"}]`, a).mustName(t, http.StatusForbidden, "Task.output")
	if v := e.get("/Task/"+id, a...).json(t); v["meta"].(map[string]any)["versionId"] != "3" {
		t.Fatalf("a refused change was stored: %v", v["meta"])
	}
	patch(`[{"op":"replace","path":"/status","value":"entered-in-error"},{"op":"add","path":"/statusReason","value":{"text":"wrong patient"}}]`, a).must(t, http.StatusOK)
}

// A Task is written back into the GP record as it is stored, so a member
// that is not an element of an R4 Task is refused, by PATCH or PUT, named.
func TestUnknownTaskElementsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	walking := as("walking")
	task := referralTask(t, e, "SIDE-3")
	id := task["id"].(string)
	e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"add","path":"/smuggled","value":{"text":"x"}}]`),
		with(walking, "Content-Type", "application/json-patch+json")...).mustName(t, http.StatusBadRequest, "Task.smuggled")
	withUnknown := clone(task)
	withUnknown["gpNote"] = "written back into the record"
	withUnknown["_owner"] = map[string]any{"id": "x"} // owner is not a primitive
	e.put("/Task/"+id, jsonBody(withUnknown), with(walking, "If-Match", `W/"1"`)...).mustName(t, http.StatusBadRequest, "Task.gpNote", "Task._owner")
	// A primitive's extensions are an element of a Task.
	ok := clone(task)
	ok["status"] = "accepted"
	ok["_status"] = map[string]any{"extension": []any{map[string]any{"url": "https://example.org/x", "valueString": "y"}}}
	e.put("/Task/"+id, jsonBody(ok), with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
}
