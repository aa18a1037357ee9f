package intake

import (
	"context"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/mappings"
)

// MessageReferral is a referral received as a message (an NHS BaRS
// servicerequest-request), already checked as a message by gateway/bars.
// A new one's ServiceRequest, Patient and supporting entries go the same
// way as a transaction's entries: one plan, one atomic commit with the
// referral Task, the delivery job, the audit record and the idempotency
// keys. An update or delete goes the way a PUT of the referral's
// ServiceRequest goes (an update's supporting entries with it).
type MessageReferral struct {
	// MessageID is the message's identity (Bundle.id): the same message
	// received again is the referral it made (or the change it made), not a
	// second one.
	MessageID string
	// Reason is what the message asks (MessageHeader.reason).
	Reason MessageReason
	// RequestID is the sender's X-Request-Id ("" when it sent none): BaRS
	// answers a request id used before with 409 duplicate.
	RequestID string
	// Destinations are MessageHeader.destination[].endpoint, in order, each
	// with the FHIRPath of the element, for the answer when none is served.
	Destinations []MessageDestination
	// ServiceRequest is the message's focus; Patient, when present, the
	// entry its subject names.
	ServiceRequest MessageEntry
	Patient        *MessageEntry
	// Supporting are the other entries (Encounter, CarePlan, Consent,
	// Practitioners, Organizations, …: gateway.IsSupporting), in message
	// order, each stored as received beside the referral.
	Supporting []MessageEntry
	// Entries gives the resourceType of every entry by fullUrl.
	Entries map[string]string
}

// MayWrite says whether the caller may store a resource of type typ: a new
// one, or (update) a new version of one it holds. It returns nil, or the
// refusal to answer with. A message's supporting entries are each held to
// it for what the message's plan stores of them (planSupporting): the
// caller's right to send the message covers its ServiceRequest and
// Patient, not a Consent, which decides what a provider is sent, nor the
// other resources it brings. nil allows every write (no tokens checked).
type MayWrite func(typ string, update bool) error

// MessageReason is what a request message asks of its referral.
type MessageReason int

const (
	// MessageNew makes a referral.
	MessageNew MessageReason = iota
	// MessageUpdate changes the referral an earlier message made: its
	// ServiceRequest replaces the stored one, as a PUT would; a status of
	// revoked or entered-in-error cancels the referral.
	MessageUpdate
	// MessageDelete withdraws the referral an earlier message made: its
	// ServiceRequest becomes entered-in-error, whatever else the message says.
	MessageDelete
)

// MessageEntry is one entry of a message.
type MessageEntry struct {
	FullURL string
	Expr    string // e.g. "Bundle.entry[1].resource"
	Body    []byte
}

// MessageDestination is one MessageHeader.destination endpoint.
type MessageDestination struct {
	Endpoint string
	Expr     string
}

// ReceivedReferral is what receiving a message made (or found, for a
// repeat): the stored ServiceRequest and its referral Task (nil for a
// referral that has none).
type ReceivedReferral struct {
	ServiceRequest *gateway.Outcome
	Task           *gateway.Resource
	// Changed is set when an update or delete stored a new version.
	Changed bool
	// Warnings are every entry's, each at its place in the message.
	Warnings []fhir.Issue
}

