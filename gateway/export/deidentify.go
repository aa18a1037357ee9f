package export

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// The de-identified export ($export?_deidentify=true): each resource is
// rewritten as it is written, by the rules below, so that a region's
// referral journeys can be evaluated without patient-identifiable data.
//
// Resource ids are kept: they are Signpost's own ids (UUIDs it assigned, or
// a client's opaque ids), not patient data, and they keep references
// between the exported resources intact.

// PseudonymSystem is the identifier system of every pseudonym.
const PseudonymSystem = "https://signpost.health/fhir/Id/pseudonym"

// NHSNumberSystem is the system of NHS numbers.
const NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// MinPseudonymKey is the fewest bytes a pseudonym key may have.
const MinPseudonymKey = 32

// ErrPseudonymKey is returned by ParsePseudonymKey for a key too short. It
// never holds the key.
var ErrPseudonymKey = errors.New("the pseudonym key is shorter than 32 bytes: make one with `openssl rand -base64 32`")

// ParsePseudonymKey turns the value of the pseudonym key's environment
// variable into the key: standard base64 of at least MinPseudonymKey bytes
// (as `openssl rand -base64 32` prints) is decoded; any other value is
// taken as its bytes, and must be at least MinPseudonymKey long. "" is no
// key (nil, nil).
func ParsePseudonymKey(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	key := []byte(v)
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) >= MinPseudonymKey {
		key = b
	}
	if len(key) < MinPseudonymKey {
		return nil, ErrPseudonymKey
	}
	return key, nil
}

// Action is what de-identification does with an element.
type Action string

const (
	Remove     Action = "remove"     // the element goes
	Pseudonym  Action = "pseudonym"  // Identifier(s) replaced by a keyed pseudonym
	YearOnly   Action = "year"       // a date or dateTime reduced to its year
	OutwardPC  Action = "outward"    // an Address reduced to its postcode's outward code
	NoPatDispl Action = "no-display" // a Reference's display goes when it points to a Patient
)

// Rule is one de-identification rule: the element named Element of a
// resource of type Type ("*": of any resource, at any depth; AnyResource:
// at the root of any resource; otherwise at the root of that type), and
// what is done to it.
type Rule struct {
	Type, Element string
	Action        Action
	Why           string
}

// AnyResource as a Rule's Type is the root of a resource of any type.
const AnyResource = "(resource)"

// ODSSystem is the system of ODS organisation codes: public, and kept.
const ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// Rules are the de-identification rules, as data. An element not named
// here is kept as it is (codes, statuses, dates of the referral's life,
// references by id).
var Rules = []Rule{
	{"*", "identifier", Pseudonym, "an Identifier with the NHS number system, anywhere (e.g. ServiceRequest.subject, Task.for)"},
	{"Patient", "identifier", Pseudonym, "every identifier of a Patient, whatever its system (the original system is not kept)"},
	{AnyResource, "identifier", Pseudonym, "every identifier of a resource itself (a referral's or a response's business identifier may be a client number built from the person's name or date of birth), but an Organization's ODS code, which is public and says which practice or provider"},
	{"*", "source", Remove, "who a resource came from: a QuestionnaireResponse's source is the person who answered, usually the patient"},
	{"Patient", "name", Remove, "names"},
	{"Patient", "telecom", Remove, "phone numbers, e-mail addresses"},
	{"Patient", "address", OutwardPC, "only the postcode's outward code is kept (LS1 of LS1 4AP); lines, city and the rest go"},
	{"Patient", "photo", Remove, "photographs"},
	{"Patient", "contact", Remove, "next of kin and other contacts, with their names and telecom"},
	{"Patient", "birthDate", YearOnly, "date of birth reduced to the year"},
	{"Patient", "deceasedDateTime", YearOnly, "date of death reduced to the year"},
	{"*", "display", NoPatDispl, "the display of a Reference to a Patient (a name)"},
	{"*", "text", Remove, "free text: the narrative, CodeableConcept.text (its codes stay), Annotation.text"},
	{"*", "note", Remove, "free-text notes"},
	{"*", "comment", Remove, "free-text comments"},
	{"*", "valueString", Remove, "free-text values (extensions, answers, observations)"},
	{"*", "valueHumanName", Remove, "a name held in an extension or answer"},
	{"*", "valueAddress", Remove, "an address held in an extension or answer"},
	{"*", "valueContactPoint", Remove, "a phone number or e-mail address held in an extension or answer"},
	{"*", "patientInstruction", Remove, "free-text instructions to the patient"},
	{"*", "onsetString", Remove, "free-text onset (Condition, AllergyIntolerance)"},
	{"*", "abatementString", Remove, "free-text abatement (Condition)"},
	{"Task", "description", Remove, "free-text description of the Task"},
	{"CarePlan", "description", Remove, "free-text description of the care plan"},
	{"Consent", "sourceAttachment", Remove, "a scanned or attached consent form"},
}

