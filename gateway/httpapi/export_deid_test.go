package httpapi_test

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
)

// Synthetic identifiable details of one made-up patient: none may appear in
// a de-identified export.
const (
	deidGiven    = "Zebedee"
	deidFamily   = "Quillfeather"
	deidBirth    = "1961-07-14"
	deidPhone    = "07700 900123"
	deidMRN      = "MRN-55501"
	deidLine     = "17 Imaginary Row"
	deidNote     = "Lives alone since spring and finds the stairs hard"
	deidInstruct = "Ring the bell twice"
	deidPostcode = "LS1 4AP"
)

const deidPatient = `{"resourceType":"Patient","id":"pat-deid-1",` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + deidGiven + ` ` + deidFamily + `</div>"},` +
	`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"},` +
	`{"system":"https://example-gp.nhs.uk/mrn","value":"` + deidMRN + `"}],` +
	`"name":[{"given":["` + deidGiven + `"],"family":"` + deidFamily + `"}],"birthDate":"` + deidBirth + `",` +
	`"telecom":[{"system":"phone","value":"` + deidPhone + `"}],` +
	`"address":[{"line":["` + deidLine + `"],"city":"Leeds","postalCode":"` + deidPostcode + `"}],` +
	`"contact":[{"name":{"family":"Quillfeather-Kin"},"telecom":[{"system":"phone","value":"07700 900999"}]}]}`

// deidReferral is a referral for the patient above, with free text.
func deidReferral(ident string) []byte {
	r := string(referral(ident, "390893007"))
	r = strings.Replace(r, `"subject":{"identifier":`, `"subject":{"display":"`+deidGiven+` `+deidFamily+`","identifier":`, 1)
	r = strings.Replace(r, `"authoredOn"`, `"note":[{"text":"`+deidNote+`"}],"patientInstruction":"`+deidInstruct+`","authoredOn"`, 1)
	return []byte(r)
}

// deidEnv is a Signpost with key, holding the synthetic patient and two
// referrals for them.
func deidEnv(t *testing.T, key []byte, opts ...func(*options)) *env {
	t.Helper()
	e := setup(t, append(opts, func(o *options) { o.pseudonymKey = key })...)
	e.put("/Patient/pat-deid-1", []byte(deidPatient), as("practice-a")...).must(t, http.StatusCreated)
	for _, ident := range []string{"DEID-1", "DEID-2"} {
		e.post("/ServiceRequest", deidReferral(ident)).must(t, http.StatusCreated)
	}
	return e
}

var (
	keyA = []byte("synthetic-test-key-A-0123456789abcdef")
	keyB = []byte("synthetic-test-key-B-0123456789abcdef")
)

// pseudonymsOf returns the NHS-number pseudonyms of an export: the
// Patient's first identifier and each ServiceRequest's subject.
func pseudonymsOf(t *testing.T, files map[string][]map[string]any) (patient string, subjects []string) {
	t.Helper()
	for _, p := range files["Patient"] {
		ids := p["identifier"].([]any)
		id := ids[0].(map[string]any)
		if id["system"] != "https://signpost.health/fhir/Id/pseudonym" || len(ids) != 2 {
			t.Errorf("Patient identifiers: %v", ids)
		}
		patient = id["value"].(string)
	}
	for _, sr := range files["ServiceRequest"] {
		id := sr["subject"].(map[string]any)["identifier"].(map[string]any)
		if id["system"] != "https://signpost.health/fhir/Id/pseudonym" {
			t.Errorf("subject identifier: %v", id)
		}
		subjects = append(subjects, id["value"].(string))
	}
	return patient, subjects
}

func TestDeidentifiedExport(t *testing.T) {
	t.Parallel()
	testDeidentifiedExport(t)
}

// The same on a store that spreads referrals: the Patient in legacy, its
// referrals in their partitions, the same pseudonym in every one.
func TestSpreadDeidentifiedExport(t *testing.T) {
	t.Parallel()
	testDeidentifiedExport(t, spread)
}

