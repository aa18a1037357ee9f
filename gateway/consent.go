package gateway

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/mappings"
)

// A social prescribing referral sends a person's details from their GP
// record to an organisation outside the NHS, so nothing is sent to a
// provider without the consent its deployment asks for, and a consent
// withdrawn takes the referral back out of the provider's sight. The rules
// are here, as data the use cases act on: what a Consent says
// (ReadConsent), whether the consents and attestation of a referral let it
// go to a provider (DecideConsent), and how a referral held or withdrawn is
// marked on its Task so that no provider finds it (the withheld tag, which
// TaskTerms indexes apart from the owner).

// ConsentPolicy is what a provider needs on record before a referral's
// details are sent to it.
type ConsentPolicy string

const (
	// ConsentUnset checks nothing before sending (deployments that set no
	// policy), though a withdrawal or refusal is still honoured.
	ConsentUnset ConsentPolicy = ""
	// ConsentRequired needs an active Consent permitting disclosure to the
	// provider: sent with the referral, or held for the patient.
	ConsentRequired ConsentPolicy = "required"
	// ConsentAttested also accepts the referrer's coded attestation in the
	// referral (ServiceRequest.orderDetail, a code of the consent table).
	ConsentAttested ConsentPolicy = "attested"
	// ConsentNotRequired sends every referral: providers inside the NHS.
	ConsentNotRequired ConsentPolicy = "not-required"
)

// ConsentReasonSystem codes why Signpost holds or withdrew a referral
// (Task.statusReason): Signpost's own code system, as there is no national
// code for these steps.
const ConsentReasonSystem = "https://signpost.health/fhir/CodeSystem/consent-hold-reason"

// Why a referral is held or was withdrawn.
const (
	// ReasonAwaitingConsent: no consent its provider needs is on record.
	ReasonAwaitingConsent = "awaiting-consent"
	// ReasonConsentRefused: the patient refused (a Consent that denies, or
	// the referrer's coded attestation of a refusal).
	ReasonConsentRefused = "consent-refused"
	// ReasonConsentWithdrawn: the consent the referral went out under was
	// withdrawn (its Consent made inactive or rejected, or the referrer
	// cancelled the referral citing it).
	ReasonConsentWithdrawn = "consent-withdrawn"
)

var reasonDisplay = map[string]string{
	ReasonAwaitingConsent:  "Held: no consent to share with the provider is on record",
	ReasonConsentRefused:   "Held: the patient refused consent to share with the provider",
	ReasonConsentWithdrawn: "Withdrawn: the patient withdrew consent to share with the provider",
}

// ReasonDisplay is the words for a hold or withdrawal reason.
func ReasonDisplay(code string) string { return reasonDisplay[code] }

// DisclosureTagSystem tags (meta.tag) a referral Task whose referral must
// not be seen by its provider: held for consent, or withdrawn. TaskTerms
// indexes such a Task apart from its owner, so every path a provider reads
// by (searches, reads, the inbox, Patients and supporting resources reached
// through the Task) leaves it out.
const DisclosureTagSystem = "https://signpost.health/fhir/CodeSystem/referral-disclosure"

// TagWithheld is the code of the tag.
const TagWithheld = "withheld"

// WithheldOwnerTerm indexes a withheld Task under its provider without
// making it the provider's (OwnerTerm).
func WithheldOwnerTerm(ownerRef string) string { return Term("_withheld", ownerRef) }

// Withheld reports whether a Task's body carries the withheld tag.
func Withheld(body []byte) bool {
	// Most Tasks are not: the tag's system is not in their bytes at all.
	if !bytes.Contains(body, []byte(DisclosureTagSystem)) {
		return false
	}
	var t struct {
		Meta struct {
			Tag []struct{ System, Code string } `json:"tag"`
		} `json:"meta"`
	}
	_ = json.Unmarshal(body, &t)
	return slices.ContainsFunc(t.Meta.Tag, func(c struct{ System, Code string }) bool { return isWithheldTag(c.System, c.Code) })
}

// isWithheldTag reports whether a meta.tag is the withheld tag.
func isWithheldTag(system, code string) bool {
	return system == DisclosureTagSystem && code == TagWithheld
}

