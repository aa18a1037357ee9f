package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// as sends requests as one caller.
func as(who string) []string { return []string{callerHeader, who} }

func with(h []string, more ...string) []string { return append(append([]string{}, h...), more...) }

// A second practice and a second provider see nothing of a referral that is
// not theirs: reads, version reads, searches, counts, includes, conditional
// creates and references all behave as if it did not exist.
func TestCrossTenantIsolation(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testCrossTenantIsolation)
}

func testCrossTenantIsolation(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	a, b := as("practice-a"), as("practice-b")
	walking, advice := as("walking"), as("advice")

	e.put("/Patient/pa-1", []byte(`{"resourceType":"Patient","id":"pa-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`), a...).must(t, http.StatusCreated)
	body := strings.Replace(string(referral("T-1", "390893007")), `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"Patient/pa-1"}`, 1)
	sr := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)
	srID := sr["id"].(string)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srID, a...).must(t, http.StatusOK), "match")
	if len(task) != 1 {
		t.Fatalf("practice-a sees %d Tasks of its referral", len(task))
	}
	taskID := task[0]["id"].(string)

	// The other practice and the other provider: 404 and empty.
	for name, who := range map[string][]string{"practice-b": b, "advice": advice} {
		for _, path := range []string{"/ServiceRequest/" + srID, "/ServiceRequest/" + srID + "/_history/1", "/Task/" + taskID, "/Task/" + taskID + "/_history/1", "/Patient/pa-1"} {
			if res := e.get(path, who...); res.status != http.StatusNotFound {
				t.Errorf("%s GET %s: %d, want 404", name, path, res.status)
			}
		}
		for _, q := range []string{"/ServiceRequest", "/ServiceRequest?_id=" + srID, "/Task", "/Task?focus=ServiceRequest/" + srID + "&_include=Task:focus",
			"/Task?owner=walking", "/Patient?identifier=" + nhsNumber, "/Task?_count=0"} {
			res := e.get(q, who...).must(t, http.StatusOK)
			if n := total(t, res); n != 0 || len(bundleEntries(t, res, "")) != 0 {
				t.Errorf("%s %s: total %d, %d entries", name, q, n, len(bundleEntries(t, res, "")))
			}
		}
	}
	// Practice b's conditional create does not find practice a's Patient...
	e.post("/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`),
		with(b, "If-None-Exist", "identifier="+nhsNumber)...).must(t, http.StatusCreated)
	// ...cannot refer to it, take over its id, or claim its referral's Task
	// (practice b's referrals name practice b as their requester).
	asB := func(sr string) []byte {
		return []byte(strings.Replace(sr, `"value":"`+practiceODS+`"`, `"value":"B82002"`, 1))
	}
	if res := e.post("/ServiceRequest", asB(strings.Replace(body, `"value":"T-1"`, `"value":"T-B"`, 1)), b...).must(t, http.StatusUnprocessableEntity); !strings.Contains(string(res.body), "ServiceRequest.subject.reference") {
		t.Errorf("practice b's referral to practice a's Patient is refused for another reason: %s", res.body)
	}
	// Practice b's Patient/pa-1 is its own Patient: the id tells it nothing
	// of practice a's (created as if the id were free, because for b it is).
	e.put("/Patient/pa-1", []byte(`{"resourceType":"Patient","id":"pa-1"}`), b...).must(t, http.StatusCreated)
	if got := e.get("/Patient/pa-1", b...).must(t, http.StatusOK); strings.Contains(string(got.body), nhsNumber) {
		t.Errorf("practice b reads practice a's pa-1: %s", got.body)
	}
	if got := e.get("/Patient/pa-1", a...).must(t, http.StatusOK).json(t); got["meta"].(map[string]any)["versionId"] != "1" || got["identifier"] == nil {
		t.Errorf("practice a's pa-1 changed: %v", got)
	}
	own := `{"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"ServiceRequest/` + srID + `"}}`
	e.post("/Task", []byte(own), b...).must(t, http.StatusUnprocessableEntity)
	// Practice b sending the same business identifier is its own referral.
	e.post("/ServiceRequest", asB(string(referral("T-1", "710913009"))), b...).must(t, http.StatusCreated)

	// The provider it was routed to sees the Task, the referral and the person.
	if n := total(t, e.get("/Task", walking...)); n != 1 {
		t.Errorf("walking sees %d Tasks, want 1", n)
	}
	res := e.get("/Task?status=requested&_include=Task:focus", walking...).must(t, http.StatusOK)
	if len(bundleEntries(t, res, "include")) != 1 {
		t.Errorf("walking's include: %s", res.body)
	}
	for _, path := range []string{"/ServiceRequest/" + srID, "/Patient/pa-1", "/Task/" + taskID} {
		e.get(path, walking...).must(t, http.StatusOK)
	}
	if n := total(t, e.get("/ServiceRequest", walking...)); n != 1 {
		t.Errorf("walking finds %d ServiceRequests, want 1", n)
	}
	// An update by the referrer keeps the referral visible to its provider.
	cur := e.get("/ServiceRequest/"+srID, a...).json(t)
	cur["priority"] = "urgent"
	nb, _ := json.Marshal(cur)
	e.put("/ServiceRequest/"+srID, nb, with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	e.get("/ServiceRequest/"+srID, walking...).must(t, http.StatusOK)
	if n := total(t, e.get("/ServiceRequest", walking...)); n != 1 {
		t.Errorf("after the referrer's update walking finds %d ServiceRequests", n)
	}
}

