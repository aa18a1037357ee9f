package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/queue"
)

// Consent is checked where a referral is accepted and wherever a Consent
// arrives, in the same commit as what brought it: a new referral whose
// provider needs consent that is not on record is stored held (its Task
// on-hold with a coded reason, withheld from the provider, no delivery
// queued) and the GP is told; a Consent that arrives later (POST or PUT
// /fhir/Consent, a transaction entry, a BaRS message about the referral)
// releases the referrals it permits — queued for delivery once, in the
// commit that stores it — and one made inactive or rejected withdraws the
// referrals it covered: their Tasks end, the provider no longer sees them,
// and it is told to delete what it received.

// plannedReferral is a new referral Task this plan makes and the delivery
// it queues.
type plannedReferral struct {
	taskID, srID string
	rt           *gateway.Routing
}

// maxConsentReads bounds the Consents and Tasks one check reads: a patient
// with more is beyond what a GP system sends for one person.
const maxConsentReads = 100

// planConsent applies the consent rules to what the plan makes and changes.
func (s *Service) planConsent(ctx context.Context, pl *plan) error {
	for _, nr := range pl.referrals {
		sr := pl.write(gateway.TypeServiceRequest, nr.srID)
		if sr == nil {
			continue
		}
		task := pl.write(gateway.TypeTask, nr.taskID)
		if task == nil {
			// planDelivery follows the Task's write: never undecided.
			return errors.New("a planned referral has no Task to decide consent on")
		}
		decision, elsewhere, err := s.consentFor(ctx, pl, nr.rt.Provider, sr.Resource, task.Resource, true)
		if err != nil {
			return err
		}
		if decision != gateway.ConsentPermits {
			s.holdNew(pl, nr, decision)
			if s.Spreads() {
				// A Consent for the patient committed in another partition
				// since consentFor read them is not seen by this commit;
				// its own check after its commit may not see this referral
				// either. Deciding again after this commit closes the gap.
				pl.recheckAfter = append(pl.recheckAfter, nr.taskID)
			}
		} else if elsewhere {
			// Sent on a Consent another partition holds, whose version
			// the store reads just before this commit, not in its step:
			// one withdrawn in between, whose own check after its commit
			// ran before this commit, is found by deciding again after it.
			pl.recheckAfter = append(pl.recheckAfter, nr.taskID)
		}
	}
	return s.recheckReferrals(ctx, pl)
}

// consentFor decides whether a referral may go to p: its Consents (those
// that came with it, those its GP system holds for the patient, with this
// plan's versions of either) and the referrer's attestation. The plan's
// commit is refused if a stored Consent it read changes before it
// (plan.decidedOn); elsewhere: one of them is held in another partition
// than the plan's, where the commit's step cannot read it (a spreading
// store). isNew: the referral's Task is made by this plan.
//
// The patient is the one the referral's Task names (Task.for), the name a
// Consent's withdrawal finds the Task by (its subject terms), so that every
// Consent that could send a referral can stop it too. A GP system's own
// Task may name the patient otherwise than the ServiceRequest does (by a
// Patient reference where the referral gives the NHS number alone:
// conform.SameSubject); a Consent naming the patient only as the
// ServiceRequest does would send it and then never find it.
func (s *Service) consentFor(ctx context.Context, pl *plan, p *gateway.Provider, sr, task *gateway.Resource, isNew bool) (decision gateway.ConsentDecision, elsewhere bool, err error) {
	if p.Consent == gateway.ConsentNotRequired {
		return gateway.ConsentPermits, false, nil
	}
	if p.Consent == gateway.ConsentUnset && isNew && !pl.writesConsent() && !bytes.Contains(sr.Body, []byte(`"orderDetail"`)) {
		// Nothing checked and nothing that could refuse: the common case
		// of a deployment without a policy costs no decoding at all.
		return gateway.ConsentPermits, false, nil
	}
	srRef := sr.Ref()
	subject, err := s.named(ctx, pl, sr.Owner, forOf(task.Body))
	if err != nil {
		return 0, false, err
	}
	patientTerms := gateway.PatientRefTerms("patient", subject.Ref, s.Base)
	var records []*gateway.ConsentRecord
	planned := map[string]bool{}
	for _, w := range pl.commit.Writes {
		if w.Resource.Type != gateway.TypeConsent {
			continue
		}
		planned[w.Resource.Ref()] = true
		consent, err := s.named(ctx, pl, w.Resource.Owner, consentPatient(w.Resource.Body))
		if err != nil {
			return 0, false, err
		}
		match := gateway.MatchPatient(consent, subject, s.Base)
		withReferral := slices.Contains(w.Terms, gateway.ReferralTerm(srRef)) && match != gateway.OtherPatient
		forPatient := w.Resource.Owner == sr.Owner && match != gateway.OtherPatient && slices.ContainsFunc(patientTerms, func(t string) bool { return slices.Contains(w.Terms, t) })
		if withReferral || forPatient {
			records = append(records, s.consentRecord(w.Resource, withReferral, match, pl.now))
		}
	}
	// A deployment that checks nothing reads nothing more for a new
	// referral: only a refusal in the referral itself holds it.
	if p.Consent != gateway.ConsentUnset || !isNew {
		stored, held, err := s.storedConsents(ctx, pl, srRef, sr.Owner, subject, patientTerms, planned)
		if err != nil {
			return 0, false, err
		}
		records = append(records, stored...)
		elsewhere = s.Spreads() && slices.ContainsFunc(held, func(r *gateway.Resource) bool { return s.PlaceOf(r.ID) != pl.place })
	}
	return gateway.DecideConsent(p.Consent, p, records, gateway.Attestation(s.ConsentCodes, sr.Body)), elsewhere, nil
}

