package intake

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/queue"
)

// planPatient validates a Patient and plans its write. A PUT of a Patient
// Signpost does not hold creates it under the client's id.
func (s *Service) planPatient(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	var p gateway.Problems
	conform.CheckBindings(&p, r.obj, gateway.TypePatient)
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	var pat models.Patient
	if err := gateway.DecodeView(r.obj.Bytes(), gateway.TypePatient, &pat); err != nil {
		return nil, err
	}
	for i, id := range pat.Identifier {
		conform.CheckNHSNumber(&p, s.StrictNHS, id.System, id.Value, "Patient.identifier["+strconv.Itoa(i)+"].value")
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	version, expect, fromIfMatch := 1, 0, false
	if r.Method == "PUT" {
		cur, exp, err := s.current(ctx, pl, r)
		if err != nil {
			return nil, err
		}
		if cur != nil {
			version, expect, fromIfMatch = cur.Version+1, exp, r.pinsVersion()
			if err := s.keepsItsNHSNumber(ctx, pl, r.id, cur.Body, r.obj.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	body := r.obj.WithServerFields(r.id, strconv.Itoa(version), gateway.Instant(pl.stampOf(r)))
	return pl.addWrite(r, body, version, expect, fromIfMatch, gateway.PatientTerms(r.id, &pat), p.Warnings), nil
}

// keepsItsNHSNumber refuses an update of a Patient that a referral, its
// Task or a Consent of its client names by reference when the update
// changes, adds to or drops the NHS numbers the Patient was kept with, or,
// kept with none, gives one other than a number the referral Tasks naming
// it give beside it. An NHS number names one person: a referral sent, or a
// Consent taken, for the person behind Patient/x would otherwise move to
// someone else unseen (referrals are decided on the Task's names, and not
// again once sent). A Patient nothing names may be corrected freely. What
// it found naming the Patient is counted again by the commit (plan.seen):
// a referral or Consent naming it stored between this search and the
// commit, decided on the number it had, refuses the commit, which is
// planned again and finds it.
func (s *Service) keepsItsNHSNumber(ctx context.Context, pl *plan, id string, cur, next []byte) error {
	held, now := nhsNumbers(cur), nhsNumbers(next)
	if maps.Equal(held, now) {
		return nil
	}
	ref := &models.Reference{Reference: ptr(gateway.TypePatient + "/" + id)}
	var named, tasks []string
	for _, q := range []struct{ typ, param string }{{gateway.TypeServiceRequest, "subject"}, {gateway.TypeTask, "subject"}, {gateway.TypeConsent, "patient"}} {
		groups := [][]string{{gateway.ClientTerm(pl.caller.ClientID)}, gateway.PatientRefTerms(q.param, ref, s.Base)}
		ids, total, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: q.typ, Groups: groups, Count: maxConsentReads})
		if err != nil {
			return err
		}
		pl.seen(q.typ, groups, total)
		for _, found := range ids {
			named = append(named, q.typ+"/"+found)
			if q.typ == gateway.TypeTask {
				tasks = append(tasks, q.typ+"/"+found)
			}
		}
	}
	if len(named) == 0 {
		return nil
	}
	if len(held) == 0 {
		// Gaining a number: only one the referral Tasks naming it give
		// beside it (what they were sent for). A Consent naming it beside
		// another number reads as naming two people from now on, and so
		// sends nothing more (gateway.MatchPatient).
		got, err := s.Store.ReadMany(ctx, tasks)
		if err != nil {
			return err
		}
		fits := true
		for _, r := range got {
			if name := forOf(r.Body); name != nil && conform.HasNHSNumber(name) && !now[plainNHSNumber(*name.Identifier.Value)] {
				fits = false
			}
		}
		if fits {
			return nil
		}
	}
	return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "Patient.identifier",
		"this Patient is named by referrals or Consents, so its NHS number cannot change, be added to or be removed (nor can it gain one other than theirs): they were decided on it, and another number is another person; send that person as a new Patient")
}

func ptr(s string) *string { return &s }

// planServiceRequest validates a referral and plans its write. An active
// referral is categorised and routed, and its referral Task and delivery job
// are planned with it, unless a Task entry of the same transaction is its
// referral Task.
func (s *Service) planServiceRequest(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	var p gateway.Problems
	status := gateway.RequestStatus(conform.CheckBindings(&p, r.obj, gateway.TypeServiceRequest)["status"])
	conform.RequireObject(&p, r.obj, gateway.TypeServiceRequest, "subject", "the person the referral is for")
	if r.message == nil { // a message's destination decides where it goes (messageContext.category)
		conform.RequireObject(&p, r.obj, gateway.TypeServiceRequest, "code", "the referral's SNOMED CT code decides where it goes")
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	sr, err := gateway.ReadReferral(r.obj)
	if err != nil {
		return nil, err
	}
	if id := sr.Subject.Identifier; id != nil {
		conform.CheckNHSNumber(&p, s.StrictNHS, id.System, id.Value, "ServiceRequest.subject.identifier.value")
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	held, err := conform.IdentifyPatient(ctx, s.Core, pl.caller, pl.plannedBody, r.obj, &sr.Subject, p.OK())
	if err != nil {
		return nil, err
	}
	if held != nil {
		// Its NHS number was checked against the subject's: renumbered
		// before the commit, the referral is checked again, whatever its
		// provider's consent reads.
		pl.decidedOn(held)
	}
	if err := conform.CheckRequester(pl.caller, r.obj, r.messageRequester(sr.Requester), "ServiceRequest.requester"); err != nil {
		return nil, err
	}
	if !keptAsSent(sr.Requester) && pl.caller.Organization.Value == "" {
		return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueRequired, "ServiceRequest.requester",
			"requester is required, as a reference to a resource of its own or an identifier: the caller has no organisation Signpost could record as the referrer")
	}

	version, expect, fromIfMatch := 1, 0, false
	needsTask := status == gateway.RequestActive
	var keep []string // index terms an update carries over
	taskHolder := ""  // the referral's Task, when it has one
	if r.Method == "PUT" {
		cur, exp, err := s.current(ctx, pl, r)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, gateway.NotFound(gateway.TypeServiceRequest, r.id)
		}
		if err := staysClosed(cur.Body, status); err != nil {
			return nil, err
		}
		version, expect, fromIfMatch = cur.Version+1, exp, r.pinsVersion()
		holder, err := pl.lookups.lookup(ctx, s.Store, gateway.ReferralTaskKey(r.id))
		if err != nil {
			return nil, err
		}
		if holder != "" {
			needsTask = false
			taskHolder = holder
			// The referral stays visible to the provider its Task was sent to.
			task, err := s.Store.Read(ctx, gateway.TypeTask, strings.TrimPrefix(holder, gateway.TypeTask+"/"))
			if err != nil {
				return nil, err
			}
			view, err := gateway.ParseTask(task.Body)
			if err != nil {
				return nil, err
			}
			if err := s.keepsItsSubject(ctx, pl, r, sr, task, cur); err != nil {
				return nil, err
			}
			// (not while it is withheld from the provider: consent.go).
			if id, ok := strings.CutPrefix(view.Owner, gateway.TypeOrganization+"/"); ok && !gateway.Withheld(task.Body) {
				keep = append(keep, gateway.ProviderTerm(id))
			}
			// Revoking the referral cancels its Task, and the provider is told.
			if status.Withdraws() && view.Status != gateway.TaskCancelled && view.Status.CanMoveTo(gateway.TaskCancelled) {
				if err := s.planRevocation(pl, task, view); err != nil {
					return nil, err
				}
			}
		}
	}
	ref := gateway.TypeServiceRequest + "/" + r.id
	subject, named := conform.TaskSubject(r.obj, &sr.Subject)
	pending := &pendingRequest{sr: sr, subject: subject, named: named, task: taskHolder}
	pl.pending[ref] = pending
	if needsTask || (pl.claimed[ref] && taskHolder == "") {
		if status != gateway.RequestActive {
			return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.status",
				"a referral Task can only be made for an active ServiceRequest")
		}
		route := s.route
		if r.message != nil && r.message.provider != nil { // an update or delete names no provider: routed as over REST
			route = func(sr *gateway.ReferralView) (*gateway.Routing, error) { return r.message.category(s, sr) }
		}
		rt, err := route(sr)
		if err != nil {
			return nil, err
		}
		pending.routed = rt
	}
	body := r.obj.WithServerFields(r.id, strconv.Itoa(version), gateway.Instant(pl.stampOf(r)))
	out := pl.addWrite(r, body, version, expect, fromIfMatch, append(gateway.ServiceRequestTerms(r.id, sr, s.Base), keep...), p.Warnings)
	if r.Method == "POST" {
		for _, id := range conform.UsableIdentifiers(sr.Identifier) {
			pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.ReferralKey(pl.caller, id), Value: ref})
		}
		if m := r.message; m != nil {
			pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.MessageFocusKey(pl.caller, r.FullURL), Value: ref, Of: ref},
				gateway.UniqueKey{Key: gateway.MessageOriginKey(r.id), Value: m.referral.MessageID})
		}
	}
	pl.claimMessage(r, ref, version)
	if needsTask && !pl.claimed[ref] {
		s.planReferralTask(pl, r.id, pending)
	}
	if pending.routed != nil {
		out.Category = pending.routed.Category
	}
	return out, nil
}

