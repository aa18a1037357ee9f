package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Formats Signpost does not serve are 406, whether asked for by Accept or
// by _format; JSON, wildcards and no preference are served.
func TestFormatsNotServedAre406(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, h := range [][]string{
		{"Accept", "application/fhir+xml"},
		{"Accept", "application/xml, text/html"},
		{"Accept", "application/fhir+json;q=0, application/fhir+xml"},
	} {
		res := e.get("/metadata", h...).must(t, http.StatusNotAcceptable)
		if !strings.Contains(string(res.body), `"not-supported"`) {
			t.Errorf("%v: %s", h, res.body)
		}
	}
	for _, q := range []string{"/metadata?_format=xml", "/metadata?_format=application/fhir%2Bxml", "/ServiceRequest?_format=xml"} {
		e.get(q).must(t, http.StatusNotAcceptable)
	}
	for _, h := range [][]string{nil, {"Accept", "application/fhir+json"}, {"Accept", "application/json"}, {"Accept", "*/*"},
		{"Accept", "application/fhir+xml;q=0.9, application/fhir+json"}} {
		e.get("/metadata", h...).must(t, http.StatusOK)
	}
	for _, q := range []string{"/metadata?_format=json", "/metadata?_format=application/fhir%2Bjson", "/ServiceRequest?_format=json"} {
		e.get(q).must(t, http.StatusOK)
	}
}

// RFC 8259 lets a parser ignore a UTF-8 byte order mark: a body that
// starts with one is read without it, and stored without it.
func TestByteOrderMarkIsTolerated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := append([]byte{0xEF, 0xBB, 0xBF}, referral("R-BOM", "390893007")...)
	id := e.post("/ServiceRequest", body).must(t, http.StatusCreated).json(t)["id"].(string)
	got := e.get("/ServiceRequest/"+id).must(t, http.StatusOK)
	if !bytes.HasPrefix(got.body, []byte(`{`)) {
		t.Errorf("stored with the mark: %q", got.body[:8])
	}
}

// If-Match: * updates whatever version is current, if the resource exists.
func TestIfMatchAny(t *testing.T) {
	t.Parallel()
	e := setup(t)
	pat := `{"resourceType":"Patient","id":"pa-any","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}]}`
	res := e.put("/Patient/pa-any", []byte(pat), "If-Match", "*").must(t, http.StatusPreconditionFailed)
	if !strings.Contains(string(res.body), "If-Match: *") {
		t.Errorf("412 does not say why: %s", res.body)
	}
	e.get("/Patient/pa-any").must(t, http.StatusNotFound)
	e.put("/Patient/pa-any", []byte(pat)).must(t, http.StatusCreated)
	changed := strings.Replace(pat, `"id":"pa-any"`, `"id":"pa-any","gender":"female"`, 1)
	got := e.put("/Patient/pa-any", []byte(changed), "If-Match", "*").must(t, http.StatusOK)
	if got.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag %q, want version 2", got.header.Get("ETag"))
	}
}

// Answers say what the request is, not what it resembles.
func TestAnswersNameTheRealProblem(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// A DELETE or GET entry of a transaction: the method, not a missing resource.
	for _, m := range []string{"DELETE", "GET"} {
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"` + m + `","url":"Patient/x"}}]}`
		res := e.post("", []byte(tx)).must(t, http.StatusBadRequest)
		if !strings.Contains(string(res.body), "Bundle.entry[0].request.method") || !strings.Contains(string(res.body), "not supported in a transaction") {
			t.Errorf("%s entry: %s", m, res.body)
		}
	}
	// A type's history is not a bad id.
	res := e.get("/Patient/_history").must(t, http.StatusBadRequest)
	if !strings.Contains(string(res.body), "history of a whole type") {
		t.Errorf("type history: %s", res.body)
	}
	// A plain POST is not told about "this transaction".
	body := strings.Replace(string(referral("R-URN", "390893007")),
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`,
		`"subject":{"reference":"urn:uuid:0d1b6f3e-3a7c-4b8e-9a55-6f0c6f1b2c3d"}`, 1)
	res = e.post("/ServiceRequest", []byte(body)).must(t, http.StatusBadRequest)
	if strings.Contains(string(res.body), "this transaction") || !strings.Contains(string(res.body), "same transaction Bundle") {
		t.Errorf("plain POST with a urn: reference: %s", res.body)
	}
}

// The CapabilityStatement names the patch format and what is validated.
func TestCapabilityStatementSaysPatchFormatAndValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var cs struct {
		PatchFormat []string `json:"patchFormat"`
		Rest        []struct {
			Documentation string `json:"documentation"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(e.get("/metadata").must(t, http.StatusOK).body, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.PatchFormat) != 1 || cs.PatchFormat[0] != "application/json-patch+json" {
		t.Errorf("patchFormat %v", cs.PatchFormat)
	}
	if len(cs.Rest) != 1 || !strings.Contains(cs.Rest[0].Documentation, "StructureDefinitions") {
		t.Errorf("rest.documentation does not say what is validated: %+v", cs.Rest)
	}
}
