package httpapi_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// The example's ServiceRequest entry, which an update names by its fullUrl.
const barsServiceRequest = "Bundle.entry[1].resource"

// barsChange is the published example as a later message about the same
// referral: another Bundle.id, the reason given, its ServiceRequest changed by f.
func barsChange(t *testing.T, bundleID, reason string, f func(sr map[string]any)) []byte {
	t.Helper()
	return barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = bundleID
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = reason
		if f != nil {
			f(entryResource(entries, 1))
		}
	})
}

// cancellations counts the deliveries queued that tell a provider a
// referral was cancelled.
func (e *env) cancellations(t *testing.T) int {
	t.Helper()
	return e.queuedFor(t, gateway.QueueDelivery, "cancelled")
}

// barsReferral sends the example as practice-a and returns its ServiceRequest and Task ids.
func barsReferral(t *testing.T, e *env) (srID, taskID string) {
	t.Helper()
	_, sr, task := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), as("practice-a")...).must(t, http.StatusOK))
	return sr["id"].(string), task["id"].(string)
}

func TestBaRSUpdateRevokedCancelsReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	const rid = "44444444-4444-4444-8444-444444444444"
	revoke := barsChange(t, "2c0f5b8e-1d2a-4e3b-9c4d-5e6f7a8b9c0d", "update", func(sr map[string]any) { sr["status"] = "revoked" })
	r := e.post("/$process-message", revoke, with(a, "X-Request-Id", rid)...).must(t, http.StatusOK)
	answer, sr, task := readBaRSAnswer(t, r)
	if sr["id"] != srID || sr["status"] != "revoked" || sr["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("answer's ServiceRequest is %v %v version %v; want %s revoked, version 2", sr["id"], sr["status"], sr["meta"], srID)
	}
	if task["id"] != taskID || task["status"] != "cancelled" {
		t.Errorf("answer's Task is %v %v; want %s cancelled", task["id"], task["status"], taskID)
	}
	if !strings.Contains(string(answer.Entry[0].Resource), `"identifier":"2c0f5b8e-1d2a-4e3b-9c4d-5e6f7a8b9c0d"`) {
		t.Errorf("MessageHeader does not answer the update message: %s", answer.Entry[0].Resource)
	}
	if got := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t); got["status"] != "cancelled" {
		t.Errorf("stored Task is %v, want cancelled", got["status"])
	}
	// The provider is told, and can see the referral was revoked.
	if n := e.cancellations(t); n != 1 {
		t.Errorf("%d cancellation deliveries, want 1", n)
	}
	if got := e.get("/ServiceRequest/"+srID, as("walking")...).must(t, http.StatusOK).json(t); got["status"] != "revoked" {
		t.Errorf("the provider reads the referral as %v, want revoked", got["status"])
	}
	// The subject is still the referral's stored Patient.
	if subject, _ := sr["subject"].(map[string]any); !strings.HasPrefix(subject["reference"].(string), "Patient/") {
		t.Errorf("subject = %v, want the stored Patient", subject)
	}

	// The same message again (a sender's retry) is answered as it was, and changes nothing.
	_, again, againTask := readBaRSAnswer(t, e.post("/$process-message", revoke, a...).must(t, http.StatusOK))
	if again["id"] != srID || again["meta"].(map[string]any)["versionId"] != "2" || againTask["status"] != "cancelled" {
		t.Errorf("repeat answered with %v version %v, Task %v", again["id"], again["meta"], againTask["status"])
	}
	if got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t); got["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("after a repeat the ServiceRequest is version %v, want 2", got["meta"])
	}
	if n := e.cancellations(t); n != 1 {
		t.Errorf("%d cancellation deliveries after a repeat, want 1", n)
	}
	// Its X-Request-Id again is a duplicate.
	r = e.post("/$process-message", revoke, with(a, "X-Request-Id", rid)...).must(t, http.StatusConflict)
	if is := readOutcome(t, r); is[0].Code != "duplicate" {
		t.Errorf("issue code %q, want duplicate", is[0].Code)
	}
	// The same message id saying something else is refused, not dropped.
	other := barsChange(t, "2c0f5b8e-1d2a-4e3b-9c4d-5e6f7a8b9c0d", "update", func(sr map[string]any) { sr["status"] = "on-hold" })
	e.post("/$process-message", other, a...).must(t, http.StatusConflict)
}

func TestBaRSUpdateChangesReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	later := barsChange(t, "3d1a6c9f-2e3b-4f4c-8d5e-6f7a8b9c0d1e", "update", func(sr map[string]any) {
		sr["occurrencePeriod"].(map[string]any)["end"] = "2021-11-26T16:00:00+00:00"
	})
	_, sr, task := readBaRSAnswer(t, e.post("/$process-message", later, a...).must(t, http.StatusOK))
	if sr["id"] != srID || sr["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("answer's ServiceRequest is %v version %v; want %s version 2", sr["id"], sr["meta"], srID)
	}
	got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)
	if end := got["occurrencePeriod"].(map[string]any)["end"]; end != "2021-11-26T16:00:00+00:00" || got["status"] != "active" {
		t.Errorf("stored ServiceRequest: occurrencePeriod.end %v, status %v", end, got["status"])
	}
	if task["id"] != taskID || task["status"] != "requested" {
		t.Errorf("Task %v is %v, want %s unchanged (requested)", task["id"], task["status"], taskID)
	}
	if n := e.cancellations(t); n != 0 {
		t.Errorf("%d cancellation deliveries for an update, want 0", n)
	}
	if n := e.countServiceRequests(t); n != 1 {
		t.Errorf("%d ServiceRequests, want 1", n)
	}
	// For another patient it is refused at the Patient entry, nothing changed.
	otherPatient := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "4e2b7d0a-3f4c-4a5d-9e6f-7a8b9c0d1e2f"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		entryResource(entries, 1)["status"] = "on-hold"
		entryResource(entries, 5)["identifier"].([]any)[0].(map[string]any)["value"] = nhsNumber2
	})
	r := e.post("/$process-message", otherPatient, a...).must(t, http.StatusConflict)
	if is := readOutcome(t, r); len(is[0].Expression) == 0 || is[0].Expression[0] != barsPatient+".identifier" {
		t.Errorf("want a conflict at %s.identifier: %s", barsPatient, r.body)
	}
	noPatientData(t, r.body, nhsNumber2, "Julie")
	if got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t); got["status"] != "active" {
		t.Errorf("a refused update changed the referral: %v", got["status"])
	}
}

func TestBaRSDeleteWithdrawsReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	_, sr, task := readBaRSAnswer(t, e.post("/$process-message", barsChange(t, "5f3c8e1b-4a5d-4b6e-8f7a-8b9c0d1e2f3a", "delete", nil), a...).must(t, http.StatusOK))
	if sr["id"] != srID || sr["status"] != "entered-in-error" {
		t.Errorf("answer's ServiceRequest is %v %v; want %s entered-in-error", sr["id"], sr["status"], srID)
	}
	if task["id"] != taskID || task["status"] != "cancelled" {
		t.Errorf("answer's Task is %v %v; want %s cancelled", task["id"], task["status"], taskID)
	}
	if got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t); got["status"] != "entered-in-error" {
		t.Errorf("stored ServiceRequest is %v, want entered-in-error", got["status"])
	}
	if n := e.cancellations(t); n != 1 {
		t.Errorf("%d cancellation deliveries, want 1", n)
	}
}

// A GP system's update or delete message that changes nothing (here a
// delete of a referral already withdrawn) is processed and answered 200,
// and its X-Request-Id is kept as any other's: used again, it is the 409
// duplicate BaRS requires. Its keys used to be claimed only with a new
// version, so the id was processed again. Keeping them writes nothing
// else: no new version, no second cancellation.
func TestBaRSChangeThatChangesNothingKeepsItsRequestID(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	e.post("/$process-message", barsChange(t, "7b5e0a3d-6c7f-4d8a-9b0c-1d2e3f4a5b6c", "delete", nil), a...).must(t, http.StatusOK)
	srVersion := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)["meta"]
	taskVersion := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t)["meta"]

	const rid = "55555555-5555-4555-8555-555555555555"
	// The referral is withdrawn already: this delete changes nothing.
	e.post("/$process-message", barsChange(t, "8c6f1b4e-7d8a-4e9b-8c1d-2e3f4a5b6c7d", "delete", nil), with(a, "X-Request-Id", rid)...).must(t, http.StatusOK)
	r := e.post("/$process-message", barsChange(t, "9d7a2c5f-8e9b-4fac-9d2e-3f4a5b6c7d8e", "delete", nil), with(a, "X-Request-Id", rid)...)
	if r.status != http.StatusConflict {
		t.Fatalf("a message under an X-Request-Id used before was answered %d %.300s; want 409 duplicate", r.status, r.body)
	}
	if is := readOutcome(t, r); is[0].Code != "duplicate" {
		t.Errorf("issue code %q, want duplicate", is[0].Code)
	}
	if got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)["meta"]; !reflect.DeepEqual(got, srVersion) {
		t.Errorf("the ServiceRequest's meta is %v after deletes that changed nothing; want %v, as it was", got, srVersion)
	}
	if got := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t)["meta"]; !reflect.DeepEqual(got, taskVersion) {
		t.Errorf("the Task's meta is %v after deletes that changed nothing; want %v, as it was", got, taskVersion)
	}
	if n := e.cancellations(t); n != 1 {
		t.Errorf("%d cancellation deliveries, want 1", n)
	}
}