// storedConsents reads the Consents held for a referral: those that came
// with it, and those its GP system holds for the patient (not those the
// plan writes anew), as records, and the resources read, each of which
// the plan's commit now expects unchanged (plan.decidedOn).
func (s *Service) storedConsents(ctx context.Context, pl *plan, srRef, client string, subject gateway.NamedPatient, patientTerms []string, planned map[string]bool) ([]*gateway.ConsentRecord, []*gateway.Resource, error) {
	withReferral, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeConsent, Groups: [][]string{{gateway.ReferralTerm(srRef)}}, Count: maxConsentReads})
	if err != nil {
		return nil, nil, err
	}
	var forPatient []string
	if len(patientTerms) > 0 {
		groups := [][]string{{gateway.ClientTerm(client)}, patientTerms}
		var total int
		if forPatient, total, err = s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeConsent, Groups: groups, Count: maxConsentReads}); err != nil {
			return nil, nil, err
		}
		pl.consentsSeen(groups, total)
	}
	var refs []string
	for _, id := range append(withReferral, forPatient...) {
		if ref := gateway.TypeConsent + "/" + id; !planned[ref] && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		return nil, nil, nil
	}
	held, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return nil, nil, err
	}
	var names []keptName
	for _, r := range held {
		if key, id := s.keptKey(r.Owner, consentPatient(r.Body)); key != "" {
			names = append(names, keptName{r.Owner, id})
		}
	}
	if err := s.readKept(ctx, pl, names); err != nil {
		return nil, nil, err
	}
	out := make([]*gateway.ConsentRecord, 0, len(held))
	for _, r := range held {
		// Whatever it decides, it was read: a withdrawal (or a consent)
		// stored since must send the plan round again, not be overtaken
		// by a commit queuing or holding the referral on this version.
		pl.decidedOn(r)
		consent, err := s.named(ctx, pl, r.Owner, consentPatient(r.Body))
		if err != nil {
			return nil, nil, err
		}
		match := gateway.MatchPatient(consent, subject, s.Base)
		if match == gateway.OtherPatient {
			continue // another patient's (or, contained, no one's here)
		}
		out = append(out, s.consentRecord(r, slices.Contains(withReferral, r.ID), match, pl.now))
	}
	return out, held, nil
}

// consentPatient is the patient a Consent's body names (nil if none). The
// body was validated as R4 when it was received, so it decodes; one that
// does not names no patient, which decides nothing for anyone.
func consentPatient(body []byte) *models.Reference {
	var c struct {
		Patient *models.Reference `json:"patient"`
	}
	if json.Unmarshal(body, &c) != nil {
		return nil
	}
	return c.Patient
}

// named is a Consent's patient or a referral's subject (ref, in owner's
// resources) with what is kept of the Patient its local reference points
// at, when it names an identifier too: what MatchPatient checks that the
// two names are one person against, when the referral is decided. Read once
// a plan per Patient (readKept reads many in one round trip); a Patient the
// plan writes is taken as written.
func (s *Service) named(ctx context.Context, pl *plan, owner string, ref *models.Reference) (gateway.NamedPatient, error) {
	n := gateway.NamedPatient{Ref: ref}
	key, id := s.keptKey(owner, ref)
	if key == "" {
		return n, nil
	}
	if body := pl.plannedBody(gateway.TypePatient, id); body != nil && owner == pl.caller.ClientID {
		n.Kept, n.Identifiers = true, conform.IdentifiersIn(body)
		return n, nil
	}
	if _, ok := pl.kept[key]; !ok {
		if err := s.readKept(ctx, pl, []keptName{{owner, id}}); err != nil {
			return n, err
		}
	}
	if k := pl.kept[key]; k != nil {
		n.Kept, n.Identifiers = true, k.identifiers
	}
	return n, nil
}

// keptPatient is what a consent decision reads of a Patient kept here.
type keptPatient struct{ identifiers []gateway.Identifier }

// keptName names a Patient a consent decision reads: its client and its
// FHIR id.
type keptName struct{ owner, id string }