// ReceiveReferral stores the referral a new message carries, routed to the
// provider serving its destination, or applies an update or delete to the
// referral an earlier message made. may holds each supporting entry the
// message stores to the caller's rights (nil: none checked).
func (s *Service) ReceiveReferral(ctx context.Context, caller gateway.Caller, m *MessageReferral, may MayWrite, audit *gateway.AuditIntent) (*ReceivedReferral, error) {
	if m.Reason != MessageNew {
		return s.receiveChange(ctx, caller, m, may, audit)
	}
	provider, err := s.destinationProvider(m.Destinations)
	if err != nil {
		return nil, err
	}
	ctxm := &messageContext{referral: m, provider: provider, client: caller.ClientID, placeOf: s.PlaceOf, may: may}
	sr := &Request{Method: "POST", Type: gateway.TypeServiceRequest, Body: m.ServiceRequest.Body, FullURL: m.ServiceRequest.FullURL,
		Expr: m.ServiceRequest.Expr, inBundle: true, message: ctxm}
	ctxm.focus = sr
	reqs := []*Request{sr}
	if p := m.Patient; p != nil {
		reqs = append(reqs, &Request{Method: "POST", Type: gateway.TypePatient, Body: p.Body, FullURL: p.FullURL, Expr: p.Expr, inBundle: true, message: ctxm})
	}
	reqs = append(reqs, ctxm.supportingRequests()...)
	outs, err := s.apply(ctx, caller, reqs, audit)
	if err != nil {
		return nil, err
	}
	out := outs[0]
	task, err := s.referralTask(ctx, out.Resource.ID)
	if err != nil {
		return nil, err
	}
	got := &ReceivedReferral{ServiceRequest: out, Task: task}
	for i, o := range outs {
		if len(o.Warnings) > 0 {
			located := reqs[i].locate(&gateway.Error{Kind: gateway.KindInvalid, Issues: o.Warnings}).(*gateway.Error)
			got.Warnings = append(got.Warnings, located.Issues...)
		}
	}
	return got, nil
}

// messageContext marks the requests made from one message.
type messageContext struct {
	referral *MessageReferral
	provider *gateway.Provider
	// focus is the request of the message's ServiceRequest, whose id the
	// supporting entries are stored under.
	focus *Request
	// client is the sender's client id, which entry ids are derived from.
	client string
	// may holds the supporting entries to the sender's rights (nil: all
	// allowed).
	may MayWrite
	// again marks a message received before, or a new one repeating the
	// referral another made (resolveMessageRepeat): it changes none of the
	// entries held, which a later update may have changed since.
	again bool
	// place is the id prefix of the message's change (Core.Place), which
	// entry ids carry: "" unless the store spreads referrals. placeOf
	// finds the place of a held referral (Core.PlaceOf): a message that
	// repeats one has its entries beside it.
	place   string
	placeOf func(id string) string
	// resolved are entries stored before, which this message's other
	// entries refer to by fullUrl (an update's Patient), by the reference
	// they resolve to.
	resolved map[string]string
}

// supportingRequests are the creates of the message's supporting entries.
func (m *messageContext) supportingRequests() []*Request {
	reqs := make([]*Request, 0, len(m.referral.Supporting))
	for _, e := range m.referral.Supporting {
		reqs = append(reqs, &Request{Method: "POST", Type: m.referral.Entries[e.FullURL], Body: e.Body, FullURL: e.FullURL,
			Expr: e.Expr, inBundle: true, message: m})
	}
	return reqs
}

// entryID is the id a supporting entry is stored under, derived from the
// sender and the entry's fullUrl: a BaRS sender keeps a resource's fullUrl
// in the messages that repeat or update a referral, so the same entry
// received again is the resource stored the first time (or its next
// version), never a second copy.
func (m *messageContext) entryID(fullURL string) string {
	return m.place + m.entryIDBeforeSpreading(fullURL)
}

// entryIDBeforeSpreading is the id the entry had, in legacy, if a store
// that did not spread referrals stored it: the same names, no partition.
func (m *messageContext) entryIDBeforeSpreading(fullURL string) string {
	return gateway.DerivedID(m.client, fullURL)
}

// keyBeforeSpreading is the key that files an entry of type typ under its
// referral if a store that did not spread referrals stored it
// (gateway.SupportingKey of its id then): looked up, for an entry placed
// in a numbered partition, to find another referral's use of its fullUrl.
func (m *messageContext) keyBeforeSpreading(typ, fullURL string) string {
	return gateway.SupportingKey(typ + "/" + m.entryIDBeforeSpreading(fullURL))
}

// entryRefs are the references the supporting entries resolve to, by fullUrl.
func (m *messageContext) entryRefs() map[string]string {
	refs := make(map[string]string, len(m.referral.Supporting))
	for _, e := range m.referral.Supporting {
		refs[e.FullURL] = m.referral.Entries[e.FullURL] + "/" + m.entryID(e.FullURL)
	}
	return refs
}

