package structure

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure/r4examples"
)

// examples are the official R4 examples (r4examples).
func examples(t testing.TB) map[string][]byte {
	t.Helper()
	out, err := r4examples.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 200 {
		t.Fatalf("only %d examples", len(out))
	}
	return out
}

// knownInvalid are published examples that break an R4 rule themselves, with
// the rule each breaks. The rest must be valid.
var knownInvalid = map[string]string{
	"BaRS_API_Capability_Statement.json":                "CapabilityStatement.rest[0].security", // security is 0..1, sent as an array
	"Questionnaire-qs1.json":                            "Questionnaire.item[0].item[0].linkId", // linkId is 1..1
	"Questionnaire-zika-virus-exposure-assessment.json": "Questionnaire.text.div",               // a narrative of whitespace only (txt-2)
}

func TestOfficialExamplesAreValid(t *testing.T) {
	t.Parallel()
	for name, body := range examples(t) {
		res := Validate(body)
		if expr, ok := knownInvalid[name]; ok {
			if res.Valid() || !slices.Contains(res.Issues[0].Expression, expr) {
				t.Errorf("%s: want the known fault at %s, got %v", name, expr, res.Issues)
			}
			continue
		}
		for _, is := range res.Issues {
			t.Errorf("%s: %s %v: %s", name, is.Code, is.Expression, is.Diagnostics)
		}
	}
}

// The conformance examples of the project's own standards (Gravity, BaRS)
// and the gateway's test referrals are valid R4 too.
func TestProjectExamplesAreValid(t *testing.T) {
	t.Parallel()
	var files []string
	for _, glob := range []string{"../../../shared/conformance/*/*.json", "../../gateway/httpapi/testdata/*/*.json"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	n := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !IsResourceType(resourceTypeOf(body)) {
			continue // golden OperationOutcome fragments and the like
		}
		n++
		res := Validate(body)
		if expr, ok := knownInvalid[filepath.Base(f)]; ok {
			if res.Valid() || !slices.Contains(res.Issues[0].Expression, expr) {
				t.Errorf("%s: want the known fault at %s, got %v", f, expr, res.Issues)
			}
			continue
		}
		for _, is := range res.Issues {
			t.Errorf("%s: %s %v: %s", f, is.Code, is.Expression, is.Diagnostics)
		}
	}
	t.Logf("%d resources", n)
}

func resourceTypeOf(body []byte) string {
	root, err := decode(body, false)
	if err != nil {
		return ""
	}
	return root.str("resourceType")
}

const referral = `{"resourceType":"ServiceRequest",
  "identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"R-0001"}],
  "status":"active","intent":"order","priority":"routine",
  "code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007","display":"Referral to physical activity program"}]},
  "subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}},
  "requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`

const patient = `{"resourceType":"Patient","id":"p1",
  "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],
  "name":[{"family":"Example","given":["Sam"]}],"birthDate":"1970-01-01"}`

// with adds members to a JSON object.
func with(base, members string) []byte {
	i := strings.LastIndexByte(base, '}')
	return []byte(base[:i] + "," + members + "}")
}

