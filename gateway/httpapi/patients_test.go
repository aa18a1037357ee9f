package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/queue"
)

// A synthetic patient of practice-b, with every detail the inbox shows.
const patientB2 = `{"resourceType":"Patient","id":"pat-b-2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}],` +
	`"name":[{"given":["Bea"],"family":"Testpatient"}],"birthDate":"1950-01-02","telecom":[{"system":"phone","value":"07700 900002"}],` +
	`"address":[{"line":["2 Synthetic Street"],"city":"Leeds"}]}`

// ownTask is a client's own referral Task for a referral of the same
// transaction ("urn:uuid:sr") or a stored one, for whoever it names.
func ownTask(focus, forRef string) string {
	return `{"resourceType":"Task","status":"requested","intent":"order",` +
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},` +
		`"focus":{"reference":"` + focus + `"},"for":{"reference":"` + forRef + `"}}`
}

func transaction(entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`)
}

func entry(fullURL, typ, resource string) string {
	return `{"fullUrl":"` + fullURL + `","resource":` + resource + `,"request":{"method":"POST","url":"` + typ + `"}}`
}

// A GP system's own referral Task is for the referral's patient: naming
// another practice's Patient (or one with another NHS number) is refused,
// so no provider is ever shown a person who was not referred to it.
func TestOwnTaskIsForTheReferralsPatient(t *testing.T) {
	t.Parallel()
	testOwnTaskIsForTheReferralsPatient(t)
}

// TestOwnTaskIsForTheReferralsPatient, on a store that spreads referrals (Patients placed by
// their key, referrals beside them), on one Redis and on a cluster.
func TestSpreadOwnTaskIsForTheReferralsPatient(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) { testOwnTaskIsForTheReferralsPatient(t, on, spread) })
}