// PatientDates says how a de-identified export reduces a patient's dates
// of birth and death (the YearOnly rules): evaluations by age band need
// the year, and a deployment whose evaluators need no age can drop it.
type PatientDates string

const (
	DatesYear   PatientDates = "year"   // the year only (the default)
	DatesRemove PatientDates = "remove" // the element goes
)

// deidentifier rewrites resources with one deployment's key.
type deidentifier struct {
	key   []byte
	dates PatientDates
}

// pseudonym is HMAC-SHA256(key, system "|" value) in lower-case base32 (no
// padding): the same identifier gives the same pseudonym under one key, and
// nothing that links to it under another.
func (d *deidentifier) pseudonym(system, value string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(system))
	m.Write([]byte{'|'})
	m.Write([]byte(value))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil)))
}

// resource de-identifies one resource's JSON.
func (d *deidentifier) resource(body []byte) ([]byte, error) {
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers written as they were stored
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	d.object(r, "", true, "")
	return json.Marshal(r)
}

// rule returns the action for element name of an object of a resource of
// type typ, root saying whether the object is the resource itself.
func rule(typ string, root bool, name string) (Action, bool) {
	for _, r := range Rules {
		if r.Element == name && (r.Type == "*" || (root && (r.Type == typ || r.Type == AnyResource))) {
			return r.Action, true
		}
	}
	return "", false
}

// object rewrites o in place. typ is the resource o belongs to; field is
// the name o is held under (to tell a Reference's target).
func (d *deidentifier) object(o map[string]any, typ string, root bool, field string) {
	if rt, ok := o["resourceType"].(string); ok {
		// A resource, or a contained one: its own rules.
		typ, root = rt, true
	}
	before := len(o)
	for name, v := range o {
		act, ok := rule(typ, root, name)
		if ok {
			switch act {
			case Remove:
				delete(o, name)
				continue
			case YearOnly:
				if d.dates == DatesRemove {
					delete(o, name)
					continue
				}
				if s, ok := v.(string); ok && len(s) >= 4 {
					o[name] = s[:4]
				}
				continue
			case OutwardPC:
				if out := outwardAddresses(v); out != nil {
					o[name] = out
				} else {
					delete(o, name)
				}
				continue
			case NoPatDispl:
				if _, coded := o["code"]; !coded && pointsToPatient(o, field) {
					delete(o, name)
					continue
				}
			case Pseudonym:
				// A resource's own identifiers all (AnyResource), and the
				// identifier of a Reference to a Patient, which names the
				// patient; elsewhere NHS numbers.
				all := root || (isReference(o) && pointsToPatient(o, field))
				o[name] = d.identifiers(v, all, root && typ == "Organization")
				continue
			}
		}
		o[name] = d.value(v, typ, name)
	}
	prune(o)
	if before > 0 && len(o) == 0 {
		// Everything in it was removed (a CodeableConcept of text only, a
		// Reference by display only): it says so, and an element R4
		// requires is still there.
		o["extension"] = []any{map[string]any{"url": dataAbsentReason, "valueCode": "masked"}}
	}
}

