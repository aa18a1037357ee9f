package intake

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/query"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/topic"
)

// Request is one create (POST) or update (PUT), on its own or as an entry
// of a transaction Bundle.
type Request struct {
	Method      string // "POST" or "PUT"
	Type        string
	ID          string // PUT: the id in the URL
	Body        []byte
	IfNoneExist string
	IfMatch     string
	FullURL     string // transaction entries: Bundle.entry.fullUrl, often urn:uuid:
	Expr        string // where the resource sits, e.g. "Bundle.entry[2].resource"; "" for a plain request
	// inBundle marks an entry of a Bundle whose structure was checked
	// whole, so the entry is not checked again.
	inBundle bool
	// message is set for the entries of a message (ReceiveReferral).
	message *messageContext
	// claims are the idempotency keys of the message a request was made
	// from (ReceiveResponse): the message id's first, then the
	// X-Request-Id's. Each is claimed with the version the request writes,
	// or, when it changes nothing, the version it found (a commit of the
	// keys alone: no new version, no notification).
	claims []gateway.UniqueKey

	obj      *fhir.Object
	id       string            // the id this request writes, or the id of the existing resource it resolved to
	existing *gateway.Resource // an earlier identical create this request resolved to
	current  *gateway.Resource // the version an update replaces
	// ifNoneExist is the If-None-Exist search as resolveRepeat ran it, and
	// the token-system generation it was expanded with (-1: none), for the
	// commit to check again.
	ifNoneExist *query.Query
	systemsSeen int64
}

// plan is what one request (or transaction) will commit, built by reading
// the current state. If another request changes that state before the
// commit, the store refuses the commit and the plan is built again.
type plan struct {
	caller   gateway.Caller
	now      time.Time
	commit   gateway.Commit
	ifMatch  map[int]bool               // writes whose expected version came from the client
	pending  map[string]*pendingRequest // by "ServiceRequest/id": requests of this plan
	claimed  map[string]bool            // ServiceRequests whose referral Task is a Task entry of this plan
	outcomes []*gateway.Outcome
	// referrals are the new referral Tasks the plan makes, whose consent
	// is checked once everything is planned (planConsent).
	referrals []plannedReferral
	// place is the id prefix of the partition the plan's new resources go
	// to (placeChange; "" for a store that does not spread).
	place string
	// recheckAfter are, for a spreading store, the referral Tasks decided
	// again after the plan's commit, each in a commit of its own partition
	// (recheckAfterCommit): those a Consent of this plan is about held in
	// another partition than the plan's, and the new referrals it holds
	// awaiting consent.
	recheckAfter []string
	// patientsAfter are the searches for the Tasks of the patients the
	// plan's Consents name, run again after its commit (a spreading
	// store): a referral committed in another partition meanwhile is
	// decided again then.
	patientsAfter [][][]string
	// unchangedConsents are, for a spreading store, the Consents this plan
	// found stored as sent (a PUT or a message sent again): nothing of
	// theirs is written, but what they decide about referrals in other
	// partitions is decided again, since the first attempt may have
	// stopped between its commit and those (recheckAfterCommit).
	unchangedConsents []*gateway.Resource
	// kept are the Patients the plan's consent decisions read (named), by
	// PatientKey: nil for one not kept here.
	kept map[string]*keptPatient
	// lookups are the unique keys its entries look up as they are
	// planned, read in one round trip (plannedLookups).
	lookups *lookAhead
	// decided are the resources already in commit.Unchanged (decidedOn),
	// by their names there (Version 0).
	decided map[gateway.ReadVersion]bool
	// hidden counts the Provenances the plan's commit takes out of a
	// provider's sight (planHiddenProvenances), at most
	// gateway.MaxHiddenProvenances; hideAfter are the withdrawn Tasks
	// whose other Provenances are hidden after it (hideAfterCommit).
	hidden    int
	hideAfter []string
}

type pendingRequest struct {
	sr *gateway.ReferralView
	// subject is the patient the referral's Task is for (Task.for), as
	// raw JSON, and named the same decoded: the ServiceRequest's subject,
	// unless that points at a Patient it contains (conform.TaskSubject).
	subject []byte
	named   *models.Reference
	routed  *gateway.Routing
	task    string // "Task/id" when the referral already has its Task
}

