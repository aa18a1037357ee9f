package export

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// The de-identified export ($export?_deidentify=true): each resource is
// rewritten as it is written, by the rules below, so that a region's
// referral journeys can be evaluated without patient-identifiable data.
//
// Resource ids are kept: they are Signpost's own ids (UUIDs it assigned, or
// a client's opaque ids), not patient data, and they keep references
// between the exported resources intact. A Patient's id is the exception:
// a GP system chooses it, and may choose the NHS number, so it and every
// reference to it become one keyed pseudonym. So are contained resources'
// ids, which a client may spell after whom they are about: each is
// renamed, with the local references to it (renameContained).

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
	NoPatDispl Action = "no-display" // a Reference's display goes unless its target is known to be of a type that names no patient (displayMayName)
	PatientID  Action = "patient-id" // a Patient's id, or the id in a reference to a Patient, replaced by a keyed pseudonym
	CodeURI    Action = "code-uri"   // a URI value kept only when it is shaped as a code system's or a definition's (codeLikeURI)
	Within     Action = "within"     // the element stays (R4 requires it), and the rules apply to what it holds
)

// DataType is an R4 data type a rule finds wherever it is held, whatever
// the element holding it is called: an NHS number in an extension's
// valueIdentifier is as much an NHS number as in Patient.identifier.
type DataType string

const (
	Identifier DataType = "Identifier"
	Annotation DataType = "Annotation"
	Address    DataType = "Address"
	HumanName  DataType = "HumanName"
	Contact    DataType = "ContactPoint"
)

// organisational are the resource types that describe an organisation,
// its services and its staff, not a patient: their names, contacts and
// addresses are public, or a professional's at work, and kept.
var organisational = []string{"Organization", "HealthcareService", "Practitioner", "PractitionerRole"}

// Rule is one de-identification rule: the element named Element (or, when
// Of is set, any element holding that data type) of a resource of type
// Type ("*": of any resource, at any depth; AnyResource: at the root of any
// resource; AnyElement: below the root of any resource; otherwise at the
// root of that type, or at any depth of it when Deep) but of the types in
// Except, and what is done to it.
// A rule that removes or reduces a primitive removes its extensions too
// (JSON's "_birthDate" beside "birthDate"): they may repeat the value, as
// patient-birthTime does.
type Rule struct {
	Type, Element string
	Of            DataType
	Except        []string
	Deep          bool
	Action        Action
	Why           string
}

// AnyResource as a Rule's Type is the root of a resource of any type.
const AnyResource = "(resource)"

// AnyElement as a Rule's Type is any element of any resource but the
// resource itself (a contained one is a resource).
const AnyElement = "(element)"

