package gateway_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

func ptr(s string) *string { return &s }

func TestDecideConsent(t *testing.T) {
	t.Parallel()
	p := &gateway.Provider{ID: "walking", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}}
	consent := func(status string, withReferral, deny bool, actor string) *gateway.ConsentRecord {
		c := &gateway.ConsentRecord{Status: status, WithReferral: withReferral, Deny: deny}
		if actor != "" {
			c.Actors = append(c.Actors, refTo(actor))
		}
		return c
	}
	cases := []struct {
		name        string
		policy      gateway.ConsentPolicy
		consents    []*gateway.ConsentRecord
		attestation string
		want        gateway.ConsentDecision
	}{
		{"required, none", gateway.ConsentRequired, nil, "", gateway.ConsentMissing},
		{"required, attestation is not enough", gateway.ConsentRequired, nil, mappings.ConsentGiven, gateway.ConsentMissing},
		{"required, with the referral", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", true, false, "")}, "", gateway.ConsentPermits},
		{"required, held for the patient naming the provider", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", false, false, "Organization/walking")}, "", gateway.ConsentPermits},
		{"required, by the provider's ODS code", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", false, false, "ods:X1A2B")}, "", gateway.ConsentPermits},
		{"required, naming no one, not with the referral", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", false, false, "")}, "", gateway.ConsentMissing},
		{"required, for another provider", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", true, false, "Organization/advice")}, "", gateway.ConsentMissing},
		{"required, draft", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("draft", true, false, "")}, "", gateway.ConsentMissing},
		{"required, inactive", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("inactive", true, false, "")}, "", gateway.ConsentWithdrawnByPatient},
		{"required, rejected", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("rejected", false, false, "Organization/walking")}, "", gateway.ConsentWithdrawnByPatient},
		{"required, one withdrawn and a newer active", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("inactive", true, false, ""), consent("active", false, false, "Organization/walking")}, "", gateway.ConsentPermits},
		{"required, deny wins", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", true, false, ""), consent("active", false, true, "Organization/walking")}, "", gateway.ConsentRefusedByPatient},
		{"attested, given", gateway.ConsentAttested, nil, mappings.ConsentGiven, gateway.ConsentPermits},
		{"attested, refused", gateway.ConsentAttested, nil, mappings.ConsentRefused, gateway.ConsentRefusedByPatient},
		{"attested, none", gateway.ConsentAttested, nil, "", gateway.ConsentMissing},
		{"not-required", gateway.ConsentNotRequired, []*gateway.ConsentRecord{consent("inactive", true, false, "")}, mappings.ConsentRefused, gateway.ConsentPermits},
		{"unset, nothing", gateway.ConsentUnset, nil, "", gateway.ConsentPermits},
		{"unset, still honours a withdrawal", gateway.ConsentUnset, []*gateway.ConsentRecord{consent("inactive", true, false, "")}, "", gateway.ConsentWithdrawnByPatient},
		{"unset, still honours a refusal", gateway.ConsentUnset, nil, mappings.ConsentRefused, gateway.ConsentRefusedByPatient},
		{"required, a refusal naming no one refuses for everyone", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("active", false, true, ""), consent("active", false, false, "Organization/walking")}, "", gateway.ConsentRefusedByPatient},
		{"unset, a refusal naming no one", gateway.ConsentUnset, []*gateway.ConsentRecord{consent("active", false, true, "")}, "", gateway.ConsentRefusedByPatient},
		{"required, entered in error", gateway.ConsentRequired, []*gateway.ConsentRecord{consent("entered-in-error", false, false, "Organization/walking")}, "", gateway.ConsentWithdrawnByPatient},
		{"unset, a refusal made inactive withdraws nothing", gateway.ConsentUnset, []*gateway.ConsentRecord{consent("inactive", false, true, "")}, "", gateway.ConsentPermits},
		{"required, not a privacy consent", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := consent("active", false, false, "Organization/walking")
			c.OtherScope = true
			return c
		}()}, "", gateway.ConsentMissing},
		{"required, not in force", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := consent("active", false, false, "Organization/walking")
			c.NotInForce = true
			return c
		}()}, "", gateway.ConsentMissing},
		{"required, a permit with a nested deny for the provider", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := consent("active", true, false, "")
			c.Exceptions = []gateway.ConsentRule{{Deny: true, Actors: []models.Reference{refTo("Organization/walking")}}}
			return c
		}()}, "", gateway.ConsentRefusedByPatient},
		{"required, a nested deny for another provider", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := consent("active", true, false, "")
			c.Exceptions = []gateway.ConsentRule{{Deny: true, Actors: []models.Reference{refTo("Organization/advice")}}}
			return c
		}()}, "", gateway.ConsentPermits},
		{"required, a refusal with a nested permit for the provider", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := consent("active", false, true, "")
			c.Exceptions = []gateway.ConsentRule{{Actors: []models.Reference{refTo("Organization/walking")}}}
			return c
		}()}, "", gateway.ConsentPermits},
		{"required, naming another patient too, permits nothing", gateway.ConsentRequired, []*gateway.ConsentRecord{conflicting(consent("active", true, false, "Organization/walking"))}, "", gateway.ConsentMissing},
		{"required, naming another patient too, its nested permit neither", gateway.ConsentRequired, []*gateway.ConsentRecord{func() *gateway.ConsentRecord {
			c := conflicting(consent("active", false, true, ""))
			c.Exceptions = []gateway.ConsentRule{{Actors: []models.Reference{refTo("Organization/walking")}}}
			return c
		}()}, "", gateway.ConsentMissing},
		{"unset, naming another patient too, still refuses", gateway.ConsentUnset, []*gateway.ConsentRecord{conflicting(consent("active", false, true, ""))}, "", gateway.ConsentRefusedByPatient},
		{"unset, naming another patient too, still withdraws", gateway.ConsentUnset, []*gateway.ConsentRecord{conflicting(consent("inactive", true, false, ""))}, "", gateway.ConsentWithdrawnByPatient},
		{"required, the patient's own beside one naming another patient too", gateway.ConsentRequired, []*gateway.ConsentRecord{conflicting(consent("active", true, false, "")), consent("active", false, false, "Organization/walking")}, "", gateway.ConsentPermits},
	}
	for _, c := range cases {
		if got := gateway.DecideConsent(c.policy, p, c.consents, c.attestation); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func conflicting(c *gateway.ConsentRecord) *gateway.ConsentRecord {
	c.Conflicting = true
	return c
}

// How the patient a Consent names compares with a referral's subject:
// either name finds the other, and the other must not name someone else.
func TestMatchPatient(t *testing.T) {
	t.Parallel()
	const base = "https://signpost.example/fhir"
	nhs := func(v string) *models.Identifier {
		return &models.Identifier{System: ptr("https://fhir.nhs.uk/Id/nhs-number"), Value: ptr(v)}
	}
	ref := func(reference string, id *models.Identifier) *models.Reference {
		r := &models.Reference{Identifier: id}
		if reference != "" {
			r.Reference = ptr(reference)
		}
		return r
	}
	// kept is a Patient kept here with these NHS numbers; unkept, none.
	kept := func(numbers ...string) *[]gateway.Identifier {
		ids := []gateway.Identifier{}
		for _, n := range numbers {
			ids = append(ids, gateway.Identifier{System: "https://fhir.nhs.uk/Id/nhs-number", Value: n})
		}
		return &ids
	}
	named := func(r *models.Reference, k *[]gateway.Identifier) gateway.NamedPatient {
		n := gateway.NamedPatient{Ref: r}
		if k != nil {
			n.Kept, n.Identifiers = true, *k
		}
		return n
	}
	const a, b = "9000000009", "9434765919"
	cases := []struct {
		name                     string
		consent, referral        *models.Reference
		consentKept, subjectKept *[]gateway.Identifier // nil: the reference's Patient is not kept here
		want                     gateway.PatientMatch
	}{
		{"same reference", ref("Patient/1", nil), ref("Patient/1", nil), kept(), kept(), gateway.SamePatient},
		{"same NHS number", ref("", nhs(a)), ref("", nhs(a)), nil, nil, gateway.SamePatient},
		{"same both", ref("Patient/1", nhs(a)), ref("Patient/1", nhs(a)), kept(), kept(), gateway.SamePatient},
		{"reference against NHS number: nothing shared", ref("Patient/1", nil), ref("", nhs(a)), kept(a), nil, gateway.OtherPatient},
		{"same reference, the referral numbered too, as kept", ref("Patient/1", nil), ref("Patient/1", nhs(a)), kept(a), kept(a), gateway.SamePatient},
		{"both names, the Patient kept with that number; the referral by number", ref("Patient/1", nhs(a)), ref("", nhs(a)), kept(a), nil, gateway.SamePatient},
		{"both names, the Patient kept with that number; the referral by reference", ref("Patient/1", nhs(a)), ref("Patient/1", nil), kept(a), kept(a), gateway.SamePatient},
		{"both names, the Patient kept without one; the referral by number", ref("Patient/1", nhs(a)), ref("", nhs(a)), kept(), nil, gateway.ConflictingPatient},
		{"both names, the Patient kept without one; the referral by reference", ref("Patient/1", nhs(a)), ref("Patient/1", nil), kept(), kept(), gateway.ConflictingPatient},
		{"both names, the Patient not kept here; the referral by number", ref("Patient/never-sent", nhs(a)), ref("", nhs(a)), nil, nil, gateway.SamePatient},
		{"both names, the Patient kept with another number", ref("Patient/1", nhs(a)), ref("Patient/1", nhs(a)), kept(b), kept(b), gateway.ConflictingPatient},
		{"a referral naming two people: by number, its Patient kept without one", ref("", nhs(b)), ref("Patient/pa", nhs(b)), nil, kept(), gateway.ConflictingPatient},
		{"a referral naming two people: by reference, its Patient kept with another number", ref("Patient/pa", nil), ref("Patient/pa", nhs(b)), kept(a), kept(a), gateway.ConflictingPatient},
		{"both names, an identifier of no system the kept Patient does not show", ref("Patient/1", &models.Identifier{Value: ptr(b)}), ref("", &models.Identifier{Value: ptr(b)}), kept(a), nil, gateway.ConflictingPatient},
		{"same reference, another NHS number", ref("Patient/1", nhs(b)), ref("Patient/1", nhs(a)), kept(), kept(), gateway.ConflictingPatient},
		{"same NHS number, another Patient", ref("Patient/1", nhs(a)), ref("Patient/2", nhs(a)), kept(a), kept(a), gateway.ConflictingPatient},
		{"same reference, one absolute at the base, another NHS number", ref(base+"/Patient/1", nhs(b)), ref("Patient/1", nhs(a)), nil, nil, gateway.ConflictingPatient},
		{"a version of the same Patient", ref("Patient/1/_history/3", nhs(a)), ref("Patient/1", nhs(a)), kept(a), kept(a), gateway.SamePatient},
		{"same NHS number, another server's reference is not compared", ref("https://gp.example/fhir/Patient/7", nhs(a)), ref("Patient/2", nhs(a)), nil, kept(a), gateway.SamePatient},
		{"same NHS number, two other servers' references are not compared", ref("https://gp.example/fhir/Patient/7", nhs(a)), ref("https://other.example/Patient/3", nhs(a)), nil, nil, gateway.SamePatient},
		{"same reference, an identifier of another system the kept Patient does not show, named alike", ref("Patient/1", &models.Identifier{System: ptr("https://gp.example/Id/local-number"), Value: ptr("L-77")}),
			ref("Patient/1", &models.Identifier{System: ptr("https://gp.example/Id/local-number"), Value: ptr("L-77")}), kept(a), kept(a), gateway.SamePatient},
		{"contained references name no one beyond their resource", ref("#pt", nil), ref("#pt", nil), nil, nil, gateway.OtherPatient},
		{"contained references, the same NHS number", ref("#pt", nhs(a)), ref("#pt", nhs(a)), nil, nil, gateway.SamePatient},
		{"different everything", ref("Patient/1", nhs(b)), ref("Patient/2", nhs(a)), kept(b), kept(a), gateway.OtherPatient},
		{"no patient", nil, ref("Patient/1", nil), nil, kept(), gateway.OtherPatient},
	}
	for _, c := range cases {
		if got := gateway.MatchPatient(named(c.consent, c.consentKept), named(c.referral, c.subjectKept), base); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// What a Consent says is read as it stands now: its scope, its period and
// date, the actions it covers, and its nested provisions.
func TestReadConsent(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	const privacy = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]}`
	read := func(body string) *gateway.ConsentRecord {
		return gateway.ReadConsent(&gateway.Resource{Type: "Consent", ID: "c", Body: []byte(`{"resourceType":"Consent","status":"active",` + body + `}`)}, false, now, "https://signpost.example/fhir")
	}
	for _, c := range []struct {
		body                   string
		otherScope, notInForce bool
		deny                   bool
		exceptions             int
	}{
		{privacy, false, false, false, 0},
		{`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]}`, true, false, false, 0},
		{`"scope":{"text":"patient-privacy"}`, true, false, false, 0},
		{privacy + `,"provision":{"type":"permit","period":{"start":"2019-01-01","end":"2020-01-01"}}`, false, true, false, 0},
		{privacy + `,"provision":{"type":"permit","period":{"start":"2027-01-01"}}`, false, true, false, 0},
		{privacy + `,"provision":{"type":"permit","period":{"start":"2026-12-03","end":"2026-12-03"}}`, false, false, false, 0},
		{privacy + `,"dateTime":"2027-06-01"`, false, true, false, 0},
		{privacy + `,"dateTime":"2026-12-03T09:00:00Z","provision":{"type":"deny"}`, false, false, true, 0},
		{privacy + `,"provision":{"type":"permit","action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"collect"}]}]}`, false, true, false, 0},
		{privacy + `,"provision":{"type":"permit","action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"disclose"}]}]}`, false, false, false, 0},
		{privacy + `,"provision":{"type":"permit","provision":[{"type":"deny","actor":[{"reference":{"reference":"Organization/walking"}}]},` +
			`{"type":"deny","period":{"end":"2020-01-01"}},{"type":"permit","provision":[{"type":"deny"}]}]}`, false, false, false, 3},
	} {
		got := read(c.body)
		if got.OtherScope != c.otherScope || got.NotInForce != c.notInForce || got.Deny != c.deny || len(got.Exceptions) != c.exceptions {
			t.Errorf("%s: other scope %v, not in force %v, deny %v, %d exceptions; want %v %v %v %d", c.body,
				got.OtherScope, got.NotInForce, got.Deny, len(got.Exceptions), c.otherScope, c.notInForce, c.deny, c.exceptions)
		}
	}

	// An organisation is named relative to Signpost's base; an absolute URL
	// on another server names another organisation, whatever its id.
	p := &gateway.Provider{ID: "walking"}
	for actor, want := range map[string]gateway.ConsentDecision{
		"Organization/walking":                               gateway.ConsentPermits,
		"https://signpost.example/fhir/Organization/walking": gateway.ConsentPermits,
		"https://elsewhere.example/Organization/walking":     gateway.ConsentMissing,
	} {
		c := read(privacy + `,"provision":{"type":"permit","actor":[{"reference":{"reference":"` + actor + `"}}]}`)
		if got := gateway.DecideConsent(gateway.ConsentRequired, p, []*gateway.ConsentRecord{c}, ""); got != want {
			t.Errorf("a Consent naming %s: %v, want %v", actor, got, want)
		}
	}
}