// WithWithheld returns a resource body with the withheld tag set or
// cleared, its other meta kept.
func WithWithheld(body []byte, on bool) []byte {
	obj, err := fhir.ParseResource(body, fhir.ParseOptions{})
	if err != nil {
		return body
	}
	meta := map[string]any{}
	if raw, ok := obj.Member("meta"); ok {
		_ = json.Unmarshal(raw, &meta)
	}
	var tags []any
	if old, ok := meta["tag"].([]any); ok {
		for _, t := range old {
			if m, ok := t.(map[string]any); ok && m["system"] == DisclosureTagSystem {
				continue
			}
			tags = append(tags, t)
		}
	}
	if on {
		tags = append(tags, map[string]string{"system": DisclosureTagSystem, "code": TagWithheld,
			"display": "Withheld from the provider"})
	}
	if len(tags) > 0 {
		meta["tag"] = tags
	} else {
		delete(meta, "tag")
	}
	if len(meta) == 0 {
		return fhir.WithoutMember(body, "meta")
	}
	return fhir.ReplaceMembers(body, map[string]any{"meta": meta})
}

// HoldReason is a Task.statusReason of a hold or withdrawal: coded, with
// the words the GP reads.
func HoldReason(code, text string) map[string]any {
	return map[string]any{"coding": []map[string]string{{"system": ConsentReasonSystem, "code": code, "display": reasonDisplay[code]}}, "text": text}
}

// ConsentRecord is what Signpost reads from a Consent.
type ConsentRecord struct {
	Ref    string // "Consent/id"
	Status string
	// Deny is a provision of type deny: the patient refused.
	Deny bool
	// Actors are the organisations the provision names, if any.
	Actors []models.Reference
	// WithReferral marks a Consent that came with the referral (in its
	// transaction or message): one that names no actor is consent for that
	// referral, to the provider it is sent to.
	WithReferral bool
	// OtherScope marks a Consent that is not a privacy consent (scope
	// patient-privacy): it says nothing about sharing the patient's details.
	OtherScope bool
	// NotInForce marks a Consent that does not apply now: its provision's
	// period has not begun or has ended, it was given in the future, or its
	// provision's actions do not include disclosure.
	NotInForce bool
	// Exceptions are the nested provisions in force (provision.provision,
	// at any depth, outermost first): each permits or denies for the
	// organisations it names, or for everyone the Consent is about when it
	// names none.
	Exceptions []ConsentRule
	// Conflicting marks a Consent whose patient is the referral's by one
	// name and someone else's by the other (ConflictingPatient): it may
	// refuse or withdraw, but what it permits does not send the referral.
	Conflicting bool
}

// ConsentRule is a nested provision of a Consent.
type ConsentRule struct {
	Deny   bool
	Actors []models.Reference
}

// Consent codes Signpost reads (R4 terminology).
const (
	ConsentScopeSystem  = "http://terminology.hl7.org/CodeSystem/consentscope"
	ConsentScopePrivacy = "patient-privacy"
	consentActionSystem = "http://terminology.hl7.org/CodeSystem/consentaction"
	// maxProvisionDepth bounds how deep nested provisions are read: a
	// Consent is client input.
	maxProvisionDepth = 8
)

// consentProvision is R4's Consent.provision, as much of it as Signpost
// reads.
type consentProvision struct {
	Type   string `json:"type"`
	Period *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"period"`
	Actor []struct {
		Reference models.Reference `json:"reference"`
	} `json:"actor"`
	Action []struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"action"`
	Provision []consentProvision `json:"provision"`
}

// inForce reports whether a provision applies at now: its period covers
// it, and it is about disclosure (no action named, or "disclose").
func (p *consentProvision) inForce(now time.Time) bool {
	if p.Period != nil {
		if start, ok := fhirTimeBounds(p.Period.Start, false); ok && now.Before(start) {
			return false
		}
		if end, ok := fhirTimeBounds(p.Period.End, true); ok && now.After(end) {
			return false
		}
	}
	if len(p.Action) == 0 {
		return true
	}
	return slices.ContainsFunc(p.Action, func(a struct {
		Coding []struct{ System, Code string } `json:"coding"`
	}) bool {
		return slices.ContainsFunc(a.Coding, func(c struct{ System, Code string }) bool {
			return c.System == consentActionSystem && c.Code == "disclose"
		})
	})
}