// ODSSystem is the system of ODS organisation codes: public, and kept.
const ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// Rules are the de-identification rules, as data, the first that matches
// an element applying. An element not named here is kept as it is (codes,
// statuses, dates of the referral's life, references by id).
var Rules = []Rule{
	{Type: "Patient", Element: "identifier", Action: Pseudonym, Why: "every identifier of a Patient, whatever its system (the original system is not kept)"},
	{Type: AnyResource, Element: "identifier", Action: Pseudonym, Why: "every identifier of a resource itself (a referral's or a response's business identifier may be a client number built from the person's name or date of birth), but an Organization's ODS code, which is public and says which practice or provider"},
	{Type: AnyElement, Element: "id", Action: Remove, Why: "an element's id (not a resource's): a client chooses it, and may spell it after whom the element is about (a contact \"sam-bloggs\", an extension \"carer-sam-bloggs\"); nothing exported refers to it"},
	{Type: "Patient", Element: "id", Action: PatientID, Why: "a Patient's id is the client's choice and may be its NHS number: a pseudonym of its owner and id"},
	{Type: "*", Element: "reference", Action: PatientID, Why: "a reference to a Patient names it by that id: the same pseudonym, so the journey stays joined up; a reference that is a search (Patient?identifier=...) or a URL naming no R4 type goes: it may spell out whom it means"},
	{Type: "*", Element: "source", Action: Remove, Why: "who a resource came from: a QuestionnaireResponse's source is the person who answered, usually the patient"},
	{Type: "Patient", Element: "name", Action: Remove, Why: "names"},
	{Type: "Patient", Element: "telecom", Action: Remove, Why: "phone numbers, e-mail addresses"},
	{Type: "Patient", Element: "photo", Action: Remove, Why: "photographs"},
	{Type: "Patient", Element: "contact", Action: Remove, Why: "next of kin and other contacts, with their names and telecom"},
	{Type: "Patient", Element: "birthDate", Action: YearOnly, Why: "date of birth reduced to the year (and _birthDate, which may hold the birth time, goes)"},
	{Type: "Patient", Element: "deceasedDateTime", Action: YearOnly, Why: "date of death reduced to the year"},
	{Type: "Patient", Deep: true, Element: "valueDate", Action: YearOnly, Why: "a date a Patient's extension holds: about the patient, as birthDate is (a date of birth or death a GP system keeps in its own extension), so reduced to the year as they are"},
	{Type: "Patient", Deep: true, Element: "valueDateTime", Action: YearOnly, Why: "a date and time a Patient's extension holds (UK Core's death notification's systemEffectiveDate, days from the date of death): reduced to the year, as deceasedDateTime is"},
	{Type: "Patient", Deep: true, Element: "valueInstant", Action: Remove, Why: "an instant a Patient's extension holds, as valueDateTime: an instant has no year-only form"},
	{Type: "RelatedPerson", Element: "name", Action: Remove, Why: "a relative's or carer's name (a RelatedPerson is only held contained, as a Consent's performer say)"},
	{Type: "RelatedPerson", Element: "telecom", Action: Remove, Why: "a relative's phone numbers and e-mail addresses"},
	{Type: "RelatedPerson", Element: "photo", Action: Remove, Why: "a relative's photographs"},
	{Type: "RelatedPerson", Element: "birthDate", Action: Remove, Why: "a relative's date of birth: no evaluation needs it"},
	{Type: "Person", Element: "name", Action: Remove, Why: "a Person's name (the patient's record across systems, or someone near them; held contained)"},
	{Type: "Person", Element: "telecom", Action: Remove, Why: "a Person's phone numbers and e-mail addresses"},
	{Type: "Person", Element: "photo", Action: Remove, Why: "a Person's photograph"},
	{Type: "Person", Element: "birthDate", Action: Remove, Why: "a Person's date of birth: no evaluation needs it"},
	{Type: "Location", Element: "position", Action: Remove, Why: "a place's exact coordinates: a patient's Location is where they are"},
	{Type: "Location", Element: "name", Action: Remove, Why: "a patient's Location is often their home or where they stay, named after them or by its street"},
	{Type: "Location", Element: "alias", Action: Remove, Why: "other names of the place, as its name"},
	{Type: "Location", Element: "telecom", Action: Remove, Why: "a patient's Location's phone number may be theirs"},
	{Type: "*", Element: "display", Action: NoPatDispl, Why: "the display of a Reference to a Patient or a Person (a name), a RelatedPerson (a relative or carer, named) or a Location (it repeats the Location's name, removed above), and of one whose target cannot be told (by display or identifier only, a urn:uuid): it may be any of those; a Coding's display in an extension's value or a Task's input or output (free-form in practice: their definitions are the client's), whose system and code stay; a Coding's display elsewhere (its code system's text), and a Reference's to another R4 type (an Organization, a ServiceRequest), stay"},
	{Type: "*", Element: "text", Action: Remove, Why: "free text: the narrative, CodeableConcept.text (its codes stay)"},
	{Type: "*", Element: "comment", Action: Remove, Why: "free-text comments"},
	{Type: "*", Element: "valueString", Action: Remove, Why: "free-text values (extensions, answers, observations)"},
	{Type: "*", Element: "valueMarkdown", Action: Remove, Why: "free-text values as markdown (an extension's), as valueString"},
	{Type: "*", Element: "valueUri", Action: CodeURI, Why: "a URI held in an extension or answer: a code system's or a definition's stays, any other goes (mailto:, tel:, sms:, a URL with a query naming someone)"},
	{Type: "*", Element: "valueUrl", Action: CodeURI, Why: "a URL held in an extension or answer, as valueUri"},
	{Type: "*", Element: "valueCanonical", Action: CodeURI, Why: "a canonical URL held in an extension or answer, as valueUri"},
	{Type: "*", Element: "valueOid", Action: CodeURI, Why: "an OID held in an extension or answer, as valueUri"},
	{Type: "*", Element: "valueUuid", Action: CodeURI, Why: "a UUID held in an extension or answer, as valueUri"},
	{Type: "*", Element: "valueHumanName", Action: Remove, Why: "a name held in an extension or answer"},
	{Type: "*", Element: "valueAddress", Action: Remove, Why: "an address held in an extension or answer"},
	{Type: "*", Element: "valueContactPoint", Action: Remove, Why: "a phone number or e-mail address held in an extension or answer"},
	{Type: "*", Element: "valueContactDetail", Action: Remove, Why: "a name and phone numbers held in an extension or a Task's input (ContactDetail's name is a string, no HumanName)"},
	{Type: "*", Element: "signature", Action: Remove, Why: "a signature (Provenance's): its data may envelop the resource it signs, patient data and all; no evaluation reads it"},
	{Type: "*", Element: "valueSignature", Action: Remove, Why: "a signature held in an extension or a Task's input, as signature"},
	{Type: "*", Element: "scheduledString", Action: Remove, Why: "a care plan activity's schedule as free text"},
	{Type: "Location", Element: "availabilityExceptions", Action: Remove, Why: "when a patient's Location is not available, as free text (\"Jo is at her daughter's on Thursdays\")"},
	{Type: "*", Element: "patientInstruction", Action: Remove, Why: "free-text instructions to the patient"},
	{Type: "*", Element: "onsetString", Action: Remove, Why: "free-text onset (Condition, AllergyIntolerance)"},
	{Type: "*", Element: "abatementString", Action: Remove, Why: "free-text abatement (Condition)"},
	{Type: "Goal", Element: "description", Action: Within, Why: "a Goal's description (a contained one's: a care plan's goal) is a CodeableConcept R4 requires: its codes stay, its text goes (the text rule), and one of text only is masked"},
	{Type: "*", Element: "description", Except: organisational, Action: Remove, Why: "free-text descriptions anywhere: Task's, CarePlan's and its activities', a Location's, an allergic reaction's; but an organisation's or a practitioner's (when a service or a role is not available, which R4 requires of notAvailable)"},
	{Type: "CarePlan", Element: "title", Action: Remove, Why: "the care plan's title, free text"},
	{Type: "*", Element: "valueAttachment", Action: Remove, Why: "a document or photograph held as an answer's or extension's value"},
	{Type: "*", Element: "valueBase64Binary", Action: Remove, Why: "a document or any bytes held as an extension's value or a Task's input or output, as valueAttachment"},
	{Type: "Consent", Element: "sourceAttachment", Action: Remove, Why: "a scanned or attached consent form"},
	{Type: "*", Of: Identifier, Action: Pseudonym, Why: "an Identifier anywhere, whatever holds it (valueIdentifier, requisition, a reference's identifier): an NHS number always; every one in a Patient, in a reference to a Patient or as an extension's value"},
	{Type: "*", Of: Annotation, Action: Remove, Why: "an Annotation anywhere (note, CarePlan.activity.progress, valueAnnotation): free text, and its author may be a relative named"},
	{Type: "*", Of: HumanName, Except: organisational, Action: Remove, Why: "a person's name anywhere, whatever holds it (a contained resource's, a contact's), but an organisation's or a practitioner's (Organization.contact.name, Practitioner.name)"},
	{Type: "*", Of: Contact, Except: organisational, Action: Remove, Why: "a phone number or e-mail address anywhere, whatever holds it (a contained CareTeam's telecom, a Device's contact), but an organisation's or a practitioner's"},
	{Type: "*", Of: Address, Except: []string{"Organization", "HealthcareService"}, Action: OutwardPC, Why: "an address anywhere but an organisation's (Patient.address, a patient's Location): only the postcode's outward code is kept (LS1 of LS1 4AP); lines, city and the rest go"},
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
	// owner is the client whose resource is being rewritten: its
	// references to Patients name that client's Patients (Patient ids are
	// each client's own, gateway.PatientKey).
	owner string
	// contained are the types of the resources contained in it, by the
	// ids renameContained gave them: "#{id}" references them.
	contained map[string]string
	// inFreeValue says the object is (in) the value of an element whose
	// definition is the client's own (freeValueHolders): a Coding's
	// display there is free-form, and goes (displayMayName).
	inFreeValue bool
}