// readSupporting reads the versions the supporting entries would replace:
// when the message, or the referral it is about, was received before
// (looking, an update, or a referral resolved to the one held). A new
// message's first attempt does not look: its writes expect no resource,
// and the commit refuses one that exists, sending the plan round again.
func (s *Service) readSupporting(ctx context.Context, reqs []*Request, looking bool) error {
	var refs []string
	for _, r := range reqs {
		if r.message != nil && r.Type == gateway.TypeServiceRequest && (r.Method == "PUT" || r.existing != nil) {
			looking = true
		}
		if r.isSupporting() {
			refs = append(refs, r.Type+"/"+r.message.entryID(r.FullURL))
		}
	}
	if !looking || len(refs) == 0 {
		return nil
	}
	held, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return err
	}
	byRef := make(map[string]*gateway.Resource, len(held))
	for _, h := range held {
		byRef[h.Ref()] = h
	}
	for _, r := range reqs {
		if r.isSupporting() {
			r.current = byRef[r.Type+"/"+r.message.entryID(r.FullURL)]
		}
	}
	return nil
}

// destinationProvider is the provider serving the first destination that
// names a configured service.
func (s *Service) destinationProvider(ds []MessageDestination) (*gateway.Provider, error) {
	for _, d := range ds {
		if p, ok := s.Router().ForService(d.Endpoint); ok {
			return p, nil
		}
	}
	expr := "MessageHeader.destination"
	if len(ds) > 0 {
		expr = ds[0].Expr
	}
	return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueNotSupported, expr,
		"no provider in this Signpost deployment serves the message's destination endpoint; a destination must name a configured service (providers[].services)")
}

// isMessageEntry reports whether a reference names an entry of the message
// a request came from.
func (r *Request) isMessageEntry(ref string) bool {
	return r.message != nil && r.message.referral.Entries[ref] != ""
}

// messageCategory is the category of a referral received as a message.
// The sender chose the service (the destination), so the provider is
// decided; a code, when the ServiceRequest has one, is categorised by the
// code table as for any referral, and a referral with none (BaRS does not
// require one) takes the provider's first category: what the provider is
// configured for first.
func (m *messageContext) category(s *Service, sr *gateway.ReferralView) (*gateway.Routing, error) {
	if sr.Code != nil && len(sr.Code.Coding) > 0 {
		category, err := gateway.Categorise(s.Codes, sr.Code, s.TriageUnmapped)
		if err != nil {
			return nil, err
		}
		return &gateway.Routing{Category: category, Provider: m.provider}, nil
	}
	category := mappings.TriageCategory
	if len(m.provider.Categories) > 0 {
		category = m.provider.Categories[0]
	}
	return &gateway.Routing{Category: category, Provider: m.provider}, nil
}

// resolveMessageRepeat makes a message received again the referral it
// made (lookKeys: as resolveRepeat, only once a commit found a key held): when its ServiceRequest resolved to the stored one, its Patient
// entry is the Patient that referral is for, not a second Patient.
func (s *Service) resolveMessageRepeat(ctx context.Context, caller gateway.Caller, reqs []*Request, lookKeys bool) error {
	var held *gateway.Resource
	for _, r := range reqs {
		if r.message == nil || r.Type != gateway.TypeServiceRequest {
			continue
		}
		// An update or delete looks before planning: unchanged, it would
		// plan no write, and no commit would find its keys held.
		if lookKeys || r.Method == "PUT" {
			if err := s.resolveMessageKeys(ctx, caller, r); err != nil {
				return err
			}
		}
		held = r.existing
		r.message.again = held != nil
	}
	if held == nil {
		return nil
	}
	obj, err := s.parser.ParseRaw(held.Body, gateway.TypeServiceRequest)
	if err != nil {
		return err
	}
	view, err := gateway.ReadReferral(obj)
	if err != nil {
		return err
	}
	ref := ""
	if view.Subject.Reference != nil {
		ref = *view.Subject.Reference
	}
	for _, r := range reqs {
		if r.message == nil || r.Type != gateway.TypePatient || r.existing != nil {
			continue
		}
		id, ok := strings.CutPrefix(s.LocalRef(ref), gateway.TypePatient+"/")
		if !ok {
			continue // the referral was for an NHS number alone: the Patient entry is stored as sent
		}
		key, err := s.PatientKeyFor(ctx, caller, id)
		if err != nil {
			return err
		}
		if err := s.resolveTo(ctx, r, gateway.TypePatient, key); err != nil {
			return err
		}
		// The subject was compared as the stored Patient: this one must say the same.
		if err := repeatDiffers(r, r.existing, "the Patient of the referral this message repeats", false); err != nil {
			return r.locate(err)
		}
	}
	return nil
}

