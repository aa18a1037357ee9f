package intake

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
)

// receiveChange applies an update or delete message to the referral the
// same client's new message made. It is a PUT of that referral's
// ServiceRequest (planServiceRequest): the same rules, and revoking or
// withdrawing the referral cancels its Task and tells its provider and the
// GP system through planRevocation, the path a REST update takes, so there
// is one way a referral is cancelled.
func (s *Service) receiveChange(ctx context.Context, caller gateway.Caller, m *MessageReferral, may MayWrite, audit *gateway.AuditIntent) (*ReceivedReferral, error) {
	sent, err := s.parser.ParseRaw(m.ServiceRequest.Body, gateway.TypeServiceRequest)
	if err != nil {
		return nil, err
	}
	srID, err := s.messageTarget(ctx, caller, m, sent)
	if err != nil {
		return nil, err
	}
	if err := s.sameService(ctx, m, srID); err != nil {
		return nil, err
	}
	cur, err := s.Store.Read(ctx, gateway.TypeServiceRequest, srID)
	if err != nil {
		return nil, err
	}
	body, err := s.changedServiceRequest(ctx, caller, m, sent, cur)
	if err != nil {
		return nil, err
	}
	ctxm := &messageContext{referral: m, client: caller.ClientID, placeOf: s.PlaceOf, place: s.PlaceOf(srID), may: may}
	r := &Request{Method: "PUT", Type: gateway.TypeServiceRequest, ID: srID, Body: body, FullURL: m.ServiceRequest.FullURL,
		Expr: m.ServiceRequest.Expr, inBundle: true, message: ctxm}
	ctxm.focus = r
	if m.Patient != nil {
		// The Patient entry is the referral's patient (samePatient): the
		// other entries' references to it name the stored Patient.
		if stored, err := s.parser.ParseRaw(cur.Body, gateway.TypeServiceRequest); err == nil {
			if view, err := gateway.ReadReferral(stored); err == nil && view.Subject.Reference != nil {
				ctxm.resolved = map[string]string{m.Patient.FullURL: *view.Subject.Reference}
			}
		}
	}
	reqs := []*Request{r}
	if m.Reason == MessageUpdate {
		// What an update carries is kept with the referral as a new
		// message's is; a withdrawal's other entries say nothing Signpost keeps.
		if err := s.checkSupportingRoom(ctx, ctxm, srID); err != nil {
			return nil, err
		}
		reqs = append(reqs, ctxm.supportingRequests()...)
	}
	outs, err := s.apply(ctx, caller, reqs, audit)
	if err != nil {
		return nil, err
	}
	task, err := s.referralTask(ctx, srID)
	if err != nil {
		return nil, err
	}
	return &ReceivedReferral{ServiceRequest: outs[0], Task: task, Changed: outs[0].Resource.Version > cur.Version}, nil
}

// sameService refuses an update or delete addressed to another service than
// the one its referral was routed to: the sender would be changing a
// referral it believes another provider holds, and the provider that has
// it would learn of a change not meant for it. It says no more than that,
// not which service has the referral.
func (s *Service) sameService(ctx context.Context, m *MessageReferral, srID string) error {
	provider, err := s.destinationProvider(m.Destinations)
	if err != nil {
		return err
	}
	task, err := s.referralTask(ctx, srID)
	if err != nil || task == nil {
		return err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return err
	}
	if view.Owner != gateway.TypeOrganization+"/"+provider.ID {
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, m.Destinations[0].Expr,
			"the referral was sent to another service than this destination; an update or delete is addressed to the service its referral was sent to; nothing was changed")
	}
	return nil
}

// messageTarget is the id of the referral an update or delete is about:
// the one the same client's new message made, named as that message named
// it, by a business identifier of the ServiceRequest or by its entry's
// fullUrl (the first of those keys that names one, all read in one round
// trip). Keys are the client's own, so another client's referral is not
// found either, and nothing says it exists.
func (s *Service) messageTarget(ctx context.Context, caller gateway.Caller, m *MessageReferral, sent *fhir.Object) (string, error) {
	var keys []string
	for _, id := range conform.IdentifiersOf(sent) {
		keys = append(keys, gateway.ReferralKey(caller, id))
	}
	keys = append(keys, gateway.MessageFocusKey(caller, m.ServiceRequest.FullURL))
	held, err := s.Store.LookupMany(ctx, keys)
	if err != nil {
		return "", err
	}
	for _, holder := range held {
		if id, ok := strings.CutPrefix(holder, gateway.TypeServiceRequest+"/"); ok {
			return id, nil
		}
	}
	return "", gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, m.ServiceRequest.Expr,
		"no referral this client sent has this ServiceRequest: an update or delete names the referral a new message made, by the same ServiceRequest.identifier or the same entry fullUrl; nothing was changed")
}