// staysClosed refuses an update that takes a referral out of a terminal
// status, or back to draft (gateway.RequestStatus.CanMoveTo), whoever
// sends it: a PUT, or a
// BaRS update arriving after the withdrawal it was sent before. A revoked
// or withdrawn referral's Task is cancelled and its provider told, and a
// cancelled Task never moves again: a ServiceRequest made active beside
// it would show the GP record a live referral that no provider holds. A
// completed referral is over likewise. The answer is 409, as for a Task
// transition the state machine refuses: the change contradicts what is
// stored. A status kept is no move: the referrer may still correct the
// referral's other elements (a note on a completed referral) or send its
// withdrawal again.
func staysClosed(cur []byte, next gateway.RequestStatus) error {
	var stored struct {
		Status gateway.RequestStatus `json:"status"`
	}
	if err := json.Unmarshal(cur, &stored); err != nil {
		return err
	}
	from := stored.Status
	switch {
	case from.CanMoveTo(next):
		return nil
	case from == gateway.RequestEnteredInError:
		return gateway.NewError(gateway.KindConflict, fhir.IssueBusinessRule, "ServiceRequest.status",
			"the referral was entered in error, which is final: its status stays entered-in-error, not %s; send a new referral instead", next)
	case !from.Terminal():
		return gateway.NewError(gateway.KindConflict, fhir.IssueBusinessRule, "ServiceRequest.status",
			"the referral is %s and does not become %s again: a draft is where a referral starts; revoke it (status revoked) to take it back", from, next)
	default:
		return gateway.NewError(gateway.KindConflict, fhir.IssueBusinessRule, "ServiceRequest.status",
			"the referral is %s, which is final: its status may stay %s or become entered-in-error (a correction), not %s; send a new referral instead", from, from, next)
	}
}