// mutants are the invalid resources senders were seen to send, each with
// where the fault is and the kind of fault.
var mutants = []struct {
	name string
	body []byte
	expr string
	code fhir.IssueType
}{
	{"unknown element", with(referral, `"PatientInstruction":"Bring trainers"`), "ServiceRequest.PatientInstruction", fhir.IssueStructure},
	{"impossible dateTime", with(referral, `"authoredOn":"2021-13-45T25:00:00Z"`), "ServiceRequest.authoredOn", fhir.IssueValue},
	{"time without timezone", with(referral, `"authoredOn":"2021-03-04T10:00:00"`), "ServiceRequest.authoredOn", fhir.IssueValue},
	{"31 April", with(referral, `"authoredOn":"2021-04-31"`), "ServiceRequest.authoredOn", fhir.IssueValue},
	{"29 February, not a leap year", with(referral, `"occurrenceDateTime":"2023-02-29"`), "ServiceRequest.occurrenceDateTime", fhir.IssueValue},
	{"empty string", with(referral, `"patientInstruction":""`), "ServiceRequest.patientInstruction", fhir.IssueValue},
	{"null", with(referral, `"patientInstruction":null`), "ServiceRequest.patientInstruction", fhir.IssueStructure},
	{"empty array", with(referral, `"note":[]`), "ServiceRequest.note", fhir.IssueStructure},
	{"empty object", with(referral, `"encounter":{}`), "ServiceRequest.encounter", fhir.IssueStructure},
	{"numeric id", with(referral, `"id":1001`), "ServiceRequest.id", fhir.IssueStructure},
	{"bad id", with(referral, `"id":"a b"`), "ServiceRequest.id", fhir.IssueValue},
	{"array as object", with(referral, `"basedOn":{"reference":"ServiceRequest/x"}`), "ServiceRequest.basedOn", fhir.IssueStructure},
	{"object as array", with(referral, `"encounter":[{"reference":"Encounter/x"}]`), "ServiceRequest.encounter", fhir.IssueStructure},
	{"boolean in quotes", with(referral, `"doNotPerform":"false"`), "ServiceRequest.doNotPerform", fhir.IssueStructure},
	{"reference with a space", with(referral, `"encounter":{"reference":"Encounter/a b"}`), "ServiceRequest.encounter.reference", fhir.IssueValue},
	{"extension without url", with(referral, `"extension":[{"valueString":"x"}]`), "ServiceRequest.extension[0].url", fhir.IssueRequired},
	{"extension with value and extensions", with(referral, `"extension":[{"url":"https://example.org/x","valueString":"x","extension":[{"url":"y","valueString":"z"}]}]`), "ServiceRequest.extension[0]", fhir.IssueInvariant},
	{"extension with neither", with(referral, `"extension":[{"url":"https://example.org/x"}]`), "ServiceRequest.extension[0]", fhir.IssueInvariant},
	{"extension with two values", with(referral, `"extension":[{"url":"https://example.org/x","valueString":"x","valueBoolean":true}]`), "ServiceRequest.extension[0].valueBoolean", fhir.IssueStructure},
	{"decimal in quotes", with(referral, `"extension":[{"url":"https://example.org/x","valueDecimal":"1.5"}]`), "ServiceRequest.extension[0].valueDecimal", fhir.IssueStructure},
	{"contained without id", with(referral, `"contained":[{"resourceType":"Patient","active":true}]`), "ServiceRequest.contained[0].id", fhir.IssueInvariant},
	{"contained with versionId", with(referral, `"contained":[{"resourceType":"Patient","id":"p","meta":{"versionId":"1"}}],"encounter":{"reference":"#p"}`), "ServiceRequest.contained[0].meta", fhir.IssueInvariant},
	{"contained not referred to", with(referral, `"contained":[{"resourceType":"Patient","id":"p"}]`), "ServiceRequest.contained[0]", fhir.IssueInvariant},
	{"local reference to nothing", with(referral, `"encounter":{"reference":"#nothing"}`), "ServiceRequest.encounter.reference", fhir.IssueInvariant},
	{"contained of an unknown type", with(referral, `"contained":[{"resourceType":"Referral","id":"r"}],"encounter":{"reference":"#r"}`), "ServiceRequest.contained[0].resourceType", fhir.IssueStructure},
	{"narrative not XHTML", with(referral, `"text":{"status":"generated","div":"<p>Walking</p>"}`), "ServiceRequest.text.div", fhir.IssueValue},
	{"narrative with a script", with(referral, `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x()</script></div>"}`), "ServiceRequest.text.div", fhir.IssueValue},
	{"narrative with an event handler", with(referral, `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\" onclick=\"x()\">Walking</div>"}`), "ServiceRequest.text.div", fhir.IssueValue},
	{"narrative not well-formed", with(referral, `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Walking</div>"}`), "ServiceRequest.text.div", fhir.IssueValue},
	{"narrative missing status", with(referral, `"text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Walking</div>"}`), "ServiceRequest.text.status", fhir.IssueRequired},
	{"required element missing", []byte(`{"resourceType":"ServiceRequest","status":"active","subject":{"reference":"Patient/p"}}`), "ServiceRequest.intent", fhir.IssueRequired},
	{"code with a double space", with(referral, `"category":[{"coding":[{"code":"a  b"}]}]`), "ServiceRequest.category[0].coding[0].code", fhir.IssueValue},
	{"primitive extension of nothing", with(referral, `"_nothing":{"extension":[{"url":"u","valueString":"x"}]}`), "ServiceRequest._nothing", fhir.IssueStructure},
	{"primitive extension with other members", with(referral, `"_priority":{"text":"x"}`), "ServiceRequest._priority.text", fhir.IssueStructure},
	{"null in an array without extensions", with(referral, `"instantiatesUri":["https://example.org/a",null]`), "ServiceRequest.instantiatesUri[1]", fhir.IssueStructure},
	{"integer out of range", with(referral, `"extension":[{"url":"https://example.org/x","valueInteger":2147483648}]`), "ServiceRequest.extension[0].valueInteger", fhir.IssueValue},
	{"integer with a fraction", with(referral, `"extension":[{"url":"https://example.org/x","valueInteger":1.5}]`), "ServiceRequest.extension[0].valueInteger", fhir.IssueValue},
	{"Patient: impossible birthDate", []byte(`{"resourceType":"Patient","birthDate":"1970-13-45"}`), "Patient.birthDate", fhir.IssueValue},
	{"Patient: unknown element", with(patient, `"nhsNumber":"9434765919"`), "Patient.nhsNumber", fhir.IssueStructure},
	{"Patient: deceased twice", with(patient, `"deceasedBoolean":false,"deceasedDateTime":"2020-01-01"`), "Patient.deceasedDateTime", fhir.IssueStructure},
	{"Patient: a resource type's case", []byte(`{"resourceType":"patient"}`), "resourceType", fhir.IssueStructure},
}

