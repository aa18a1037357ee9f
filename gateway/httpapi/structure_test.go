package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// withMembers adds members to the test referral's JSON.
func withMembers(body []byte, members string) []byte {
	s := string(body)
	i := strings.LastIndexByte(s, '}')
	return []byte(s[:i] + "," + members + "}")
}

// What senders were seen to send, invalid R4 that Signpost used to store
// and forward: each is refused (400) at its element, and nothing is stored.
func TestInvalidR4IsRefusedAtTheElement(t *testing.T) {
	t.Parallel()
	e := setup(t)
	base := referral("R-STRUCT", "390893007")
	cases := []struct {
		name, members, expr string
	}{
		{"BaRS's own typo", `"PatientInstruction":"Bring trainers"`, "ServiceRequest.PatientInstruction"},
		{"impossible dateTime", `"authoredOn":"2021-13-45T25:00:00Z"`, "ServiceRequest.authoredOn"},
		{"time without timezone", `"authoredOn":"2021-03-04T10:00:00"`, "ServiceRequest.authoredOn"},
		{"empty string", `"patientInstruction":""`, "ServiceRequest.patientInstruction"},
		{"null", `"patientInstruction":null`, "ServiceRequest.patientInstruction"},
		{"empty array", `"note":[]`, "ServiceRequest.note"},
		{"empty object", `"encounter":{}`, "ServiceRequest.encounter"},
		{"numeric id", `"id":1001`, "ServiceRequest.id"},
		{"basedOn as an object", `"basedOn":{"reference":"ServiceRequest/x"}`, "ServiceRequest.basedOn"},
		{"boolean in quotes", `"doNotPerform":"false"`, "ServiceRequest.doNotPerform"},
		{"reference with a space", `"encounter":{"reference":"Encounter/a b"}`, "ServiceRequest.encounter.reference"},
		{"extension without url", `"extension":[{"valueString":"x"}]`, "ServiceRequest.extension[0].url"},
		{"extension with value and extensions", `"extension":[{"url":"https://example.org/x","valueString":"x","extension":[{"url":"y","valueString":"z"}]}]`, "ServiceRequest.extension[0]"},
		{"extension with two values", `"extension":[{"url":"https://example.org/x","valueString":"x","valueBoolean":true}]`, "ServiceRequest.extension[0].valueBoolean"},
		{"contained without id", `"contained":[{"resourceType":"Practitioner","active":true}]`, "ServiceRequest.contained[0].id"},
		{"contained with versionId", `"contained":[{"resourceType":"Practitioner","id":"gp","meta":{"versionId":"1"}}],"performer":[{"reference":"#gp"}]`, "ServiceRequest.contained[0].meta"},
		{"narrative not XHTML", `"text":{"status":"generated","div":"<p>Walking</p>"}`, "ServiceRequest.text.div"},
		{"decimal in quotes", `"extension":[{"url":"https://example.org/x","valueDecimal":"1.5"}]`, "ServiceRequest.extension[0].valueDecimal"},
	}
	for _, c := range cases {
		res := e.post("/ServiceRequest", withMembers(base, c.members)).must(t, http.StatusBadRequest)
		if !slices.Contains(exprs(t, res), c.expr) {
			t.Errorf("%s: %s not named: %s", c.name, c.expr, res.body)
		}
	}
	for _, c := range []struct{ name, body, expr string }{
		{"impossible birthDate", `{"resourceType":"Patient","id":"p1","birthDate":"1970-13-45"}`, "Patient.birthDate"},
		{"unknown element", `{"resourceType":"Patient","id":"p1","nhsNumber":"` + nhsNumber + `"}`, "Patient.nhsNumber"},
		{"deceased twice", `{"resourceType":"Patient","id":"p1","deceasedBoolean":false,"deceasedDateTime":"2020-01-01"}`, "Patient.deceasedDateTime"},
	} {
		res := e.put("/Patient/p1", []byte(c.body)).must(t, http.StatusBadRequest)
		if !slices.Contains(exprs(t, res), c.expr) {
			t.Errorf("%s: %s not named: %s", c.name, c.expr, res.body)
		}
	}
	// A transaction's invalid entry is named at its place in the Bundle.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:0d1b6f3e-3a7c-4b8e-9a55-6f0c6f1b2c3d","resource":` +
		string(withMembers(base, `"doNotPerform":"false"`)) + `,"request":{"method":"POST","url":"ServiceRequest"}}]}`
	res := e.post("", []byte(tx)).must(t, http.StatusBadRequest)
	if !slices.Contains(exprs(t, res), "Bundle.entry[0].resource.doNotPerform") {
		t.Errorf("transaction entry not named: %s", res.body)
	}
	// Nothing was stored or queued.
	if n := total(t, e.get("/ServiceRequest")); n != 0 {
		t.Errorf("%d ServiceRequests stored", n)
	}
	e.get("/Patient/p1").must(t, http.StatusNotFound)
	if n := len(e.queued(t, gateway.QueueDelivery)); n != 0 {
		t.Errorf("delivery jobs = %d, want 0", n)
	}
}