// keepsItsSubject refuses an update that would make a referral with a Task
// another patient's. The Task stays for the patient it was made for: it is
// what consent is decided on and what a Consent's withdrawal finds it by
// (consentFor), so a subject moved under it would go to the provider on
// the first patient's Consent, out of reach of the second's refusal. A
// subject as stored (cur) is no move; another must name the Task's patient
// (conform.SameSubject: the same reference or identifier, or a reference
// to a Patient this client holds with the NHS number the Task gives). A
// Task made before conform.TaskSubject may be for a Patient its
// ServiceRequest contains, "#id": it is held to the patient that Patient
// names.
func (s *Service) keepsItsSubject(ctx context.Context, pl *plan, r *Request, sr *gateway.ReferralView, task, cur *gateway.Resource) error {
	taskFor := forOf(task.Body)
	if taskFor == nil {
		return nil
	}
	obj, stored, err := readStoredReferral(cur.Body)
	if err != nil {
		return err
	}
	_, was := conform.TaskSubject(obj, &stored.Subject)
	_, named := conform.TaskSubject(r.obj, &sr.Subject)
	if before, after := containedSubject(obj, &stored.Subject), containedSubject(r.obj, &sr.Subject); before != nil && after != nil {
		// The patient the referral contains keeps its NHS numbers, as a
		// kept Patient named by a referral does (keepsItsNHSNumber).
		if held := nhsNumbers(before); len(held) > 0 && !maps.Equal(held, nhsNumbers(after)) {
			return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.contained",
				"the NHS numbers of the Patient this referral contains cannot change once its Task is made: another number is another person; revoke this referral and send a new one for them")
		}
	}
	if conform.RefString(was) == conform.RefString(named) {
		return nil
	}
	if taskFor.Reference == nil || !strings.HasPrefix(*taskFor.Reference, "#") {
		was = taskFor
	}
	held, same, err := conform.SameSubject(ctx, s.Core, pl.caller, pl.plannedBody, was, named)
	if err != nil {
		return err
	}
	if held != nil {
		// Decided on this version of the Patient the Task points at:
		// renumbered before the commit, the change is checked again.
		pl.decidedOn(held)
	}
	if same {
		return nil
	}
	return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.subject",
		"a referral's patient cannot change once its Task is made: the Task, and the consent it was sent on, are the first patient's; revoke this referral (status revoked) and send a new one for the other patient")
}