// apply runs requests as one all-or-nothing change. audit, when given, is
// committed with the change (a transaction passes none: what it touched is
// known entry by entry only to the API, which keeps its record apart).
func (s *Service) apply(ctx context.Context, caller gateway.Caller, reqs []*Request, audit *gateway.AuditIntent) ([]*gateway.Outcome, error) {
	for attempt := 1; attempt <= queue.MaxAttempts; attempt++ {
		pl, err := s.prepare(ctx, caller, reqs, attempt > 1)
		if err != nil {
			return nil, err
		}
		if len(pl.commit.Writes) == 0 && len(pl.commit.Unique) == 0 {
			// Nothing to write; a Consent sent again still decides, in
			// other partitions, what its first sending may not have.
			if err := s.recheckAfterCommit(ctx, pl); err != nil {
				// Its first sending's change is stored, and only this
				// step is left to a retry: said so, not "nothing was
				// changed" (this request's own commit stored nothing).
				return nil, &gateway.StoredError{Err: err, Stored: pl.stored()}
			}
			return pl.outcomes, nil
		}
		pl.auditWith(reqs, audit)
		res, err := s.Commit(ctx, &pl.commit)
		if err != nil {
			return nil, err
		}
		if res.OK() {
			if err := s.hideAfterCommit(ctx, pl); err != nil {
				return nil, &gateway.StoredError{Err: err, Stored: pl.stored()}
			}
			if err := s.recheckAfterCommit(ctx, pl); err != nil {
				// Its change is stored: its audit says so (the record
				// committed with it, if any, says only that).
				return nil, &gateway.StoredError{Err: err, Stored: pl.stored()}
			}
			if pl.commit.Audit != nil {
				pl.outcomes[0].Audited = true
			}
			return pl.outcomes, nil
		}
		if st := res.Stale; st != nil && pl.ifMatch[st.Index] {
			w := pl.commit.Writes[st.Index]
			return nil, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "",
				"version conflict: If-Match named version %d of the %s but version %d is current; read it again and reapply the change",
				w.Expect, w.Resource.Type, st.Current)
		}
		// Another request changed what this plan read; build it again.
	}
	return nil, gateway.NewError(gateway.KindConflict, fhir.IssueConflict, "", "the resources changed concurrently while this request was applied; retry it")
}

// placeChange decides where a change's new resources go when the store
// spreads referrals over partitions (gateway.Placer), so that its commit
// is one partition's: beside the first resource it changes (an update, or
// a create resolved to the resource held; a Patient's place is its key's,
// PlacePatient); else beside the Patient its first new referral's subject
// names, so that a referral sent with its Patient and later alone lands
// alike; else where the business identifier of its first new referral
// places it (for a BaRS referral
// without one, its fullUrl), so that a repeat goes where the first one
// went and meets its idempotency keys there; else, for a new Subscription,
// where its client's others are, so that its commit counts them all
// against the cap; else where the criteria of
// its conditional create place it, so that creates racing with the same
// criteria meet; else anywhere. "" when the store does not spread.
func (s *Service) placeChange(ctx context.Context, caller gateway.Caller, reqs []*Request) (string, error) {
	if !s.Spreads() {
		return "", nil
	}
	for _, r := range reqs {
		switch {
		case r.existing != nil && r.existing.Type == gateway.TypePatient:
			return s.PlacePatient(ctx, gateway.PatientKey(r.existing.Owner, r.existing.ID))
		case r.existing != nil:
			return s.PlaceOf(r.existing.ID), nil
		case r.Method == "PUT" && r.ID != "" && r.Type == gateway.TypePatient:
			return s.placeBesidePatient(ctx, caller, r.ID)
		case r.Method == "PUT" && r.ID != "":
			return s.PlaceOf(r.ID), nil
		}
	}
	for _, r := range reqs {
		if id, ok := s.subjectPatient(r); ok {
			return s.placeBesidePatient(ctx, caller, id)
		}
		if id, ok := s.consentPatient(r); ok {
			// Beside the referrals for the same Patient, so that the
			// commit releasing or withdrawing them is one partition's and
			// a referral and its Consent sent at once see each other.
			return s.placeBesidePatient(ctx, caller, id)
		}
	}
	for _, r := range reqs {
		if r.Type != gateway.TypeServiceRequest || r.Method != "POST" || r.obj == nil {
			continue
		}
		// The smallest of its keys, so that a repeat listing the same
		// identifiers in another order is placed alike.
		key := ""
		for _, k := range referralKeys(caller, r) {
			if key == "" || k < key {
				key = k
			}
		}
		if key == "" && r.message != nil {
			// A BaRS referral without an identifier is known again by its
			// fullUrl, which the messages about it keep.
			key = gateway.MessageFocusKey(caller, r.FullURL)
		}
		if key != "" {
			return s.Place(key), nil
		}
	}
	for _, r := range reqs {
		if r.Type == topic.TypeSubscription && r.Method == "POST" {
			// planSubscriptionCap's criteria count the client's
			// subscriptions in the commit's partition only.
			return s.Place(gateway.SubscriptionsKey(caller.ClientID)), nil
		}
	}
	for _, r := range reqs {
		if r.ifNoneExist != nil {
			// Conditional creates with the same criteria meet in one
			// partition, where the commit checks them atomically.
			return s.Place("if-none-exist|" + gateway.Criteria{Type: r.Type, Groups: r.ifNoneExist.Groups}.Key()), nil
		}
	}
	return s.Place(""), nil
}

