package gateway

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

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
	return slices.ContainsFunc(t.Meta.Tag, func(c struct{ System, Code string }) bool {
		return c.System == DisclosureTagSystem && c.Code == TagWithheld
	})
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
}

// ReadConsent reads a stored Consent's record.
func ReadConsent(r *Resource, withReferral bool) *ConsentRecord {
	var c struct {
		Status    string `json:"status"`
		Provision *struct {
			Type  string `json:"type"`
			Actor []struct {
				Reference models.Reference `json:"reference"`
			} `json:"actor"`
		} `json:"provision"`
	}
	_ = json.Unmarshal(r.Body, &c)
	rec := &ConsentRecord{Ref: r.Ref(), Status: c.Status, WithReferral: withReferral}
	if p := c.Provision; p != nil {
		rec.Deny = p.Type == "deny"
		for _, a := range p.Actor {
			rec.Actors = append(rec.Actors, a.Reference)
		}
	}
	return rec
}

// About reports whether the Consent is about disclosure to p: it names p
// among its provision's actors (by reference Organization/{provider id} or
// by the provider's ODS identifier), or, naming none, it came with the
// referral being sent to p.
func (c *ConsentRecord) About(p *Provider) bool {
	if len(c.Actors) == 0 {
		return c.WithReferral
	}
	for _, a := range c.Actors {
		if a.Reference != nil {
			ref := *a.Reference
			if ref == TypeOrganization+"/"+p.ID || strings.HasSuffix(ref, "/"+TypeOrganization+"/"+p.ID) {
				return true
			}
		}
		if id := a.Identifier; id != nil && id.System != nil && id.Value != nil && p.Organization.Value != "" &&
			*id.System == p.Organization.System && *id.Value == p.Organization.Value {
			return true
		}
	}
	return false
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
	// longer active (inactive, rejected) and none other is.
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
		if !c.About(p) {
			continue
		}
		switch {
		case c.Status == "active" && c.Deny:
			deny = true
		case c.Status == "active":
			permit = true
		case c.Status == "inactive" || c.Status == "rejected":
			stopped = true
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
	return referenceTerms(nil, param, ref, base)
}

// ConsentTerms index a Consent a GP system holds for a patient.
func ConsentTerms(status string, patient *models.Reference, base string) []string {
	return dedupe(append([]string{StatusTerm(status)}, PatientRefTerms("patient", patient, base)...))
}
