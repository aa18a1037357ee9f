package gateway

import (
	"context"
	"errors"

	"github.com/signpost-health/signpost/fhir"
)

// Who may see and change what. A GP system sees the referrals it made and
// what they carry (its Patients, their Tasks); a provider sees the Tasks it
// owns and the ServiceRequests and Patients those Tasks point to, and the
// supporting resources those referrals came with. Anything
// else does not exist for the caller: it is answered 404, never 403, and
// searches and counts leave it out, so existence cannot leak (OWASP API1,
// broken object-level authorisation).

// SearchScope is the group every search of the caller is intersected with.
func SearchScope(c Caller, typ string) []string {
	switch c.Kind {
	case CallerGP:
		return []string{ClientTerm(c.ClientID)}
	case CallerProvider:
		switch typ {
		case TypeTask:
			return []string{OwnerTerm(c.ClientID)}
		case TypeServiceRequest:
			return []string{ProviderTerm(c.ClientID)}
		case TypeProvenance:
			return []string{OwnerTerm(c.ClientID)}
		default:
			// A provider reads a Patient by the reference on its Task.
			return []string{MatchNothing}
		}
	case CallerExporter, CallerEvaluator:
		return []string{MatchNothing} // they export; they do not search
	}
	return nil
}

// Visible reports whether the caller may see a resource.
func (s *Core) Visible(ctx context.Context, c Caller, r *Resource) (bool, error) {
	switch c.Kind {
	case CallerOperator:
		return true, nil
	case CallerExporter, CallerEvaluator:
		return false, nil
	case CallerGP:
		return r.Owner == c.ClientID, nil
	case CallerProvider:
		owned := []string{OwnerTerm(c.ClientID)}
		var via []string
		switch r.Type {
		case TypeTask:
			via = []string{idTerm(r.ID)}
		case TypeServiceRequest:
			via = []string{FocusTerm(r.Ref())}
		case TypePatient:
			return s.providerSeesPatient(ctx, c.ClientID, r)
		case TypeProvenance:
			task, version := provenanceTarget(r)
			if task == "" || version == 0 {
				return false, nil
			}
			// Who made a version is the provider's to read only when
			// the version is (VersionSeen): not one made while the
			// referral was held, or while another provider had it.
			v, err := s.Store.ReadVersion(ctx, TypeTask, task, version)
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			if err != nil || !VersionSeen(c, v, 0) {
				return false, err
			}
			via = []string{idTerm(task)}
		default:
			if !IsSupporting(r.Type) {
				return false, nil
			}
			referral, err := s.Store.Lookup(ctx, SupportingKey(r.Ref()))
			if err != nil || referral == "" {
				return false, err
			}
			via = []string{FocusTerm(referral)}
		}
		_, n, err := s.Store.Search(ctx, &StoreQuery{Type: TypeTask, Groups: [][]string{via, owned}})
		return n > 0, err
	}
	return false, nil
}

// VersionSeen reports whether a caller who may see a resource (Visible)
// may also see this version of it, the current being version current. A
// provider sees a referral from when it was sent it, not before: the
// versions a GP system wrote before (a draft naming someone else, a
// Patient filed as another person and corrected, the ServiceRequest while
// held for consent, which its release moves on a version) are the GP
// record's, so of a ServiceRequest and a Patient it reads the current
// version alone, and of a Task only versions that were its own and not
// withheld (a hold's reason, such as a refusal of consent, is not for the
// provider). Everyone else reads every version they may see.
func VersionSeen(c Caller, r *Resource, current int) bool {
	if c.Kind != CallerProvider {
		return true
	}
	switch r.Type {
	case TypeServiceRequest, TypePatient:
		return r.Version == current
	case TypeTask:
		t, err := ParseTask(r.Body)
		return err == nil && t.Owner == TypeOrganization+"/"+c.ClientID && !Withheld(r.Body)
	}
	return true
}

// providerSeesPatient is the one rule by which a provider sees a Patient,
// whatever the path (API read, inbox, referral page, full webhook): a Task
// the provider owns points at it, and that Task belongs to the client that
// owns the Patient. The second half is what stops a GP system's Task from
// showing another practice's Patient to a provider.
func (s *Core) providerSeesPatient(ctx context.Context, providerID string, patient *Resource) (bool, error) {
	_, n, err := s.Store.Search(ctx, &StoreQuery{Type: TypeTask, Groups: [][]string{
		{SubjectTerm(patient.Ref())}, {OwnerTerm(providerID)}, {ClientTerm(patient.Owner)}}})
	return n > 0, err
}

// ReadVisible reads a resource the caller may see, or reports it not found.
func (s *Core) ReadVisible(ctx context.Context, c Caller, typ, id string) (*Resource, error) {
	if typ == TypePatient {
		key, err := s.PatientKeyFor(ctx, c, id)
		if err != nil {
			return nil, err
		}
		id = key
	}
	r, err := s.Store.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	ok, err := s.Visible(ctx, c, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	// A provider sees what its share profile lets it (share.go).
	if r = s.SharedWith(c, r); r == nil {
		return nil, ErrNotFound
	}
	return r, nil
}

// MayMoveTask checks that the caller's side may set a Task status
// (Gravity: the requester drafts, requests and withdraws; the performer
// accepts, declines, works and finishes; either may cancel).
func MayMoveTask(c Caller, from, to TaskStatus) error {
	if from == to {
		return nil
	}
	switch {
	case c.Kind == CallerGP && !to.SetByRequester():
		return NewError(KindForbidden, fhir.IssueForbidden, "Task.status", "the referrer may set a referral Task to draft, requested, cancelled or entered-in-error; %s is the provider's to set", to)
	case c.Kind == CallerProvider && !to.SetByPerformer():
		return NewError(KindForbidden, fhir.IssueForbidden, "Task.status", "the provider may set a referral Task to accepted, rejected, in-progress, on-hold, failed, completed or cancelled; %s is the referrer's to set", to)
	}
	return nil
}