// claimMessage adds the keys of the message a referral request was made
// from (none for another request) to the plan: a message is processed
// once, and its X-Request-Id used once. Its id names what it made (an
// update, the version it wrote or, changing nothing, the version it found,
// so that it is answered again as it was).
func (pl *plan) claimMessage(r *Request, ref string, version int) {
	m := r.message
	if m == nil {
		return
	}
	held := ref
	if r.Method == "PUT" {
		held = ref + "/_history/" + strconv.Itoa(version)
	}
	pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.MessageKey(pl.caller, m.referral.MessageID), Value: held, Of: ref})
	if m.referral.RequestID != "" {
		pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.MessageRequestKey(pl.caller, m.referral.RequestID), Value: held, Of: ref})
	}
}

// readStoredReferral parses a ServiceRequest Signpost holds and reads its
// referral view.
func readStoredReferral(body []byte) (*fhir.Object, *gateway.ReferralView, error) {
	obj, err := fhir.ParseResource(body, fhir.ParseOptions{})
	if err != nil {
		return nil, nil, err
	}
	view, err := gateway.ReadReferral(obj)
	return obj, view, err
}

// containedSubject is the Patient a referral's subject points at inside
// it ("#id"), or nil.
func containedSubject(obj *fhir.Object, subject *models.Reference) []byte {
	if subject.Reference == nil || !strings.HasPrefix(*subject.Reference, "#") {
		return nil
	}
	return conform.ContainedPatient(obj, (*subject.Reference)[1:])
}

// route decides the category and the provider of a referral.
func (s *Service) route(sr *gateway.ReferralView) (*gateway.Routing, error) {
	category, err := gateway.Categorise(s.Codes, sr.Code, s.TriageUnmapped)
	if err != nil {
		return nil, err
	}
	p, err := s.Router().Route(category, sr.Performer)
	if err != nil {
		return nil, err
	}
	return &gateway.Routing{Category: category, Provider: p}, nil
}

// planReferralTask plans the Task that tracks a referral's fulfilment, the
// unique key that makes it the only one, and the delivery job: all in the
// same commit as the referral, so none exists without the others.
func (s *Service) planReferralTask(pl *plan, srID string, pending *pendingRequest) {
	sr, rt := pending.sr, pending.routed
	taskID := s.NewIDBeside(srID) // one commit with its referral, so in its place
	requester := s.requesterOf(pl, sr)
	body := gateway.NewReferralTask(taskID, srID, pending.subject, requester, sr.Priority, rt, pl.now)
	r := &Request{Type: gateway.TypeTask, id: taskID}
	pl.addWrite(r, body, 1, 0, false, gateway.ReferralTaskTerms(taskID, srID, pending.named, requester, rt.Provider, s.Base), nil)
	pl.taskStep(gateway.TaskStep{Status: gateway.TaskRequested}) // as NewReferralTask writes it
	s.planDelivery(pl, taskID, srID, rt)
}

