package conform

import (
	"github.com/signpost-health/signpost/gateway"

	"encoding/json"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
)

// CheckRequester refuses a referral (or a client's own referral Task) whose
// requester names an organisation other than the calling GP system's: the
// provider's inbox shows the requester as who the referral is from, so a
// practice must not be able to send in another practice's name.
//
// What is accepted from a GP system:
//   - no requester (Signpost records the caller's organisation);
//   - an identifier that is the caller's configured organisation identifier,
//     with or without a reference;
//   - a reference to a Practitioner or PractitionerRole (relative, absolute,
//     or contained): a person of the practice. Signpost holds no register of
//     a practice's staff, so it cannot verify one; the referral is still
//     recorded under the authenticated client, whatever the person named.
//   - a contained Organization whose identifiers include the caller's.
//
// Anything else — another identifier, an Organization reference Signpost
// cannot check against the caller, a Patient, RelatedPerson or Device — is a
// 422. Operators (no authentication, loopback only) are not checked.
func CheckRequester(c gateway.Caller, obj *fhir.Object, requester *models.Reference, expr string) error {
	if c.Kind != gateway.CallerGP || requester == nil {
		return nil
	}
	own := c.Organization
	const why = "the requester must be the calling GP system's own organisation (identifier %s|%s), or a Practitioner or PractitionerRole of it"
	refuse := func(at string) error {
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, at, why, own.System, own.Value)
	}
	if id := requester.Identifier; id != nil {
		if id.System == nil || id.Value == nil || *id.System != own.System || *id.Value != own.Value {
			return refuse(expr + ".identifier")
		}
		return nil // the caller's own organisation; a reference beside it names the same
	}
	if requester.Reference == nil {
		return nil // a display alone names nobody Signpost could check; the client is recorded
	}
	ref := *requester.Reference
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		switch typ, ids := containedResource(obj, id); typ {
		case "Practitioner", "PractitionerRole":
			return nil
		case "Organization":
			for _, i := range ids {
				if i.System == own.System && i.Value == own.Value {
					return nil
				}
			}
		}
		return refuse(expr + ".reference")
	}
	// "Practitioner/x", ".../fhir/PractitionerRole/x/_history/2": the type
	// is the segment before the id.
	parts := strings.Split(strings.TrimSuffix(ref, "/"), "/")
	if i := len(parts) - 2; len(parts) >= 4 && parts[len(parts)-2] == "_history" {
		parts = parts[:i]
	}
	if len(parts) >= 2 {
		switch parts[len(parts)-2] {
		case "Practitioner", "PractitionerRole":
			return nil
		}
	}
	return refuse(expr + ".reference")
}

// containedResource is the type and identifiers of a contained resource.
func containedResource(obj *fhir.Object, id string) (string, []gateway.Identifier) {
	c := ContainedByID(obj, id)
	if c == nil {
		return "", nil
	}
	return c.ResourceType(), IdentifiersIn(c.Bytes())
}

// ContainedByID is the contained resource of this id, or nil.
func ContainedByID(obj *fhir.Object, id string) *fhir.Object {
	contained, _ := obj.Objects("contained")
	for _, c := range contained {
		if cid, _ := c.String("id"); cid == id {
			return c
		}
	}
	return nil
}

// IdentifiersIn reads a resource's identifiers from a body that passed the
// checks at the door when it was sent or stored.
func IdentifiersIn(body []byte) []gateway.Identifier {
	var r struct {
		Identifier []gateway.Identifier `json:"identifier"`
	}
	_ = json.Unmarshal(body, &r)
	return r.Identifier
}
