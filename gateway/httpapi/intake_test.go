package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

func TestRepeatedReferralIsOneReferral(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testRepeatedReferralIsOneReferral)
}

func testRepeatedReferralIsOneReferral(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := e.post("/ServiceRequest", referral("R-SAME", "390893007"))
			statuses[i] = r.status
			var sr struct{ ID string }
			_ = json.Unmarshal(r.body, &sr)
			ids[i] = sr.ID
		}(i)
	}
	wg.Wait()
	created := 0
	for i, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("request %d: status %d", i, s)
		}
		if ids[i] != ids[0] {
			t.Fatalf("request %d got id %s, request 0 got %s", i, ids[i], ids[0])
		}
	}
	if created != 1 {
		t.Errorf("%d requests answered 201, want exactly 1", created)
	}
	if got := total(t, e.get("/ServiceRequest")); got != 1 {
		t.Errorf("%d ServiceRequests stored, want 1", got)
	}
	if got := total(t, e.get("/Task")); got != 1 {
		t.Errorf("%d Tasks stored, want 1", got)
	}
	if n := len(e.queued(t, gateway.QueueDelivery)); n != 1 {
		t.Errorf("delivery jobs = %d, want 1", n)
	}
	// The same identifier from the same client a day later: still the same referral.
	e.post("/ServiceRequest", referral("R-SAME", "390893007")).must(t, http.StatusOK)
}

func TestLosslessStorage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := `{"resourceType":"ServiceRequest","id":"client-chosen","meta":{"versionId":"99","profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"],"tag":[{"code":"t1"}]},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Walking group referral</div>"},` +
		`"contained":[{"resourceType":"Practitioner","id":"gp","name":[{"family":"Testdoctor"}]}],` +
		`"extension":[{"url":"https://example.org/ext","valueString":"kept"},{"url":"https://example.org/dose","valueDecimal":2.50},{"url":"https://example.org/big","valueDecimal":3e2}],` +
		`"identifier":[{"system":"` + gpIdentSystem + `","value":"R-LOSSLESS"}],` +
		`"status":"active","_status":{"extension":[{"url":"https://example.org/why","valueString":"ok"}]},"intent":"order",` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}],"text":"Walking"},` +
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}},` +
		`"requester":{"reference":"#gp"},"authoredOn":"2026-11-20","_authoredOn":{"extension":[{"url":"https://example.org/x","valueBoolean":true}]}}`
	res := e.post("/ServiceRequest", []byte(body)).must(t, http.StatusCreated)
	got := e.get("/ServiceRequest/"+res.json(t)["id"].(string)).must(t, http.StatusOK)
	for _, want := range []string{
		`"_status":{"extension":[{"url":"https://example.org/why","valueString":"ok"}]}`,
		`"_authoredOn":{"extension":[{"url":"https://example.org/x","valueBoolean":true}]}`,
		`"contained":[{"resourceType":"Practitioner","id":"gp","name":[{"family":"Testdoctor"}]}]`,
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Walking group referral</div>"}`,
		`{"url":"https://example.org/dose","valueDecimal":2.50},{"url":"https://example.org/big","valueDecimal":3e2}`, // decimals as written
		`"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"]`,
		`"tag":[{"code":"t1"}]`,
		`"extension":[{"url":"https://example.org/ext","valueString":"kept"},`,
	} {
		if !strings.Contains(string(got.body), want) {
			t.Errorf("stored resource lost %s\n got: %s", want, got.body)
		}
	}
	m := got.json(t)
	meta := m["meta"].(map[string]any)
	if m["id"] == "client-chosen" || meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Errorf("server fields not set: id=%v meta=%v", m["id"], meta)
	}
}

func TestVersionsAndIfMatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-V", "390893007")).must(t, http.StatusCreated).json(t)
	id := sr["id"].(string)
	tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+id), "match")
	task := tasks[0]
	taskID := task["id"].(string)

	// Accept, then start: each a new version.
	task["status"] = "accepted"
	b, _ := json.Marshal(task)
	res := e.put("/Task/"+taskID, b, "If-Match", `W/"1"`).must(t, http.StatusOK)
	if res.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag = %q, want W/\"2\"", res.header.Get("ETag"))
	}
	// A stale If-Match is refused and changes nothing.
	task["status"] = "in-progress"
	b, _ = json.Marshal(task)
	e.put("/Task/"+taskID, b, "If-Match", `W/"1"`).must(t, http.StatusPreconditionFailed)
	if got := e.get("/Task/" + taskID).json(t)["status"]; got != "accepted" {
		t.Errorf("status after a refused update = %v", got)
	}
	// vread keeps every version.
	if got := e.get("/Task/"+taskID+"/_history/1").must(t, http.StatusOK).json(t)["status"]; got != "requested" {
		t.Errorf("version 1 status = %v", got)
	}
	e.get("/Task/"+taskID+"/_history/3").must(t, http.StatusNotFound)
	// A transition Gravity does not allow: accepted -> requested.
	task["status"] = "requested"
	b, _ = json.Marshal(task)
	res = e.put("/Task/"+taskID, b, "If-Match", `W/"2"`).must(t, http.StatusConflict)
	if !strings.Contains(string(res.body), "from accepted to requested") {
		t.Errorf("refusal does not name the transition: %s", res.body)
	}
	// If-None-Match on a read.
	e.get("/Task/"+taskID, "If-None-Match", `W/"2"`).must(t, http.StatusNotModified)
}

