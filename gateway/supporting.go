package gateway

import (
	"context"
	"slices"
)

// Supporting resources are what a referral message carries beside its
// ServiceRequest and Patient: the encounter it came from, the care plan,
// the practitioners and organisations it names, observations, flags,
// consent. BaRS MessageDefinitions list them. Signpost stores each as it
// was received (its references to other entries resolved to what was
// stored) and serves it by id to whoever may see the referral; a later
// message about the referral may bring a new version of one (by the same
// fullUrl), but Signpost never searches or routes by them.
var supportingTypes = []string{
	"AllergyIntolerance", "CarePlan", "Condition", "Consent", "Encounter", "Flag", "HealthcareService",
	"Location", "MedicationStatement", "Observation", TypeOrganization, "Practitioner", "PractitionerRole",
	"QuestionnaireResponse",
}

// IsSupporting reports whether typ is stored only as a referral's
// supporting resource.
func IsSupporting(typ string) bool {
	_, found := slices.BinarySearch(supportingTypes, typ)
	return found
}

// SupportingTypes are the supporting resource types, in alphabetical order.
func SupportingTypes() []string { return slices.Clone(supportingTypes) }

// MaxSupporting bounds the supporting resources one referral keeps across
// its messages: a message is bounded by its entries, but a sender could
// otherwise grow a referral message by message, and a referral's
// supporting resources are read whole when it is sent on or removed.
const MaxSupporting = 100

// SupportingKey holds the referral (its "ServiceRequest/id") a supporting
// resource came with, claimed in the commit that stores the resource: a
// provider sees a supporting resource exactly when it sees that referral.
func SupportingKey(ref string) string { return "supporting|" + ref }

// ReferralTerm indexes a supporting resource under its referral's
// ServiceRequest ("ServiceRequest/id").
func ReferralTerm(serviceRequestRef string) string { return Term("_referral", serviceRequestRef) }

// Supporting returns the supporting resources a referral came with, type
// by type, each type's oldest first.
func (s *Core) Supporting(ctx context.Context, serviceRequestRef string) ([]*Resource, error) {
	var refs []string
	for _, typ := range supportingTypes {
		ids, _, err := s.Store.Search(ctx, &StoreQuery{Type: typ, Groups: [][]string{{ReferralTerm(serviceRequestRef)}}, Count: MaxSupporting})
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			refs = append(refs, typ+"/"+id)
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return s.Store.ReadMany(ctx, refs)
}

// SupportingCount is how many supporting resources a referral holds.
func (s *Core) SupportingCount(ctx context.Context, serviceRequestRef string) (int, error) {
	n := 0
	for _, typ := range supportingTypes {
		_, total, err := s.Store.Search(ctx, &StoreQuery{Type: typ, Groups: [][]string{{ReferralTerm(serviceRequestRef)}}, Count: 1})
		if err != nil {
			return 0, err
		}
		n += total
	}
	return n, nil
}
