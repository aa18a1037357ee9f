package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// A provider reads a referral from when it was sent it: the versions the
// GP system wrote before (a Patient filed as another person and then
// corrected, a draft ServiceRequest naming someone else) are not its to
// vread, though the GP system vreads them all; the current version and
// the Task's own versions stay readable.
func TestProviderVreadsOnlyWhatItWasSent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	wrong := `{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}],"name":[{"text":"Wrongly Filed Person"}]}`
	e.put("/Patient/p1", []byte(wrong), as("practice-a")...).must(t, http.StatusCreated)
	e.put("/Patient/p1", testPatient("p1"), as("practice-a")...).must(t, http.StatusOK)
	draft := strings.Replace(strings.Replace(string(referral("VR-1", "390893007")), `"status":"active"`, `"status":"draft"`, 1), nhsNumber, nhsNumber2, 1)
	srID := e.post("/ServiceRequest", []byte(draft), as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
	active := strings.Replace(string(referralFor("VR-1", "p1")), `"resourceType":"ServiceRequest",`, `"resourceType":"ServiceRequest","id":"`+srID+`",`, 1)
	e.put("/ServiceRequest/"+srID, []byte(active), as("practice-a")...).must(t, http.StatusOK)
	task := e.referralTask(t, srID)
	if task["owner"].(map[string]any)["reference"] != "Organization/walking" {
		t.Fatalf("routed to %v: the test proves nothing", task["owner"])
	}
	for _, path := range []string{"/ServiceRequest/" + srID + "/_history/1", "/Patient/p1/_history/1"} {
		if res := e.get(path, callerHeader, "walking"); res.status != http.StatusNotFound || bytes.Contains(res.body, []byte(nhsNumber2)) {
			t.Errorf("the provider vreads %s, written before the referral was sent it: %d %s", path, res.status, res.body)
		}
		e.get(path, as("practice-a")...).must(t, http.StatusOK)
	}
	e.get("/ServiceRequest/"+srID+"/_history/2", callerHeader, "walking").must(t, http.StatusOK)
	e.get("/Patient/p1/_history/2", callerHeader, "walking").must(t, http.StatusOK)
	taskID := task["id"].(string)
	note := `[{"op":"add","path":"/note","value":[{"text":"left a message"}]}]`
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(note), callerHeader, "walking", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
	e.get("/Task/"+taskID+"/_history/1", callerHeader, "walking").must(t, http.StatusOK)
	e.get("/Task/"+taskID+"/_history/2", callerHeader, "walking").must(t, http.StatusOK)
}

// A referral held for consent and then released: the provider does not
// vread the Task's versions from while it was held (their hold reason is
// the GP's), nor the ServiceRequest's from before its release.
func TestProviderDoesNotVreadAHeldReferralsVersions(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	srID := e.post("/ServiceRequest", referral("HELD-VR", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskID := e.referralTask(t, srID)["id"].(string)
	e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated)
	task := e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK).json(t)
	current := task["meta"].(map[string]any)["versionId"].(string)
	if current == "1" {
		t.Fatal("the released Task is at version 1: the test proves nothing")
	}
	e.get("/Task/"+taskID+"/_history/1", as("practice-a")...).must(t, http.StatusOK)
	e.get("/Task/"+taskID+"/_history/1", callerHeader, "walking").must(t, http.StatusNotFound)
	e.get("/Task/"+taskID+"/_history/"+current, callerHeader, "walking").must(t, http.StatusOK)
	e.get("/ServiceRequest/"+srID+"/_history/1", callerHeader, "walking").must(t, http.StatusNotFound)
	e.get("/ServiceRequest/"+srID+"/_history/1", as("practice-a")...).must(t, http.StatusOK)
}
