package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// A referral that names its patient twice — by a Patient and by an NHS
// number — is refused when the two disagree (422 business-rule), whether
// the Patient is held, sent in the same transaction or contained; the
// answer never repeats the numbers.
func TestDisagreeingNHSNumbersAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	e.put("/Patient/pa-id", []byte(`{"resourceType":"Patient","id":"pa-id","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber2+`"}]}`), a...).must(t, http.StatusCreated)
	held := strings.Replace(string(referral("R-ID-1", "390893007")), `"subject":{`, `"subject":{"reference":"Patient/pa-id",`, 1)
	res := e.post("/ServiceRequest", []byte(held), a...).must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(res.body), "ServiceRequest.subject.identifier.value") || !strings.Contains(string(res.body), "business-rule") ||
		strings.Contains(string(res.body), nhsNumber) || strings.Contains(string(res.body), nhsNumber2) {
		t.Errorf("held Patient: %s", res.body)
	}

	contained := strings.Replace(string(referral("R-ID-2", "390893007")), `"subject":{`, `"contained":[{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber2+`"}]}],"subject":{"reference":"#p",`, 1)
	e.post("/ServiceRequest", []byte(contained), a...).must(t, http.StatusUnprocessableEntity)

	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:4f0c5a2e-8a1b-4c3d-9e5f-0a1b2c3d4e5f","resource":{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}]},"request":{"method":"POST","url":"Patient"}},` +
		`{"resource":` + strings.Replace(string(referral("R-ID-3", "390893007")), `"subject":{`, `"subject":{"reference":"urn:uuid:4f0c5a2e-8a1b-4c3d-9e5f-0a1b2c3d4e5f",`, 1) +
		`,"request":{"method":"POST","url":"ServiceRequest"}}]}`
	res = e.post("", []byte(tx), a...).must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(res.body), "Bundle.entry[1].resource.subject.identifier.value") {
		t.Errorf("transaction: %s", res.body)
	}
	if n := total(t, e.get("/ServiceRequest", a...)); n != 0 {
		t.Errorf("%d referrals stored", n)
	}

	// Agreeing numbers, and a versioned reference to the held Patient, are fine.
	agree := strings.Replace(held, nhsNumber, nhsNumber2, 1)
	e.post("/ServiceRequest", []byte(agree), a...).must(t, http.StatusCreated)
	versioned := strings.Replace(string(referral("R-ID-4", "390893007")),
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"Patient/pa-id/_history/1"}`, 1)
	sr := e.post("/ServiceRequest", []byte(versioned), a...).must(t, http.StatusCreated).json(t)
	if n := total(t, e.get("/ServiceRequest?patient=Patient/pa-id&_id="+sr["id"].(string), a...)); n != 1 {
		t.Errorf("the referral by a versioned reference is not found by its patient (%d)", n)
	}
	// A version the Patient does not have is not held.
	unheld := strings.NewReplacer("R-ID-4", "R-ID-5", "_history/1", "_history/7").Replace(versioned)
	e.post("/ServiceRequest", []byte(unheld), a...).must(t, http.StatusUnprocessableEntity)
}