func testDeidentifiedExport(t *testing.T, opts ...func(*options)) {
	e := deidEnv(t, keyA, opts...)
	m, files := e.exportAll(t, "?_deidentify=true")
	if len(files["Patient"]) != 1 || len(files["ServiceRequest"]) != 2 || len(files["Task"]) != 2 {
		t.Fatalf("exported %d Patients, %d ServiceRequests, %d Tasks", len(files["Patient"]), len(files["ServiceRequest"]), len(files["Task"]))
	}
	// Every line of every file (exportAll validated each as R4), read raw.
	needles := []string{nhsNumber, deidGiven, deidFamily, deidBirth, deidPhone, strings.ReplaceAll(deidPhone, " ", ""),
		"07700 900999", deidMRN, deidLine, deidNote, deidInstruct, "4AP", string(keyA)}
	e.deidLeaks(t, m, needles...)
	if strings.Contains(e.logs.String(), string(keyA)) {
		t.Error("the key is in the logs")
	}
	p := files["Patient"][0]
	if p["birthDate"] != "1961" || p["id"] == "pat-deid-1" || len(p["id"].(string)) != 52 {
		t.Errorf("birthDate %v, id %v", p["birthDate"], p["id"])
	}
	if a, _ := p["address"].([]any); len(a) != 1 || a[0].(map[string]any)["postalCode"] != "LS1" || len(a[0].(map[string]any)) != 1 {
		t.Errorf("address %v: want only the outward code", p["address"])
	}
	for _, gone := range []string{"name", "telecom", "contact", "text"} {
		if _, ok := p[gone]; ok {
			t.Errorf("Patient.%s kept", gone)
		}
	}
	// Codes stay: what the referral is for is the point of evaluating it.
	if sr := files["ServiceRequest"][0]; sr["code"] == nil || sr["status"] == nil {
		t.Errorf("ServiceRequest lost its codes: %v", sr)
	}
	// The same person has the same pseudonym wherever they are named.
	patient, subjects := pseudonymsOf(t, files)
	for _, s := range subjects {
		if s != patient {
			t.Errorf("subject pseudonym %s, Patient's %s", s, patient)
		}
	}
	for _, task := range files["Task"] {
		if id, ok := task["for"].(map[string]any)["identifier"].(map[string]any); ok && id["value"] != patient {
			t.Errorf("Task.for identifier %v, Patient's pseudonym %s", id, patient)
		}
	}
	// The manifest says so, and never holds the key.
	res := e.get(strings.Replace(m.Output[0].URL, "$export-file", "$export-status", 1)[:strings.LastIndex(strings.Replace(m.Output[0].URL, "$export-file", "$export-status", 1), "/")])
	if body := string(res.body); !strings.Contains(body, `"https://signpost.health/fhir/StructureDefinition/deidentified":true`) || strings.Contains(body, string(keyA)) {
		t.Errorf("manifest: %s", body)
	}

	// Stable under the same key, export after export.
	_, again := e.exportAll(t, "?_deidentify=true&_type=Patient")
	if p2, _ := pseudonymsOf(t, again); p2 != patient {
		t.Errorf("second export: pseudonym %s, first %s", p2, patient)
	}
	// Another deployment's key: unrelated pseudonyms for the same person.
	other := deidEnv(t, keyB, opts...)
	_, theirs := other.exportAll(t, "?_deidentify=true&_type=Patient")
	if p3, _ := pseudonymsOf(t, theirs); p3 == patient || p3 == "" {
		t.Errorf("another key gave pseudonym %q, this key's %q", p3, patient)
	}
	// Without _deidentify the export is the stored data, as before.
	_, plain := e.exportAll(t, "?_type=Patient")
	if plain["Patient"][0]["birthDate"] != deidBirth {
		t.Errorf("a plain export was de-identified: %v", plain["Patient"][0])
	}
}

// A deployment without a key refuses a de-identified export, and writes nothing.
func TestDeidentifiedExportNeedsAKey(t *testing.T) {
	t.Parallel()
	e := deidEnv(t, nil)
	res := e.get("/$export?_deidentify=true", kickoffHeaders...).must(t, http.StatusUnprocessableEntity)
	if body := string(res.body); !strings.Contains(body, `"OperationOutcome"`) || !strings.Contains(body, "SIGNPOST_PSEUDONYM_KEY") {
		t.Errorf("refusal: %s", body)
	}
	if entries, err := os.ReadDir(e.exportDir); err != nil || len(entries) != 0 {
		t.Errorf("the export directory holds %d entries (%v)", len(entries), err)
	}
	e.get("/$export?_deidentify=yes", kickoffHeaders...).must(t, http.StatusBadRequest)
}

// deidLeaks fails t for each line of each file of an export m that holds
// one of needles.
func (e *env) deidLeaks(t *testing.T, m manifest, needles ...string) {
	t.Helper()
	if len(m.Output) == 0 {
		t.Fatal("the export wrote no file")
	}
	for _, o := range m.Output {
		body := e.get(o.URL).must(t, http.StatusOK).body
		for i, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			for _, n := range needles {
				if bytes.Contains(line, []byte(n)) {
					t.Errorf("%s line %d holds %q: %s", o.Type, i+1, n, line)
				}
			}
		}
	}
}