// readKept reads, in one round trip, the Patients the plan has not read,
// and makes its commit depend on each as read (plan.decidedOn), held or
// not: a Patient renumbered (or made) between the read and the commit
// would otherwise have a referral sent on identifiers it no longer shows,
// and the rule that a Patient a referral or Consent names keeps its NHS
// number (keepsItsNHSNumber) does not stop it while what will name it is
// still being planned.
func (s *Service) readKept(ctx context.Context, pl *plan, names []keptName) error {
	var read []keptName
	var refs []string
	for _, n := range names {
		key := gateway.PatientKey(n.owner, n.id)
		if _, ok := pl.kept[key]; !ok && !slices.Contains(read, n) {
			read = append(read, n)
			refs = append(refs, gateway.TypePatient+"/"+key)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	got, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return err
	}
	if pl.kept == nil {
		pl.kept = map[string]*keptPatient{}
	}
	for _, p := range got { // read back with its FHIR id (patientStore)
		pl.kept[gateway.PatientKey(p.Owner, p.ID)] = &keptPatient{identifiers: conform.IdentifiersIn(p.Body)}
		pl.decidedOn(p)
	}
	for _, n := range read {
		if key := gateway.PatientKey(n.owner, n.id); pl.kept[key] == nil {
			pl.kept[key] = nil // not kept here
			pl.decidedOn(&gateway.Resource{Type: gateway.TypePatient, ID: n.id, Owner: n.owner})
		}
	}
	return nil
}

// keptKey is the PatientKey (and FHIR id) of the Patient a reference names
// by a local reference together with an identifier; "" otherwise.
func (s *Service) keptKey(owner string, ref *models.Reference) (key, id string) {
	if ref == nil || ref.Reference == nil || ref.Identifier == nil || ref.Identifier.Value == nil {
		return "", ""
	}
	id, ok := strings.CutPrefix(s.LocalRef(*ref.Reference), gateway.TypePatient+"/")
	id, _, _ = strings.Cut(id, "/_history/")
	if !ok || gateway.CheckID(id) != nil {
		return "", ""
	}
	return gateway.PatientKey(owner, id), id
}

// consentRecord reads a Consent for a referral: withReferral, it came
// with the referral (and names its patient); match is how its patient
// compares with the referral's subject. One that names the patient by one
// name and someone else by the other (a reference to one Patient, the NHS
// number of another) may hold the referral but never sends it: which of
// the two consented cannot be told.
func (s *Service) consentRecord(r *gateway.Resource, withReferral bool, match gateway.PatientMatch, now time.Time) *gateway.ConsentRecord {
	rec := gateway.ReadConsent(r, withReferral, now, s.Base)
	rec.Conflicting = match == gateway.ConflictingPatient
	return rec
}

// holdNew stores a new referral held: its Task on-hold with the reason,
// withheld from the provider, no delivery queued, the referral not indexed
// under the provider, and the GP told.
func (s *Service) holdNew(pl *plan, nr plannedReferral, decision gateway.ConsentDecision) {
	code, text := holdReason(nr.rt.Provider, decision)
	tw := pl.write(gateway.TypeTask, nr.taskID)
	body := fhir.ReplaceMembers(tw.Resource.Body, map[string]any{"status": gateway.TaskOnHold, "statusReason": gateway.HoldReason(code, text),
		"businessStatus": businessStatus(code, gateway.ReasonDisplay(code))})
	tw.Resource.Body = gateway.WithWithheld(body, true)
	tw.Step = gateway.TaskStep{Status: gateway.TaskOnHold, Business: code, Reason: code, Withheld: true} // what the body now says
	owner := gateway.OwnerTerm(nr.rt.Provider.ID)
	for i, t := range tw.Terms {
		switch t {
		case gateway.StatusTerm(string(gateway.TaskRequested)):
			tw.Terms[i] = gateway.StatusTerm(string(gateway.TaskOnHold))
		case owner:
			tw.Terms[i] = gateway.WithheldOwnerTerm(gateway.TypeOrganization + "/" + nr.rt.Provider.ID)
		}
	}
	pl.commit.Jobs = slices.DeleteFunc(pl.commit.Jobs, func(j gateway.Job) bool { return queue.IsDeliveryOf(j, nr.taskID, queue.EventReferral) })
	if sr := pl.write(gateway.TypeServiceRequest, nr.srID); sr != nil {
		sr.Terms = slices.DeleteFunc(sr.Terms, func(t string) bool { return t == gateway.ProviderTerm(nr.rt.Provider.ID) })
	}
	pl.commit.Jobs = append(pl.commit.Jobs, queue.NotifyJobs(s.Core, tw.Resource, gateway.TaskRequested, gateway.TaskOnHold)...)
}

// holdReason is the reason code of a hold and the words the GP reads:
// what is missing and how to send it.
func holdReason(p *gateway.Provider, decision gateway.ConsentDecision) (string, string) {
	if decision == gateway.ConsentRefusedByPatient || decision == gateway.ConsentWithdrawnByPatient {
		return gateway.ReasonConsentRefused, "Signpost holds this referral: the patient has not consented to their details being shared with " +
			p.DisplayName() + " (a Consent denies it, is no longer active, or the referral codes a refusal), so nothing has been sent. Send an active Consent if they now agree."
	}
	what := "a Consent (status active, scope patient-privacy) sent with the referral, or held for the patient naming " + p.DisplayName() + " in provision.actor"
	if p.Consent == gateway.ConsentAttested {
		what += ", or your coded attestation that consent was given (ServiceRequest.orderDetail)"
	}
	return gateway.ReasonAwaitingConsent, "Signpost holds this referral: " + p.DisplayName() + " receives referrals only with the patient's consent to share their details, and none is on record, so nothing has been sent. It goes as soon as consent arrives: " + what + "."
}

func businessStatus(code, display string) map[string]any {
	return map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": code, "display": display}}, "text": display}
}

// recheckReferrals decides again for the referrals a Consent this plan
// writes is about: held ones it permits are released, sent ones whose
// consent it withdraws are withdrawn.
func (s *Service) recheckReferrals(ctx context.Context, pl *plan) error {
	var taskRefs []string
	add := func(ref string) {
		if ref != "" && !slices.Contains(taskRefs, ref) {
			taskRefs = append(taskRefs, ref)
		}
	}
	consents := make([]gateway.Write, 0, len(pl.unchangedConsents))
	for _, w := range pl.commit.Writes {
		if w.Resource.Type == gateway.TypeConsent {
			consents = append(consents, w)
		}
	}
	// One stored as sent is decided again by its patient: what of it
	// names a referral was decided with that referral, in its partition.
	for _, r := range pl.unchangedConsents {
		consents = append(consents, gateway.Write{Resource: r})
	}
	// The referral Tasks of those filed under a referral, read in one
	// round trip, not one a Consent.
	var taskKeys []string
	for _, w := range consents {
		if srRef := referralOf(w.Terms); srRef != "" {
			taskKeys = append(taskKeys, gateway.ReferralTaskKey(strings.TrimPrefix(srRef, gateway.TypeServiceRequest+"/")))
		}
	}
	tasks, err := s.Store.LookupMany(ctx, taskKeys)
	if err != nil {
		return err
	}
	for _, w := range consents {
		// Decided again wherever it is filed, for every referral it can
		// decide: under its referral (a message's), under its patient (one
		// a GP system sends on its own; a message's an update filed so
		// before messageConsentTerms), or both.
		patient := consentPatient(w.Resource.Body)
		if referralOf(w.Terms) != "" {
			add(tasks[0])
			tasks = tasks[1:]
			forPatient := gateway.PatientRefTerms("patient", patient, s.Base)
			if !slices.ContainsFunc(forPatient, func(t string) bool { return slices.Contains(w.Terms, t) }) {
				continue
			}
		}
		subject := gateway.PatientRefTerms("subject", patient, s.Base)
		if len(subject) == 0 {
			continue
		}
		groups := [][]string{{gateway.ClientTerm(w.Resource.Owner)}, subject}
		ids, total, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeTask, Groups: groups, Count: maxConsentReads})
		if err != nil {
			return err
		}
		pl.seen(gateway.TypeTask, groups, total)
		if s.Spreads() && !slices.ContainsFunc(pl.patientsAfter, func(g [][]string) bool { return sameGroups(g, groups) }) {
			pl.patientsAfter = append(pl.patientsAfter, groups) // once a patient
		}
		for _, id := range ids {
			add(gateway.TypeTask + "/" + id)
		}
	}
	for _, ref := range taskRefs {
		id := strings.TrimPrefix(ref, gateway.TypeTask+"/")
		if pl.write(gateway.TypeTask, id) != nil {
			continue // made or changed by this plan already
		}
		if s.Spreads() && s.PlaceOf(id) != pl.place {
			// Its commit cannot be this one (one partition each): it is
			// decided again once the Consent is stored.
			pl.recheckAfter = append(pl.recheckAfter, id)
			continue
		}
		if err := s.recheck(ctx, pl, id); err != nil {
			return err
		}
	}
	// Each decided after the commit is a commit of its own, outside the
	// bounds a request's one commit is held to: refused before anything
	// is written when a request's Consents concern more than one patient's
	// check may read.
	if len(pl.recheckAfter) > maxConsentReads {
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, "",
			"the Consents of this request concern %d referrals kept elsewhere in this deployment's store, more than the %d one request may decide again; nothing was written: send the Consents in separate requests",
			len(pl.recheckAfter), maxConsentReads)
	}
	return nil
}