func TestConcurrentIfMatchOneWins(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-C", "390893007")).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	task["status"] = "accepted"
	b, _ := json.Marshal(task)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := e.put("/Task/"+task["id"].(string), b, "If-Match", `W/"1"`).status
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[http.StatusOK] != 1 || counts[http.StatusPreconditionFailed] != n-1 {
		t.Errorf("statuses = %v, want one 200 and %d 412", counts, n-1)
	}
}

func TestConditionalCreateUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	patient := []byte(`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}],"name":[{"family":"Testpatient","given":["Ada"]}]}`)
	const n = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := e.post("/Patient", patient, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhsNumber2).status
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[http.StatusCreated] != 1 || counts[http.StatusOK] != n-1 {
		t.Errorf("statuses = %v, want one 201 and %d 200", counts, n-1)
	}
	if got := total(t, e.get("/Patient?identifier="+nhsNumber2)); got != 1 {
		t.Errorf("%d Patients stored, want 1", got)
	}
}

func TestPatientUpdateAsCreateAndReference(t *testing.T) {
	t.Parallel()
	e := setup(t)
	patient := []byte(`{"resourceType":"Patient","id":"gp-pat-42","name":[{"family":"Testpatient"}]}`)
	e.put("/Patient/gp-pat-42", patient).must(t, http.StatusCreated)
	// Sent again unchanged: answered with the version held, no new one.
	e.put("/Patient/gp-pat-42", patient).must(t, http.StatusOK)
	if v := e.get("/Patient/gp-pat-42").header.Get("ETag"); v != `W/"1"` {
		t.Errorf("ETag = %s, want the unchanged version 1", v)
	}
	sr := strings.Replace(string(referral("R-PAT", "390893007")),
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`,
		`"subject":{"reference":"Patient/gp-pat-42"}`, 1)
	res := e.post("/ServiceRequest", []byte(sr)).must(t, http.StatusCreated)
	id := res.json(t)["id"].(string)
	if got := total(t, e.get("/ServiceRequest?patient=gp-pat-42")); got != 1 {
		t.Errorf("search by patient found %d", got)
	}
	if got := total(t, e.get("/Task?patient=Patient/gp-pat-42&focus=ServiceRequest/"+id)); got != 1 {
		t.Errorf("Task search by patient found %d", got)
	}
}

func TestClientTaskForReferralIsTheExistingTask(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-T", "390893007")).must(t, http.StatusCreated).json(t)
	existing := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	task := `{"resourceType":"Task","status":"requested","intent":"order",` +
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},` +
		`"focus":{"reference":"ServiceRequest/` + sr["id"].(string) + `"}}`
	res := e.post("/Task", []byte(task)).must(t, http.StatusOK)
	if res.json(t)["id"] != existing["id"] {
		t.Errorf("got Task %v, want the referral's Task %v", res.json(t)["id"], existing["id"])
	}
	if got := total(t, e.get("/Task")); got != 1 {
		t.Errorf("%d Tasks, want 1", got)
	}
}

func TestTransactionResolvesReferences(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:4f0c2b1e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}]},"request":{"method":"POST","url":"Patient"}},
	 {"fullUrl":"urn:uuid:4f0c2b1e-0000-4000-8000-000000000002","resource":{"resourceType":"ServiceRequest","status":"active","intent":"order",
	   "code":{"coding":[{"system":"http://snomed.info/sct","code":"710913009"}]},
	   "subject":{"reference":"urn:uuid:4f0c2b1e-0000-4000-8000-000000000001"},
	   "requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}},"request":{"method":"POST","url":"ServiceRequest"}},
	 {"resource":{"resourceType":"Task","status":"requested","intent":"order",
	   "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
	   "focus":{"reference":"urn:uuid:4f0c2b1e-0000-4000-8000-000000000002"},
	   "identifier":[{"system":"https://example-gp.nhs.uk/task","value":"urn:uuid:4f0c2b1e-0000-4000-8000-000000000002"}]},"request":{"method":"POST","url":"Task"}}]}`
	res := e.post("", []byte(bundle)).must(t, http.StatusOK)
	var out struct {
		Type  string
		Entry []struct {
			Resource map[string]any
			Response struct{ Status, Location string }
		}
	}
	if err := json.Unmarshal(res.body, &out); err != nil || out.Type != "transaction-response" || len(out.Entry) != 3 {
		t.Fatalf("bad transaction-response: %v %s", err, res.body)
	}
	patientID := out.Entry[0].Resource["id"].(string)
	srID := out.Entry[1].Resource["id"].(string)
	task := out.Entry[2].Resource
	if ref := out.Entry[1].Resource["subject"].(map[string]any)["reference"]; ref != "Patient/"+patientID {
		t.Errorf("subject = %v, want Patient/%s", ref, patientID)
	}
	if ref := task["focus"].(map[string]any)["reference"]; ref != "ServiceRequest/"+srID {
		t.Errorf("focus = %v", ref)
	}
	// Only references are rewritten; an identifier that looks like one is data.
	if v := task["identifier"].([]any)[0].(map[string]any)["value"]; v != "urn:uuid:4f0c2b1e-0000-4000-8000-000000000002" {
		t.Errorf("identifier value rewritten to %v", v)
	}
	// The client's Task is the referral's Task: routed, and no second one.
	if owner := task["owner"].(map[string]any)["reference"]; owner != "Organization/advice" {
		t.Errorf("owner = %v, want Organization/advice (money-debt-benefits)", owner)
	}
	if got := total(t, e.get("/Task")); got != 1 {
		t.Errorf("%d Tasks, want 1", got)
	}
	for i, want := range []string{"201 Created", "201 Created", "201 Created"} {
		if out.Entry[i].Response.Status != want {
			t.Errorf("entry %d status %q", i, out.Entry[i].Response.Status)
		}
	}
}

func TestRoutingPerformerWins(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := strings.Replace(string(referral("R-P", "390893007")), `"authoredOn"`,
		`"performer":[{"display":"a named link worker"},{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X3C4D"}}],"authoredOn"`, 1)
	sr := e.post("/ServiceRequest", []byte(body)).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	if owner := task["owner"].(map[string]any)["reference"]; owner != "Organization/advice" {
		t.Errorf("owner = %v, want the performer's provider Organization/advice", owner)
	}
	// Without a performer the first provider of the category wins.
	sr = e.post("/ServiceRequest", referral("R-P2", "390893007")).must(t, http.StatusCreated).json(t)
	task = bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
	if owner := task["owner"].(map[string]any)["reference"]; owner != "Organization/walking" {
		t.Errorf("owner = %v, want Organization/walking", owner)
	}
}

func TestDraftReferralIsNotRouted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := strings.Replace(string(referral("R-D", "390893007")), `"status":"active"`, `"status":"draft"`, 1)
	sr := e.post("/ServiceRequest", []byte(body)).must(t, http.StatusCreated).json(t)
	if got := total(t, e.get("/Task")); got != 0 {
		t.Fatalf("a draft referral made %d Tasks", got)
	}
	// Activating it routes it, once.
	sr["status"] = "active"
	b, _ := json.Marshal(sr)
	e.put("/ServiceRequest/"+sr["id"].(string), b, "If-Match", `W/"1"`).must(t, http.StatusOK)
	e.put("/ServiceRequest/"+sr["id"].(string), b, "If-Match", `W/"2"`).must(t, http.StatusOK)
	if got := total(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string))); got != 1 {
		t.Errorf("activated referral has %d Tasks, want 1", got)
	}
}

