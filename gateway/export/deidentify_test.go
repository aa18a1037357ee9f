package export

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/fhir/structure/r4examples"
	"github.com/signpost-health/signpost/gateway"
)

func TestParsePseudonymKey(t *testing.T) {
	t.Parallel()
	raw := strings.Repeat("k", 32)
	b64 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x01", 32)))
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{b64, 32, false},
		{raw, 32, false},
		{"tiny-key", 0, true},
		{base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")), 0, true},
	} {
		k, err := ParsePseudonymKey(tc.in)
		if (err != nil) != tc.err || len(k) != tc.want {
			t.Errorf("%q: %d bytes, %v", tc.in, len(k), err)
		}
		if err != nil && (!errors.Is(err, ErrPseudonymKey) || strings.Contains(err.Error(), tc.in)) {
			t.Errorf("%q: error %v", tc.in, err)
		}
	}
}

// The rules at the edges: contained Patients, references to Patients and
// to others, text-only concepts, extensions losing their value, postcodes
// written without a space.
func TestDeidentifyRules(t *testing.T) {
	t.Parallel()
	d := &deidentifier{key: []byte(strings.Repeat("s", 32))}
	in := `{"resourceType":"ServiceRequest","id":"sr-1","status":"active","intent":"order",` +
		`"contained":[{"resourceType":"Patient","id":"p","name":[{"family":"Synthetica"}],"birthDate":"1970-03-04",` +
		`"deceasedDateTime":"2020-05-06T07:08:09Z","address":[{"postalCode":"ls14ap"},{"city":"Leeds"}],` +
		`"identifier":[{"system":"https://example.org/local","value":"L-1"}]}],` +
		`"extension":[{"url":"https://example.org/free","valueString":"Synthetica said so"},{"url":"https://example.org/code","valueCode":"x"}],` +
		`"identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"REF-9"}],` +
		`"subject":{"reference":"#p","display":"Ms Synthetica"},` +
		`"performer":[{"reference":"Organization/o1","display":"Walking for Health"}],` +
		`"reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"1","display":"Lonely"}],"text":"Synthetica is lonely"},{"text":"only text"}],` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}]}}`
	out, err := d.resource([]byte(in), "practice-a")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, gone := range []string{"Synthetica", "1970-03-04", "2020-05-06", "4AP", "L-1", "Leeds\"", "only text", "REF-9"} {
		if strings.Contains(s, gone) {
			t.Errorf("%q kept: %s", gone, s)
		}
	}
	// The referral's own identifier (a client's, which may be built from
	// the person's name) is pseudonymised like a patient's: still joinable.
	refPseudonym := d.pseudonym("https://example-gp.nhs.uk/referral-id", "REF-9")
	for _, kept := range []string{`"birthDate":"1970"`, `"deceasedDateTime":"2020"`, `"postalCode":"LS1"`, refPseudonym,
		`"display":"Walking for Health"`, `"display":"Lonely"`, `"valueCode":"x"`, `"masked"`, `"id":"sr-1"`, PseudonymSystem} {
		if !strings.Contains(s, kept) {
			t.Errorf("%s lost: %s", kept, s)
		}
	}
	// A deployment that keeps no year: the dates go, and it is still R4.
	d.dates = DatesRemove
	noDates, err := d.resource([]byte(in), "practice-a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(noDates), "birthDate") || strings.Contains(string(noDates), "deceased") || !structure.Validate(noDates).Valid() {
		t.Errorf("birth_date remove: %s", noDates)
	}
	d.dates = DatesYear
	var r map[string]any
	_ = json.Unmarshal(out, &r)
	if ext := r["extension"].([]any); len(ext) != 1 {
		t.Errorf("extensions: %v", ext)
	}
	if v := structure.Validate(out); !v.Valid() {
		t.Errorf("not valid R4: %+v\n%s", v.Issues, s)
	}
	// Same value, same key: same pseudonym; the system is part of it.
	if d.pseudonym(NHSNumberSystem, "9434765919") != d.pseudonym(NHSNumberSystem, "9434765919") ||
		d.pseudonym(NHSNumberSystem, "9434765919") == d.pseudonym("https://example.org/local", "9434765919") {
		t.Error("pseudonyms are not a function of system and value")
	}
}

// The identifiers and source of a recorded measure, and any resource's own
// identifiers, do not survive; an organisation's public ODS code does.
func TestDeidentifyResourceIdentifiersAndSource(t *testing.T) {
	t.Parallel()
	d := &deidentifier{key: []byte(strings.Repeat("s", 32))}
	for _, c := range []struct{ in, gone, kept string }{
		{`{"resourceType":"QuestionnaireResponse","id":"qr","status":"completed",` +
			`"identifier":{"system":"https://walking.example/client","value":"SYNTH-ANNA-1961"},` +
			`"source":{"display":"Anna Synthetic, 1 Test Street"},"subject":{"reference":"Patient/p"},` +
			`"extension":[{"url":"https://example.org/n","valueHumanName":{"family":"Synthetic"}},{"url":"https://example.org/a","valueAddress":{"line":["2 Test Road"]}},` +
			`{"url":"https://example.org/t","valueContactPoint":{"system":"phone","value":"07700 900123"}}]}`, `SYNTH-ANNA|Test Street|"source"|Synthetic|Test Road|900123|Patient/p"`, `"subject":{"reference":"Patient/`},
		{`{"resourceType":"Practitioner","id":"pr","identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"G1234567"}]}`, "G1234567", PseudonymSystem},
		{`{"resourceType":"Organization","id":"o","identifier":[{"system":"` + ODSSystem + `","value":"Y12345"},{"system":"https://example.org/local","value":"LOCAL-1"}]}`, "LOCAL-1", `"Y12345"`},
	} {
		out, err := d.resource([]byte(c.in), "practice-a")
		if err != nil {
			t.Fatal(err)
		}
		for _, gone := range strings.Split(c.gone, "|") {
			if strings.Contains(string(out), gone) {
				t.Errorf("%q kept: %s", gone, out)
			}
		}
		if !strings.Contains(string(out), c.kept) {
			t.Errorf("%s lost: %s", c.kept, out)
		}
		if v := structure.Validate(out); !v.Valid() {
			t.Errorf("not valid R4: %+v\n%s", v.Issues, out)
		}
	}
}