// recheckAfterCommit decides again, once a spreading store holds what a
// plan committed, for the referrals its commit could not decide
// atomically, each in a commit of its own partition (planned again if
// the Task changed meanwhile), before the request is answered, so that a
// withdrawal is in force when the Consent is acknowledged:
//   - those its Consents are about in other partitions (plan.recheckAfter);
//   - those of the same patients committed in other partitions since the
//     plan searched for them (plan.patientsAfter, searched again now);
//   - the new referrals it holds awaiting consent (plan.recheckAfter).
//
// A referral and its Consent sent at once in different partitions thus
// meet: whichever commits second finds the other in this step. A crash
// before this step leaves the referrals as they were and the GP system
// unanswered: its retry stores the Consent again and decides again; a
// referral already released or withdrawn is left alone (recheck changes
// only what the decision contradicts).
func (s *Service) recheckAfterCommit(ctx context.Context, pl *plan) error {
	taskIDs := slices.Clone(pl.recheckAfter)
	// What the searches add are referrals committed since the plan read
	// (few); they are bounded like the plan's own, and any beyond stay as
	// they are: held ones stay held, and each new one is decided by its
	// own commit and the check after it.
	most := len(taskIDs) + maxConsentReads
	for _, groups := range pl.patientsAfter {
		ids, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeTask, Groups: groups, Count: maxConsentReads})
		if err != nil {
			return err
		}
		for _, id := range ids {
			// Those in the plan's partition its commit decided atomically.
			if s.PlaceOf(id) != pl.place && !slices.Contains(taskIDs, id) && len(taskIDs) < most {
				taskIDs = append(taskIDs, id)
			}
		}
	}
	// A referral a commit below releases on a Consent another partition
	// holds is decided once more after that commit (again.recheckAfter):
	// a withdrawal stored between the store's read of that Consent and
	// the commit, whose own check after its commit found the referral
	// still held, is found then. Once each: a second decision finds it
	// released and changes nothing unless the Consent changed.
	followed := map[string]bool{}
	for i := 0; i < len(taskIDs); i++ {
		id := taskIDs[i]
		done := false
		for attempt := 1; attempt <= queue.MaxAttempts && !done; attempt++ {
			again := &plan{caller: pl.caller, now: s.Now().UTC().Truncate(time.Millisecond), ifMatch: map[int]bool{},
				pending: map[string]*pendingRequest{}, claimed: map[string]bool{}, place: s.PlaceOf(id)}
			if err := s.recheck(ctx, again, id); errors.Is(err, gateway.ErrNotFound) {
				done = true // removed meanwhile (retention): nothing to decide
				break
			} else if err != nil {
				return err
			}
			if len(again.commit.Writes) == 0 {
				done = true // nothing to change: released or withdrawn already, or not concerned
				break
			}
			res, err := s.Commit(ctx, &again.commit)
			if err != nil {
				return err
			}
			if done = res.OK(); done {
				if err := s.hideAfterCommit(ctx, again); err != nil {
					return err
				}
				for _, next := range again.recheckAfter {
					if !followed[next] {
						followed[next] = true
						taskIDs = append(taskIDs, next)
					}
				}
			}
		}
		if !done {
			return gateway.NewError(gateway.KindConflict, fhir.IssueConflict, "", "stored, but a referral it concerns changed concurrently while its consent was decided again; send it again")
		}
	}
	return nil
}