// changedServiceRequest is the new version an update or delete asks for.
// A delete withdraws the referral as it stands (entered-in-error); an
// update replaces it with the message's ServiceRequest, whose subject, a
// reference to the message's Patient entry, names the referral's stored
// patient, who does not change.
func (s *Service) changedServiceRequest(ctx context.Context, caller gateway.Caller, m *MessageReferral, sent *fhir.Object, cur *gateway.Resource) ([]byte, error) {
	if m.Reason == MessageDelete {
		return setMembers(cur.Body, map[string]any{"status": "entered-in-error"})
	}
	set := map[string]any{"id": cur.ID}
	if subject, ok := sent.Object("subject"); ok {
		if ref, _ := subject.String("reference"); m.Patient != nil && ref == m.Patient.FullURL {
			var stored struct {
				Subject json.RawMessage `json:"subject"`
			}
			if err := json.Unmarshal(cur.Body, &stored); err != nil {
				return nil, err
			}
			if err := s.samePatient(ctx, caller, m.Patient, stored.Subject); err != nil {
				return nil, err
			}
			set["subject"] = stored.Subject
		}
	}
	return setMembers(sent.Bytes(), set)
}

// samePatient refuses an update whose Patient entry has another NHS number
// than the referral's Patient: a referral is for one person, and what the
// message says would otherwise be dropped without a word.
func (s *Service) samePatient(ctx context.Context, caller gateway.Caller, p *MessageEntry, storedSubject []byte) error {
	var subject struct {
		Reference string `json:"reference"`
	}
	_ = json.Unmarshal(storedSubject, &subject)
	id, ok := strings.CutPrefix(s.LocalRef(subject.Reference), gateway.TypePatient+"/")
	if !ok {
		return nil // a referral by NHS number alone: ServiceRequest.subject is checked as in any update
	}
	key, err := s.PatientKeyFor(ctx, caller, id)
	if err != nil {
		return err
	}
	held, err := s.Store.Read(ctx, gateway.TypePatient, key)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	want, have := nhsNumbers(held.Body), nhsNumbers(p.Body)
	if len(want) == 0 || len(have) == 0 {
		return nil
	}
	for v := range have {
		if want[v] {
			return nil
		}
	}
	return gateway.NewError(gateway.KindConflict, fhir.IssueConflict, p.Expr+".identifier",
		"this Patient's NHS number is not that of the referral's patient; a referral's patient does not change: withdraw it (reason delete) and send a new referral")
}

// nhsNumbers are a Patient's NHS numbers, as a set, without the spaces a
// number may be written with.
func nhsNumbers(body []byte) map[string]bool {
	out := map[string]bool{}
	for _, id := range conform.IdentifiersIn(body) {
		if id.System == fhir.NHSNumberSystem && id.Value != "" {
			out[plainNHSNumber(id.Value)] = true
		}
	}
	return out
}

// plainNHSNumber is an NHS number without the spaces it may be written with.
func plainNHSNumber(v string) string { return strings.ReplaceAll(v, " ", "") }

// setMembers replaces (or adds) top-level members of a resource.
func setMembers(body []byte, set map[string]any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for k, v := range set {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// referralTask reads the referral Task of a ServiceRequest (nil: it has none).
func (s *Service) referralTask(ctx context.Context, srID string) (*gateway.Resource, error) {
	holder, err := s.Store.Lookup(ctx, gateway.ReferralTaskKey(srID))
	if err != nil || holder == "" {
		return nil, err
	}
	return s.Store.Read(ctx, gateway.TypeTask, strings.TrimPrefix(holder, gateway.TypeTask+"/"))
}

// heldMessageChange is the ServiceRequest version a message's key names:
// "ServiceRequest/{id}" for the referral a new message made, or
// "ServiceRequest/{id}/_history/{version}" for the version an update or
// delete wrote, so that the same message sent again is answered as it was
// the first time.
func (s *Service) heldMessageChange(ctx context.Context, holder string) (*gateway.Resource, error) {
	typ, rest, _ := strings.Cut(holder, "/")
	id, version, versioned := strings.Cut(rest, "/_history/")
	if !versioned {
		return s.Store.Read(ctx, typ, id)
	}
	v, err := strconv.Atoi(version)
	if err != nil {
		return nil, err
	}
	return s.Store.ReadVersion(ctx, typ, id, v)
}

// checkSupportingRoom refuses an update that would take its referral past
// gateway.MaxSupporting supporting resources: each message is bounded, but
// a sender must not grow one referral without end, message by message.
// Entries stored before (the same fullUrl) are new versions, not new
// resources.
func (s *Service) checkSupportingRoom(ctx context.Context, m *messageContext, srID string) error {
	if len(m.referral.Supporting) == 0 {
		return nil
	}
	held, err := s.SupportingCount(ctx, gateway.TypeServiceRequest+"/"+srID)
	if err != nil {
		return err
	}
	refs := make([]string, 0, len(m.referral.Supporting))
	for _, ref := range m.entryRefs() {
		refs = append(refs, ref)
	}
	again, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return err
	}
	if n := held + len(refs) - len(again); n > gateway.MaxSupporting {
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, "Bundle.entry",
			"the referral would hold %d resources beside its ServiceRequest and Patient; at most %d are kept for one referral, so nothing was changed", n, gateway.MaxSupporting)
	}
	return nil
}