// Rules follow the data, not the element's name: a primitive's extensions
// go with it, an Identifier, Annotation or Address is found wherever it is
// held, and a Patient's id (which a client may have made its NHS number) is
// a pseudonym everywhere it is named.
func TestDeidentifyFindsDataWhereverHeld(t *testing.T) {
	t.Parallel()
	d := &deidentifier{key: []byte(strings.Repeat("s", 32))}
	for _, c := range []struct {
		name, in, gone, kept string
	}{
		{"birth time beside birthDate; an NHS number as an extension's value",
			`{"resourceType":"Patient","id":"pat-1","birthDate":"1961-07-14",` +
				`"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1961-07-14T08:15:00+01:00"}]},` +
				`"extension":[{"url":"https://example-gp.nhs.uk/fhir/StructureDefinition/previous-nhs-number","valueIdentifier":{"system":"` + NHSNumberSystem + `","value":"9000000009"}},` +
				`{"url":"https://example.org/mrn","valueIdentifier":{"system":"https://example.org/mrn","value":"MRN-77"}}],` +
				`"generalPractitioner":[{"identifier":{"system":"` + ODSSystem + `","value":"Y12345"}}]}`,
			`07-14|08:15|9000000009|MRN-77|"pat-1"|_birthDate`, `"birthDate":"1961"|"Y12345"|` + PseudonymSystem},
		{"an NHS number used as the Patient's id, and references to it",
			`{"resourceType":"Patient","id":"9434765919","active":true}`, `9434765919`, `"id":"` + (&deidentifier{key: d.key, owner: "practice-a"}).patientID("9434765919") + `"`},
		{"references to the Patient: relative, versioned, absolute; others kept",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/9434765919/_history/2"},` +
				`"requisition":{"system":"https://example-gp.nhs.uk/req","value":"REQ-9434765919"},` +
				`"performer":[{"reference":"https://signpost.example/fhir/Patient/9434765919"},{"reference":"Organization/o1"}]}`,
			`9434765919`, `"Organization/o1"|"Patient/` + (&deidentifier{key: d.key, owner: "practice-a"}).patientID("9434765919") + `/_history/2"|"https://signpost.example/fhir/Patient/`},
		{"a contained Patient under its NHS number, and its local reference",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","contained":[{"resourceType":"Patient","id":"9434765919"}],` +
				`"subject":{"reference":"#9434765919"}}`,
			`9434765919`, `"reference":"#c1"|"id":"c1"`},
		{"a contained Patient's id names it only in its container: it is not the client's Patient of that id, and joins up by its identifier",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","contained":[{"resourceType":"Patient","id":"pt",` +
				`"identifier":[{"system":"` + NHSNumberSystem + `","value":"9434765919"}]}],"subject":{"reference":"#pt"}}`,
			`9434765919|` + (&deidentifier{key: d.key, owner: "practice-a"}).patientID("pt"), `"reference":"#c1"|"value":"` + d.pseudonym(NHSNumberSystem, "9434765919") + `"`},
		{"a patient's Location: postcode's outward code; no position, names, description or telecom",
			`{"resourceType":"Location","id":"loc","status":"active","name":"Flat 3, Jo Bloggs","alias":["Jo's flat"],"description":"Ring twice, Jo Bloggs",` +
				`"telecom":[{"system":"phone","value":"0113 496 0000"}],"address":{"line":["20 The Headrow"],"city":"Leeds","postalCode":"LS1 6PT"},` +
				`"position":{"longitude":53.79957987629337,"latitude":-1.5417544014466307}}`,
			`Headrow|6PT|53.799|1.5417|Leeds|position|Bloggs|Jo's|0113|telecom|"name"|alias|description`, `"address":{"postalCode":"LS1"}|"status":"active"`},
		{"a Location contained in a referral, as one on its own",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Location","id":"home","name":"Jo Bloggs's flat","address":{"line":["20 The Headrow"],"postalCode":"LS1 6PT"}}],` +
				`"locationReference":[{"reference":"#home"}]}`,
			`Bloggs|Headrow|6PT|home`, `"reference":"#c1"|"postalCode":"LS1"`},
		{"the display of a reference to a patient's Location or a relative: by reference, absolute and versioned, or by type",
			`{"resourceType":"Encounter","id":"enc","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HH"},` +
				`"subject":{"reference":"Patient/p"},"participant":[{"individual":{"reference":"RelatedPerson/rp","display":"Sam Bloggs (daughter)"}}],` +
				`"location":[{"location":{"reference":"https://gp.example/fhir/Location/home/_history/2","display":"Flat 3, Jo Bloggs"}},` +
				`{"location":{"type":"Location","display":"Jo Bloggs's sister's house"}}],"serviceProvider":{"reference":"Organization/o","display":"Leeds Walking"}}`,
			`Bloggs`, `"reference":"RelatedPerson/rp"|"display":"Leeds Walking"`},
		{"the display of a reference to a contained Patient or Location, wherever held",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"#p"},` +
				`"contained":[{"resourceType":"Patient","id":"p"},{"resourceType":"Location","id":"home","address":{"postalCode":"LS1 6PT"}}],` +
				`"performer":[{"reference":"#p","display":"Jo Bloggs"}],"locationReference":[{"reference":"#home","display":"Jo Bloggs's flat"}]}`,
			`Bloggs|home`, `"reference":"#c2"`},
		{"the display of a reference whose target cannot be told: display only, by identifier only, by a reference naming no R4 type, or naming another type than its type",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Organization","id":"org","name":"Leeds Walking"}],` +
				`"requester":{"display":"Sam Bloggs"},"performer":[{"identifier":{"system":"https://example.org/staff","value":"S1"},"display":"Sam Bloggs (carer)"},` +
				`{"reference":"urn:uuid:5b7a8f5e-3c1d-4e2a-9f00-000000000001","display":"Sam Bloggs (neighbour)"},` +
				`{"reference":"https://people.example/carers/sam","display":"Sam Bloggs (friend)"},` +
				`{"type":"Organization","reference":"RelatedPerson/rp","display":"Sam Bloggs (son)"},{"reference":"#org","display":"Leeds Walking"}]}`,
			`Bloggs`, `"masked"|{"display":"Leeds Walking","reference":"#c1"}|"reference":"RelatedPerson/rp"`},
		{"the display of a display-only reference in a contained resource and an extension's valueReference",
			`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p"},"focus":{"reference":"#sr"},` +
				`"contained":[{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},"requester":{"display":"Sam Bloggs"}}],` +
				`"extension":[{"url":"https://example.org/carer","valueReference":{"display":"Sam Bloggs (carer)"}}]}`,
			`Bloggs`, `"valueReference":{"extension":[{"url":"` + dataAbsentReason + `","valueCode":"masked"}]}|"requester":{"extension"`},
		{"the display of a reference known to name no person, and a Coding's, kept",
			`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p"},` +
				`"focus":{"reference":"ServiceRequest/sr","display":"Referral to a walking group"},` +
				`"owner":{"type":"Organization","identifier":{"system":"` + ODSSystem + `","value":"Y12345"},"display":"Leeds Walking"},` +
				`"businessStatus":{"coding":[{"system":"https://example.org/status","display":"Booked"}]}}`,
			`"_none_"`, `"display":"Referral to a walking group"|"display":"Leeds Walking"|"display":"Booked"`},
		{"a contained RelatedPerson (a parent consenting): no name, telecom, photo or birth date",
			`{"resourceType":"Consent","id":"c","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL"}]}],"patient":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"RelatedPerson","id":"mum","patient":{"reference":"Patient/p"},` +
				`"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleCode","code":"MTH"}]}],` +
				`"name":[{"family":"Bloggs","given":["Sam"]}],"telecom":[{"system":"phone","value":"07700 900123"}],"birthDate":"1960-02-03",` +
				`"photo":[{"contentType":"image/png","data":"aGVsbG8="}]}],"performer":[{"reference":"#mum"}]}`,
			`Bloggs|07700|1960|aGVsbG8=|"name"|telecom|photo|mum`, `"code":"MTH"|"reference":"#c1"`},
		{"the identifier of a reference that may name someone: to a Patient by a type spelt as a URL, a RelatedPerson, a target untold; an Organization's kept",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},` +
				`"performer":[{"type":"http://hl7.org/fhir/StructureDefinition/Patient","identifier":{"system":"https://gp.example/mrn","value":"MRN-BLOGGS-61"},"display":"Jo Bloggs"},` +
				`{"type":"RelatedPerson","identifier":{"system":"https://gp.example/carers","value":"CARER-SAM-BLOGGS"}},` +
				`{"identifier":{"system":"https://gp.example/people","value":"SAM-BLOGGS-1990"}},` +
				`{"type":"Organization","identifier":{"system":"https://example.org/providers","value":"WALK-1"}}]}`,
			`Bloggs|BLOGGS`, `"value":"WALK-1"|` + PseudonymSystem},
		{"a reference that is a search or a URL naming no R4 type: it may spell out whom it means",
			`{"resourceType":"Observation","id":"o","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},` +
				`"subject":{"reference":"Patient?identifier=` + NHSNumberSystem + `|9434765919"},` +
				`"performer":[{"reference":"RelatedPerson?name=Bloggs"},{"reference":"https://people.example/carers/sam-bloggs"},` +
				`{"reference":"https://gp.example/fhir/Practitioner/dr1/_history/3"},{"reference":"Organization/o1"}]}`,
			`9434765919|Bloggs|bloggs`, `"reference":"https://gp.example/fhir/Practitioner/dr1/_history/3"|"reference":"Organization/o1"|"masked"`},
		{"free text held as markdown in an extension",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},` +
				`"extension":[{"url":"https://example.org/carer-note","valueMarkdown":"Carer: **Sam Bloggs**, 07700 900125"}]}`,
			`Bloggs|07700|valueMarkdown|carer-note`, `"subject"`},
		{"a contained Person: no name, telecom, photo or birth date",
			`{"resourceType":"Consent","id":"c","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL"}]}],"patient":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Person","id":"pp","name":[{"family":"Bloggs","given":["Sam"]}],"telecom":[{"system":"phone","value":"07700 900124"}],` +
				`"birthDate":"1990-02-03","photo":{"contentType":"image/png","data":"aGVsbG8="}}],"performer":[{"reference":"#pp"}]}`,
			`Bloggs|07700|1990|aGVsbG8=|"name"|telecom|photo|pp"`, `"reference":"#c1"`},
		{"free-text descriptions, titles and attachments wherever they are",
			`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p"},"title":"Jo Bloggs's plan",` +
				`"activity":[{"detail":{"status":"scheduled","description":"Walk with Jo's neighbour Sam Bloggs"}}],` +
				`"extension":[{"url":"https://example.org/photo","valueAttachment":{"contentType":"image/jpeg","data":"QmxvZ2dz","title":"Bloggs"}}]}`,
			`Bloggs|Jo's|valueAttachment|QmxvZ2dz`, `"status":"scheduled"`},
		{"an allergic reaction's description",
			`{"resourceType":"AllergyIntolerance","id":"ai","patient":{"reference":"Patient/p"},` +
				`"reaction":[{"description":"Swelling after Jo Bloggs's birthday meal","manifestation":[{"coding":[{"system":"http://snomed.info/sct","code":"271807003"}]}]}]}`,
			`Bloggs|birthday`, `"code":"271807003"`},
		{"contained resources' ids, which a client may spell after whom they are about, and every local reference to them, wherever held",
			`{"resourceType":"Consent","id":"c","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL"}]}],"patient":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Organization","id":"leeds-walking","name":"Leeds Walking"},` +
				`{"resourceType":"RelatedPerson","id":"sam-bloggs","patient":{"reference":"Patient/p"},"_id":{"extension":[{"url":"https://example.org/was","valueCode":"sam-bloggs-61"}]}}],` +
				`"performer":[{"reference":"#sam-bloggs"},{"reference":"#leeds-walking","display":"Leeds Walking"},{"reference":"#jo-bloggs-home"},{"reference":"#"}],` +
				`"extension":[{"url":"https://example.org/witness","valueReference":{"reference":"#sam-bloggs"}}]}`,
			`bloggs|leeds-walking`, `"id":"c1"|"id":"c2"|{"display":"Leeds Walking","reference":"#c1"}|{"reference":"#c2"}|"valueReference":{"reference":"#c2"}|{"reference":"#"}`},
		{"a Coding's display and a concept's text in an extension's value or a Task's input: free-form, as the definition is the client's; a code's display elsewhere kept",
			`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p"},` +
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"1","display":"Walking group"}]},` +
				`"extension":[{"url":"https://example.org/carer","valueCoding":{"system":"https://example.org/carers","code":"carer","display":"Sam Bloggs (carer)"}},` +
				`{"url":"https://example.org/kin","valueCodeableConcept":{"coding":[{"system":"https://example.org/kin","code":"son","display":"Sam Bloggs"}],"text":"son, Sam Bloggs"}},` +
				`{"url":"https://example.org/who","valueCoding":{"display":"Sam Bloggs"}}],` +
				`"input":[{"type":{"coding":[{"system":"https://example.org/in","code":"contact"}]},"valueCoding":{"system":"https://example.org/in","code":"kin","display":"MRN-BLOGGS-61"}}]}`,
			`Bloggs|BLOGGS`, `"display":"Walking group"|"masked"|"code":"carer"|"code":"son"|"code":"kin"|"system":"https://example.org/carers"`},
		{"a URI in an extension or an answer naming someone (mailto:, tel:, sms:, a query); a code system's or a definition's kept",
			`{"resourceType":"QuestionnaireResponse","id":"qr","status":"completed","subject":{"reference":"Patient/p"},` +
				`"item":[{"linkId":"1","answer":[{"valueUri":"mailto:sam.bloggs@example.org"},{"valueUri":"http://snomed.info/sct"}]}],` +
				`"extension":[{"url":"https://example.org/e","valueUri":"mailto:sam.bloggs@example.org","_valueUri":{"extension":[{"url":"https://example.org/x","valueCode":"x"}]}},` +
				`{"url":"https://example.org/t","valueUrl":"tel:+447700900123"},{"url":"https://example.org/s","valueUri":"sms:07700900123"},` +
				`{"url":"https://example.org/f","valueUri":"fax:+441134960000"},{"url":"https://example.org/k","valueUri":"skype:sam.bloggs"},` +
				`{"url":"https://example.org/q","valueUrl":"https://people.example/contact?email=sam.bloggs@example.org"},` +
				`{"url":"https://example.org/u","valueUri":"https://sam:bloggs@people.example/"},` +
				`{"url":"https://example.org/cs","valueUri":"http://snomed.info/sct"},` +
				`{"url":"https://example.org/q2","valueCanonical":"https://example.org/fhir/Questionnaire/wellbeing"},` +
				`{"url":"https://example.org/oid","valueOid":"urn:oid:2.16.840.1.113883.2.1.4.1"}]}`,
			`bloggs|7700|4960000|_valueUri|"https://example.org/e"|"https://example.org/t"`,
			`"valueUri":"http://snomed.info/sct"|"valueCanonical":"https://example.org/fhir/Questionnaire/wellbeing"|"valueOid":"urn:oid:2.16.840.1.113883.2.1.4.1"|"linkId":"1"`},
		{"a name or a phone number anywhere, whatever holds it: a contained CareTeam's, a Device's contact, an extension's ContactDetail, a contained InsurancePlan's contact",
			`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"CareTeam","id":"team","telecom":[{"system":"phone","value":"07700 900126"}]},` +
				`{"resourceType":"Device","id":"alarm","contact":[{"system":"email","value":"sam.bloggs@example.org"}]},` +
				`{"resourceType":"InsurancePlan","id":"ins","contact":[{"name":{"family":"Bloggs","given":["Sam"]},"telecom":[{"system":"phone","value":"07700 900127"}]}]}],` +
				`"careTeam":[{"reference":"#team"}],"supportingInfo":[{"reference":"#ins"}],"activity":[{"detail":{"status":"scheduled","productReference":{"reference":"#alarm"}}}],` +
				`"extension":[{"url":"https://example.org/carer","valueContactDetail":{"name":"Sam Bloggs","telecom":[{"system":"phone","value":"07700 900128"}]}}]}`,
			`Bloggs|bloggs|07700|telecom|valueContactDetail`, `"resourceType":"CareTeam"|"resourceType":"Device"|"resourceType":"InsurancePlan"|"reference":"#c1"`},
		{"an organisation's and a practitioner's names and contacts are kept, contained or not",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Practitioner","id":"dr","name":[{"family":"Practitioner","given":["Alex"]}],"telecom":[{"system":"phone","value":"0113 496 0001"}]},` +
				`{"resourceType":"Organization","id":"org","name":"Leeds Walking","telecom":[{"system":"email","value":"walks@example.org"}],` +
				`"contact":[{"name":{"family":"Organiser"},"telecom":[{"system":"phone","value":"0113 496 0002"}]}]}],` +
				`"requester":{"reference":"#dr"},"performer":[{"reference":"#org"}]}`,
			`"_none_"`, `"family":"Practitioner"|0113 496 0001|walks@example.org|"family":"Organiser"|0113 496 0002`},
		{"free text a patient's Location, a care plan's schedule or a signature may hold",
			`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Location","id":"home","availabilityExceptions":"Jo is at Sam Bloggs's on Thursdays"}],` +
				`"activity":[{"detail":{"status":"scheduled","location":{"reference":"#home"},"scheduledString":"Tuesdays, with Sam Bloggs"}}]}`,
			`Bloggs|availabilityExceptions|scheduledString`, `"status":"scheduled"|"resourceType":"Location"`},
		{"a Provenance's signature",
			`{"resourceType":"Provenance","id":"prov","target":[{"reference":"ServiceRequest/sr"}],"recorded":"2021-11-26T15:00:00+00:00",` +
				`"agent":[{"who":{"reference":"Organization/o"}}],"signature":[{"type":[{"system":"urn:iso-astm:E1762-95:2013","code":"1.2.840.10065.1.12.1.1"}],` +
				`"when":"2021-11-26T15:00:00+00:00","who":{"reference":"Organization/o"},"sigFormat":"application/jose","data":"U2FtIEJsb2dncyA5NDM0NzY1OTE5"}]}`,
			`U2FtIEJsb2dncyA5NDM0NzY1OTE5|signature`, `"reference":"ServiceRequest/sr"`},
		{"elements' ids, which a client may spell after whom the element is about; resources' ids kept",
			`{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"id":"jo-bloggs","reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Organization","id":"org","name":"Leeds Walking","contact":[{"id":"sam-bloggs","purpose":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/contactentity-type","code":"ADMIN"}]}}]}],` +
				`"performer":[{"reference":"#org"}],` +
				`"extension":[{"id":"carer-sam-bloggs","url":"https://example.org/carer","valueCode":"x"}],"_status":{"id":"bloggs-status"},` +
				`"code":{"id":"bloggs-code","coding":[{"id":"bloggs-coding","system":"http://snomed.info/sct","code":"1"}]}}`,
			`bloggs`, `"id":"sr"|"id":"c1"|"valueCode":"x"|"code":"ADMIN"|"code":"1"`},
		{"descriptions R4 requires: a contained Goal's (a concept: its codes stay, its text goes) and a service's or a role's when it is not available (an organisation's, kept)",
			`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p"},` +
				`"contained":[{"resourceType":"Goal","id":"walk","lifecycleStatus":"active","subject":{"reference":"Patient/p"},` +
				`"description":{"coding":[{"system":"http://snomed.info/sct","code":"229065009"}],"text":"Jo Bloggs to walk to Sam Bloggs's"}},` +
				`{"resourceType":"Goal","id":"talk","lifecycleStatus":"active","subject":{"reference":"Patient/p"},"description":{"text":"Talk to Sam Bloggs"}},` +
				`{"resourceType":"HealthcareService","id":"hs","notAvailable":[{"description":"Closed over Christmas"}]},` +
				`{"resourceType":"PractitionerRole","id":"pr","notAvailable":[{"description":"On leave in August"}]}],` +
				`"goal":[{"reference":"#walk"},{"reference":"#talk"}],"activity":[{"reference":{"reference":"#hs"}},{"reference":{"reference":"#pr"}}]}`,
			`Bloggs|walk"|talk"`, `"description":{"coding":[{"code":"229065009"|"description":{"extension":[{"url":"` + dataAbsentReason + `","valueCode":"masked"}]}|"description":"Closed over Christmas"|"description":"On leave in August"`},
		{"a contained resource named by a canonical (a response's form, a referral's definition, an extension's), renamed with its references",
			`{"resourceType":"QuestionnaireResponse","id":"qr","status":"completed","subject":{"reference":"Patient/p"},"questionnaire":"#jo-bloggs-form",` +
				`"contained":[{"resourceType":"Questionnaire","id":"jo-bloggs-form","status":"active","item":[{"linkId":"1","type":"integer"}]},` +
				`{"resourceType":"ActivityDefinition","id":"bloggs-walk","status":"active"}],` +
				`"extension":[{"url":"https://example.org/plan","valueCanonical":"#bloggs-walk"}],"item":[{"linkId":"1","answer":[{"valueInteger":4}]}]}`,
			`bloggs`, `"questionnaire":"#c1"|"valueCanonical":"#c2"|"valueInteger":4`},
		{"bytes held as an extension's value or a Task's input or output",
			`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p"},` +
				`"input":[{"type":{"coding":[{"system":"https://example.org/in","code":"letter"}]},"valueBase64Binary":"Sm8gQmxvZ2dzIDk0MzQ3NjU5MTk="}],` +
				`"extension":[{"url":"https://example.org/scan","valueBase64Binary":"Sm8gQmxvZ2dz"}]}`,
			`Sm8gQmxvZ2dz|valueBase64Binary|"input"`, `"for"`},
		{"dates a Patient's extensions hold (UK Core's death notification, a GP system's own), as its birth and death dates: the year",
			`{"resourceType":"Patient","id":"p","deceasedDateTime":"2021-03-02",` +
				`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus","extension":[` +
				`{"url":"deathNotificationStatus","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus","code":"2"}]}},` +
				`{"url":"systemEffectiveDate","valueDateTime":"2021-03-04T10:00:00+00:00"}]},` +
				`{"url":"https://example-gp.nhs.uk/dob-as-registered","valueDate":"1961-07-14"},{"url":"https://example-gp.nhs.uk/seen","valueInstant":"2021-03-01T09:00:00Z"}]}`,
			`03-04|03-02|07-14|03-01|valueInstant`, `"valueDateTime":"2021"|"valueDate":"1961"|"deceasedDateTime":"2021"|"code":"2"`},
		{"a local identifier held by no reference: a Task input's or output's value, an Encounter's pre-admission number",
			`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p"},` +
				`"input":[{"type":{"coding":[{"system":"https://example.org/in","code":"carer"}]},"valueIdentifier":{"system":"https://gp.example/carers","value":"CARER-SAM-BLOGGS"}}],` +
				`"output":[{"type":{"coding":[{"system":"https://example.org/out","code":"case"}]},"valueIdentifier":{"system":"https://provider.example/case","value":"CASE-JO-BLOGGS-61"}}],` +
				`"contained":[{"resourceType":"Encounter","id":"e","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},` +
				`"hospitalization":{"preAdmissionIdentifier":{"system":"https://hospital.example/pre-admission","value":"PRE-BLOGGS-0314"}}}],"encounter":{"reference":"#e"}}`,
			`BLOGGS`, `"code":"carer"|"code":"case"|"reference":"#c1"|` + PseudonymSystem},
		{"a primitive's id removed beside its value: nothing says the value is masked (a list's entry becomes null, keeping it aligned); beside no value, masked",
			`{"resourceType":"Practitioner","id":"dr","gender":"male","_gender":{"id":"bloggs-gender"},` +
				`"name":[{"family":"Practitioner","given":["Alex","B",null],"_given":[{"id":"bloggs-1"},{"extension":[{"url":"https://example.org/x","valueCode":"y"}]},` +
				`{"extension":[{"url":"https://example.org/said","valueString":"Sam Bloggs"}]}]}]}`,
			`bloggs|Bloggs|"_gender"`, `"gender":"male"|"_given":[null,{"extension":[{"url":"https://example.org/x","valueCode":"y"}]},{"extension":[{"url":"` + dataAbsentReason + `","valueCode":"masked"}]}]`},
		{"a URL naming a Patient by its id (which may be the NHS number), held as an extension's or an answer's value",
			`{"resourceType":"QuestionnaireResponse","id":"qr","status":"completed","subject":{"reference":"Patient/p"},` +
				`"item":[{"linkId":"1","answer":[{"valueUri":"https://gp.example/fhir/Patient/9434765919"}]}],` +
				`"extension":[{"url":"https://example.org/record","valueUrl":"https://gp.example/fhir/Patient/9434765919/_history/2"},` +
				`{"url":"https://example.org/form","valueCanonical":"https://example.org/fhir/Questionnaire/wellbeing"}]}`,
			`9434765919`, `"valueCanonical":"https://example.org/fhir/Questionnaire/wellbeing"|"linkId":"1"`},
		{"an organisation's address is public",
			`{"resourceType":"Organization","id":"o","address":[{"line":["1 Provider Street"],"postalCode":"LS2 7EW"}]}`,
			`"_none_"`, `1 Provider Street`},
		{"an Annotation outside note goes whole",
			`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p"},` +
				`"activity":[{"outcomeCodeableConcept":[{"coding":[{"system":"https://example.org/c","code":"x"}]}],` +
				`"progress":[{"authorString":"Sam Jones (daughter)","time":"2021-11-26T15:00:00+00:00","text":"Feeling better"}]}],` +
				`"extension":[{"url":"https://example.org/a","valueAnnotation":{"authorString":"Sam Jones","text":"Called"}}]}`,
			`Sam Jones|Feeling|Called|progress|valueAnnotation`, `"code":"x"`},
	} {
		out, err := d.resource([]byte(c.in), "practice-a")
		if err != nil {
			t.Fatal(err)
		}
		for _, gone := range strings.Split(c.gone, "|") {
			if strings.Contains(string(out), gone) {
				t.Errorf("%s: %q kept: %s", c.name, gone, out)
			}
		}
		for _, kept := range strings.Split(c.kept, "|") {
			if !strings.Contains(string(out), kept) {
				t.Errorf("%s: %s lost: %s", c.name, kept, out)
			}
		}
		if v := structure.Validate(out); !v.Valid() {
			t.Errorf("%s: not valid R4: %+v\n%s", c.name, v.Issues, out)
		}
	}
	// A Patient's id pseudonym is its owner's: another practice's
	// Patient/1 is another person.
	a, b := &deidentifier{key: d.key, owner: "practice-a"}, &deidentifier{key: d.key, owner: "practice-b"}
	if a.patientID("1") == b.patientID("1") || a.patientID("1") != patientReference("Patient/1", a.patientID)[len("Patient/"):] {
		t.Error("Patient id pseudonyms are not of owner and id, or references do not match them")
	}
	// With dates removed, the birth time goes with the date.
	d.dates = DatesRemove
	out, _ := d.resource([]byte(`{"resourceType":"Patient","birthDate":"1961-07-14","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1961-07-14T08:15:00+01:00"}]}}`), "practice-a")
	if strings.Contains(string(out), "1961") {
		t.Errorf("birth_date remove kept the birth time: %s", out)
	}
}

// Every official R4 example of a type Signpost stores de-identifies to
// valid R4: the export fails rather than write an invalid line, so a rule
// removing what R4 requires (a contained Goal's description) would fail
// every de-identified export that met such a resource.
func TestDeidentifiedOfficialExamplesStayValid(t *testing.T) {
	t.Parallel()
	stored := map[string]bool{gateway.TypeServiceRequest: true, gateway.TypeTask: true, gateway.TypePatient: true}
	for _, typ := range gateway.SupportingTypes() {
		stored[typ] = true
	}
	examples, err := r4examples.All()
	if err != nil {
		t.Fatal(err)
	}
	d := &deidentifier{key: []byte(strings.Repeat("s", 32))}
	n := 0
	for name, body := range examples {
		var head struct{ ResourceType string }
		if json.Unmarshal(body, &head) != nil || !stored[head.ResourceType] || !structure.Validate(body).Valid() {
			continue
		}
		n++
		out, err := d.resource(body, "practice-a")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if v := structure.Validate(out); !v.Valid() {
			t.Errorf("%s: not valid R4 once de-identified: %s", name, issueExpressions(v.Issues))
		}
	}
	if n < 100 {
		t.Errorf("only %d examples of the stored types", n)
	}
}