// A date cut to its year does not survive in the primitive's extensions
// (patient-birthTime), and an NHS number is pseudonymised wherever an
// Identifier holds it, an extension's valueIdentifier included.
func TestDeidentifiedExportBirthTimeAndValueIdentifier(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.pseudonymKey = keyA })
	patient := `{"resourceType":"Patient","id":"pat-rv-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],` +
		`"birthDate":"` + deidBirth + `","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"` + deidBirth + `T08:15:00+01:00"}]},` +
		`"extension":[{"url":"https://example-gp.nhs.uk/fhir/StructureDefinition/previous-nhs-number","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}}]}`
	e.put("/Patient/pat-rv-1", []byte(patient), as("practice-a")...).must(t, http.StatusCreated)
	e.post("/ServiceRequest", referralFor("RV-1", "pat-rv-1"), as("practice-a")...).must(t, http.StatusCreated)
	m, files := e.exportAll(t, "?_deidentify=true&_type=Patient")
	e.deidLeaks(t, m, deidBirth, nhsNumber2, "08:15")
	if p := files["Patient"]; len(p) != 1 || p[0]["birthDate"] != "1961" {
		t.Errorf("Patients: %v", p)
	}
}

// A client may make a Patient's id its NHS number: the de-identified
// export names the Patient by a pseudonym, in the Patient and in every
// reference to it, the same in every file.
func TestDeidentifiedExportPatientIDIsPseudonymised(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.pseudonymKey = keyA })
	e.put("/Patient/"+nhsNumber, testPatient(nhsNumber), as("practice-a")...).must(t, http.StatusCreated)
	e.post("/ServiceRequest", referralFor("ID-NHS", nhsNumber), as("practice-a")...).must(t, http.StatusCreated)
	m, files := e.exportAll(t, "?_deidentify=true")
	e.deidLeaks(t, m, nhsNumber)
	if len(files["Patient"]) != 1 || len(files["ServiceRequest"]) != 1 || len(files["Task"]) != 1 {
		t.Fatalf("exported %d Patients, %d ServiceRequests, %d Tasks", len(files["Patient"]), len(files["ServiceRequest"]), len(files["Task"]))
	}
	ref := "Patient/" + files["Patient"][0]["id"].(string)
	if got := files["ServiceRequest"][0]["subject"].(map[string]any)["reference"]; got != ref {
		t.Errorf("ServiceRequest.subject %v, the Patient is %s", got, ref)
	}
	if got := files["Task"][0]["for"].(map[string]any)["reference"]; got != ref {
		t.Errorf("Task.for %v, the Patient is %s", got, ref)
	}
	// The same pseudonym export after export, under the same key.
	_, again := e.exportAll(t, "?_deidentify=true&_type=Patient")
	if again["Patient"][0]["id"] != files["Patient"][0]["id"] {
		t.Errorf("Patient id %v, then %v", files["Patient"][0]["id"], again["Patient"][0]["id"])
	}
}

// The patient's Location (ServiceRequest.locationReference in the BaRS
// example) keeps no more of its address than Patient.address does, and no
// coordinates.
func TestDeidentifiedExportPatientLocation(t *testing.T) {
	t.Parallel()
	e := setup(t, withBaRSService, withWarnNHS, func(o *options) { o.pseudonymKey = keyA })
	e.post("/$process-message", barsExample(t), callerHeader, "practice-a").must(t, http.StatusOK)
	m, files := e.exportAll(t, "?_deidentify=true&_type=Location")
	e.deidLeaks(t, m, "LS1 6PT", "20 The Headrow", "53.79957987629337", "1.5417544014466307")
	if l := files["Location"]; len(l) != 1 || l[0]["position"] != nil {
		t.Errorf("Locations: %v", l)
	} else if a, _ := l[0]["address"].(map[string]any); a["postalCode"] != "LS1" || len(a) != 1 {
		t.Errorf("Location.address %v: want only the outward code", l[0]["address"])
	}
}

// An Annotation held under another name than note (CarePlan.activity.progress)
// goes whole, author and all, and the line is still valid R4 (exportAll
// validates each).
func TestDeidentifiedExportAnnotationOutsideNote(t *testing.T) {
	t.Parallel()
	e := setup(t, withBaRSService, withWarnNHS, func(o *options) { o.pseudonymKey = keyA })
	msg := barsMutant(t, func(_ map[string]any, entries []any) {
		activity := entryResource(entries, 4)["activity"].([]any)[0].(map[string]any)
		activity["progress"] = []any{map[string]any{"authorString": "Sam Jones (daughter)", "time": "2021-11-26T16:00:00+00:00", "text": "Says her mother is calmer"}}
	})
	e.post("/$process-message", msg, callerHeader, "practice-a").must(t, http.StatusOK)
	m, files := e.exportAll(t, "?_deidentify=true&_type=CarePlan")
	e.deidLeaks(t, m, "Sam Jones", "calmer")
	if len(files["CarePlan"]) != 1 {
		t.Errorf("CarePlans: %v", files["CarePlan"])
	}
}