// requesterOf is the referral Task's requester: the referral's own, or the
// calling client's organisation.
func (s *Service) requesterOf(pl *plan, sr *gateway.ReferralView) *models.Reference {
	if keptAsSent(sr.Requester) {
		return sr.Requester
	}
	o := pl.caller.Organization
	return &models.Reference{Identifier: &models.Identifier{System: &o.System, Value: &o.Value}}
}

// keptAsSent reports whether a referral's requester is named in its Task as
// sent. One naming an entry of the message it came in is not stored as a
// resource of its own yet, and one the ServiceRequest contains is not in
// the Task ("#id" there would name nothing: ref-1): the Task names the
// caller's organisation instead, that of the person or practice either is
// (conform.CheckRequester).
func keptAsSent(r *models.Reference) bool {
	return r != nil && (r.Reference == nil || !strings.HasPrefix(*r.Reference, "urn:") && !strings.HasPrefix(*r.Reference, "#"))
}

// planDelivery queues the delivery of a referral to its provider.
func (s *Service) planDelivery(pl *plan, taskID, srID string, rt *gateway.Routing) {
	// The referral becomes visible to its provider with its Task.
	for i := range pl.commit.Writes {
		if w := &pl.commit.Writes[i]; w.Resource.Type == gateway.TypeServiceRequest && w.Resource.ID == srID {
			w.Terms = append(w.Terms, gateway.ProviderTerm(rt.Provider.ID))
		}
	}
	pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.ReferralTaskKey(srID), Value: gateway.TypeTask + "/" + taskID})
	pl.commit.Jobs = append(pl.commit.Jobs, queue.DeliveryJob(queue.EventReferral, taskID, srID, rt, pl.now))
	pl.referrals = append(pl.referrals, plannedReferral{taskID: taskID, srID: srID, rt: rt})
}

// planRevocation cancels the Task of a referral its referrer revoked.
func (s *Service) planRevocation(pl *plan, task *gateway.Resource, view *gateway.TaskView) error {
	c := queue.TaskChange(s.Core, task, view, map[string]any{"status": gateway.TaskCancelled,
		"statusReason": map[string]string{"text": "the referrer revoked the referral"}}, nil, nil)
	pl.commit.Writes = append(pl.commit.Writes, c.Writes...)
	pl.commit.Jobs = append(pl.commit.Jobs, c.Jobs...)
	if gateway.Withheld(task.Body) {
		return nil // never sent, or withdrawn already: the provider has nothing to cancel
	}
	var old models.Task
	if err := gateway.DecodeView(task.Body, gateway.TypeTask, &old); err != nil {
		return err
	}
	return s.planCancellation(pl, old, task.ID)
}

// planProvenance records who changed a Task, in the same commit: the
// provider (by its organisation) or the referrer. It is visible to whoever
// may see the Task.
func (s *Service) planProvenance(pl *plan, task *gateway.Resource, owner string) {
	pl.commit.Writes = append(pl.commit.Writes, s.ProvenanceWrite(task, owner, s.AgentOf(pl.caller), pl.now))
}

// planCancellation queues the delivery that tells a referral's provider the
// referrer cancelled it.
func (s *Service) planCancellation(pl *plan, task models.Task, taskID string) error {
	providerID, ok := strings.CutPrefix(gateway.RefOf(task.Owner), gateway.TypeOrganization+"/")
	p, known := s.Router().Provider(providerID)
	if !ok || !known {
		return nil // no provider holds it: nobody to tell
	}
	srID := strings.TrimPrefix(gateway.RefOf(task.Focus), gateway.TypeServiceRequest+"/")
	category := ""
	for _, in := range task.Input {
		if in.ValueCoding.System != nil && *in.ValueCoding.System == gateway.CategorySystem && in.ValueCoding.Code != nil {
			category = *in.ValueCoding.Code
		}
	}
	pl.commit.Jobs = append(pl.commit.Jobs, queue.DeliveryJob(queue.EventCancelled, taskID, srID, &gateway.Routing{Category: category, Provider: p}, pl.now))
	return nil
}