// A profile's element names are the configuration's: the supporting types
// it may name are the ones a referral message brings.
func TestShareableTypesAreTheSupportingTypes(t *testing.T) {
	t.Parallel()
	if !slices.Equal(config.ShareableTypes, gateway.SupportingTypes()) {
		t.Errorf("config.ShareableTypes %v, gateway.SupportingTypes %v", config.ShareableTypes, gateway.SupportingTypes())
	}
}

func TestShareProfileCut(t *testing.T) {
	t.Parallel()
	p := gateway.NewShareProfile("minimal", []string{"name", "telecom", "reasonCode", "note"})
	patient := &gateway.Resource{Type: gateway.TypePatient, ID: "p", Body: []byte(`{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">born 1961</div>"},"extension":[{"url":"http://example.org/x","valueString":"ethnicity"}],` +
		`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],"name":[{"text":"Sam"}],"_gender":{"extension":[{"url":"http://example.org/y","valueString":"g"}]},"gender":"female",` +
		`"birthDate":"1961-03-14","deceasedBoolean":false,"telecom":[{"system":"phone","value":"0113"}]}`)}
	cut := p.Cut(patient)
	for _, gone := range []string{"1961", "9434765919", "ethnicity", "female", "deceased", `"g"`} {
		if strings.Contains(string(cut.Body), gone) {
			t.Errorf("the cut Patient keeps %q: %s", gone, cut.Body)
		}
	}
	for _, kept := range []string{`"name"`, `"telecom"`, `"id":"p"`, `"versionId":"1"`, "SUBSETTED"} {
		if !strings.Contains(string(cut.Body), kept) {
			t.Errorf("the cut Patient lost %s: %s", kept, cut.Body)
		}
	}
	if string(patient.Body) == string(cut.Body) || !strings.Contains(string(patient.Body), "1961-03-14") {
		t.Error("the stored Patient was changed")
	}
	sr := &gateway.Resource{Type: gateway.TypeServiceRequest, ID: "s", Body: []byte(`{"resourceType":"ServiceRequest","id":"s","contained":[{"resourceType":"Patient","id":"pt","birthDate":"1961-03-14","name":[{"text":"Sam"}]}],` +
		`"identifier":[{"value":"R-1"}],"status":"active","intent":"order","code":{"text":"walking"},"subject":{"reference":"#pt"},` +
		`"orderDetail":[{"text":"detail"}],"reasonCode":[{"text":"lonely"}],"note":[{"text":"on warfarin"}]}`)}
	cutSR := p.Cut(sr)
	for _, gone := range []string{"1961", "R-1", "detail"} {
		if strings.Contains(string(cutSR.Body), gone) {
			t.Errorf("the cut ServiceRequest keeps %q: %s", gone, cutSR.Body)
		}
	}
	for _, kept := range []string{`"#pt"`, `"contained"`, "lonely", "warfarin", `"status":"active"`, `"intent":"order"`, `"code"`} {
		if !strings.Contains(string(cutSR.Body), kept) {
			t.Errorf("the cut ServiceRequest lost %s: %s", kept, cutSR.Body)
		}
	}
	for _, r := range []*gateway.Resource{cut, cutSR} {
		for _, is := range structure.Validate(r.Body).Issues {
			t.Errorf("%s cut is not valid R4: %v %s", r.Type, is.Expression, is.Diagnostics)
		}
	}
	byNHS := &gateway.Resource{Type: gateway.TypeTask, ID: "t", Body: []byte(`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}}}`)}
	if got := p.Cut(byNHS); strings.Contains(string(got.Body), "9434765919") || !strings.Contains(string(got.Body), `"display"`) {
		t.Errorf("the Task's patient identifier is kept: %s", got.Body)
	}
	if p.Cut(&gateway.Resource{Type: "Condition", ID: "c", Body: []byte(`{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p"}}`)}) != nil {
		t.Error("a supporting resource the profile does not name is shared")
	}
	if withTypes := gateway.NewShareProfile("clinical", []string{"Condition"}); withTypes.Cut(&gateway.Resource{Type: "Condition", ID: "c", Body: []byte(`{}`)}) == nil {
		t.Error("a supporting resource the profile names is withheld")
	}
}

// refTo is a provision actor's reference: "ods:CODE" by ODS identifier.
func refTo(s string) (r models.Reference) {
	if code, ok := strings.CutPrefix(s, "ods:"); ok {
		r.Identifier = &models.Identifier{System: ptr("https://fhir.nhs.uk/Id/ods-organization-code"), Value: ptr(code)}
		return r
	}
	r.Reference = ptr(s)
	return r
}
