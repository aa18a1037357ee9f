package export

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
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
	out, err := d.resource([]byte(in))
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
	noDates, err := d.resource([]byte(in))
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
			`{"url":"https://example.org/t","valueContactPoint":{"system":"phone","value":"07700 900123"}}]}`, `SYNTH-ANNA|Test Street|"source"|Synthetic|Test Road|900123`, `"reference":"Patient/p"`},
		{`{"resourceType":"Practitioner","id":"pr","identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"G1234567"}]}`, "G1234567", PseudonymSystem},
		{`{"resourceType":"Organization","id":"o","identifier":[{"system":"` + ODSSystem + `","value":"Y12345"},{"system":"https://example.org/local","value":"LOCAL-1"}]}`, "LOCAL-1", `"Y12345"`},
	} {
		out, err := d.resource([]byte(c.in))
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