// referralOf is the referral a supporting resource's terms file it under.
func referralOf(terms []string) string {
	prefix := gateway.ReferralTerm("")
	for _, t := range terms {
		if ref, ok := strings.CutPrefix(t, prefix); ok {
			return ref
		}
	}
	return ""
}

// recheck decides again for one referral Task.
func (s *Service) recheck(ctx context.Context, pl *plan, taskID string) error {
	task, view, err := s.ReadTask(ctx, taskID)
	if err != nil {
		return err
	}
	providerID, ok := strings.CutPrefix(view.Owner, gateway.TypeOrganization+"/")
	p, known := s.Router().Provider(providerID)
	if !ok || !known || p.Consent == gateway.ConsentNotRequired {
		return nil
	}
	srID, ok := strings.CutPrefix(s.LocalRef(view.Focus), gateway.TypeServiceRequest+"/")
	if !ok {
		return nil
	}
	var sr *gateway.Resource
	if w := pl.write(gateway.TypeServiceRequest, srID); w != nil {
		sr = w.Resource
	} else if sr, err = s.Store.Read(ctx, gateway.TypeServiceRequest, srID); err != nil {
		return err
	}
	decision, elsewhere, err := s.consentFor(ctx, pl, p, sr, task, false)
	if err != nil {
		return err
	}
	withheld := gateway.Withheld(task.Body)
	switch {
	case withheld && view.Status == gateway.TaskOnHold && view.StatusReasonCode != gateway.ReasonConsentWithdrawn && decision == gateway.ConsentPermits:
		if elsewhere && !slices.Contains(pl.recheckAfter, taskID) {
			// Released on a Consent another partition holds: decided
			// again after the commit, as a new referral sent on one is
			// (planConsent).
			pl.recheckAfter = append(pl.recheckAfter, taskID)
		}
		return s.release(ctx, pl, task, view, sr, p)
	case !withheld && (decision == gateway.ConsentWithdrawnByPatient || decision == gateway.ConsentRefusedByPatient):
		return s.withdraw(ctx, pl, task, view, sr, p, "the patient withdrew consent to share their details with "+p.DisplayName()+
			"; the provider has been told to delete what it received")
	}
	return nil
}

// release sends a held referral: its Task requested again, shown to the
// provider, and its delivery queued, in this plan's commit.
func (s *Service) release(ctx context.Context, pl *plan, task *gateway.Resource, view *gateway.TaskView, sr *gateway.Resource, p *gateway.Provider) error {
	cur := *task
	cur.Body = gateway.WithWithheld(fhir.WithoutMember(task.Body, "statusReason"), false)
	rt := &gateway.Routing{Category: categoryOf(task.Body), Provider: p}
	job := queue.DeliveryJob(queue.EventReferral, task.ID, sr.ID, rt, pl.now)
	c := queue.TaskChange(s.Core, &cur, view, map[string]any{"status": gateway.TaskRequested,
		"businessStatus": businessStatus("consent-received", "Consent received: sent to the provider")}, []gateway.Job{job}, nil)
	pl.commit.Writes = append(pl.commit.Writes, c.Writes...)
	pl.commit.Jobs = append(pl.commit.Jobs, c.Jobs...)
	return s.indexUnderProvider(ctx, pl, sr, p, true)
}

// withdraw takes a referral back from its provider: its Task cancelled
// (when it can still be) with the reason, withheld from the provider, and
// a delivery queued that tells the provider's system to delete what it
// received.
func (s *Service) withdraw(ctx context.Context, pl *plan, task *gateway.Resource, view *gateway.TaskView, sr *gateway.Resource, p *gateway.Provider, text string) error {
	cur := *task
	cur.Body = gateway.WithWithheld(task.Body, true)
	members := map[string]any{"businessStatus": businessStatus(gateway.ReasonConsentWithdrawn, gateway.ReasonDisplay(gateway.ReasonConsentWithdrawn))}
	if view.Status.CanMoveTo(gateway.TaskCancelled) {
		members["status"] = gateway.TaskCancelled
		members["statusReason"] = gateway.HoldReason(gateway.ReasonConsentWithdrawn, text)
	}
	rt := &gateway.Routing{Category: categoryOf(task.Body), Provider: p}
	job := queue.DeliveryJob(queue.EventWithdrawn, task.ID, sr.ID, rt, pl.now)
	c := queue.TaskChange(s.Core, &cur, view, members, []gateway.Job{job}, nil)
	pl.commit.Writes = append(pl.commit.Writes, c.Writes...)
	pl.commit.Jobs = append(pl.commit.Jobs, c.Jobs...)
	if err := s.planHiddenProvenances(ctx, pl, task, view.Owner); err != nil {
		return err
	}
	return s.indexUnderProvider(ctx, pl, sr, p, false)
}