func total(t *testing.T, r *response) int {
	t.Helper()
	r.must(t, http.StatusOK)
	var b struct{ Total *int }
	if err := json.Unmarshal(r.body, &b); err != nil || b.Total == nil {
		t.Fatalf("no Bundle.total: %v %s", err, r.body)
	}
	return *b.Total
}

func ident(i int) string { return fmt.Sprintf("R-%04d", i) }

// A revoked, completed or entered-in-error referral is over (R4's request
// state machine): an update does not make it draft, active, on-hold or
// unknown again, which would show the GP record a live referral beside a
// Task no provider holds. It may still become entered-in-error (a
// correction), and an update that keeps its status may change the rest.
func TestTerminalReferralStaysClosed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	// put sends the referral as last read with status and the members
	// given, If-Match its version, and returns the answer.
	put := func(sr map[string]any, status string, set map[string]any) *response {
		t.Helper()
		next := map[string]any{}
		for k, v := range sr {
			next[k] = v
		}
		next["status"] = status
		for k, v := range set {
			next[k] = v
		}
		b, _ := json.Marshal(next)
		return e.put("/ServiceRequest/"+sr["id"].(string), b, with(a, "If-Match", `W/"`+sr["meta"].(map[string]any)["versionId"].(string)+`"`)...)
	}
	refused := func(sr map[string]any, status string) {
		t.Helper()
		r := put(sr, status, nil).must(t, http.StatusConflict)
		is := readOutcome(t, r)
		if len(is) != 1 || is[0].Code != "business-rule" || len(is[0].Expression) != 1 || is[0].Expression[0] != "ServiceRequest.status" ||
			is[0].Details == nil || len(is[0].Details.Coding) == 0 || is[0].Details.Coding[0].Code != "REC_CONFLICT" ||
			!strings.Contains(is[0].Diagnostics, "final") || !strings.Contains(is[0].Diagnostics, "not "+status) {
			t.Errorf("%v → %s: want one business-rule issue, REC_CONFLICT, at ServiceRequest.status saying what is final and what was refused; got %s",
				sr["status"], status, r.body)
		}
		got := e.get("/ServiceRequest/"+sr["id"].(string), a...).must(t, http.StatusOK).json(t)
		if got["status"] != sr["status"] || got["meta"].(map[string]any)["versionId"] != sr["meta"].(map[string]any)["versionId"] {
			t.Errorf("a refused update of a %v referral stored %v version %v", sr["status"], got["status"], got["meta"])
		}
	}
	taskOf := func(srID string) map[string]any {
		t.Helper()
		tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srID, a...), "match")
		if len(tasks) != 1 {
			t.Fatalf("referral has %d Tasks, want 1", len(tasks))
		}
		return tasks[0]
	}
	note := map[string]any{"note": []map[string]any{{"text": "the person found a walking group of their own"}}}

	// Revoked: its Task is cancelled, and stays so.
	sr := e.post("/ServiceRequest", referral("TC-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	sr = put(sr, "revoked", nil).must(t, http.StatusOK).json(t)
	for _, s := range []string{"active", "draft", "on-hold", "unknown", "completed"} {
		refused(sr, s)
	}
	sr = put(sr, "revoked", note).must(t, http.StatusOK).json(t) // a note kept with the status
	if task := taskOf(sr["id"].(string)); task["status"] != "cancelled" {
		t.Errorf("the revoked referral's Task is %v, want cancelled", task["status"])
	}
	sr = put(sr, "entered-in-error", nil).must(t, http.StatusOK).json(t)
	for _, s := range []string{"revoked", "active"} {
		refused(sr, s)
	}
	put(sr, "entered-in-error", note).must(t, http.StatusOK)
	if n := e.queuedFor(t, gateway.QueueDelivery, "cancelled"); n != 1 {
		t.Errorf("%d cancellation deliveries, want 1", n)
	}

	// Completed: over, but correctable.
	done := e.post("/ServiceRequest", referral("TC-2", "390893007"), a...).must(t, http.StatusCreated).json(t)
	done = put(done, "completed", nil).must(t, http.StatusOK).json(t)
	for _, s := range []string{"active", "on-hold", "revoked"} {
		refused(done, s)
	}
	done = put(done, "completed", note).must(t, http.StatusOK).json(t)
	put(done, "entered-in-error", nil).must(t, http.StatusOK)

	// Active: its provider holds its Task, which a draft would leave behind.
	live := e.post("/ServiceRequest", referral("TC-4", "390893007"), a...).must(t, http.StatusCreated).json(t)
	for _, from := range []string{"active", "on-hold"} {
		live = put(live, from, nil).must(t, http.StatusOK).json(t)
		r := put(live, "draft", nil).must(t, http.StatusConflict)
		if is := readOutcome(t, r); len(is) != 1 || len(is[0].Expression) != 1 || is[0].Expression[0] != "ServiceRequest.status" ||
			!strings.Contains(is[0].Diagnostics, "a draft is where a referral starts") {
			t.Errorf("%s → draft: want one issue at ServiceRequest.status saying a draft is where a referral starts; got %s", from, r.body)
		}
	}
	if got := e.get("/ServiceRequest/"+live["id"].(string), a...).must(t, http.StatusOK).json(t); got["status"] != "on-hold" {
		t.Errorf("a refused move to draft stored %v", got["status"])
	}

	// Revoked before it was ever routed: not routed by an update either.
	body := strings.Replace(string(referral("TC-3", "390893007")), `"status":"active"`, `"status":"draft"`, 1)
	draft := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)
	draft = put(draft, "revoked", nil).must(t, http.StatusOK).json(t)
	refused(draft, "active")
	if n := total(t, e.get("/Task?focus=ServiceRequest/"+draft["id"].(string), a...)); n != 0 {
		t.Errorf("a revoked draft has %d Tasks, want none", n)
	}
}