// fhirTimeBounds reads an R4 date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD,
// or a full dateTime) as the first instant it covers, or with last the
// last. ok is false for "" or what does not parse.
func fhirTimeBounds(v string, last bool) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	for _, l := range []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	} {
		if t, err := time.Parse(l.layout, v); err == nil {
			if last {
				// A date is a local day: allow for the furthest time zone.
				return l.step(t).Add(14 * time.Hour), true
			}
			return t.Add(-14 * time.Hour), true
		}
	}
	return time.Time{}, false
}

// ReadConsent reads a stored Consent's record as it stands at now; base is
// Signpost's FHIR base, which references to organisations may be made
// absolute against.
func ReadConsent(r *Resource, withReferral bool, now time.Time, base string) *ConsentRecord {
	var c struct {
		Status string `json:"status"`
		Scope  struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"scope"`
		DateTime  string            `json:"dateTime"`
		Provision *consentProvision `json:"provision"`
	}
	_ = json.Unmarshal(r.Body, &c)
	rec := &ConsentRecord{Ref: r.Ref(), Status: c.Status, WithReferral: withReferral}
	rec.OtherScope = !slices.ContainsFunc(c.Scope.Coding, func(cd struct{ System, Code string }) bool {
		return cd.System == ConsentScopeSystem && cd.Code == ConsentScopePrivacy
	})
	if given, ok := fhirTimeBounds(c.DateTime, false); ok && given.After(now) {
		rec.NotInForce = true
	}
	p := c.Provision
	if p == nil {
		// No provision: the Consent is an agreement (R4: a provision's type
		// is a permit or a deny of what the policy says), so it permits.
		return rec
	}
	rec.Deny = p.Type == "deny"
	rec.NotInForce = rec.NotInForce || !p.inForce(now)
	for _, a := range p.Actor {
		rec.Actors = append(rec.Actors, a.Reference)
	}
	local := func(ref models.Reference) models.Reference {
		if ref.Reference != nil && base != "" {
			if rest, ok := strings.CutPrefix(*ref.Reference, base+"/"); ok {
				ref.Reference = &rest
			}
		}
		return ref
	}
	for i := range rec.Actors {
		rec.Actors[i] = local(rec.Actors[i])
	}
	var nested func(ps []consentProvision, depth int)
	nested = func(ps []consentProvision, depth int) {
		if depth > maxProvisionDepth {
			return
		}
		for i := range ps {
			n := &ps[i]
			if n.Type != "deny" && n.Type != "permit" || !n.inForce(now) {
				continue
			}
			rule := ConsentRule{Deny: n.Type == "deny"}
			for _, a := range n.Actor {
				rule.Actors = append(rule.Actors, local(a.Reference))
			}
			rec.Exceptions = append(rec.Exceptions, rule)
			nested(n.Provision, depth+1)
		}
	}
	nested(p.Provision, 1)
	return rec
}

// About reports whether the Consent is about disclosure to p: it names p
// among its provision's actors (by reference Organization/{provider id} or
// by the provider's ODS identifier), or, naming none, it refuses (a
// refusal to share with anyone) or came with the referral being sent to p.
func (c *ConsentRecord) About(p *Provider) bool {
	if len(c.Actors) == 0 {
		return c.Deny || c.WithReferral
	}
	return names(c.Actors, p)
}

// names reports whether actors name p.
func names(actors []models.Reference, p *Provider) bool {
	for _, a := range actors {
		// Literal references are read relative to Signpost's base (ReadConsent
		// with base): an absolute URL elsewhere names another server's
		// Organization, whatever its id.
		if a.Reference != nil && *a.Reference == TypeOrganization+"/"+p.ID {
			return true
		}
		if id := a.Identifier; id != nil && id.System != nil && id.Value != nil && p.Organization.Value != "" &&
			*id.System == p.Organization.System && *id.Value == p.Organization.Value {
			return true
		}
	}
	return false
}

// denies reports, for an active Consent in force, whether it applies to p
// and then whether it denies: its provision, then each nested provision
// that names p (or names no one, applying as its parent does) in turn.
func (c *ConsentRecord) denies(p *Provider) (applies, deny bool) {
	applies, deny = c.About(p), c.Deny
	for _, r := range c.Exceptions {
		if len(r.Actors) == 0 && applies || names(r.Actors, p) {
			applies, deny = true, r.Deny
		}
	}
	return applies, deny
}

// ConsentDecision is whether a referral may go to a provider.
type ConsentDecision int

const (
	// ConsentPermits: send it.
	ConsentPermits ConsentDecision = iota
	// ConsentMissing: nothing the provider needs is on record; hold it.
	ConsentMissing
	// ConsentRefusedByPatient: a Consent denies it, or the referrer attests a refusal.
	ConsentRefusedByPatient
	// ConsentWithdrawnByPatient: the consent about this provider is no
	// longer active (inactive, rejected, entered in error) and none other is.
	ConsentWithdrawnByPatient
)

// DecideConsent applies a provider's policy to the consents on record for
// a referral and the referrer's attestation (mappings.ConsentGiven,
// ConsentRefused or "").
func DecideConsent(policy ConsentPolicy, p *Provider, consents []*ConsentRecord, attestation string) ConsentDecision {
	if policy == ConsentNotRequired {
		return ConsentPermits
	}
	permit, deny, stopped := false, false, false
	for _, c := range consents {
		if c.OtherScope {
			continue // not about sharing the patient's details
		}
		switch c.Status {
		case "active":
			if c.NotInForce {
				continue
			}
			if applies, d := c.denies(p); applies && d {
				deny = true
			} else if applies && !c.Conflicting {
				permit = true
			}
		case "inactive", "rejected", "entered-in-error":
			// Entered in error: the consent a referral may have gone out
			// under was never given, which stops it as a withdrawal does.
			// A refusal made inactive stops nothing.
			if !c.Deny && c.About(p) {
				stopped = true
			}
		}
	}
	switch {
	case deny:
		return ConsentRefusedByPatient
	case permit:
		return ConsentPermits
	case attestation == mappings.ConsentRefused:
		return ConsentRefusedByPatient
	case policy == ConsentAttested && attestation == mappings.ConsentGiven:
		return ConsentPermits
	case stopped:
		return ConsentWithdrawnByPatient
	case policy == ConsentUnset:
		return ConsentPermits
	}
	return ConsentMissing
}

// Attestation is what the referrer's coded attestation in a referral says
// (ServiceRequest.orderDetail codings found in the consent table): refused
// wins over given, "" when there is none.
func Attestation(codes *mappings.ConsentTable, srBody []byte) string {
	if !bytes.Contains(srBody, []byte(`"orderDetail"`)) {
		return ""
	}
	var sr struct {
		OrderDetail []struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"orderDetail"`
	}
	_ = json.Unmarshal(srBody, &sr)
	got := ""
	for _, od := range sr.OrderDetail {
		for _, c := range od.Coding {
			switch codes.Lookup(c.System, c.Code) {
			case mappings.ConsentRefused:
				return mappings.ConsentRefused
			case mappings.ConsentGiven:
				got = mappings.ConsentGiven
			}
		}
	}
	return got
}