// dataAbsentReason is the R4 extension saying why an element has no value.
const dataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

func (d *deidentifier) value(v any, typ, field string) any {
	switch x := v.(type) {
	case map[string]any:
		d.object(x, typ, false, field)
	case []any:
		for i := range x {
			x[i] = d.value(x[i], typ, field)
		}
	}
	return v
}

// identifiers pseudonymises an Identifier or a list of them: those with the
// NHS number system always, every one when all, except an organisation's
// ODS code (keepODS).
func (d *deidentifier) identifiers(v any, all, keepODS bool) any {
	one := func(id map[string]any) map[string]any {
		system, _ := id["system"].(string)
		value, _ := id["value"].(string)
		if value == "" || (!all && system != NHSNumberSystem) || (keepODS && system == ODSSystem) {
			return id
		}
		return map[string]any{"system": PseudonymSystem, "value": d.pseudonym(system, value)}
	}
	switch x := v.(type) {
	case map[string]any:
		return one(x)
	case []any:
		for i, e := range x {
			if id, ok := e.(map[string]any); ok {
				x[i] = one(id)
			}
		}
	}
	return v
}

// isReference tells a Reference from a Coding (both may have display).
func isReference(o map[string]any) bool {
	if _, ok := o["code"]; ok {
		return false
	}
	_, ref := o["reference"]
	_, id := o["identifier"].(map[string]any)
	_, typ := o["type"].(string)
	return ref || id || typ
}

// patientFields are elements that always refer to the patient.
var patientFields = map[string]bool{"subject": true, "for": true, "patient": true, "beneficiary": true}

func pointsToPatient(o map[string]any, field string) bool {
	if t, _ := o["type"].(string); t == "Patient" {
		return true
	}
	if ref, _ := o["reference"].(string); strings.HasPrefix(ref, "Patient/") || strings.Contains(ref, "/Patient/") {
		return true
	}
	if id, ok := o["identifier"].(map[string]any); ok && id["system"] == NHSNumberSystem {
		return true
	}
	return patientFields[field]
}

// outwardAddresses keeps of each Address only the outward code of its
// postcode; an Address without a postcode goes. nil: none left.
func outwardAddresses(v any) []any {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []any
	for _, e := range list {
		a, _ := e.(map[string]any)
		pc, _ := a["postalCode"].(string)
		if outward := outwardCode(pc); outward != "" {
			out = append(out, map[string]any{"postalCode": outward})
		}
	}
	return out
}

// outwardCode is a UK postcode's outward code: all but its last three
// characters (the inward code), spaces ignored. "" when too short to have one.
func outwardCode(pc string) string {
	pc = strings.ToUpper(strings.Join(strings.Fields(pc), ""))
	if len(pc) < 5 || len(pc) > 7 {
		return ""
	}
	return pc[:len(pc)-3]
}

// prune removes what removal left empty, so the resource stays valid R4:
// empty objects and arrays, and extensions with neither a value nor
// extensions of their own.
func prune(o map[string]any) {
	for name, v := range o {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				delete(o, name)
			}
		case []any:
			kept := x[:0]
			for _, e := range x {
				if m, ok := e.(map[string]any); ok && (len(m) == 0 || valueless(name, m)) {
					continue
				}
				kept = append(kept, e)
			}
			if len(kept) == 0 {
				delete(o, name)
			} else {
				o[name] = kept
			}
		}
	}
}

// valueless reports whether m, held under field, is an element whose value
// R4 requires and which de-identification removed (an extension or a
// Task input or output whose valueString went): it goes whole.
func valueless(field string, m map[string]any) bool {
	switch field {
	case "extension", "modifierExtension", "input", "output":
	default:
		return false
	}
	for k := range m {
		if strings.HasPrefix(k, "value") || k == "extension" {
			return false
		}
	}
	return true
}