// subjectPatient is the FHIR id of the Patient a new referral's subject
// names by reference: a referral placed beside it (placeChange).
func (s *Service) subjectPatient(r *Request) (string, bool) {
	if r.Type != gateway.TypeServiceRequest || r.Method != "POST" || r.obj == nil {
		return "", false
	}
	return s.patientNamed(r.obj, "subject")
}

// consentPatient is the FHIR id of the Patient a new Consent a GP system
// sends on its own names by reference: a Consent placed beside it, where
// that Patient's referrals are (placeChange). A message's Consent is
// placed beside its referral, as every entry of the message.
func (s *Service) consentPatient(r *Request) (string, bool) {
	if r.Type != gateway.TypeConsent || r.Method != "POST" || r.message != nil || r.obj == nil {
		return "", false
	}
	return s.patientNamed(r.obj, "patient")
}

// patientNamed is the FHIR id of the local Patient a resource's reference
// element names.
func (s *Service) patientNamed(obj *fhir.Object, element string) (string, bool) {
	ref, ok := obj.Object(element)
	if !ok {
		return "", false
	}
	target, _ := ref.String("reference")
	id, ok := strings.CutPrefix(s.LocalRef(target), gateway.TypePatient+"/")
	return id, ok && gateway.CheckID(id) == nil
}

// placeBesidePatient is the place of the caller's Patient with FHIR id id.
func (s *Service) placeBesidePatient(ctx context.Context, caller gateway.Caller, id string) (string, error) {
	key, err := s.PatientKeyFor(ctx, caller, id)
	if err != nil {
		return "", err
	}
	return s.PlacePatient(ctx, key)
}