// PatientTerms are the index terms a reference to a patient is found by
// under param ("subject" for Tasks, "patient" for Consents): its reference
// and its identifier, either of which may match.
func PatientRefTerms(param string, ref *models.Reference, base string) []string {
	// A reference to a contained Patient ("#p") is the same in every
	// resource that has one: indexed or searched, it would make every such
	// Consent or referral of a client a candidate for every other.
	return referenceTerms(nil, param, withoutContained(ref), base)
}

// ConsentPatientTerm is the index entry a Consent naming the Patient ref
// ("Patient/x") has (ConsentTerms): what retention counts before it lets
// a Patient go.
func ConsentPatientTerm(ref string) string { return Term("patient", ref) }

// ConsentTerms index a Consent a GP system holds for a patient.
func ConsentTerms(status string, patient *models.Reference, base string) []string {
	return dedupe(append([]string{StatusTerm(status)}, PatientRefTerms("patient", patient, base)...))
}

// PatientMatch is how the patient a Consent names compares with the
// subject of a referral: a Consent names its patient by reference, by
// identifier (the NHS number) or both, and a referral its subject likewise,
// either of which finds the other (PatientRefTerms).
type PatientMatch int

const (
	// OtherPatient: they share neither a reference nor an identifier.
	OtherPatient PatientMatch = iota
	// SamePatient: they share one, and nothing says they are different
	// people.
	SamePatient
	// ConflictingPatient: they share one, but which person is meant cannot
	// be told: the other name is someone else's (references to different
	// Patients, or different values of one identifier system), or one side
	// names two people itself (its reference points at a Patient kept here
	// with another value of its identifier's system), or one side names a
	// kept Patient by reference and an identifier the Patient does not show
	// (it keeps none of that system) and the other side does not name both
	// alike. Such a Consent may stop the referral (a refusal or withdrawal
	// is honoured) but never sends it (ConsentRecord.Conflicting).
	ConflictingPatient
)