// planTask validates a Task. A new Task is a client's own referral Task for
// a ServiceRequest it sent: if that referral already has its Task, the
// existing Task is the answer. An update must follow the Gravity status
// machine.
func (s *Service) planTask(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	var p gateway.Problems
	status := gateway.TaskStatus(conform.CheckBindings(&p, r.obj, gateway.TypeTask)["status"])
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	var task models.Task
	if err := gateway.DecodeView(r.obj.Bytes(), gateway.TypeTask, &task); err != nil {
		return nil, err
	}
	if r.Method == "PUT" {
		return s.planTaskUpdate(ctx, pl, r, &task, status)
	}
	if err := conform.CheckMeasureOutputs(nil, r.obj.Bytes()); err != nil {
		return nil, err
	}
	focus := ""
	if task.Focus != nil && task.Focus.Reference != nil {
		focus = s.LocalRef(*task.Focus.Reference)
	}
	srID, ok := strings.CutPrefix(focus, gateway.TypeServiceRequest+"/")
	if !ok || gateway.CheckID(srID) != nil {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Task.focus",
			"a referral Task needs focus.reference to a ServiceRequest sent to Signpost (ServiceRequest/{id})")
	}
	pending := pl.pending[focus]
	if pending != nil && pending.task != "" {
		// Updated in this transaction, but it already has its Task: that is the answer.
		return s.existingReferralTask(ctx, r, pending.task)
	}
	if pending == nil {
		stored, err := s.ReadVisible(ctx, pl.caller, gateway.TypeServiceRequest, srID)
		if errors.Is(err, gateway.ErrNotFound) {
			return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueNotFound, "Task.focus", "the ServiceRequest the Task is for is not held by Signpost; send it first")
		}
		if err != nil {
			return nil, err
		}
		holder, err := pl.lookups.lookup(ctx, s.Store, gateway.ReferralTaskKey(srID))
		if err != nil {
			return nil, err
		}
		if holder != "" {
			// The referral already has its Task: that Task is the answer, if
			// this one says nothing else.
			return s.existingReferralTask(ctx, r, holder)
		}
		obj, sr, err := readStoredReferral(stored.Body)
		if err != nil {
			return nil, err
		}
		if sr.Status != "active" {
			return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "Task.focus",
				"a referral Task can only be made for an active ServiceRequest")
		}
		subject, named := conform.TaskSubject(obj, &sr.Subject)
		pending = &pendingRequest{sr: sr, subject: subject, named: named}
		if pending.routed, err = s.route(sr); err != nil {
			return nil, err
		}
	}
	if status != gateway.TaskRequested {
		p.Add(fhir.IssueBusinessRule, "Task.status", "a new referral Task starts as requested; the provider moves it on")
	}
	if err := conform.CheckRequester(pl.caller, r.obj, task.Requester, "Task.requester"); err != nil {
		return nil, err
	}
	if task.Intent != "order" {
		p.Add(fhir.IssueBusinessRule, "Task.intent", "a referral Task has intent order")
	}
	if !conform.HasCoding(task.Code, gateway.TaskCodeSystem, "fulfill") {
		p.Add(fhir.IssueRequired, "Task.code", "a referral Task has code %s#fulfill", gateway.TaskCodeSystem)
	}
	rt := *pending.routed
	if task.Owner != nil {
		prov, ok := s.Router().ProviderFor(task.Owner)
		if !ok {
			p.Add(fhir.IssueBusinessRule, "Task.owner", "owner must name a configured provider (Organization/{provider id}, or its organisation identifier), or be left out for Signpost to route the referral")
		} else {
			rt.Provider = prov
		}
	}
	if task.For != nil {
		held, same, err := conform.SameSubject(ctx, s.Core, pl.caller, pl.plannedBody, task.For, pending.named)
		if err != nil {
			return nil, err
		}
		if held != nil {
			// Decided on this version of the Patient the Task points at:
			// renumbered before the commit, the Task is checked again, so
			// its provider is never shown someone the referral does not
			// name.
			pl.decidedOn(held)
		}
		if !same {
			p.Add(fhir.IssueBusinessRule, "Task.for", "for must be the ServiceRequest's subject: the same reference or identifier, or, when the referral names the patient by NHS number alone, a reference to a Patient this client holds with that NHS number")
		}
	}
	if err := p.Err(gateway.KindUnprocessable); err != nil {
		return nil, err
	}
	// Fill in what the referral Task needs and the client left to Signpost.
	// The owner is always written in Signpost's own form, whatever form the
	// client named the provider in, so that it is indexed and visible to
	// that provider, and to no one else.
	extra := map[string]any{"owner": rt.Provider.Reference()}
	if task.For == nil {
		extra["for"] = json.RawMessage(pending.subject)
	}
	if task.Requester == nil {
		extra["requester"] = s.requesterOf(pl, pending.sr)
	}
	if task.AuthoredOn == nil {
		extra["authoredOn"] = gateway.Instant(pl.now)
	}
	body := fhir.AppendMembers(fhir.WithoutMember(r.obj.WithServerFields(r.id, "1", gateway.Instant(pl.now)), "owner"), extra)
	var view models.Task
	_ = json.Unmarshal(body, &view)
	out := pl.addWrite(r, body, 1, 0, false, gateway.TaskTerms(r.id, &view, s.Base), nil)
	pl.taskStep(gateway.TaskStepOf(&view))
	s.planDelivery(pl, r.id, srID, &rt)
	return out, nil
}