func testOwnTaskIsForTheReferralsPatient(t *testing.T, opts ...func(*options)) {
	e := setup(t, opts...)
	a, b := as("practice-a"), as("practice-b")
	e.put("/Patient/pat-b-2", []byte(patientB2), b...).must(t, http.StatusCreated)

	// GP A's transaction: a referral by NHS number, and a Task for GP B's Patient.
	res := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("FOR-1", "390893007"))),
		entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/pat-b-2"))), a...)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(string(res.body), `"Bundle.entry[1].resource.for"`) ||
		!strings.Contains(string(res.body), `"business-rule"`) {
		t.Errorf("a Task for another practice's Patient: %d %s", res.status, res.body)
	}
	// Nothing was stored: the referral is not there.
	if n := total(t, e.get("/ServiceRequest?identifier="+gpIdentSystem+"|FOR-1", a...)); n != 0 {
		t.Errorf("the refused transaction stored %d ServiceRequests", n)
	}
	// Nor for a Patient of its own with another NHS number.
	e.put("/Patient/pa-other", []byte(`{"resourceType":"Patient","id":"pa-other","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber2+`"}]}`), a...).must(t, http.StatusCreated)
	e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("FOR-2", "390893007"))),
		entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/pa-other"))), a...).must(t, http.StatusUnprocessableEntity)
	e.put("/Patient/pa-own", []byte(`{"resourceType":"Patient","id":"pa-own","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`), a...).must(t, http.StatusCreated)
	// What is allowed: the subject itself, or a Patient of the same client with the referral's NHS number.
	ok := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("FOR-4", "390893007"))),
		entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/pa-own"))), a...).must(t, http.StatusOK)
	if !strings.Contains(string(ok.body), `"201 Created"`) {
		t.Errorf("a Task for the client's own Patient with the referral's NHS number: %s", ok.body)
	}
	same := strings.Replace(ownTask("urn:uuid:sr", ""), `"for":{"reference":""}`, `"for":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, 1)
	e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("FOR-5", "390893007"))),
		entry("urn:uuid:task", "Task", same)), a...).must(t, http.StatusOK)
	// A referral to Patient/pa-own: its Task may add the NHS number that Patient holds, and no other.
	toOwn := strings.Replace(string(referral("FOR-7", "390893007")), `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"Patient/pa-own"}`, 1)
	withNHS := func(nhs string) string {
		return strings.Replace(ownTask("urn:uuid:sr", "Patient/pa-own"), `"for":{"reference":"Patient/pa-own"}`,
			`"for":{"reference":"Patient/pa-own","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhs+`"}}`, 1)
	}
	e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", toOwn), entry("urn:uuid:task", "Task", withNHS(nhsNumber))), a...).must(t, http.StatusOK)
	toOwn = strings.Replace(toOwn, "FOR-7", "FOR-8", 1)
	e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", toOwn), entry("urn:uuid:task", "Task", withNHS(nhsNumber2))), a...).must(t, http.StatusUnprocessableEntity)
	other := strings.Replace(same, nhsNumber, nhsNumber2, 1)
	e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("FOR-6", "390893007"))),
		entry("urn:uuid:task", "Task", other)), a...).must(t, http.StatusUnprocessableEntity)

	// Task.for cannot be changed afterwards, by PUT or PATCH.
	tasks := bundleEntries(t, e.get("/Task", a...).must(t, http.StatusOK), "match")
	if len(tasks) == 0 {
		t.Fatal("no Tasks")
	}
	id := tasks[0]["id"].(string)
	tasks[0]["for"] = map[string]any{"reference": "Patient/pat-b-2"}
	moved, _ := json.Marshal(tasks[0])
	if r := e.put("/Task/"+id, moved, a...); r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"Task.for"`) {
		t.Errorf("PUT changing Task.for: %d %s", r.status, r.body)
	}
	patch := e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"replace","path":"/for","value":{"reference":"Patient/pat-b-2"}}]`),
		with(a, "Content-Type", "application/json-patch+json")...)
	if patch.status != http.StatusUnprocessableEntity || !strings.Contains(string(patch.body), `"Task.for"`) {
		t.Errorf("PATCH changing Task.for: %d %s", patch.status, patch.body)
	}
}

// Defence in depth: even a Task already stored that points at another
// client's Patient (as the intake allowed before it checked Task.for) shows
// that Patient to its provider through no path: API read, inbox list,
// referral page, full webhook body.
func TestProviderSeesOnlyPatientsOfItsReferralsClient(t *testing.T) {
	t.Parallel()
	testProviderSeesOnlyPatientsOfItsReferralsClient(t)
}

// TestProviderSeesOnlyPatientsOfItsReferralsClient, on a store that spreads referrals (Patients placed by
// their key, referrals beside them), on one Redis and on a cluster.
func TestSpreadProviderSeesOnlyPatientsOfItsReferralsClient(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) { testProviderSeesOnlyPatientsOfItsReferralsClient(t, on, spread) })
}

func testProviderSeesOnlyPatientsOfItsReferralsClient(t *testing.T, opts ...func(*options)) {
	e := setup(t, opts...)
	a, b, walking := as("practice-a"), as("practice-b"), as("walking")
	e.put("/Patient/pat-b-2", []byte(patientB2), b...).must(t, http.StatusCreated)
	sr := e.post("/ServiceRequest", referral("LEAK-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	srID := sr["id"].(string)

	// GP A's Task for GP B's Patient, as stored before the check.
	now := time.Now().UTC().Truncate(time.Millisecond)
	taskID := "leak-task-1"
	task := `{"resourceType":"Task","id":"` + taskID + `","meta":{"versionId":"1","lastUpdated":"` + gateway.Instant(now) + `"},"status":"requested","intent":"order",` +
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"ServiceRequest/` + srID + `"},` +
		`"for":{"reference":"Patient/pat-b-2"},"authoredOn":"` + gateway.Instant(now) + `","owner":{"reference":"Organization/walking"},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + practiceODS + `"}}}`
	res, err := e.store.Commit(context.Background(), &gateway.Commit{Writes: []gateway.Write{{
		Resource: &gateway.Resource{Type: gateway.TypeTask, ID: taskID, Version: 1, LastUpdated: now, Body: []byte(task), Owner: "practice-a"},
		Terms:    []string{"status=requested", "focus=ServiceRequest/" + srID, "owner=Organization/walking", "subject=Patient/pat-b-2", "_client=practice-a"},
	}}})
	if err != nil || !res.OK() {
		t.Fatalf("storing the old Task: %v %+v", err, res)
	}
	e.get("/Task/"+taskID, walking...).must(t, http.StatusOK) // the provider has the Task...

	// ...but not the person: API read.
	if r := e.get("/Patient/pat-b-2", walking...); r.status != http.StatusNotFound {
		t.Errorf("the provider reads another client's Patient: %d %s", r.status, r.body)
	}
	// _include: the Task comes, the Patient does not.
	inc := e.get("/Task?_id="+taskID+"&_include=Task:patient", walking...).must(t, http.StatusOK)
	if len(bundleEntries(t, inc, "match")) != 1 || len(bundleEntries(t, inc, "include")) != 0 {
		t.Errorf("the provider's _include=Task:patient: %s", inc.body)
	}
	// The inbox list and the referral page.
	provider := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	page, err := e.svc.Portal.Inbox(context.Background(), provider, portal.InboxNew, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Referrals {
		if r.TaskID == taskID && (r.Person.Name != "" || r.Person.NHSNumber != "" || r.Person.BirthDate != "" || len(r.Person.Phone) > 0 || r.Person.Address != "") {
			t.Errorf("the inbox shows another client's Patient: %+v", r.Person)
		}
	}
	for _, ref := range page.Read {
		if ref == "Patient/pat-b-2" {
			t.Errorf("the inbox read another client's Patient: %v", page.Read)
		}
	}
	detail, err := e.svc.Portal.Referral(context.Background(), provider, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if detail.Person.Name != "" || detail.Person.Address != "" || len(detail.Person.Phone) > 0 {
		t.Errorf("the referral page shows another client's Patient: %+v", detail.Person)
	}
	// The full webhook body.
	full, err := e.svc.Delivery.DeliveryBody(context.Background(), &queue.Delivery{Event: queue.EventReferral, TaskID: taskID,
		ServiceRequestID: srID, ProviderID: "walking", ID: "msg_test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(full), "Testpatient") || strings.Contains(string(full), nhsNumber2) || strings.Contains(string(full), `"Patient"`) {
		t.Errorf("the full webhook carries another client's Patient: %s", full)
	}

	// The Patient of a client's own referral is still shown, by every path.
	e.put("/Patient/pa-1", []byte(`{"resourceType":"Patient","id":"pa-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}],"name":[{"text":"Ann Testpatient"}]}`), a...).must(t, http.StatusCreated)
	own := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("LEAK-2", "390893007"))),
		entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/pa-1"))), a...).must(t, http.StatusOK)
	var tx struct {
		Entry []struct {
			Response struct{ Location string } `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(own.body, &tx); err != nil || len(tx.Entry) != 2 {
		t.Fatalf("transaction response: %v %s", err, own.body)
	}
	ownSR := strings.Split(strings.TrimPrefix(tx.Entry[0].Response.Location, "ServiceRequest/"), "/")[0]
	ownTaskID := strings.Split(strings.TrimPrefix(tx.Entry[1].Response.Location, "Task/"), "/")[0]
	e.get("/Patient/pa-1", walking...).must(t, http.StatusOK)
	inc = e.get("/Task?_id="+ownTaskID+"&_include=Task:patient", walking...).must(t, http.StatusOK)
	if got := bundleEntries(t, inc, "include"); len(got) != 1 || got[0]["id"] != "pa-1" {
		t.Errorf("the provider's _include=Task:patient of its own referral: %s", inc.body)
	}
	detail, err = e.svc.Portal.Referral(context.Background(), provider, ownTaskID)
	if err != nil || detail.Person.Name != "Ann Testpatient" {
		t.Errorf("the referral page of the client's own Patient: %v %+v", err, detail)
	}
	full, err = e.svc.Delivery.DeliveryBody(context.Background(), &queue.Delivery{Event: queue.EventReferral, TaskID: ownTaskID,
		ServiceRequestID: ownSR, ProviderID: "walking", ID: "msg_test"}, true)
	if err != nil || !strings.Contains(string(full), "Ann Testpatient") {
		t.Errorf("the full webhook of the client's own Patient: %v %s", err, full)
	}
}

// Patient ids are each GP system's own: two practices both PUT Patient/1,
// each reads, updates and refers to its own, and nothing answers
// differently because the other holds the id. A provider with referrals
// from both reads each Patient through its Task.
func TestPatientIdsArePerClient(t *testing.T) {
	t.Parallel()
	testPatientIdsArePerClient(t)
}

// TestPatientIdsArePerClient, on a store that spreads referrals (Patients placed by
// their key, referrals beside them), on one Redis and on a cluster.
func TestSpreadPatientIdsArePerClient(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) { testPatientIdsArePerClient(t, on, spread) })
}

func testPatientIdsArePerClient(t *testing.T, opts ...func(*options)) {
	e := setup(t, opts...)
	a, b, walking, advice := as("practice-a"), as("practice-b"), as("walking"), as("advice")
	patient := func(nhs, name string) []byte {
		return []byte(`{"resourceType":"Patient","id":"1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"text":"` + name + `"}]}`)
	}
	e.put("/Patient/1", patient(nhsNumber, "Ann Testpatient"), a...).must(t, http.StatusCreated)
	e.put("/Patient/1", patient(nhsNumber2, "Bea Testpatient"), b...).must(t, http.StatusCreated)
	e.put("/Patient/1", patient(nhsNumber, "Ann B Testpatient"), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	for who, want := range map[string]string{"practice-a": "Ann B Testpatient", "practice-b": "Bea Testpatient"} {
		if got := e.get("/Patient/1", as(who)...).must(t, http.StatusOK); !strings.Contains(string(got.body), want) {
			t.Errorf("%s reads %s", who, got.body)
		}
		if got := bundleEntries(t, e.get("/Patient?_id=1", as(who)...).must(t, http.StatusOK), "match"); len(got) != 1 || got[0]["name"].([]any)[0].(map[string]any)["text"] != want {
			t.Errorf("%s searches Patient?_id=1: %v", who, got)
		}
	}
	if got := e.get("/Patient/1/_history/1", b...).must(t, http.StatusOK); !strings.Contains(string(got.body), "Bea Testpatient") {
		t.Errorf("practice b's vread: %s", got.body)
	}
	e.get("/Patient/1/_history/2", b...).must(t, http.StatusNotFound)

	// Each practice's referral to Patient/1 is for its own Patient/1.
	toPatient1 := func(ident, ods string) []byte {
		sr := strings.Replace(string(referral(ident, "390893007")), `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"Patient/1"}`, 1)
		return []byte(strings.Replace(sr, `"value":"`+practiceODS+`"`, `"value":"`+ods+`"`, 1))
	}
	srA := e.post("/ServiceRequest", toPatient1("P1-A", practiceODS), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	srB := e.post("/ServiceRequest", toPatient1("P1-B", "B82002"), b...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskOf := func(sr string) string {
		return bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr, walking...).must(t, http.StatusOK), "match")[0]["id"].(string)
	}
	taskA, taskB := taskOf(srA), taskOf(srB)

	// The provider has both: "Patient/1" alone names two people, so it is
	// refused without naming either; each Task leads to its own.
	if r := e.get("/Patient/1", walking...); r.status != http.StatusConflict || strings.Contains(string(r.body), "Testpatient") {
		t.Errorf("the provider reads an ambiguous Patient/1: %d %s", r.status, r.body)
	}
	e.get("/Patient/1", advice...).must(t, http.StatusNotFound)
	provider := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	for task, want := range map[string]string{taskA: "Ann B Testpatient", taskB: "Bea Testpatient"} {
		inc := bundleEntries(t, e.get("/Task?_id="+task+"&_include=Task:patient", walking...).must(t, http.StatusOK), "include")
		if len(inc) != 1 || inc[0]["name"].([]any)[0].(map[string]any)["text"] != want {
			t.Errorf("Task %s includes %v, want %s", task, inc, want)
		}
		d, err := e.svc.Portal.Referral(context.Background(), provider, task)
		if err != nil || d.Person.Name != want {
			t.Errorf("the referral page of Task %s shows %+v (%v), want %s", task, d, err, want)
		}
	}
	page, err := e.svc.Portal.Inbox(context.Background(), provider, portal.InboxNew, 0)
	if err != nil || len(page.Referrals) != 2 {
		t.Fatalf("inbox: %v %+v", err, page)
	}
	for _, r := range page.Referrals {
		if want := map[string]string{taskA: "Ann B Testpatient", taskB: "Bea Testpatient"}[r.TaskID]; r.Person.Name != want {
			t.Errorf("the inbox shows %q for Task %s, want %q", r.Person.Name, r.TaskID, want)
		}
	}
	full, err := e.svc.Delivery.DeliveryBody(context.Background(), &queue.Delivery{Event: queue.EventReferral, TaskID: taskB,
		ServiceRequestID: srB, ProviderID: "walking", ID: "msg_test"}, true)
	if err != nil || !strings.Contains(string(full), "Bea Testpatient") || strings.Contains(string(full), "Ann B Testpatient") {
		t.Errorf("practice b's full webhook: %v %s", err, full)
	}
}

// On a store that spreads referrals, a referral sent again is found
// however it names its patient: first beside its Patient (a reference,
// placed with the Patient), then by NHS number alone (placed by its
// identifier), so in another partition, whose commit cannot see the first
// one's idempotency keys. As on one Redis, the second differs in subject
// and is refused (409), never made twice; on one Redis and on a cluster.
func TestSpreadRepeatNamingItsPatientAnotherWayIsFound(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, spread)
		a := as("practice-a")
		e.put("/Patient/pat-a-9", []byte(`{"resourceType":"Patient","id":"pat-a-9","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`), a...).
			must(t, http.StatusCreated)
		for i := range 8 { // several identifiers, so that some place apart from their Patient
			ident := fmt.Sprintf("REPEAT-SUBJECT-%d", i)
			byRef := strings.Replace(string(referral(ident, "390893007")),
				`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`,
				`"subject":{"reference":"Patient/pat-a-9"}`, 1)
			first := e.post("/ServiceRequest", []byte(byRef), a...).must(t, http.StatusCreated).json(t)
			again := e.post("/ServiceRequest", referral(ident, "390893007"), a...).must(t, http.StatusConflict)
			if !strings.Contains(string(again.body), first["id"].(string)) {
				t.Errorf("%s sent again by NHS number: the refusal does not name the referral held: %s", ident, again.body)
			}
			res := e.get("/ServiceRequest?identifier="+gpIdentSystem+"|"+ident).must(t, http.StatusOK)
			if n := len(bundleEntries(t, res, "match")); n != 1 {
				t.Errorf("%s: %d referrals with one identifier, want 1", ident, n)
			}
		}
	})
}

// On a store that spreads referrals, a transaction whose entries are kept
// apart (Patients, each placed by its own key) cannot be written in one
// atomic step: it is refused whole with a 422 saying what to do, never a
// 500, and the Patients' ids (a GP system's choice) appear in no log
// line. Some pairs of Patients land together; the loop finds ones that
// do not. On one Redis and on a cluster.
func TestSpreadTransactionKeptApartIsRefusedWhole(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, spread)
		a := as("practice-a")
		put := func(id string) string {
			return `{"resource":{"resourceType":"Patient","id":"` + id + `"},"request":{"method":"PUT","url":"Patient/` + id + `"}}`
		}
		refused := 0
		for i := range 8 {
			first, second := fmt.Sprintf("apart-a%d", i), fmt.Sprintf("apart-b%d", i)
			res := e.post("", transaction(put(first), put(second)), a...)
			switch res.status {
			case http.StatusOK:
				continue // placed together
			case http.StatusUnprocessableEntity:
				refused++
			default:
				t.Fatalf("transaction of two Patients: %d %s", res.status, res.body)
			}
			for _, id := range []string{first, second} {
				e.get("/Patient/"+id, a...).must(t, http.StatusNotFound)
				if strings.Contains(e.logs.String(), id) {
					t.Errorf("the log names Patient %s", id)
				}
			}
		}
		if refused == 0 {
			t.Error("no pair of Patients was placed apart: the test proves nothing")
		}
	})
}