func TestMutantsAreRefusedAtTheElement(t *testing.T) {
	t.Parallel()
	for _, m := range mutants {
		res := Validate(m.body)
		found := false
		for _, is := range res.Issues {
			if slices.Contains(is.Expression, m.expr) && is.Code == m.code {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %s at %s, got %v", m.name, m.code, m.expr, res.Issues)
		}
	}
	// The unmutated bases are valid.
	for _, b := range []string{referral, patient} {
		if res := Validate([]byte(b)); !res.Valid() {
			t.Errorf("base is invalid: %v", res.Issues)
		}
	}
}

// Every problem is reported at once, not the first only.
func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	body := with(referral, `"PatientInstruction":"x","authoredOn":"2021-13-45","doNotPerform":"false","note":[]`)
	res := Validate(body)
	var got []string
	for _, is := range res.Issues {
		got = append(got, is.Expression...)
	}
	for _, want := range []string{"ServiceRequest.PatientInstruction", "ServiceRequest.authoredOn", "ServiceRequest.doNotPerform", "ServiceRequest.note"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not reported; got %v", want, got)
		}
	}
}

// Diagnostics never repeat a value from the body: it may be patient data.
func TestDiagnosticsDoNotEchoValues(t *testing.T) {
	t.Parallel()
	const secret = "Zebedee-Quartermain-9434765919"
	for _, body := range [][]byte{
		with(patient, `"`+secret+`":"x"`),
		with(patient, `"gender":"`+secret+`"`),
		with(patient, `"birthDate":"`+secret+`"`),
		with(patient, `"text":{"status":"generated","div":"<p>`+secret+`</p>"}`),
	} {
		for _, is := range Validate(body).Issues {
			if strings.Contains(is.Diagnostics, "Zebedee") {
				t.Errorf("diagnostics echo the body: %q", is.Diagnostics)
			}
		}
	}
}

func TestModifierExtensionsAreListed(t *testing.T) {
	t.Parallel()
	body := with(referral, `"modifierExtension":[{"url":"https://example.org/not-really","valueBoolean":true}]`)
	res := Validate(body)
	if !res.Valid() {
		t.Fatalf("a modifier extension is valid structure: %v", res.Issues)
	}
	if len(res.Modifiers) != 1 || res.Modifiers[0].URL != "https://example.org/not-really" || res.Modifiers[0].Expression != "ServiceRequest.modifierExtension[0]" {
		t.Errorf("modifiers: %+v", res.Modifiers)
	}
}

// A body with more faults than MaxIssues is answered with a bounded list.
func TestIssuesAreBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient","name":[`)
	for i := range 5000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"family":1}`)
	}
	b.WriteString(`]}`)
	res := Validate([]byte(b.String()))
	if len(res.Issues) != MaxIssues || res.Issues[MaxIssues-1].Code != fhir.IssueTooCostly {
		t.Errorf("%d issues, last %v", len(res.Issues), res.Issues[len(res.Issues)-1])
	}
}

func TestValidateAs(t *testing.T) {
	t.Parallel()
	if res := ValidateAs([]byte(patient), "Task"); res.Valid() || res.Issues[0].Expression[0] != "resourceType" {
		t.Errorf("a Patient validated as a Task: %v", res.Issues)
	}
}