// freeValueHolders are the elements that hold a value[x] of the client's
// own definition: an extension (whatever its url) and a Task's input and
// output (whatever their type). R4 requires the value, so one that
// de-identification emptied goes whole (valueless); and nothing says the
// text in it is a code system's, so a Coding's display in it goes, as
// free text does (its system and code stay).
var freeValueHolders = map[string]bool{"extension": true, "modifierExtension": true, "input": true, "output": true}

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

// patientIDScope is the "system" a Patient id's pseudonym is made under:
// not a URI, so it is never an identifier's.
const patientIDScope = "Patient"

// patientID is the pseudonym a Patient's id becomes: of its owner and id
// (two practices' Patient/1 are two people), 52 letters and digits, a
// valid FHIR id.
func (d *deidentifier) patientID(id string) string {
	return d.pseudonym(patientIDScope, gateway.PatientKey(d.owner, id))
}

// resource de-identifies one resource's JSON, stored for owner.
func (d *deidentifier) resource(body []byte, owner string) ([]byte, error) {
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers written as they were stored
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	w := *d
	w.owner = owner
	w.contained = w.renameContained(r)
	w.object(r, "", true, "")
	return json.Marshal(r)
}

// renameContained gives every resource contained in r a neutral id, and
// every local reference to one ("#id", wherever it is held: a contained
// resource, an extension's valueReference) the same: a client chooses
// contained ids, and may name the resource after whom it is about (a
// contained RelatedPerson "sam-bloggs"). Each becomes its place among the
// contained ("c1", "c2", …), which says nothing; a contained Patient's too:
// its id names it only within its container (every referral a GP system
// sends may contain its Patient as "#pt"), so a pseudonym of it, as a kept
// Patient's id has, would join different people with each other and with
// that client's Patient/pt. A contained Patient joins up with the rest of
// the export by its identifiers (pseudonymised, and required of it at
// intake), as Signpost itself tells patients apart. A local reference to no contained
// resource may still name someone, and goes ("#" alone, the container, is
// kept). It returns the types of the contained resources by their new ids.
func (d *deidentifier) renameContained(r map[string]any) map[string]string {
	contained, _ := r["contained"].([]any)
	if len(contained) == 0 {
		// Without contained resources a local reference names none.
		eachLocalReference(r, func(string) (string, bool) { return "", false })
		return nil
	}
	types := map[string]string{}
	renamed := map[string]string{}
	for i, c := range contained {
		c, _ := c.(map[string]any)
		typ, _ := c["resourceType"].(string)
		id, ok := c["id"].(string)
		if !ok {
			continue
		}
		newID := "c" + strconv.Itoa(i+1)
		if _, dup := renamed[id]; !dup {
			renamed[id] = newID
		}
		c["id"] = newID
		delete(c, "_id")
		types[newID] = typ
	}
	eachLocalReference(r, func(id string) (string, bool) {
		newID, ok := renamed[id]
		return newID, ok
	})
	return types
}