// messageSubject names the element a repeated message's ServiceRequest may
// differ in from the stored one: its subject, a reference to the message's
// Patient entry that was rewritten to the stored Patient (resolveMessageRepeat
// compares the Patients themselves).
func (r *Request) messageSubject() []string {
	if r.message == nil {
		return nil
	}
	return []string{"subject"}
}

// resolveMessageKeys answers a message whose request id was used before
// (409 duplicate: BaRS senders do not retry it) and resolves a message
// received before to the referral it made. The keys it may need are read
// in one round trip (Store.LookupMany), each answered in that order.
func (s *Service) resolveMessageKeys(ctx context.Context, caller gateway.Caller, r *Request) error {
	m := r.message.referral
	var keys []string
	if m.RequestID != "" {
		keys = append(keys, gateway.MessageRequestKey(caller, m.RequestID))
	}
	if r.existing == nil { // else its business identifier named a referral already
		keys = append(keys, gateway.MessageKey(caller, m.MessageID))
		if r.Method == "POST" {
			keys = append(keys, gateway.MessageFocusKey(caller, r.FullURL))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	holders, err := s.Store.LookupMany(ctx, keys)
	if err != nil {
		return err
	}
	if m.RequestID != "" {
		if holders[0] != "" {
			return gateway.NewError(gateway.KindDuplicate, fhir.IssueDuplicate, "",
				"this X-Request-Id was used by an earlier request, which was processed; a new request needs a new X-Request-Id")
		}
		holders = holders[1:]
	}
	if r.existing != nil {
		return nil
	}
	what := "the referral of the message with this id"
	holder := holders[0]
	if holder == "" && r.Method == "POST" {
		// The same ServiceRequest (its entry's fullUrl) in another new
		// message is the referral it made, as the same business identifier is.
		what = "the referral of the message's ServiceRequest (its entry's fullUrl)"
		holder = holders[1]
	}
	if holder == "" {
		return nil
	}
	held, err := s.heldMessageChange(ctx, holder)
	if err != nil {
		return err
	}
	r.existing = held
	if r.Method == "PUT" {
		what = "the change the message with this id made"
	}
	// The subject was rewritten to the stored Patient; anything else that
	// differs is a different referral (or change) under a reused message id.
	return r.locate(repeatDiffers(r, r.existing, what, false, r.messageSubject()...))
}

// messageRequester is the requester as conform.CheckRequester reads it: a
// reference to an entry of the message is read as a reference to that
// entry's resource type (a Practitioner or PractitionerRole of the sender
// is accepted as in any referral; anything else is refused).
func (r *Request) messageRequester(ref *models.Reference) *models.Reference {
	if ref == nil || ref.Reference == nil || !r.isMessageEntry(*ref.Reference) {
		return ref
	}
	typed := *ref
	local := r.message.referral.Entries[*ref.Reference] + "/message-entry"
	typed.Reference = &local
	return &typed
}

// isSupporting reports a supporting entry of a message (gateway.IsSupporting).
func (r *Request) isSupporting() bool {
	return r.message != nil && r.Type != gateway.TypePatient && gateway.IsSupporting(r.Type)
}

// planSupporting stores a supporting entry as it was received, its
// references to other entries resolved, under the message's referral: a
// provider sees it when it sees that referral (gateway.SupportingKey).
//
// An entry stored before (the same fullUrl from the same sender) is that
// resource: unchanged, nothing is written; changed by an update message,
// it gets a new version. Changed in a message received again, it is
// refused: the sender's late retry would otherwise undo what a later
// update changed (a Consent withdrawn since). One another referral came
// with is refused: the sender reused a fullUrl, and this referral does not
// change that one's.
func (s *Service) planSupporting(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	var p gateway.Problems
	conform.CheckBindings(&p, r.obj, r.Type)
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	referral := gateway.TypeServiceRequest + "/" + r.message.focus.id
	reused := gateway.NewError(gateway.KindConflict, fhir.IssueConflict, r.Type,
		"this entry's fullUrl names a %s that came with another referral of this sender; an entry's fullUrl is the identity of its resource, so a new resource needs a new fullUrl; nothing was changed", r.Type)
	version, expect := 1, 0
	if cur := r.current; cur != nil {
		held, err := pl.lookups.lookup(ctx, s.Store, gateway.SupportingKey(cur.Ref()))
		if err != nil {
			return nil, err
		}
		if held != referral {
			return nil, reused
		}
		if err := checkUnchanged(r, cur); err != nil {
			return nil, err
		}
		if r.message.again {
			return nil, gateway.NewError(gateway.KindConflict, fhir.IssueConflict, r.Type,
				"this message was received before (or repeats the referral another message made), and this entry differs from the %s held for it; a message sent again changes nothing it brought, so send a change as an update message; nothing was changed", r.Type)
		}
		version, expect = cur.Version+1, cur.Version
	} else if s.Spreads() {
		// Another referral's entry of this fullUrl is in that referral's
		// partition, under an id this one does not derive: found by its
		// identity, claimed beside it. One made before the store spread
		// has none (a store that does not spread claims none): it is in
		// legacy, under the id derived without a partition, filed under
		// its referral (both keys listed in plannedLookups, read in one
		// round trip).
		held, err := pl.lookups.lookup(ctx, s.Store, gateway.MessageEntryKey(pl.caller, r.FullURL))
		if err != nil {
			return nil, err
		}
		if held != "" && held != r.Type+"/"+r.id {
			return nil, reused
		}
		if held == "" && r.message.place != "" {
			owner, err := pl.lookups.lookup(ctx, s.Store, r.message.keyBeforeSpreading(r.Type, r.FullURL))
			if err != nil {
				return nil, err
			}
			if owner != "" && owner != referral {
				return nil, reused
			}
		}
	}
	// Stored, the entry is held to the rights a transaction entry storing
	// it needs (an unchanged one, returned above, stores nothing).
	if may := r.message.may; may != nil {
		if err := may(r.Type, version > 1); err != nil {
			return nil, err
		}
	}
	terms := []string{gateway.ReferralTerm(referral)}
	if r.Type == gateway.TypeConsent && r.current != nil {
		// Its update is held to what a GP system's PUT of it is: about
		// the same patient, and indexed so.
		if err := s.keepsItsPatient(r.current, consentPatient(r.obj.Bytes()), "send the other patient's Consent as an entry of its own (a new fullUrl)"); err != nil {
			return nil, err
		}
		var err error
		if terms, err = s.messageConsentTerms(ctx, r.current, referral, r.obj.Bytes()); err != nil {
			return nil, err
		}
	}
	body := r.obj.WithServerFields(r.id, strconv.Itoa(version), gateway.Instant(pl.stampOf(r)))
	out := pl.addWrite(r, body, version, expect, false, terms, p.Warnings)
	if version == 1 {
		pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.SupportingKey(out.Resource.Ref()), Value: referral})
		if s.Spreads() {
			pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: gateway.MessageEntryKey(pl.caller, r.FullURL), Value: out.Resource.Ref(), Of: referral})
		}
	}
	return out, nil
}