func TestBaRSUpdateStatusEnteredInErrorWithdrawsReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	withdraw := barsChange(t, "6a4d9f2c-5b6e-4c7f-9a8b-9c0d1e2f3a4b", "update", func(sr map[string]any) { sr["status"] = "entered-in-error" })
	e.post("/$process-message", withdraw, a...).must(t, http.StatusOK)
	if got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t); got["status"] != "entered-in-error" {
		t.Errorf("stored ServiceRequest is %v, want entered-in-error", got["status"])
	}
	if got := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t); got["status"] != "cancelled" {
		t.Errorf("Task is %v, want cancelled", got["status"])
	}
}

// An update or delete for a referral Signpost does not hold for the
// sender — none, or another practice's — is refused and changes nothing.
func TestBaRSChangeOfUnknownReferralIsRefused(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	revoke := barsChange(t, "7b5e0a3d-6c7f-4d8a-8b9c-0d1e2f3a4b5c", "update", func(sr map[string]any) { sr["status"] = "revoked" })
	for _, body := range [][]byte{revoke, barsChange(t, "8c6f1b4e-7d8a-4e9b-9c0d-1e2f3a4b5c6d", "delete", nil)} {
		r := e.post("/$process-message", body, as("practice-a")...).must(t, http.StatusNotFound)
		is := readOutcome(t, r)
		if len(is) != 1 || is[0].Code != "not-found" || len(is[0].Expression) != 1 || is[0].Expression[0] != barsServiceRequest ||
			is[0].Details == nil || len(is[0].Details.Coding) == 0 || is[0].Details.Coding[0].Code != "REC_NOT_FOUND" {
			t.Errorf("want one not-found issue, REC_NOT_FOUND, at %s; got %s", barsServiceRequest, r.body)
		}
	}
	if n := e.countServiceRequests(t); n != 0 {
		t.Errorf("%d ServiceRequests after refused updates, want 0", n)
	}

	// Another practice's referral is not found either, and stays as it was.
	srID, taskID := barsReferral(t, e)
	e.post("/$process-message", revoke, as("practice-b")...).must(t, http.StatusNotFound)
	got := e.get("/ServiceRequest/"+srID, as("practice-a")...).must(t, http.StatusOK).json(t)
	if got["status"] != "active" || got["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("another practice's update changed the referral: %v version %v", got["status"], got["meta"])
	}
	if task := e.get("/Task/"+taskID, as("practice-a")...).must(t, http.StatusOK).json(t); task["status"] != "requested" {
		t.Errorf("Task is %v, want requested", task["status"])
	}
	if n := e.cancellations(t); n != 0 {
		t.Errorf("%d cancellation deliveries, want 0", n)
	}
}

// An update addressed to another service than the one its referral went to
// is refused, and changes nothing: the sender would be revoking a referral
// it believes another provider holds.
func TestBaRSChangeToAnotherServiceIsRefused(t *testing.T) {
	const otherService = "http://fhir.nhs.uk/Id/dos-service-id|222222222"
	e := setup(t, withWarnNHS, func(o *options) {
		withBaRSService(o)
		o.providers[1].Services = []string{otherService}
	})
	srID, taskID := barsReferral(t, e)
	revoke := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "9d7a2c5f-8e9b-4fa0-8d1e-2f3a4b5c6d7e"
		header := entryResource(entries, 0)
		header["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		header["destination"].([]any)[0].(map[string]any)["endpoint"] = otherService
		entryResource(entries, 1)["status"] = "revoked"
	})
	r := e.post("/$process-message", revoke, as("practice-a")...).must(t, http.StatusUnprocessableEntity)
	is := readOutcome(t, r)
	const at = "Bundle.entry[0].resource.destination[0].endpoint"
	if len(is) != 1 || len(is[0].Expression) != 1 || is[0].Expression[0] != at ||
		is[0].Details == nil || len(is[0].Details.Coding) == 0 || is[0].Details.Coding[0].Code != "REC_UNPROCESSABLE_ENTITY" {
		t.Errorf("want one issue, REC_UNPROCESSABLE_ENTITY, at %s; got %s", at, r.body)
	}
	if got := e.get("/ServiceRequest/"+srID, as("practice-a")...).must(t, http.StatusOK).json(t); got["status"] != "active" {
		t.Errorf("the referral is %v, want active", got["status"])
	}
	if task := e.get("/Task/"+taskID, as("practice-a")...).must(t, http.StatusOK).json(t); task["status"] != "requested" {
		t.Errorf("Task is %v, want requested", task["status"])
	}
	if n := e.cancellations(t); n != 0 {
		t.Errorf("%d cancellation deliveries, want 0", n)
	}
}