// eachLocalReference renames every local reference ("#id") in v by rename,
// or removes it where rename says false. "#" alone is kept. A canonical or
// uri naming a contained resource ("questionnaire": "#form",
// "instantiatesCanonical": ["#plan"]) is renamed as a reference is: R4
// counts it as referring to that resource (dom-3), and the old id is what
// the client spelt. Any other string is no reference, and is left to the
// rules.
func eachLocalReference(v any, rename func(id string) (string, bool)) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"].(string); ok && len(ref) > 1 && ref[0] == '#' {
			if newID, ok := rename(ref[1:]); ok {
				x["reference"] = "#" + newID
			} else {
				delete(x, "reference")
				delete(x, "_reference")
			}
		}
		for name, e := range x {
			if _, renamed := e.(string); !renamed || name != "reference" {
				x[name] = localCanonical(e, rename)
			}
			eachLocalReference(e, rename)
		}
	case []any:
		for i, e := range x {
			x[i] = localCanonical(e, rename)
			eachLocalReference(e, rename)
		}
	}
}

// localCanonical is v renamed by rename when it is a string naming a
// contained resource ("#id"), else v.
func localCanonical(v any, rename func(id string) (string, bool)) any {
	if s, ok := v.(string); ok && len(s) > 1 && s[0] == '#' {
		if newID, ok := rename(s[1:]); ok {
			return "#" + newID
		}
	}
	return v
}