// prepare validates every request and builds the plan. Nothing is written.
// lookRepeats looks up idempotency keys before planning. The first attempt
// does not: the commit checks them atomically anyway, and a held key sends
// the request round again, this time looking. New referrals, the common
// case, so cost one Redis round trip less.
func (s *Service) prepare(ctx context.Context, caller gateway.Caller, reqs []*Request, lookRepeats bool) (*plan, error) {
	pl := &plan{caller: caller, now: s.Now().UTC().Truncate(time.Millisecond), ifMatch: map[int]bool{},
		pending: map[string]*pendingRequest{}, claimed: map[string]bool{}, outcomes: make([]*gateway.Outcome, len(reqs))}

	// 1. Parse every body and resolve creates that repeat an earlier one:
	// every body up to the first refused, then each of those in order, so
	// that an entry's refusal comes before a later one's, as if each were
	// parsed and resolved in turn, while their idempotency keys are looked
	// up together (repeatKeys).
	parsed, refused := len(reqs), error(nil)
	for i, r := range reqs {
		if err := s.parse(caller, r); err != nil {
			parsed, refused = i, r.locate(err)
			break
		}
	}
	// On a store that spreads referrals, a create may repeat one
	// placed elsewhere, whose keys its commit cannot see: a referral
	// named beside its Patient once and by NHS number alone again (or
	// beside another Patient), or one put in legacy beside a resource
	// held there. It looks for them first, in every partition; on one
	// Redis the commit's own check suffices.
	keys := &repeatKeys{look: lookRepeats || s.Spreads(), reqs: reqs[:parsed]}
	for _, r := range reqs[:parsed] {
		if err := s.resolveRepeat(ctx, caller, r, keys); err != nil {
			return nil, r.locate(err)
		}
		if len(r.claims) > 0 {
			if err := s.resolveClaims(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	if refused != nil {
		return nil, refused
	}
	if err := s.resolveMessageRepeat(ctx, caller, reqs, lookRepeats); err != nil {
		return nil, err
	}
	place, err := s.placeChange(ctx, caller, reqs)
	if err != nil {
		return nil, err
	}
	pl.place = place
	for _, r := range reqs {
		if r.message != nil {
			r.message.place = place
		}
	}
	if err := s.readSupporting(ctx, reqs, lookRepeats); err != nil {
		return nil, err
	}
	// 2. Give every new resource its id and resolve references between entries.
	refs := map[string]string{}
	for _, r := range reqs {
		switch {
		case r.existing != nil:
			r.id = r.existing.ID
		case r.Method == "PUT":
			if err := gateway.CheckID(r.ID); err != nil {
				return nil, r.locate(err)
			}
			r.id = r.ID
		case r.isSupporting():
			r.id = r.message.entryID(r.FullURL)
		default:
			r.id = s.NewIDAt(place)
		}
		if r.FullURL != "" {
			refs[r.FullURL] = r.Type + "/" + r.id
		}
		if r.message != nil {
			maps.Copy(refs, r.message.resolved)
		}
	}
	for _, r := range reqs {
		if r.existing != nil {
			continue
		}
		if len(refs) > 0 {
			body, err := fhir.RewriteReferences(r.Body, refs)
			if err != nil {
				return nil, r.locate(err)
			}
			if &body[0] != &r.Body[0] {
				if r.obj, err = s.parser.ParseRaw(body, r.Type); err != nil { // only references changed
					return nil, r.locate(err)
				}
			}
		}
		if err := checkLocalReferences(r); err != nil {
			return nil, r.locate(err)
		}
	}
	pl.lookups = s.plannedLookups(caller, reqs)
	// A Task entry for a ServiceRequest of the same transaction is that
	// referral's Task: no second one is made for it.
	for _, r := range reqs {
		if r.Type == gateway.TypeTask && r.Method == "POST" && r.existing == nil {
			if f, ok := r.obj.Object("focus"); ok {
				if ref, ok := f.String("reference"); ok {
					pl.claimed[s.LocalRef(ref)] = true
				}
			}
		}
	}
	// 3. Validate and plan, people first, then requests, then Tasks, so that
	// each finds what it refers to.
	for _, typ := range []string{gateway.TypePatient, gateway.TypeServiceRequest, gateway.TypeTask, topic.TypeSubscription, gateway.TypeConsent} {
		for i, r := range reqs {
			if r.Type != typ || r.isSupporting() {
				continue
			}
			if r.existing != nil {
				pl.outcomes[i] = &gateway.Outcome{Resource: r.existing}
				pl.keptConsent(s, r.existing)
				continue
			}
			var out *gateway.Outcome
			var err error
			planned := len(pl.commit.Writes)
			switch typ {
			case gateway.TypePatient:
				out, err = s.planPatient(ctx, pl, r)
			case gateway.TypeServiceRequest:
				out, err = s.planServiceRequest(ctx, pl, r)
			case gateway.TypeTask:
				out, err = s.planTask(ctx, pl, r)
			case topic.TypeSubscription:
				out, err = s.planSubscription(ctx, pl, r)
			case gateway.TypeConsent:
				out, err = s.planRestConsent(ctx, pl, r)
			}
			if err == nil {
				err = conform.CheckIndexBounds(typ, pl.commit.Writes[planned:])
			}
			if errors.Is(err, conform.ErrUnchanged) {
				pl.outcomes[i] = &gateway.Outcome{Resource: r.existing}
				pl.keptConsent(s, r.existing)
				// A message that changes nothing was still processed: its
				// keys are kept (a commit of them alone), so that its
				// X-Request-Id used again is a duplicate. A GP system's
				// message claims them with its ServiceRequest; a provider's
				// response, with its Task.
				pl.claim(r, pl.outcomes[i])
				if r.message != nil && r.message.focus == r {
					pl.claimMessage(r, r.existing.Ref(), r.existing.Version)
				}
				continue
			}
			if err != nil {
				return nil, r.locate(err)
			}
			if r.Method == "POST" && r.IfNoneExist != "" {
				// Re-checked inside the commit, so two concurrent conditional
				// creates cannot both create.
				// The search resolveRepeat ran, with the systems it read.
				pl.commit.Criteria = append(pl.commit.Criteria, gateway.Criteria{Type: r.Type, Groups: r.ifNoneExist.Groups})
				if gen := r.systemsSeen; gen >= 0 && pl.commit.SystemsSeen == nil {
					// A system registered after that read could hide a
					// match from the criteria: the commit checks none was.
					pl.commit.SystemsSeen = &gen
				}
			}
			pl.outcomes[i] = out
			pl.claim(r, out)
		}
	}
	// 4. What a message carries beside the referral, stored under it.
	for i, r := range reqs {
		if !r.isSupporting() {
			continue
		}
		if r.existing != nil {
			pl.outcomes[i] = &gateway.Outcome{Resource: r.existing}
			pl.keptConsent(s, r.existing)
			continue
		}
		planned := len(pl.commit.Writes)
		out, err := s.planSupporting(ctx, pl, r)
		if err == nil {
			err = conform.CheckIndexBounds(r.Type, pl.commit.Writes[planned:])
		}
		if errors.Is(err, conform.ErrUnchanged) {
			pl.outcomes[i] = &gateway.Outcome{Resource: r.existing}
			pl.keptConsent(s, r.existing)
			continue
		}
		if err != nil {
			return nil, r.locate(err)
		}
		pl.outcomes[i] = out
	}
	// 5. Nothing goes to a provider without the consent it needs.
	if err := s.planConsent(ctx, pl); err != nil {
		return nil, err
	}
	if err := pl.checkDistinct(); err != nil {
		return nil, err
	}
	if err := pl.checkRequestBounds(); err != nil {
		return nil, err
	}
	return pl, nil
}

// checkDistinct refuses a request that writes one resource twice or claims
// one idempotency key twice (the same referral identifier in two entries,
// two Tasks for one referral): the commit could apply only one of each.
func (pl *plan) checkDistinct() error {
	writes := make(map[string]bool, len(pl.commit.Writes))
	for _, w := range pl.commit.Writes {
		ref := w.Resource.Ref()
		if writes[ref] {
			return gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "Bundle.entry", "the transaction writes %s twice; each resource may appear once", w.Resource.Type)
		}
		writes[ref] = true
	}
	keys := make(map[string]bool, len(pl.commit.Unique))
	for _, u := range pl.commit.Unique {
		if keys[u.Key] {
			return gateway.NewError(gateway.KindInvalid, fhir.IssueDuplicate, "Bundle.entry",
				"the transaction holds the same referral twice (one business identifier, or two Tasks for one ServiceRequest); each referral may appear once")
		}
		keys[u.Key] = true
	}
	return nil
}

// locate moves the issues of an entry's error under the entry's place in
// the Bundle, so a client learns which entry was at fault.
func (r *Request) locate(err error) error {
	if r.Expr == "" {
		return err
	}
	var e *gateway.Error
	if !errors.As(err, &e) {
		return err
	}
	out := &gateway.Error{Kind: e.Kind, Err: e.Err, Issues: make([]fhir.Issue, len(e.Issues))}
	for i, is := range e.Issues {
		exprs := make([]string, 0, len(is.Expression)+1)
		for _, x := range is.Expression {
			switch {
			case x == r.Type || x == "resourceType":
				exprs = append(exprs, r.Expr)
			case strings.HasPrefix(x, r.Type+"."):
				exprs = append(exprs, r.Expr+strings.TrimPrefix(x, r.Type))
			default:
				exprs = append(exprs, x)
			}
		}
		if len(exprs) == 0 {
			exprs = append(exprs, r.Expr)
		}
		is.Expression = exprs
		out.Issues[i] = is
	}
	return out
}

var urnPrefix = []byte(`"urn:`)

// checkLocalReferences refuses urn: references that no entry of the request
// resolves (outside a transaction, none can): stored, they would dangle for ever.
func checkLocalReferences(r *Request) error {
	if !bytes.Contains(r.obj.Bytes(), urnPrefix) {
		return nil // the common case, without walking the resource
	}
	for _, ref := range fhir.References(r.obj) {
		if !strings.HasPrefix(ref.Value, "urn:uuid:") && !strings.HasPrefix(ref.Value, "urn:oid:") {
			continue
		}
		if r.isMessageEntry(ref.Value) {
			continue // an entry of the same message, which travels with it
		}
		if r.Expr == "" {
			return gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, ref.Expression,
				"a urn: reference can only name an entry of the same transaction Bundle; in a request of its own, refer to a resource Signpost holds as Type/id")
		}
		return gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, ref.Expression,
			"the reference is to no entry of this transaction: every urn: reference must match an entry's fullUrl")
	}
	return nil
}