// planHiddenProvenances takes a withdrawn Task's Provenances out of its
// provider's sight: in the plan's commit as many as its share of
// gateway.MaxHiddenProvenances leaves room for (a Consent may withdraw
// many referrals at once), the rest after it (hideAfterCommit).
func (s *Service) planHiddenProvenances(ctx context.Context, pl *plan, task *gateway.Resource, ownerRef string) error {
	hidden, more, err := s.HideProvenances(ctx, task, ownerRef, gateway.MaxHiddenProvenances-pl.hidden, pl.now)
	if err != nil {
		return err
	}
	pl.hidden += len(hidden)
	pl.commit.Writes = append(pl.commit.Writes, hidden...)
	if more && !slices.Contains(pl.hideAfter, task.ID) {
		pl.hideAfter = append(pl.hideAfter, task.ID)
	}
	return nil
}

// hideAfterCommit hides, once a plan's commit is stored, what it left of
// its withdrawn Tasks' Provenances, before the request is answered (each
// Task's in steps of its own, gateway.Core.HideRemainingProvenances). A
// process stopping before they are done leaves them to the provider's
// next Provenance search, which never shows them and finishes them
// (search.Service.Search).
func (s *Service) hideAfterCommit(ctx context.Context, pl *plan) error {
	for _, id := range pl.hideAfter {
		if err := s.HideRemainingProvenances(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// indexUnderProvider makes a referral's ServiceRequest found (or no longer
// found) by its provider's searches: in the plan's write of it, or by a
// version of its own that changes nothing but its index.
func (s *Service) indexUnderProvider(ctx context.Context, pl *plan, sr *gateway.Resource, p *gateway.Provider, on bool) error {
	term := gateway.ProviderTerm(p.ID)
	if w := pl.write(gateway.TypeServiceRequest, sr.ID); w != nil {
		w.Terms = slices.DeleteFunc(w.Terms, func(t string) bool { return t == term })
		if on {
			w.Terms = append(w.Terms, term)
		}
		return nil
	}
	obj, view, err := readStoredReferral(sr.Body)
	if err != nil {
		return err
	}
	stamp := gateway.NextVersionTime(pl.now, sr.LastUpdated)
	next := &gateway.Resource{Type: gateway.TypeServiceRequest, ID: sr.ID, Version: sr.Version + 1, LastUpdated: stamp, Owner: sr.Owner,
		Body: obj.WithServerFields(sr.ID, strconv.Itoa(sr.Version+1), gateway.Instant(stamp))}
	terms := append(gateway.ServiceRequestTerms(sr.ID, view, s.Base), gateway.ClientTerm(sr.Owner))
	if on {
		terms = append(terms, term)
	}
	pl.commit.Writes = append(pl.commit.Writes, gateway.Write{Resource: next, Expect: sr.Version, Terms: terms})
	return nil
}

// citesWithdrawal reports whether a referrer's cancellation of a Task says
// the patient withdrew consent: its statusReason coded so (Signpost's
// consent-withdrawn, or a refusal code of the consent table).
func (s *Service) citesWithdrawal(task *models.Task) bool {
	if task.StatusReason == nil {
		return false
	}
	for _, c := range task.StatusReason.Coding {
		if c.System == nil || c.Code == nil {
			continue
		}
		if *c.System == gateway.ConsentReasonSystem && *c.Code == gateway.ReasonConsentWithdrawn {
			return true
		}
		if s.ConsentCodes.Lookup(*c.System, *c.Code) == "refused" {
			return true
		}
	}
	return false
}

// forOf is the patient a referral Task is for (Task.for). A reference to
// a contained Patient names no one (gateway.MatchPatient): such a Task is
// decided on the identifier beside it alone, which it is indexed by too.
func forOf(body []byte) *models.Reference {
	var t struct {
		For *models.Reference `json:"for"`
	}
	_ = json.Unmarshal(body, &t)
	return t.For
}

// categoryOf is the social prescribing category a referral Task was routed on.
func categoryOf(body []byte) string {
	var t struct {
		Input []struct {
			ValueCoding struct{ System, Code string } `json:"valueCoding"`
		} `json:"input"`
	}
	_ = json.Unmarshal(body, &t)
	for _, in := range t.Input {
		if in.ValueCoding.System == gateway.CategorySystem {
			return in.ValueCoding.Code
		}
	}
	return ""
}

// decidedOn makes the commit depend on the version of a stored resource a
// consent decision (or a referral's check of its Patient) read
// (Commit.Unchanged; a Patient by its owner and FHIR id, as read; Version
// 0 for one not held): a Consent withdrawn, or a Patient renumbered,
// between the plan's read and the commit refuses the commit, which is
// planned again and decides on what is current. Counting the patient's
// Consents (consentsSeen) finds one added, not one changed.
func (pl *plan) decidedOn(r *gateway.Resource) {
	read := gateway.ReadVersion{Type: r.Type, ID: r.ID, Version: r.Version}
	if r.Type == gateway.TypePatient {
		read.Owner = r.Owner // two clients may each keep a Patient of one id
	}
	name := read
	name.Version = 0
	if pl.decided[name] {
		return // read for another referral of the same patient
	}
	if pl.decided == nil {
		pl.decided = map[gateway.ReadVersion]bool{}
	}
	pl.decided[name] = true
	pl.commit.Unchanged = append(pl.commit.Unchanged, read)
}

// consentsSeen is seen for the Consents held for a patient.
func (pl *plan) consentsSeen(groups [][]string, total int) {
	pl.seen(gateway.TypeConsent, groups, total)
}

// seen makes the commit depend on what a consent decision read: were a
// Consent for the patient, or a referral for them, stored between the read
// and the commit (a referral and its consent sent at once), the commit is
// refused and planned again with it, so neither is decided without the
// other. A Patient's renumbering rests alike on what it found naming the
// Patient (keepsItsNHSNumber). Beyond maxConsentReads the count is not
// followed.
func (pl *plan) seen(typ string, groups [][]string, total int) {
	if total >= maxConsentReads {
		return
	}
	pl.commit.Criteria = append(pl.commit.Criteria, gateway.Criteria{Type: typ, Groups: groups, Limit: total + 1})
}

// writesConsent reports whether the plan writes a Consent.
func (pl *plan) writesConsent() bool {
	return slices.ContainsFunc(pl.commit.Writes, func(w gateway.Write) bool { return w.Resource.Type == gateway.TypeConsent })
}

// write is the plan's write of a resource, or nil.
func (pl *plan) write(typ, id string) *gateway.Write {
	for i := range pl.commit.Writes {
		if w := &pl.commit.Writes[i]; w.Resource.Type == typ && w.Resource.ID == id {
			return w
		}
	}
	return nil
}

// planRestConsent validates a Consent a GP system sends on its own (POST
// or PUT /fhir/Consent, or a transaction entry) and plans its write: held
// for the patient it names, found by the referrals for that patient. A PUT
// of a Consent that came with a referral message keeps it filed under that
// referral, about which it is (messageConsentTerms), so a GP system can
// withdraw it there and nothing else is sent on it.
func (s *Service) planRestConsent(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	var p gateway.Problems
	status, _ := r.obj.String("status")
	switch status {
	case "draft", "proposed", "active", "rejected", "inactive", "entered-in-error":
	default:
		p.Add(fhir.IssueRequired, "Consent.status", "status is required: one of draft, proposed, active, rejected, inactive, entered-in-error")
	}
	if _, ok := r.obj.Member("scope"); !ok {
		p.Add(fhir.IssueRequired, "Consent.scope", "scope is required (R4): patient-privacy for consent to share the patient's details")
	}
	if _, ok := r.obj.Member("category"); !ok {
		p.Add(fhir.IssueRequired, "Consent.category", "category is required (R4): at least one")
	}
	patient := consentPatient(r.obj.Bytes())
	switch {
	case patient == nil || (patient.Reference == nil && patient.Identifier == nil):
		p.Add(fhir.IssueRequired, "Consent.patient", "patient is required: the referrals it applies to are found by it (a reference to the Patient, or the NHS number as the referral names the patient)")
	case patient.Identifier == nil && patient.Reference != nil && strings.HasPrefix(*patient.Reference, "#"):
		// A contained Patient is named alike in every resource with one, so
		// it finds no referral: a refusal so named would be taken and do
		// nothing.
		p.Add(fhir.IssueRequired, "Consent.patient.identifier", "a reference to a contained Patient finds none of the patient's referrals: give patient.identifier with the NHS number (or a reference to a Patient kept here)")
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	// A new Consent, or one naming its patient for the first time, must name
	// one person. One that named them keeps them (keepsItsPatient) and is
	// not checked again: its withdrawal must always be taken.
	firstNaming := r.Method == "POST"
	version, expect, fromIfMatch := 1, 0, false
	var referral string
	var terms []string
	if r.Method == "PUT" {
		cur, exp, err := s.current(ctx, pl, r)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			// Consents are made by POST, with Signpost's id (no update-as-create).
			return nil, gateway.NotFound(gateway.TypeConsent, r.id)
		}
		if err := s.keepsItsPatient(cur, patient, "POST a new Consent for the other patient"); err != nil {
			return nil, err
		}
		firstNaming = consentPatient(cur.Body) == nil
		version, expect, fromIfMatch = cur.Version+1, exp, r.pinsVersion()
		if referral, err = pl.lookups.lookup(ctx, s.Store, gateway.SupportingKey(cur.Ref())); err != nil {
			return nil, err
		}
		if referral != "" {
			if terms, err = s.messageConsentTerms(ctx, cur, referral, r.obj.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	if firstNaming {
		if err := s.namesOnePatient(ctx, pl, patient); err != nil {
			return nil, err
		}
	}
	if referral == "" {
		terms = gateway.ConsentTerms(status, patient, s.Base)
	}
	body := r.obj.WithServerFields(r.id, strconv.Itoa(version), gateway.Instant(pl.stampOf(r)))
	return pl.addWrite(r, body, version, expect, fromIfMatch, terms, p.Warnings), nil
}

// namesOnePatient refuses a Consent whose patient names by reference a
// Patient this GP system keeps here (or sends with it), and by NHS number
// someone else, as a referral's subject is refused
// (conform.SameNHSNumber): such a Consent would be about two people at
// once, one of whom did not give it. Where the Patient is not kept here
// (another server's, or not sent) or keeps no NHS number, nothing can be
// compared: the Consent is taken, and a referral that one of its names
// finds and the other contradicts is never sent on it
// (gateway.ConflictingPatient).
func (s *Service) namesOnePatient(ctx context.Context, pl *plan, patient *models.Reference) error {
	_, id := s.keptKey(pl.caller.ClientID, patient) // the person is the same in every version
	if id == "" || !conform.HasNHSNumber(patient) {
		return nil
	}
	body := pl.plannedBody(gateway.TypePatient, id)
	if body == nil {
		held, err := s.ReadVisible(ctx, pl.caller, gateway.TypePatient, id)
		if errors.Is(err, gateway.ErrNotFound) {
			// Nothing to compare; one made before the commit sends the
			// plan round again, to be compared with.
			pl.decidedOn(&gateway.Resource{Type: gateway.TypePatient, ID: id, Owner: pl.caller.ClientID})
			return nil
		}
		if err != nil {
			return err
		}
		// Checked on this version: one renumbered before the commit sends
		// the plan round again, to be checked on the new number.
		pl.decidedOn(held)
		body = held.Body
	}
	return conform.SameNHSNumber(patient, body, "Consent.patient")
}

// keepsItsPatient refuses an update of a Consent (next: its patient as
// sent) that names its patient otherwise than the stored version (cur):
// the referrals sent on a Consent are found again by the terms its patient
// is filed under, so a Consent moved to other terms would leave those of
// the patient it was about with the provider, no Consent of theirs
// permitting it, when the change or a later withdrawal is decided only for
// the patient it names now. Whom a Consent is about is therefore fixed:
// the same reference (relative or absolute, any version) and identifier,
// as indexed; to consent for someone else, the GP system withdraws this
// one and sends another (anew: how). One stored naming no patient sent
// nothing on its patient and may name one.
func (s *Service) keepsItsPatient(cur *gateway.Resource, next *models.Reference, anew string) error {
	was := gateway.PatientRefTerms("patient", consentPatient(cur.Body), s.Base)
	now := gateway.PatientRefTerms("patient", next, s.Base)
	slices.Sort(was)
	slices.Sort(now)
	if len(was) == 0 || slices.Equal(slices.Compact(was), slices.Compact(now)) {
		return nil
	}
	return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "Consent.patient",
		"a Consent's patient cannot be changed by an update: patient must name the patient as the stored version does (the same reference and NHS number), "+
			"because the referrals sent on this Consent are that patient's; to record consent for another patient, withdraw this Consent "+
			"(status inactive, its patient as it is) and %s; nothing was written", anew)
}

// messageConsentTerms index a new version of a Consent that came with a
// referral message (referral: its ServiceRequest), whether a GP system
// sends it (PUT) or an update message does: under that referral, about
// which it is. Filed under its patient too, a Consent would count for the
// patient's other referrals, whose sending would then rest on a Consent
// updated and withdrawn as that referral's. A PUT before this rule filed
// it so: one still filed under its patient (cur, as stored) stays so, so
// that its withdrawal decides again for the referrals that may have gone
// out on it (recheckReferrals decides wherever a Consent is filed). One
// search, bounded by what one referral holds.
func (s *Service) messageConsentTerms(ctx context.Context, cur *gateway.Resource, referral string, body []byte) ([]string, error) {
	terms := []string{gateway.ReferralTerm(referral)}
	patientTerms := gateway.PatientRefTerms("patient", consentPatient(cur.Body), s.Base)
	if len(patientTerms) == 0 {
		return terms, nil
	}
	groups := [][]string{terms, {gateway.ClientTerm(cur.Owner)}, patientTerms}
	ids, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeConsent, Groups: groups, Count: gateway.MaxSupporting})
	if err != nil || !slices.Contains(ids, cur.ID) {
		return terms, err
	}
	var next struct {
		Status  string            `json:"status"`
		Patient *models.Reference `json:"patient"`
	}
	_ = json.Unmarshal(body, &next)
	return append(terms, gateway.ConsentTerms(next.Status, next.Patient, s.Base)...), nil
}

// planWithdrawal is a referrer's cancellation citing withdrawn consent: the
// provider is told to delete the referral, and its ServiceRequest is no
// longer found by the provider.
func (s *Service) planWithdrawal(ctx context.Context, pl *plan, task models.Task, taskID string) error {
	providerID, ok := strings.CutPrefix(gateway.RefOf(task.Owner), gateway.TypeOrganization+"/")
	p, known := s.Router().Provider(providerID)
	if !ok || !known {
		return nil
	}
	srID := strings.TrimPrefix(s.LocalRef(gateway.RefOf(task.Focus)), gateway.TypeServiceRequest+"/")
	var sr *gateway.Resource
	if w := pl.write(gateway.TypeServiceRequest, srID); w != nil {
		sr = w.Resource
	} else {
		var err error
		if sr, err = s.Store.Read(ctx, gateway.TypeServiceRequest, srID); err != nil {
			return err
		}
	}
	rt := &gateway.Routing{Category: categoryOfTask(task), Provider: p}
	pl.commit.Jobs = append(pl.commit.Jobs, queue.DeliveryJob(queue.EventWithdrawn, taskID, srID, rt, pl.now))
	if cur := pl.write(gateway.TypeTask, taskID); cur != nil {
		if err := s.planHiddenProvenances(ctx, pl, cur.Resource, gateway.RefOf(task.Owner)); err != nil {
			return err
		}
	}
	return s.indexUnderProvider(ctx, pl, sr, p, false)
}

func categoryOfTask(task models.Task) string {
	for _, in := range task.Input {
		if in.ValueCoding.System != nil && *in.ValueCoding.System == gateway.CategorySystem && in.ValueCoding.Code != nil {
			return *in.ValueCoding.Code
		}
	}
	return ""
}

// sameGroups reports whether two searches' groups are the same terms.
func sameGroups(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}