// rule returns the action for element name, holding v, of an object of a
// resource of type typ, root saying whether the object is the resource
// itself.
func rule(typ string, root bool, name string, v any) (Action, bool) {
	for _, r := range Rules {
		if slices.Contains(r.Except, typ) || !(r.Type == "*" || (!root && r.Type == AnyElement) || (root && (r.Type == typ || r.Type == AnyResource)) || (r.Deep && r.Type == typ)) {
			continue
		}
		if r.Of == "" && r.Element == name || r.Of != "" && holds(r.Of, name, v) {
			return r.Action, true
		}
	}
	return "", false
}

// holds reports whether element name, holding v, is of data type t: by
// the names R4 gives elements of that type, or else by the value's shape
// (an extension's value, a profile's element, are found either way).
func holds(t DataType, name string, v any) bool {
	first := v
	if list, ok := v.([]any); ok && len(list) > 0 {
		first = list[0]
	}
	m, _ := first.(map[string]any)
	if m == nil {
		return false
	}
	switch t {
	case Identifier:
		return name == "identifier" || strings.HasSuffix(name, "Identifier") || name == "requisition" || identifierShaped(m)
	case Annotation:
		return name == "note" || name == "progress" || strings.HasSuffix(name, "Annotation") || annotationShaped(m)
	case Address:
		return name == "address" || strings.HasSuffix(name, "Address") || addressShaped(m)
	case HumanName:
		return (name == "name" || strings.HasSuffix(name, "HumanName")) && onlyMembers(m, humanNameMembers...) || humanNameShaped(m)
	case Contact:
		return name == "telecom" || strings.HasSuffix(name, "ContactPoint") || contactPointShaped(m)
	}
	return false
}

// contactPointSystems are ContactPoint.system's codes: a ContactPoint has
// system and value as an Identifier has, but its system is one of these,
// never a URI.
var contactPointSystems = map[string]bool{"phone": true, "fax": true, "email": true, "pager": true, "url": true, "sms": true, "other": true}

// identifierShaped: a system and a string value, and no code (a Coding
// has system and code, a Quantity a numeric value).
func identifierShaped(m map[string]any) bool {
	system, _ := m["system"].(string)
	_, value := m["value"].(string)
	_, code := m["code"]
	return system != "" && value && !code && !contactPointSystems[system]
}

// onlyMembers reports whether every member of m is one of names.
func onlyMembers(m map[string]any, names ...string) bool {
	for k := range m {
		if !slices.Contains(names, strings.TrimPrefix(k, "_")) {
			return false
		}
	}
	return true
}

// annotationShaped: text with an author or a time, and nothing an
// Annotation does not have (a CodeableConcept of text only is no
// Annotation, and keeps its codes elsewhere).
func annotationShaped(m map[string]any) bool {
	_, author1 := m["authorString"]
	_, author2 := m["authorReference"]
	_, time := m["time"]
	return (author1 || author2 || time) && onlyMembers(m, "id", "extension", "authorString", "authorReference", "time", "text")
}

// humanNameMembers are the members of a HumanName.
var humanNameMembers = []string{"id", "extension", "use", "text", "family", "given", "prefix", "suffix", "period"}

// humanNameShaped: a family or given name, and nothing a HumanName does
// not have. An element called name holding one is a HumanName whatever it
// has (CodeableConcept or string names have members a HumanName has not,
// or are no object).
func humanNameShaped(m map[string]any) bool {
	_, family := m["family"]
	_, given := m["given"]
	return (family || given) && onlyMembers(m, humanNameMembers...)
}

