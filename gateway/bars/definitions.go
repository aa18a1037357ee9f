package bars

import (
	"maps"
	"slices"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/intake"
)

// What a servicerequest-request carries, by BaRS MessageDefinition
// (NHS England's BaRS MessageDefinitions, version 1.1.0, read from the
// published definitions): each resource type with how many entries of it
// the message has. A message names its definition in
// MessageHeader.definition; one that names none is held to what any of
// them allows (every type one of them lists, no minimum), so a sender that
// leaves it out is not refused for what it did not claim.
type definition struct {
	url   string
	parts map[string]cardinality
}

type cardinality struct{ min, max int } // max 0: no maximum

var definitions = []definition{
	{"https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral", map[string]cardinality{
		"MessageHeader": {1, 1}, gateway.TypeServiceRequest: {1, 1}, gateway.TypePatient: {1, 1},
		"Encounter": {1, 1}, "CarePlan": {1, 1}, "Location": {0, 1}, gateway.TypeOrganization: {2, 0},
		"Practitioner": {1, 0}, "PractitionerRole": {1, 0}, "Observation": {0, 0}, "Flag": {0, 0},
		"MedicationStatement": {0, 0}, "AllergyIntolerance": {0, 0}, "QuestionnaireResponse": {0, 0},
		"Consent": {1, 0}, "HealthcareService": {1, 1}, "Condition": {0, 0},
		// The definition allows Task entries too; Signpost refuses them
		// (checkEntries): it makes the referral's Task itself.
	}},
	{"https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation", map[string]cardinality{
		"MessageHeader": {1, 1}, gateway.TypeServiceRequest: {1, 1}, gateway.TypePatient: {1, 1},
		"Encounter": {1, 1}, "CarePlan": {1, 1}, "Location": {1, 1}, gateway.TypeOrganization: {2, 0},
		"Practitioner": {1, 0}, "PractitionerRole": {1, 0}, "Observation": {0, 0}, "Flag": {1, 0},
		"Consent": {1, 0}, "MedicationStatement": {0, 0}, "AllergyIntolerance": {0, 0},
		"HealthcareService": {1, 1},
	}},
}

// lists reports whether the definition has entries of typ.
func (d *definition) lists(typ string) bool {
	_, ok := d.parts[typ]
	return ok
}

// definitionNamed is the MessageDefinition a message names ("" for none:
// nil, no error).
func definitionNamed(mh *fhir.Object) (*definition, error) {
	url, _ := mh.String("definition")
	if url == "" {
		return nil, nil
	}
	for i := range definitions {
		if definitions[i].url == url {
			return &definitions[i], nil
		}
	}
	return nil, problem(gateway.KindUnprocessable, fhir.IssueNotSupported, header+".definition",
		"Signpost processes the BaRS servicerequest-request definitions %s and %s; this message names another", definitions[0].url, definitions[1].url)
}

// checkEntries checks what the message carries against its definition and
// hands intake the entries it stores beside the referral: every entry but
// the MessageHeader, the ServiceRequest and the Patient.
func checkEntries(mh *fhir.Object, resources []*fhir.Object, urls []string, m *intake.MessageReferral) error {
	def, err := definitionNamed(mh)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for i, r := range resources {
		typ := r.ResourceType()
		counts[typ]++
		at := "Bundle.entry[" + strconv.Itoa(i) + "].resource"
		switch {
		case i == 0:
			continue // the MessageHeader, checked already
		case typ == "MessageHeader":
			return problem(gateway.KindInvalid, fhir.IssueStructure, at, "a message has one MessageHeader, its first entry")
		case typ == gateway.TypeTask:
			return problem(gateway.KindUnprocessable, fhir.IssueNotSupported, at,
				"Signpost makes the referral's Task itself; a servicerequest-request to it carries no Task entry")
		case typ == gateway.TypeServiceRequest || typ == gateway.TypePatient:
			if counts[typ] > 1 {
				return problem(gateway.KindInvalid, fhir.IssueStructure, at, "a servicerequest-request carries one %s", typ)
			}
			continue // the focus and its subject, read by Read
		case !gateway.IsSupporting(typ) || (def != nil && !def.lists(typ)):
			return problem(gateway.KindUnprocessable, fhir.IssueNotSupported, at,
				"a BaRS servicerequest-request does not carry a %s; its entries are the ServiceRequest, its Patient and the resources the MessageDefinition lists", typ)
		}
		m.Supporting = append(m.Supporting, entry(urls[i], i, r))
	}
	if def == nil {
		return nil
	}
	for _, typ := range slices.Sorted(maps.Keys(def.parts)) {
		n, c := counts[typ], def.parts[typ]
		if n < c.min || (c.max > 0 && n > c.max) {
			want := strconv.Itoa(c.min) + ".." + strconv.Itoa(c.max)
			if c.max == 0 {
				want = strconv.Itoa(c.min) + "..*"
			}
			return problem(gateway.KindInvalid, fhir.IssueStructure, "Bundle.entry",
				"the message has %d %s entries; its MessageDefinition (%s) allows %s", n, typ, def.url, want)
		}
	}
	return nil
}