// A BaRS sender withdraws its referral (reason delete: ServiceRequest
// entered-in-error, Task cancelled, provider told). An update message that
// arrives after it (an earlier update delayed, or reordered by the
// sender's retries) must not make the ServiceRequest active again: the GP
// record would show a live referral whose Task is cancelled and which no
// provider holds. A withdrawn (or revoked) referral stays withdrawn; the
// late update is 409 at its ServiceRequest's status, nothing changed.
func TestWithdrawnReferralStaysWithdrawn(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	a := as("practice-a")
	srID, taskID := barsReferral(t, e)
	e.post("/$process-message", barsChange(t, "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", "delete", nil), a...).must(t, http.StatusOK)
	const rid = "1b2c3d4e-0000-4b6c-9d8e-9f0a1b2c3d4e"
	late := barsChange(t, "1b2c3d4e-5f6a-4b7c-9d8e-9f0a1b2c3d4e", "update", func(sr map[string]any) { sr["status"] = "active" })
	r := e.post("/$process-message", late, with(a, "X-Request-Id", rid)...)
	sr := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)
	task := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t)
	if r.status == http.StatusOK && sr["status"] == "active" {
		t.Errorf("a withdrawn referral was made active again by a later update (answer %d): ServiceRequest %v, its Task %v",
			r.status, sr["status"], task["status"])
	}
	r.must(t, http.StatusConflict)
	const at = barsServiceRequest + ".status"
	if is := readOutcome(t, r); len(is) != 1 || is[0].Code != "business-rule" || len(is[0].Expression) != 1 || is[0].Expression[0] != at ||
		is[0].Details == nil || len(is[0].Details.Coding) == 0 || is[0].Details.Coding[0].Code != "REC_CONFLICT" {
		t.Errorf("want one business-rule issue, REC_CONFLICT, at %s; got %s", at, r.body)
	}
	if sr["status"] != "entered-in-error" || sr["meta"].(map[string]any)["versionId"] != "2" || task["status"] != "cancelled" {
		t.Errorf("after the refused update: ServiceRequest %v version %v, Task %v; want entered-in-error version 2, cancelled",
			sr["status"], sr["meta"], task["status"])
	}
	// Refused, it kept nothing: sent again under the same X-Request-Id it
	// is refused for what it says, not as a duplicate.
	again := e.post("/$process-message", late, with(a, "X-Request-Id", rid)...).must(t, http.StatusConflict)
	if is := readOutcome(t, again); is[0].Code != "business-rule" {
		t.Errorf("the refused update sent again: issue %q, want business-rule (its X-Request-Id is not kept)", is[0].Code)
	}

	// Revoked likewise (practice-b's referral: the same message from
	// another GP system is its own); a withdrawal after it (a new
	// Bundle.id) is answered, as the referral now stands.
	b := as("practice-b")
	_, sent, sentTask := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), b...).must(t, http.StatusOK))
	revoke := barsChange(t, "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", "update", func(sr map[string]any) { sr["status"] = "revoked" })
	e.post("/$process-message", revoke, b...).must(t, http.StatusOK)
	active := barsChange(t, "3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b", "update", func(sr map[string]any) { sr["status"] = "active" })
	e.post("/$process-message", active, b...).must(t, http.StatusConflict)
	_, got, gotTask := readBaRSAnswer(t, e.post("/$process-message", barsChange(t, "4f5a6b7c-8d9e-4fa0-9b1c-3d4e5f6a7b8c", "delete", nil), b...).must(t, http.StatusOK))
	if got["id"] != sent["id"] || got["status"] != "entered-in-error" || gotTask["id"] != sentTask["id"] || gotTask["status"] != "cancelled" {
		t.Errorf("a revoked referral's delete answered %v %v, Task %v %v", got["id"], got["status"], gotTask["id"], gotTask["status"])
	}
	if n := e.cancellations(t); n != 2 {
		t.Errorf("%d cancellation deliveries for two withdrawn referrals, want 2", n)
	}
}