// contactPointShaped: a ContactPoint's system code and a value, and
// nothing a ContactPoint does not have.
func contactPointShaped(m map[string]any) bool {
	system, _ := m["system"].(string)
	_, value := m["value"]
	return contactPointSystems[system] && value && onlyMembers(m, "id", "extension", "system", "value", "use", "rank", "period")
}

// addressShaped: a line, city, district or postcode, and nothing an
// Address does not have.
func addressShaped(m map[string]any) bool {
	_, line := m["line"]
	_, city := m["city"]
	_, district := m["district"]
	_, pc := m["postalCode"]
	return (line || city || district || pc) &&
		onlyMembers(m, "id", "extension", "use", "type", "text", "line", "city", "district", "state", "postalCode", "country", "period")
}

// object rewrites o in place. typ is the resource o belongs to; field is
// the name o is held under (to tell a Reference's target), "" for the
// resource exported itself.
func (d *deidentifier) object(o map[string]any, typ string, root bool, field string) {
	if rt, ok := o["resourceType"].(string); ok {
		// A resource, or a contained one: its own rules.
		typ, root = rt, true
	}
	before := len(o)
	// A primitive's id and extensions go with a value removed or reduced
	// (patient-birthTime repeats the date of birth), decided before any
	// value is rewritten.
	for name := range o {
		base, ok := strings.CutPrefix(name, "_")
		if !ok {
			continue
		}
		act, ok := rule(typ, root, base, o[base])
		_, patientID := d.patientIDOf(base, field, o[base])
		if ok && (act == Remove || act == YearOnly || act == CodeURI && !d.keptURI(o[base]) || act == PatientID && (patientID || untoldReference(base, o[base])) ||
			act == NoPatDispl && d.displayMayName(o, field)) {
			delete(o, name)
		}
	}
	for name, v := range o {
		d := d // an extension's value is walked as free (inFreeValue)
		if freeValueHolders[field] && strings.HasPrefix(name, "value") {
			free := *d
			free.inFreeValue = true
			d = &free
		}
		act, ok := rule(typ, root, name, v)
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
			case CodeURI:
				if !d.keptURI(v) {
					delete(o, name)
					continue
				}
			case NoPatDispl:
				if d.displayMayName(o, field) {
					delete(o, name)
					continue
				}
			case PatientID:
				if untoldReference(name, v) {
					delete(o, name)
					continue
				}
				if s, ok := d.patientIDOf(name, field, v); ok {
					o[name] = s
					continue
				}
			case Pseudonym:
				// A resource's own identifiers all (AnyResource), a
				// Patient's, the identifier of a Reference whose display
				// would go (one that may name the patient or someone near
				// them: to a Patient by any spelling of its type, a
				// RelatedPerson, a target untold), which names them as
				// its display does, and any other held by no Reference (an
				// extension's or a Task input's value, an Encounter's
				// preAdmissionIdentifier: a local number of the patient's
				// or their stay); in a Reference to another R4 type (an
				// Organization, a Practitioner) only NHS numbers. An
				// Organization's ODS code is public, and kept wherever it
				// is.
				all := root || typ == gateway.TypePatient || !isReference(o) || d.displayMayName(o, field)
				o[name] = d.identifiers(v, all, !root || typ == gateway.TypeOrganization)
				continue
			}
		}
		o[name] = d.value(v, typ, name)
	}
	unmaskPresent(o)
	prune(o)
	if before > 0 && len(o) == 0 {
		// Everything in it was removed (a CodeableConcept of text only, a
		// Reference by display only): it says so, and an element R4
		// requires is still there.
		o["extension"] = []any{map[string]any{"url": dataAbsentReason, "valueCode": "masked"}}
	}
}

// namedTargets are the resource types whose name a Reference's display
// repeats and which name the patient or those near them: a Patient, a
// Person (the patient's record across systems), a RelatedPerson (a
// relative or carer), and a Location (a patient's is often their home,
// named after them).
var namedTargets = map[string]bool{gateway.TypePatient: true, "Person": true, "RelatedPerson": true, "Location": true}

