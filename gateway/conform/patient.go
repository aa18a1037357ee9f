// Patient identity: who a referral is for, and whether a referral Task is
// for the same person. Each reads the Patients the caller may see, and the
// ones its own request writes (planned).

package conform

import (
	"context"
	"errors"
	"slices"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// SameSubject reports whether a client's referral Task is for the person
// its referral is for. The check matters because a provider is shown the
// Patient its Task points to: a Task naming any other Patient would show
// that person to the provider. When the referral names the patient by NHS
// number alone, the Task may point at a Patient the same client holds (or
// sends in the same transaction) with that NHS number. held is the stored
// Patient the answer was decided on (nil for none), as IdentifyPatient's:
// the answer holds only while that version is current, so the caller's
// commit rests on it.
func SameSubject(ctx context.Context, s *gateway.Core, caller gateway.Caller, planned Planned, taskFor, subject *models.Reference) (held *gateway.Resource, same bool, err error) {
	if RefString(taskFor) == RefString(subject) {
		return nil, true, nil
	}
	if taskFor.Reference != nil {
		ref := s.LocalRef(*taskFor.Reference)
		switch {
		case subject.Reference != nil:
			// A version of a Patient is the same person as the Patient.
			if unversioned(ref) != unversioned(s.LocalRef(*subject.Reference)) {
				return nil, false, nil
			}
		case HasNHSNumber(subject):
			// The referral names the patient by NHS number alone.
			var holds bool
			if held, holds, err = patientHolds(ctx, s, caller, planned, ref, subject.Identifier); err != nil || !holds {
				return held, false, err
			}
		default:
			return nil, false, nil
		}
	}
	if id := taskFor.Identifier; id != nil {
		if subject.Identifier != nil || subject.Reference == nil {
			return held, subject.Identifier != nil && SameIdentifier(id, subject.Identifier), nil
		}
		// The referral names its Patient by reference alone: the identifier
		// must be one that Patient holds (and no Patient was read above).
		return patientHolds(ctx, s, caller, planned, s.LocalRef(*subject.Reference), id)
	}
	return held, true, nil
}

// unversioned is a reference without the version it may name
// ("Patient/x/_history/2" is "Patient/x").
func unversioned(ref string) string {
	id, _ := SplitVersion(ref)
	return id
}

// patientHolds reports whether a reference names a Patient of the calling
// client (sent in this request, or held) that carries the identifier, and
// which stored Patient it read to tell (nil for one sent in this request,
// or none found).
func patientHolds(ctx context.Context, s *gateway.Core, caller gateway.Caller, planned Planned, ref string, want *models.Identifier) (*gateway.Resource, bool, error) {
	id, ok := strings.CutPrefix(unversioned(ref), gateway.TypePatient+"/")
	if !ok || gateway.CheckID(id) != nil || want == nil || want.System == nil || want.Value == nil {
		return nil, false, nil
	}
	if body := planned(gateway.TypePatient, id); body != nil {
		return nil, holdsIdentifier(body, want), nil
	}
	p, err := s.ReadVisible(ctx, caller, gateway.TypePatient, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return p, holdsIdentifier(p.Body, want), nil
}

// holdsIdentifier reports whether a Patient's body carries the identifier.
func holdsIdentifier(body []byte, want *models.Identifier) bool {
	return slices.Contains(IdentifiersIn(body), gateway.Identifier{System: *want.System, Value: *want.Value})
}

// IdentifyPatient checks that the person a referral is for can be
// identified: by a reference to a Patient held (or sent in the same
// transaction, or contained and giving an identifier), or by an NHS number.
// held is the stored Patient the subject was checked against (nil for
// none): the check holds only while that version is current, so the
// caller's commit rests on it.
func IdentifyPatient(ctx context.Context, s *gateway.Core, caller gateway.Caller, planned Planned, obj *fhir.Object, subject *models.Reference, nhsOK bool) (held *gateway.Resource, err error) {
	if subject.Reference != nil {
		ref := s.LocalRef(*subject.Reference)
		switch {
		case strings.HasPrefix(ref, "#"):
			if body := ContainedPatient(obj, ref[1:]); body != nil {
				if err := sameContainedIdentifier(subject, body); err != nil {
					return nil, err
				}
				if containedSubjectIdentifier(subject, body) == nil {
					// The referral's Task names the patient by identifier
					// (TaskSubject): with none, it would name no one.
					return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueRequired, "ServiceRequest.subject.identifier",
						"the contained Patient the subject points at gives no identifier: give subject.identifier with the NHS number (system %s), or an identifier with a system and a value in the contained Patient", fhir.NHSNumberSystem)
				}
				return nil, nil
			}
			return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "ServiceRequest.subject.reference", "the reference names no contained Patient")
		case strings.HasPrefix(ref, gateway.TypePatient+"/"):
			id, version := SplitVersion(strings.TrimPrefix(ref, gateway.TypePatient+"/"))
			if gateway.CheckID(id) == nil {
				if body := planned(gateway.TypePatient, id); body != nil && version == 0 {
					return nil, SameNHSNumber(subject, body, "ServiceRequest.subject")
				}
				p, err := s.ReadVisible(ctx, caller, gateway.TypePatient, id)
				if err == nil && version <= p.Version {
					// A versioned reference names a version held; the
					// person is the same in every version.
					return p, SameNHSNumber(subject, p.Body, "ServiceRequest.subject")
				} else if err != nil && !errors.Is(err, gateway.ErrNotFound) {
					return nil, err
				}
			}
			// A reference must resolve to a Patient the caller may see: a
			// referral pointing at someone else's Patient would show that
			// Patient to the provider it is routed to.
			return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueNotFound, "ServiceRequest.subject.reference",
				"the Patient referred to is not held by Signpost for this client; PUT it first, send it in the same transaction, or refer to the patient by subject.identifier with the NHS number alone")
		case strings.Contains(ref, "/") && !strings.Contains(ref, "://"):
			return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "ServiceRequest.subject.reference", "a social prescribing referral's subject must be a Patient")
		}
	}
	if HasNHSNumber(subject) && nhsOK {
		return nil, nil
	}
	return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueRequired, "ServiceRequest.subject",
		"the patient cannot be identified: give subject.identifier with an NHS number (system %s), a Patient in the same transaction, or a reference to a Patient already held", fhir.NHSNumberSystem)
}

// CheckNHSNumber checks an NHS number's Modulus 11 digit: a problem under
// the strict policy, a warning under warn (NHS England's own examples fail
// it).
func CheckNHSNumber(p *gateway.Problems, strict bool, system, value *string, expr string) {
	if system == nil || *system != fhir.NHSNumberSystem {
		return
	}
	if value == nil || fhir.ValidNHSNumber(*value) {
		return
	}
	const msg = "not a valid NHS number: expected 10 digits whose last is the Modulus 11 check digit of the first nine"
	if strict {
		p.Add(fhir.IssueValue, expr, msg)
	} else {
		p.Warn(fhir.IssueValue, expr, msg+"; accepted, as this deployment's NHS number policy is warn")
	}
}

// Planned finds a resource the request being checked writes (nil when it
// writes none of that type and id): a reference to it is as good as one to
// a stored resource.
type Planned func(typ, id string) []byte
