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