// displayMayName reports whether o's display may name a patient or those
// near them: o is a Coding in a value of the client's own definition (an
// extension's: inFreeValue), or a Reference (not a Coding elsewhere, whose
// display is its code system's) that points to a Patient, or to one of
// namedTargets, or whose target cannot be told. It fails closed: a
// display stays only where every type the Reference says its target is
// (by its type, its reference, the contained resource it names) is an R4
// resource type not among namedTargets. A Reference by display or identifier only, by a urn:uuid
// or a URL naming no R4 type, says none, and its display goes.
func (d *deidentifier) displayMayName(o map[string]any, field string) bool {
	if isCoding(o) {
		return d.inFreeValue
	}
	if pointsToPatient(o, field) {
		return true
	}
	types := d.targets(o)
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if namedTargets[t] || !structure.IsResourceType(t) {
			return true
		}
	}
	return false
}

// isCoding tells a Coding (code and system are a Coding's, never a
// Reference's) from a Reference: both may have display.
func isCoding(o map[string]any) bool {
	_, code := o["code"]
	_, system := o["system"]
	return code || system
}

// targets are the types a Reference says the resource it names is of: its
// type, and the type in its reference (relative, absolute or versioned) or
// that of the contained resource it names. A reference naming none (a
// urn:uuid, a missing contained resource) adds none; the caller checks
// each is a resource type.
func (d *deidentifier) targets(o map[string]any) []string {
	var types []string
	if t, _ := o["type"].(string); t != "" {
		types = append(types, t)
	}
	ref, ok := o["reference"].(string)
	if !ok {
		return types
	}
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		if t := d.contained[id]; t != "" {
			types = append(types, t)
		}
		return types
	}
	if h := strings.Index(ref, "/_history/"); h >= 0 {
		ref = ref[:h]
	}
	if parts := strings.Split(ref, "/"); len(parts) >= 2 {
		types = append(types, parts[len(parts)-2])
	}
	return types
}

// untoldReference reports whether element name, holding v, is a
// Reference.reference that does not name its target as a literal R4
// reference does: a search ("Patient?identifier=...|9434765919",
// "RelatedPerson?name=Bloggs") or a URL naming no R4 type
// ("https://people.example/carers/sam-bloggs"). Either may spell out whom
// it means, and neither joins up with an exported resource, so it goes, as
// the display of a target untold does. A local "#id", a urn:uuid: or
// urn:oid:, and [base/]Type/id[/_history/v] stay (a Patient's id becomes
// its pseudonym).
func untoldReference(name string, v any) bool {
	ref, ok := v.(string)
	if !ok || name != "reference" || strings.HasPrefix(ref, "#") ||
		strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
		return false
	}
	if strings.ContainsAny(ref, "?#") {
		return true
	}
	if h := strings.Index(ref, "/_history/"); h >= 0 {
		ref = ref[:h]
	}
	parts := strings.Split(ref, "/")
	return len(parts) < 2 || parts[len(parts)-1] == "" || !structure.IsResourceType(parts[len(parts)-2])
}

// keptURI reports whether a URI value stays: one shaped as a code
// system's (codeLikeURI) that is no Patient's URL, or a canonical naming a
// resource contained in the one exported ("#c1", renamed already), which
// R4 counts as referring to it (dom-3) and which names no one. A Patient's
// URL (https://gp.example/fhir/Patient/9434765919) is shaped as a code
// system's, but its id is the client's choice and may be the NHS number.
func (d *deidentifier) keptURI(v any) bool {
	s, ok := v.(string)
	if ok && len(s) > 1 && s[0] == '#' && d.contained[s[1:]] != "" {
		return true
	}
	return codeLikeURI(v) && !namesPatient(s)
}

// namesPatient reports whether the URL s names a Patient by its id
// (".../Patient/{id}", versioned or not).
func namesPatient(s string) bool {
	return patientReference(s, func(string) string { return "" }) != s
}