// NamedPatient is a reference to a patient (a Consent's patient, a
// referral's subject) with what Signpost keeps of the Patient its local
// reference points at, read when the referral is decided: a Patient may
// gain or change its NHS number after either was sent.
type NamedPatient struct {
	Ref *models.Reference
	// Kept: the local reference points at a Patient kept here, whose
	// identifiers are Identifiers.
	Kept        bool
	Identifiers []Identifier
}

// MatchPatient compares the patient a Consent names with a referral's
// subject; base is Signpost's FHIR base, as for PatientRefTerms. A
// reference to a contained resource ("#p") names no one beyond the
// resource it is in.
func MatchPatient(consent, subject NamedPatient, base string) PatientMatch {
	c, r := withoutContained(consent.Ref), withoutContained(subject.Ref)
	a, b := PatientRefTerms("patient", c, base), PatientRefTerms("patient", r, base)
	if !slices.ContainsFunc(a, func(t string) bool { return slices.Contains(b, t) }) {
		return OtherPatient
	}
	cRef, rRef := referenceTerm(c, base), referenceTerm(r, base)
	if refersElsewhere(cRef, rRef) || identifiesElsewhere(c.Identifier, r.Identifier) ||
		!onePerson(consent, cRef, c.Identifier, rRef, r.Identifier) || !onePerson(subject, rRef, r.Identifier, cRef, c.Identifier) {
		return ConflictingPatient
	}
	return SamePatient
}

// onePerson reports whether a side's two names (ref: its reference's term,
// id: its identifier) can be taken for one person, given the other side's.
// A local reference may be all the other side names its patient by, so a
// local reference with an identifier must be shown to be one person by the
// Patient kept here: it holds the identifier (yes), or another of its
// system (no); holding none of its system, only an other side naming both
// alike is taken for it. A reference to a Patient not kept here names no
// referral here, and another server's reference names none on its own (a
// referral naming one gives an NHS number too, compared by MatchPatient).
func onePerson(side NamedPatient, ref string, id *models.Identifier, otherRef string, otherID *models.Identifier) bool {
	name, ok := nameOf(id)
	if !ok || ref == "" || strings.Contains(ref, ":") || !side.Kept {
		return true
	}
	if slices.Contains(side.Identifiers, name) {
		return true
	}
	if slices.ContainsFunc(side.Identifiers, func(k Identifier) bool { return k.System == name.System }) {
		return false
	}
	other, ok := nameOf(otherID)
	return ok && otherRef == ref && other == name
}

// nameOf is an identifier as its system ("" for none) and value; false for
// one without a value.
func nameOf(id *models.Identifier) (Identifier, bool) {
	if id == nil || id.Value == nil || *id.Value == "" {
		return Identifier{}, false
	}
	name := Identifier{Value: *id.Value}
	if id.System != nil {
		name.System = *id.System
	}
	return name, true
}

// withoutContained is a reference without a reference to a contained
// resource, which is the same string in every resource that has one.
func withoutContained(r *models.Reference) *models.Reference {
	if r == nil || r.Reference == nil || !strings.HasPrefix(*r.Reference, "#") {
		return r
	}
	return &models.Reference{Identifier: r.Identifier}
}

// referenceTerm is the term a reference (not its identifier) is indexed by.
func referenceTerm(r *models.Reference, base string) string {
	if r == nil || r.Reference == nil {
		return ""
	}
	if t := PatientRefTerms("patient", &models.Reference{Reference: r.Reference}, base); len(t) > 0 {
		return t[0]
	}
	return ""
}

// refersElsewhere reports whether two references' terms name different
// resources. A relative reference and an absolute one are not compared,
// nor two absolute ones: either may be another server's name for the same
// Patient.
func refersElsewhere(x, y string) bool {
	return x != "" && y != "" && x != y && !strings.Contains(x, "://") && !strings.Contains(y, "://")
}

// identifiesElsewhere reports whether two identifiers of one system have
// different values.
func identifiesElsewhere(a, b *models.Identifier) bool {
	x, okX := nameOf(a)
	y, okY := nameOf(b)
	return okX && okY && x.System != "" && x.System == y.System && x.Value != y.Value
}