// parse checks that the caller may make a request, parses its body and
// checks its indexed elements' bounds, forgetting what an earlier attempt
// at the plan resolved.
func (s *Service) parse(caller gateway.Caller, r *Request) error {
	r.id, r.existing, r.current, r.ifNoneExist = "", nil, nil, nil
	if err := mayWrite(caller, r); err != nil {
		return err
	}
	parse := s.parser.Parse
	if r.inBundle {
		parse = s.parser.ParseRaw
	}
	obj, err := parse(r.Body, r.Type)
	if err != nil {
		return err
	}
	r.obj = obj
	return conform.CheckIndexedElements(r.Type, obj)
}

// repeatKeys are the idempotency keys of a request's new referrals, read
// before planning (look: every attempt on a store that spreads, the
// attempts after the first on one Redis), all entries' in one round trip
// (Store.LookupMany), at the first referral that needs them. Read one
// identifier at a time, a transaction of 100 referrals cost hundreds of
// round trips before its plan.
type repeatKeys struct {
	look bool
	reqs []*Request // the parsed requests
	// held is what each key holds ("" none), nil until read.
	held map[string]string
}

// holders returns what each of r's keys holds, in their order, reading the
// keys of r and of every request after it, the first time.
func (k *repeatKeys) holders(ctx context.Context, store gateway.Store, caller gateway.Caller, r *Request) ([]string, error) {
	mine := referralKeys(caller, r)
	if len(mine) == 0 {
		return nil, nil
	}
	if k.held == nil {
		// Those before r either need none or were answered otherwise.
		var keys []string
		for _, later := range k.reqs[slices.Index(k.reqs, r):] {
			keys = append(keys, referralKeys(caller, later)...)
		}
		values, err := store.LookupMany(ctx, keys)
		if err != nil {
			return nil, err
		}
		k.held = make(map[string]string, len(keys))
		for i, key := range keys {
			k.held[key] = values[i]
		}
	}
	out := make([]string, len(mine))
	for i, key := range mine {
		out[i] = k.held[key]
	}
	return out, nil
}