// codeLikeURI reports whether v is a URI shaped as those that name a code
// system, a value set or a definition are: an http(s) URL with no user,
// query or fragment (http://snomed.info/sct, a canonical with its
// |version), a urn:oid: or a urn:uuid:. It fails closed: a URI's scheme
// does not bound what it holds, and any other (mailto:, tel:, sms:, fax:,
// a messenger's, a URL whose query or user names someone) may be a
// person's address, where one shaped as a code system's is what an
// evaluation reads an extension's or answer's URI for.
func codeLikeURI(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "urn:oid:") || strings.HasPrefix(lower, "urn:uuid:") {
		return !strings.ContainsAny(s, "?#@")
	}
	rest, ok := strings.CutPrefix(lower, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(lower, "http://")
	}
	return ok && rest != "" && !strings.ContainsAny(rest, "?#@")
}

// patientIDOf is what element name, held in an object held under field,
// becomes when it names a Patient by its id: the resource's own id (the
// rule's Type makes it a Patient's), or a reference to a Patient.
// false: it names none. A contained Patient's id, and local references to
// it, are not its Patient id: renameContained has renamed them.
func (d *deidentifier) patientIDOf(name, field string, v any) (string, bool) {
	s, ok := v.(string)
	switch {
	case !ok:
		return "", false
	case name == "id" && field == "":
		return d.patientID(s), true
	case name == "reference":
		ref := patientReference(s, d.patientID)
		return ref, ref != s
	}
	return "", false
}

// patientReference rewrites a reference to a Patient ("Patient/{id}",
// with a base or a version or neither) to name the Patient by newID(id);
// any other reference is kept.
func patientReference(ref string, newID func(string) string) string {
	i := strings.LastIndex(ref, "Patient/")
	if h := strings.Index(ref, "/_history/"); h >= 0 {
		i = strings.LastIndex(ref[:h], "Patient/")
	}
	if i < 0 || (i > 0 && ref[i-1] != '/') {
		return ref
	}
	start := i + len("Patient/")
	end := start + strings.IndexByte(ref[start:]+"/", '/')
	if end == start {
		return ref
	}
	return ref[:start] + newID(ref[start:end]) + ref[end:]
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

// outwardAddresses keeps of an Address, or of each of a list, only the
// outward code of its postcode; an Address without a postcode goes. nil:
// none left.
func outwardAddresses(v any) any {
	outward := func(e any) map[string]any {
		a, _ := e.(map[string]any)
		pc, _ := a["postalCode"].(string)
		if code := outwardCode(pc); code != "" {
			return map[string]any{"postalCode": code}
		}
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		if a := outward(x); a != nil {
			return a
		}
	case []any:
		var out []any
		for _, e := range x {
			if a := outward(e); a != nil {
				out = append(out, a)
			}
		}
		if out != nil {
			return out
		}
	}
	return nil
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

// unmaskPresent takes the masked marker off a primitive whose value is
// there: a primitive's id and extensions ("_status", "_given") emptied by
// the rules (an element id removed) are marked masked as any emptied
// element is, but beside a value the marker would say the value is
// missing, which it is not. Such a marker goes (in a list, it becomes the
// null that keeps the list aligned with the values); one beside no value
// stays, as the only thing left of the element.
func unmaskPresent(o map[string]any) {
	for name, v := range o {
		base, ok := strings.CutPrefix(name, "_")
		if !ok || o[base] == nil {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			if maskedOnly(x) {
				delete(o, name)
			}
		case []any:
			values, _ := o[base].([]any)
			left := false
			for i, e := range x {
				if m, ok := e.(map[string]any); ok && maskedOnly(m) && i < len(values) && values[i] != nil {
					x[i] = nil
				}
				left = left || x[i] != nil
			}
			if !left {
				delete(o, name)
			}
		}
	}
}

// maskedOnly reports whether m holds nothing but the masked marker object
// puts in an element the rules emptied.
func maskedOnly(m map[string]any) bool {
	ext, _ := m["extension"].([]any)
	if len(m) != 1 || len(ext) != 1 {
		return false
	}
	e, _ := ext[0].(map[string]any)
	return len(e) == 2 && e["url"] == dataAbsentReason && e["valueCode"] == "masked"
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
	if !freeValueHolders[field] {
		return false
	}
	for k := range m {
		if strings.HasPrefix(k, "value") || k == "extension" {
			return false
		}
	}
	return true
}
