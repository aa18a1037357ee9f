// Identity rules: what makes two references name the same patient, and
// the NHS numbers and identifiers a resource carries.

package conform

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

func SameIdentifier(a, b *models.Identifier) bool {
	return a.System != nil && b.System != nil && a.Value != nil && b.Value != nil && *a.System == *b.System && *a.Value == *b.Value
}

func HasNHSNumber(ref *models.Reference) bool {
	return ref.Identifier != nil && ref.Identifier.System != nil && *ref.Identifier.System == fhir.NHSNumberSystem &&
		ref.Identifier.Value != nil && *ref.Identifier.Value != ""
}

// ContainedPatient is the contained Patient of this id, or nil.
func ContainedPatient(obj *fhir.Object, id string) []byte {
	if c := ContainedByID(obj, id); c != nil && c.ResourceType() == gateway.TypePatient {
		return c.Bytes()
	}
	return nil
}

// TaskSubject is the patient a referral's Task is for (Task.for), as raw
// JSON and as read: the ServiceRequest's subject as sent, unless it points
// at a Patient the ServiceRequest contains. The Task holds no copy of that
// Patient, so "#id" in it would name nothing (ref-1); the Task names the
// patient by identifier instead (containedSubjectIdentifier), which is also
// the name its index, and so a Consent and the Consent's withdrawal, find
// the referral by. IdentifyPatient refuses a contained Patient that gives
// no identifier.
func TaskSubject(obj *fhir.Object, subject *models.Reference) (json.RawMessage, *models.Reference) {
	raw, _ := obj.Member("subject")
	if subject.Reference == nil || !strings.HasPrefix(*subject.Reference, "#") {
		return raw, subject
	}
	named := &models.Reference{Type: subject.Type, Display: subject.Display,
		Identifier: containedSubjectIdentifier(subject, ContainedPatient(obj, (*subject.Reference)[1:]))}
	b, err := json.Marshal(named)
	if err != nil {
		panic(err) // strings only
	}
	return b, named
}

// containedSubjectIdentifier is the identifier a referral whose subject is
// a contained Patient names its patient by: an NHS number first (the
// subject's, else the Patient's), then the subject's identifier of another
// system, then the first the Patient gives a system and a value (nil:
// none). IdentifyPatient has checked that the subject's identifier names
// no one else (sameContainedIdentifier).
func containedSubjectIdentifier(subject *models.Reference, patient []byte) *models.Identifier {
	var own *gateway.Identifier
	if id := subject.Identifier; id != nil && id.System != nil && id.Value != nil && *id.System != "" && *id.Value != "" {
		own = &gateway.Identifier{System: *id.System, Value: *id.Value}
	}
	var nhs, first *gateway.Identifier
	for _, id := range IdentifiersIn(patient) {
		switch {
		case id.System == "" || id.Value == "":
		case id.System == fhir.NHSNumberSystem && nhs == nil:
			nhs = &id
		case first == nil:
			first = &id
		}
	}
	found := first
	switch {
	case own != nil && own.System == fhir.NHSNumberSystem:
		found = own
	case nhs != nil:
		found = nhs
	case own != nil:
		found = own
	}
	if found == nil {
		return nil
	}
	return &models.Identifier{System: &found.System, Value: &found.Value}
}

// sameContainedIdentifier refuses a subject.identifier of a system the
// contained Patient the subject points at gives only other values of: the
// two would name different people, and the Task would name one of them.
func sameContainedIdentifier(subject *models.Reference, patient []byte) error {
	id := subject.Identifier
	if id == nil || id.System == nil || id.Value == nil {
		return nil
	}
	of := false
	for _, held := range IdentifiersIn(patient) {
		if held.System == *id.System {
			if held.Value == *id.Value {
				return nil
			}
			of = true
		}
	}
	if !of {
		return nil
	}
	return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.subject.identifier.value",
		"subject.identifier is not the contained Patient's identifier of that system: they identify different people; correct whichever is wrong")
}

// SplitVersion splits "id/_history/3" into the id and version 3 (0: the
// reference names no version).
func SplitVersion(ref string) (string, int) {
	id, vid, ok := strings.Cut(ref, "/_history/")
	if !ok {
		return ref, 0
	}
	n, err := strconv.Atoi(vid)
	if err != nil || n < 1 {
		return ref, 0 // not a version: the whole is checked as an id, and fails
	}
	return id, n
}

// SameNHSNumber refuses a reference to a patient (element: a referral's
// ServiceRequest.subject, a Consent's Consent.patient) that names the
// person twice, by a Patient and by an NHS number, when the two disagree:
// routing the referral would send one person's referral with another's
// details, and the Consent would count for two people, one of whom did not
// give it (clinical-safety hazards). The answer says which elements
// disagree, never the numbers.
func SameNHSNumber(ref *models.Reference, patient []byte, element string) error {
	if !HasNHSNumber(ref) {
		return nil
	}
	held := NHSNumbersOf(patient)
	if len(held) == 0 || slices.Contains(held, *ref.Identifier.Value) {
		return nil
	}
	local := element[strings.Index(element, ".")+1:]
	return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, element+".identifier.value",
		"the NHS number in %s.identifier is not the NHS number of the Patient %s.reference names: they identify different people; correct whichever is wrong",
		local, local)
}

// NHSNumbersOf lists a Patient's NHS numbers.
func NHSNumbersOf(patient []byte) []string {
	var out []string
	for _, id := range IdentifiersIn(patient) {
		if id.System == fhir.NHSNumberSystem && id.Value != "" {
			out = append(out, id.Value)
		}
	}
	return out
}

func HasCoding(cc *models.CodeableConcept, system, code string) bool {
	if cc == nil {
		return false
	}
	for _, c := range cc.Coding {
		if c.System != nil && c.Code != nil && *c.System == system && *c.Code == code {
			return true
		}
	}
	return false
}

// RefString is a reference's literal and identifier, for comparing two
// references as they were written.
func RefString(r *models.Reference) string {
	if r == nil {
		return ""
	}
	b, _ := json.Marshal(struct {
		R *string            `json:"r"`
		I *models.Identifier `json:"i"`
	}{r.Reference, r.Identifier})
	return string(b)
}

// IdentifiersOf reads the identifiers of a raw resource that have both a
// system and a value; only those can name a referral unambiguously.
func IdentifiersOf(obj *fhir.Object) []gateway.Identifier {
	raw, ok := obj.Member("identifier")
	if !ok {
		return nil
	}
	var ids []models.Identifier
	if gateway.DecodeView(raw, "identifier", &ids) != nil {
		return nil
	}
	return UsableIdentifiers(ids)
}

// UsableIdentifiers keeps the identifiers that have both a system and a value.
func UsableIdentifiers(ids []models.Identifier) []gateway.Identifier {
	out := make([]gateway.Identifier, 0, len(ids))
	for _, id := range ids {
		if id.System != nil && id.Value != nil && *id.System != "" && *id.Value != "" {
			out = append(out, gateway.Identifier{System: *id.System, Value: *id.Value})
		}
	}
	return out
}