// referralKeys are the idempotency keys of a new referral
// (gateway.ReferralKey), one per business identifier, in its order; none
// for another request.
func referralKeys(caller gateway.Caller, r *Request) []string {
	if r.Method != "POST" || r.Type != gateway.TypeServiceRequest || r.obj == nil {
		return nil
	}
	ids := conform.IdentifiersOf(r.obj)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = gateway.ReferralKey(caller, id)
	}
	return keys
}

// resolveRepeat answers a create that an earlier request already made: the
// same business identifier of a referral from the same client (its first
// identifier held, when keys.look), or an If-None-Exist search that
// matches. The commit re-checks both atomically.
func (s *Service) resolveRepeat(ctx context.Context, caller gateway.Caller, r *Request, keys *repeatKeys) error {
	if r.Method != "POST" {
		return nil
	}
	if r.IfNoneExist != "" {
		q, gen, err := query.IfNoneExist(ctx, s.Core, caller, r.Type, r.IfNoneExist)
		if err != nil {
			return err
		}
		r.ifNoneExist, r.systemsSeen = q, gen
		// Bounded across the request before this search runs, not only
		// at its commit: a refused request costs no more searches.
		unions := 0
		for _, other := range keys.reqs {
			if other.ifNoneExist != nil {
				unions += unionsOf(other.ifNoneExist.Groups)
			}
		}
		if err := ifNoneExistUnionsBounded(unions); err != nil {
			return err
		}
		ids, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: r.Type, Groups: q.Groups, Count: 2})
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
		case 1:
			return s.resolveTo(ctx, r, r.Type, ids[0])
		default:
			return gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueDuplicate, "", "If-None-Exist matches more than one %s; make the criteria more selective", r.Type)
		}
	}
	if !keys.look {
		return nil
	}
	holders, err := keys.holders(ctx, s.Store, caller, r)
	if err != nil {
		return err
	}
	for _, holder := range holders {
		if holder != "" {
			typ, id, _ := strings.Cut(holder, "/")
			if err := s.resolveTo(ctx, r, typ, id); err != nil {
				return err
			}
			return repeatDiffers(r, r.existing, "a referral with this business identifier", false, r.messageSubject()...)
		}
	}
	return nil
}