// Every structural problem and every broken required binding is reported
// in one answer, structure first.
func TestStructureAndBindingsAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := withMembers(referralWith("390893007", withField("intent", "orders")), `"PatientInstruction":"x","performer":{"reference":"Organization/walking"}`)
	got := exprs(t, e.post("/ServiceRequest", body).must(t, http.StatusBadRequest))
	for _, want := range []string{"ServiceRequest.PatientInstruction", "ServiceRequest.performer", "ServiceRequest.intent"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not reported: %v", want, got)
		}
	}
}

// A modifier extension changes what a resource means: one the deployment
// does not understand is refused (422, not-supported, naming its url), not
// processed as if it were absent. One it lists is accepted.
func TestUnknownModifierExtensionIsRefused(t *testing.T) {
	t.Parallel()
	const url = "https://example.org/fhir/StructureDefinition/do-not-contact"
	body := withMembers(referral("R-MOD", "390893007"), `"modifierExtension":[{"url":"`+url+`","valueBoolean":true}]`)

	e := setup(t)
	res := e.post("/ServiceRequest", body).must(t, http.StatusUnprocessableEntity)
	out := res.json(t)
	is := out["issue"].([]any)[0].(map[string]any)
	if is["code"] != "not-supported" || !strings.Contains(is["diagnostics"].(string), url) ||
		!slices.Contains(exprs(t, res), "ServiceRequest.modifierExtension[0]") {
		t.Errorf("refusal: %s", res.body)
	}
	if n := total(t, e.get("/ServiceRequest")); n != 0 {
		t.Errorf("%d ServiceRequests stored", n)
	}

	understood := setup(t, func(o *options) { o.understood = []string{url} })
	understood.post("/ServiceRequest", body).must(t, http.StatusCreated)
}

// What Signpost writes itself — the referral Task, the Provenance of a
// change, search Bundles, OperationOutcomes, the CapabilityStatement — is
// valid R4 by the same rules.
func TestWhatSignpostWritesIsValidR4(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("R-OUT", "390893007")).must(t, http.StatusCreated).json(t)
	bodies := map[string][]byte{}
	search := e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)+"&_include=Task:focus").must(t, http.StatusOK)
	bodies["search Bundle"] = search.body
	task := bundleEntries(t, search, "match")[0]
	taskID := task["id"].(string)
	bodies["referral Task"] = e.get("/Task/"+taskID).must(t, http.StatusOK).body
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(`[{"op":"replace","path":"/status","value":"accepted"}]`),
		with(as("walking"), "Content-Type", "application/json-patch+json")...).must(t, http.StatusOK)
	prov := e.get("/Provenance?target=Task/"+taskID).must(t, http.StatusOK)
	bodies["Provenance search"] = prov.body
	bodies["OperationOutcome"] = e.get("/Task/no-such-task").must(t, http.StatusNotFound).body
	bodies["CapabilityStatement"] = e.get("/metadata").must(t, http.StatusOK).body
	bodies["history"] = e.get("/Task/"+taskID+"/_history/2").must(t, http.StatusOK).body
	for name, b := range bodies {
		for _, is := range structure.Validate(b).Issues {
			t.Errorf("%s: %s %v: %s", name, is.Code, is.Expression, is.Diagnostics)
		}
	}
}

func exprs(t *testing.T, res *response) []string {
	t.Helper()
	var out []string
	for _, is := range res.json(t)["issue"].([]any) {
		for _, x := range is.(map[string]any)["expression"].([]any) {
			out = append(out, x.(string))
		}
	}
	return out
}

// A provider configured without a name: what Signpost writes about it
// names it by id, never with an empty display (invalid R4).
func TestProviderWithoutANameIsStillNamed(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) {
		o.providers = []gateway.Provider{{ID: "walking", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"},
			Categories: []string{"physical-activity"}}}
	})
	sr := e.post("/ServiceRequest", referral("R-NONAME", "390893007")).must(t, http.StatusCreated).json(t)
	res := e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)).must(t, http.StatusOK)
	task := bundleEntries(t, res, "match")[0]
	if d := task["owner"].(map[string]any)["display"]; d != "walking" {
		t.Errorf("owner.display = %q, want the provider's id", d)
	}
	for _, is := range structure.Validate(res.body).Issues {
		t.Errorf("%s %v: %s", is.Code, is.Expression, is.Diagnostics)
	}
}