// planTaskUpdate checks a new version of a Task against the current one.
func (s *Service) planTaskUpdate(ctx context.Context, pl *plan, r *Request, task *models.Task, status gateway.TaskStatus) (*gateway.Outcome, error) {
	cur, expect, err := s.current(ctx, pl, r)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, gateway.NotFound(gateway.TypeTask, r.id)
	}
	var old models.Task
	if err := gateway.DecodeView(cur.Body, gateway.TypeTask, &old); err != nil {
		return nil, err
	}
	from := gateway.TaskStatus(old.Status.Code())
	if err := gateway.MayMoveTask(pl.caller, from, status); err != nil {
		return nil, err
	}
	if !from.CanMoveTo(status) {
		return nil, gateway.NewError(gateway.KindConflict, fhir.IssueBusinessRule, "Task.status",
			"a referral Task cannot go from %s to %s", from, status)
	}
	// Each side changes only its own elements, whatever the status does;
	// who the referral is for, who made it and who has it are nobody's to
	// change: they decide who may see the Task and what it points to.
	curObj, err := fhir.ParseResource(cur.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, err
	}
	if pl.caller.Kind == gateway.CallerProvider {
		// What the provider's share profile kept from it, sent back as it
		// was shown, is what is stored (gateway/share.go).
		if body := s.Restored(pl.caller, cur, r.obj.Bytes()); &body[0] != &r.obj.Bytes()[0] {
			if r.obj, err = fhir.ParseResource(body, fhir.ParseOptions{}); err != nil {
				return nil, err
			}
			if err := gateway.DecodeView(body, gateway.TypeTask, task); err != nil {
				return nil, err
			}
		}
	}
	changed := conform.ChangedTaskElements(curObj, r.obj)
	if err := conform.CheckTaskChange(pl.caller, from, status, changed); err != nil {
		return nil, err
	}
	if err := conform.CheckMeasureOutputs(cur.Body, r.obj.Bytes()); err != nil {
		return nil, err
	}
	var p gateway.Problems
	if status.NeedsReason() && status != from && (task.StatusReason == nil || task.StatusReason.Text == nil || strings.TrimSpace(*task.StatusReason.Text) == "" ||
		!slices.Contains(changed, "statusReason")) {
		p.Add(fhir.IssueRequired, "Task.statusReason.text", "statusReason.text is required when a referral Task becomes %s, so the referrer learns why; the reason the Task had for its earlier status does not say why it is %s now", status, status)
	}
	if err := p.Err(gateway.KindUnprocessable); err != nil {
		return nil, err
	}
	body, step := conform.KeepTaskFieldsTrue(r.obj.WithServerFields(r.id, strconv.Itoa(cur.Version+1), gateway.Instant(pl.stampOf(r))), from, status, changed, pl.stampOf(r), gateway.TaskStepOf(task))
	body = conform.KeepMeasureOutputs(cur.Body, body)
	// A referral withheld from its provider stays so whatever the update
	// says (the tag is Signpost's); one the referrer cancels because the
	// patient withdrew consent becomes so, and the provider is told to
	// delete it rather than that it was cancelled.
	wasWithheld := gateway.Withheld(cur.Body)
	cancelled := status == gateway.TaskCancelled && from != gateway.TaskCancelled && pl.caller.Kind != gateway.CallerProvider
	withdrawn := cancelled && !wasWithheld && s.citesWithdrawal(task)
	if wasWithheld || withdrawn {
		body = gateway.WithWithheld(body, true)
		_ = json.Unmarshal(body, task) // the terms below index it apart from the provider
		step.Withheld = true           // nothing of it reaches the provider
	}
	out := pl.addWrite(r, body, cur.Version+1, expect, r.pinsVersion(), gateway.TaskTerms(r.id, task, s.Base), nil)
	pl.taskStep(step)
	provOwner := gateway.RefOf(old.Owner)
	if wasWithheld || withdrawn {
		provOwner = ""
	}
	s.planProvenance(pl, out.Resource, provOwner)
	// Every change reaches the GP; a referrer's cancellation also reaches
	// the provider, as a delivery of its own.
	pl.commit.Jobs = append(pl.commit.Jobs, queue.NotifyJobs(s.Core, out.Resource, from, status)...)
	switch {
	case withdrawn:
		if err := s.planWithdrawal(ctx, pl, old, r.id); err != nil {
			return nil, err
		}
	case cancelled && !wasWithheld:
		if err := s.planCancellation(pl, old, r.id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// planned reports whether this plan writes the resource.
func (pl *plan) planned(typ, id string) bool { return pl.plannedBody(typ, id) != nil }

// plannedBody is the body this plan writes for a resource, or nil.
func (pl *plan) plannedBody(typ, id string) []byte {
	for _, w := range pl.commit.Writes {
		if w.Resource.Type == typ && w.Resource.ID == id {
			return w.Resource.Body
		}
	}
	return nil
}

// existingReferralTask answers a new Task for a referral that has its Task
// (ref, "Task/id") with that Task, if the new one says nothing else.
func (s *Service) existingReferralTask(ctx context.Context, r *Request, ref string) (*gateway.Outcome, error) {
	existing, err := s.Store.Read(ctx, gateway.TypeTask, strings.TrimPrefix(ref, gateway.TypeTask+"/"))
	if err != nil {
		return nil, err
	}
	if err := s.sameAsReferralTask(r, existing); err != nil {
		return nil, err
	}
	r.existing = existing
	return &gateway.Outcome{Resource: existing}, nil
}

// sameAsReferralTask refuses a client's own Task for a referral that has
// its Task already when it says something the held Task does not: its
// identifier, status, priority or narrative would otherwise be dropped. It
// compares what the client sent; the owner is compared as the provider it
// names, in whatever form.
func (s *Service) sameAsReferralTask(r *Request, held *gateway.Resource) error {
	// Every referral Task is code fulfill (checked before): however the
	// client spells that coding, it says nothing new.
	skip := []string{"owner", "code"}
	if raw, ok := r.obj.Member("owner"); ok {
		var owner models.Reference
		heldView, err := gateway.ParseTask(held.Body)
		if err != nil {
			return err
		}
		if json.Unmarshal(raw, &owner) != nil {
			skip = skip[1:]
		} else if p, known := s.Router().ProviderFor(&owner); !known || gateway.TypeOrganization+"/"+p.ID != heldView.Owner {
			skip = skip[1:]
		}
	}
	return repeatDiffers(r, held, "this referral's Task", true, skip...)
}