func (s *Service) resolveTo(ctx context.Context, r *Request, typ, id string) error {
	res, err := s.Store.Read(ctx, typ, id) // keys and criteria are scoped to the caller already
	if err != nil {
		return err
	}
	r.existing = res
	return nil
}

// current checks an update's body id against its URL, reads the version
// it replaces and checks If-Match against it. It returns the expected
// version for the commit (0: create).
func (s *Service) current(ctx context.Context, pl *plan, r *Request) (*gateway.Resource, int, error) {
	if err := checkBodyID(r); err != nil {
		return nil, 0, err
	}
	key := r.id
	if r.Type == gateway.TypePatient {
		// The caller's own Patient: another client's of the same id is
		// another Patient, and does not stop this one being created.
		k, err := s.PatientKeyFor(ctx, pl.caller, r.id)
		if err != nil {
			return nil, 0, err
		}
		key = k
	}
	cur, err := s.Store.Read(ctx, r.Type, key)
	if err != nil && !errors.Is(err, gateway.ErrNotFound) {
		return nil, 0, err
	}
	if errors.Is(err, gateway.ErrNotFound) {
		cur = nil
	}
	if cur != nil {
		ok, err := s.Visible(ctx, pl.caller, cur)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			// Someone else's: it does not exist for this caller, and its id
			// cannot be taken either.
			return nil, 0, gateway.NotFound(r.Type, r.id)
		}
	}
	r.current = cur
	if r.IfMatch == "" {
		if cur == nil {
			return nil, 0, nil
		}
		return cur, cur.Version, checkUnchanged(r, cur)
	}
	if r.anyVersion() {
		if cur == nil {
			return nil, 0, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "",
				"If-Match: * asks that the %s exist, and it does not; leave If-Match out to create it", r.Type)
		}
		return cur, cur.Version, checkUnchanged(r, cur) // any version: one that changes meanwhile sends the plan round again
	}
	want, err := gateway.ParseIfMatch(r.IfMatch)
	if err != nil {
		return nil, 0, err
	}
	have := 0
	if cur != nil {
		have = cur.Version
	}
	if want != have {
		return nil, 0, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "",
			"version conflict: If-Match named version %d of the %s but version %d is current; read it again and reapply the change", want, r.Type, have)
	}
	return cur, want, checkUnchanged(r, cur)
}