// Each side makes only its own Task transitions, and providers write
// nothing but their Tasks.
func TestTaskTransitionsBySide(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, walking, advice := as("practice-a"), as("walking"), as("advice")
	sr := e.post("/ServiceRequest", referral("W-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), a...), "match")[0]
	id := task["id"].(string)
	put := func(status string, who []string, version string, want int) {
		t.Helper()
		task["status"] = status
		if status == "rejected" || status == "cancelled" {
			task["statusReason"] = map[string]any{"text": "synthetic reason"}
		}
		b, _ := json.Marshal(task)
		e.put("/Task/"+id, b, with(who, "If-Match", `W/"`+version+`"`)...).must(t, want)
	}
	put("accepted", a, "1", http.StatusForbidden)     // the referrer cannot accept
	put("accepted", advice, "1", http.StatusNotFound) // not advice's Task
	put("accepted", walking, "1", http.StatusOK)      // the provider accepts
	put("in-progress", walking, "2", http.StatusOK)   // and starts
	put("requested", walking, "3", http.StatusForbidden)
	put("cancelled", a, "3", http.StatusOK) // either side may cancel
	// Providers create nothing.
	e.post("/ServiceRequest", referral("W-2", "390893007"), walking...).must(t, http.StatusForbidden)
	e.put("/Patient/x1", []byte(`{"resourceType":"Patient","id":"x1"}`), walking...).must(t, http.StatusForbidden)
}

// A provider moves a referral on with JSON Patch; each change is a new Task
// version with a Provenance naming the provider, which the referrer can read.
func TestPatchTaskWithProvenance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, walking := as("practice-a"), as("walking")
	sr := e.post("/ServiceRequest", referral("PT-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), walking...), "match")[0]
	id := task["id"].(string)
	patch := func(ops string, headers ...string) *response {
		return e.do(http.MethodPatch, "/Task/"+id, []byte(ops), append([]string{"Content-Type", "application/json-patch+json"}, headers...)...)
	}
	patch(`[{"op":"replace","path":"/status","value":"accepted"}]`, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	patch(`[{"op":"replace","path":"/status","value":"in-progress"}]`, walking...).must(t, http.StatusOK)
	patch(`[{"op":"replace","path":"/status","value":"completed"}]`, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusPreconditionFailed)
	patch(`[{"op":"replace","path":"/status","value":"rejected"}]`, walking...).must(t, http.StatusConflict) // in-progress -> rejected
	patch(`[{"op":"replace","path":"/id","value":"other"}]`, walking...).must(t, http.StatusBadRequest)
	patch(`[{"op":"test","path":"/status","value":"requested"}]`, walking...).must(t, http.StatusUnprocessableEntity)
	e.do(http.MethodPatch, "/Task/"+id, []byte(`[]`), walking...).must(t, http.StatusUnsupportedMediaType)
	done := `[{"op":"replace","path":"/status","value":"completed"},{"op":"add","path":"/output","value":[{"type":{"coding":[{"system":"http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes","code":"resulting-activity"}]},"valueCodeableConcept":{"text":"attended six walking sessions"}}]}]`
	patch(done, walking...).must(t, http.StatusOK)
	if v := e.get("/Task/"+id, a...).json(t); v["status"] != "completed" || v["meta"].(map[string]any)["versionId"] != "4" {
		t.Errorf("after patches: %v %v", v["status"], v["meta"])
	}
	// Three changes, three Provenances naming the provider, visible to both sides.
	for _, who := range [][]string{a, walking} {
		provs := bundleEntries(t, e.get("/Provenance?target=Task/"+id, who...).must(t, http.StatusOK), "match")
		if len(provs) != 3 {
			t.Fatalf("%d Provenances, want 3", len(provs))
		}
		agent := provs[0]["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)
		if agent["reference"] != "Organization/walking" {
			t.Errorf("Provenance agent %v", agent)
		}
	}
	if n := total(t, e.get("/Provenance", as("advice")...)); n != 0 {
		t.Errorf("another provider sees %d Provenances", n)
	}
	e.post("/Provenance", []byte(`{"resourceType":"Provenance"}`), a...).must(t, http.StatusMethodNotAllowed)
}

// A referrer's cancellation, or revocation of the referral, reaches the
// provider as a delivery of its own.
func TestCancellationIsDelivered(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testCancellationIsDelivered)
}

func testCancellationIsDelivered(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	a := as("practice-a")
	jobs := func(event string) int { return e.queuedFor(t, gateway.QueueDelivery, event) }
	sr := e.post("/ServiceRequest", referral("CX-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), a...), "match")[0]
	task["status"] = "cancelled"
	task["statusReason"] = map[string]any{"text": "the patient moved away"}
	b, _ := json.Marshal(task)
	e.put("/Task/"+task["id"].(string), b, with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	if n := jobs("cancelled"); n != 1 {
		t.Errorf("%d cancellation deliveries after the Task was cancelled, want 1", n)
	}

	// Revoking the ServiceRequest cancels its Task and tells the provider.
	sr2 := e.post("/ServiceRequest", referral("CX-2", "390893007"), a...).must(t, http.StatusCreated).json(t)
	sr2["status"] = "revoked"
	b, _ = json.Marshal(sr2)
	e.put("/ServiceRequest/"+sr2["id"].(string), b, with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	t2 := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr2["id"].(string), a...), "match")[0]
	if t2["status"] != "cancelled" {
		t.Errorf("Task of a revoked referral is %v", t2["status"])
	}
	if n := jobs("cancelled"); n != 2 {
		t.Errorf("%d cancellation deliveries, want 2", n)
	}
}

func TestSubscriptionAPI(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testSubscriptionAPI)
}

func testSubscriptionAPI(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	a, b, walking := as("practice-a"), as("practice-b"), as("walking")
	sub := `{"resourceType":"Subscription","status":"active","reason":"closed loop","criteria":"http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",` +
		`"_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":"Task?requester=A81001"}]},` +
		`"channel":{"type":"rest-hook","endpoint":"https://gp.example/notify","payload":"application/fhir+json"}}`
	res := e.post("/Subscription", []byte(sub), a...).must(t, http.StatusCreated).json(t)
	id := res["id"].(string)
	if res["status"] != "requested" {
		t.Errorf("a new Subscription is %v, want requested until its handshake", res["status"])
	}
	// Bad subscriptions: each problem named.
	for name, body := range map[string]string{
		"another topic":   strings.Replace(sub, "SubscriptionTopic/Task", "SubscriptionTopic/Other", 1),
		"websocket":       strings.Replace(sub, `"rest-hook"`, `"websocket"`, 1),
		"filter on owner": strings.Replace(sub, "Task?requester=A81001", "Task?owner=x", 1),
		"relative hook":   strings.Replace(sub, "https://gp.example/notify", "/notify", 1),
	} {
		if r := e.post("/Subscription", []byte(body), a...); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	e.post("/Subscription", []byte(sub), walking...).must(t, http.StatusForbidden)
	// Only its owner sees it.
	e.get("/Subscription/"+id, b...).must(t, http.StatusNotFound)
	e.get("/Subscription/"+id+"/$status", b...).must(t, http.StatusNotFound)
	if n := total(t, e.get("/Subscription", b...)); n != 0 {
		t.Errorf("practice-b sees %d subscriptions", n)
	}
	st := e.get("/Subscription/"+id+"/$status", a...).must(t, http.StatusOK)
	if !strings.Contains(string(st.body), `"events-since-subscription-start","valueString":"0"`) {
		t.Errorf("$status: %s", st.body)
	}
	// An update is its owner's, names an existing subscription, and is
	// confirmed by a new handshake (status requested again).
	withID := strings.Replace(sub, `{"resourceType":"Subscription",`, `{"resourceType":"Subscription","id":"`+id+`",`, 1)
	moved := strings.Replace(withID, "https://gp.example/notify", "https://gp.example/notify-v2", 1)
	e.put("/Subscription/"+id, []byte(moved), b...).must(t, http.StatusNotFound)
	e.put("/Subscription/"+id, []byte(moved), walking...).must(t, http.StatusForbidden)
	unknown := "0b8e3f4c-93b5-4d43-9a2b-6f0c1d2e3f40"
	e.put("/Subscription/"+unknown, []byte(strings.Replace(moved, id, unknown, 1)), a...).must(t, http.StatusNotFound)
	if r := e.put("/Subscription/"+id, []byte(strings.Replace(moved, `"status":"active"`, `"status":"paused"`, 1)), a...); r.status != http.StatusBadRequest ||
		!strings.Contains(string(r.body), `"Subscription.status"`) {
		t.Errorf("an update with status paused: %d %s", r.status, r.body)
	}
	if r := e.put("/Subscription/"+id, []byte(strings.Replace(moved, "SubscriptionTopic/Task", "SubscriptionTopic/Other", 1)), a...); r.status != http.StatusBadRequest {
		t.Errorf("an update to another topic: %d %s", r.status, r.body)
	}
	e.put("/Subscription/"+id, []byte(moved), append([]string{"If-Match", `W/"7"`}, a...)...).must(t, http.StatusPreconditionFailed)
	up := e.put("/Subscription/"+id, []byte(moved), append([]string{"If-Match", `W/"1"`}, a...)...).must(t, http.StatusOK).json(t)
	if up["status"] != "requested" || up["meta"].(map[string]any)["versionId"] != "2" ||
		up["channel"].(map[string]any)["endpoint"] != "https://gp.example/notify-v2" {
		t.Errorf("after an update: status %v, meta %v, channel %v", up["status"], up["meta"], up["channel"])
	}
	// status off in an update ends it, as DELETE does.
	other := e.post("/Subscription", []byte(sub), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	off := strings.Replace(strings.Replace(sub, `"status":"active"`, `"status":"off"`, 1), `{"resourceType":"Subscription",`, `{"resourceType":"Subscription","id":"`+other+`",`, 1)
	if got := e.put("/Subscription/"+other, []byte(off), a...).must(t, http.StatusOK).json(t)["status"]; got != "off" {
		t.Errorf("after an update with status off the Subscription is %v", got)
	}
	e.do(http.MethodDelete, "/Subscription/"+id, nil, b...).must(t, http.StatusNotFound)
	e.do(http.MethodDelete, "/Subscription/"+id, nil, a...).must(t, http.StatusNoContent)
	if got := e.get("/Subscription/"+id, a...).json(t)["status"]; got != "off" {
		t.Errorf("after DELETE the Subscription is %v", got)
	}
}