// anyVersion reports an If-Match of "*": the update applies to whatever
// version is current, as long as the resource exists (RFC 9110).
func (r *Request) anyVersion() bool { return strings.TrimSpace(r.IfMatch) == "*" }

// pinsVersion reports whether the client named the version its update
// replaces, so that a newer one is its conflict (412), not a race to retry.
func (r *Request) pinsVersion() bool { return r.IfMatch != "" && !r.anyVersion() }

// checkBodyID enforces FHIR's rule for updates: the body's id is the URL's.
func checkBodyID(r *Request) error {
	id, ok := r.obj.String("id")
	if !ok {
		return gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, r.Type+".id", "an update must carry the resource's id, the same as in the URL")
	}
	if id != r.ID {
		return gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, r.Type+".id", "the resource's id differs from the id in the URL")
	}
	return nil
}

// addWrite adds a new version to the plan and returns its outcome. A new
// resource belongs to the caller; a new version to whoever owned the last.
func (pl *plan) addWrite(r *Request, body []byte, version, expect int, fromIfMatch bool, terms []string, warnings []fhir.Issue) *gateway.Outcome {
	owner := pl.caller.ClientID
	if r.current != nil {
		owner = r.current.Owner
	}
	terms = append(terms, gateway.ClientTerm(owner))
	res := &gateway.Resource{Type: r.Type, ID: r.id, Version: version, LastUpdated: pl.stampOf(r), Body: body, Owner: owner}
	pl.commit.Writes = append(pl.commit.Writes, gateway.Write{Resource: res, Expect: expect, Terms: terms})
	if fromIfMatch {
		pl.ifMatch[len(pl.commit.Writes)-1] = true
	}
	return &gateway.Outcome{Resource: res, Created: version == 1, Warnings: warnings}
}

// stampOf is the time r's write is stamped with: the plan's, or for a new
// version of a resource held, the replaced version's when that is later
// (gateway.NextVersionTime). Its body and addWrite both take it from here.
func (pl *plan) stampOf(r *Request) time.Time {
	if r.current == nil {
		return pl.now
	}
	return gateway.NextVersionTime(pl.now, r.current.LastUpdated)
}

// taskStep gives the Task version addWrite just added what it says of
// its referral's journey (gateway.Write.Step), from the view its terms
// came from.
func (pl *plan) taskStep(st gateway.TaskStep) {
	pl.commit.Writes[len(pl.commit.Writes)-1].Step = st
}

// mayWrite refuses the writes a caller's side of the referral does not
// make: providers only update the Tasks they own.
func mayWrite(c gateway.Caller, r *Request) error {
	if r.Type == gateway.TypeProvenance {
		return gateway.NewError(gateway.KindMethodNotAllowed, fhir.IssueNotSupported, "", "Provenance is written by Signpost with each change; it can be read and searched, not written")
	}
	if c.Kind == gateway.CallerProvider && (r.Type != gateway.TypeTask || r.Method != "PUT") {
		return gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "", "a provider may only update the referral Tasks it owns")
	}
	return nil
}

// keptConsent notes a Consent found stored as sent, on a spreading store
// (plan.unchangedConsents).
func (pl *plan) keptConsent(s *Service, r *gateway.Resource) {
	if r != nil && r.Type == gateway.TypeConsent && s.Spreads() {
		pl.unchangedConsents = append(pl.unchangedConsents, r)
	}
}

// stored names what the plan's commit stored ("Type/id"): those of its
// outcomes' resources the commit writes. An outcome resolved to what was
// held (a repeat, a Consent sent again unchanged) was stored by an earlier
// request, not this one.
func (pl *plan) stored() []string {
	written := make(map[string]bool, len(pl.commit.Writes))
	for _, w := range pl.commit.Writes {
		written[w.Resource.Ref()] = true
	}
	var refs []string
	for _, out := range pl.outcomes {
		if out != nil && out.Resource != nil && written[out.Resource.Ref()] {
			refs = append(refs, out.Resource.Ref())
		}
	}
	return refs
}
