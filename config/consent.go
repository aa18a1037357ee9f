package config

import (
	"fmt"
	"slices"
	"strings"
)

// ConsentPolicy says what must be on record before a referral's details
// leave Signpost for a provider.
type ConsentPolicy string

const (
	// ConsentUnset is a configuration that says nothing about consent: it
	// keeps the behaviour from before consent was checked (every referral
	// is sent), and serve warns about each provider outside the NHS.
	ConsentUnset ConsentPolicy = ""
	// ConsentRequired sends a referral only with a Consent resource
	// permitting disclosure to the provider.
	ConsentRequired ConsentPolicy = "required"
	// ConsentAttested also accepts the referrer's coded attestation (a
	// code of the consent table in the referral) instead of a Consent.
	ConsentAttested ConsentPolicy = "attested"
	// ConsentNotRequired sends every referral: only for providers inside
	// the NHS, to whom a GP refers for direct care.
	ConsentNotRequired ConsentPolicy = "not-required"
)

// ShareProfile is a named set of elements a provider may see of the
// referrals it receives (minimum necessary); see ShareableElement.
type ShareProfile struct {
	Name     string
	Elements []string
}

// shareableElements are what a share profile may name: an element of the
// Patient or the ServiceRequest (bare, meaning either resource's element of
// that name, or qualified with its type), or a supporting resource type,
// shared whole. Elements a referral cannot be read without (a
// ServiceRequest's status, intent, subject and code, any resource's id and
// meta) are always kept and need no naming.
var shareableElements = map[string][]string{
	"Patient": {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address", "maritalStatus",
		"multipleBirth", "photo", "contact", "communication", "generalPractitioner", "managingOrganization", "link", "extension", "text"},
	"ServiceRequest": {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces", "requisition", "category",
		"doNotPerform", "orderDetail", "quantity", "encounter", "occurrence", "asNeeded", "performerType", "locationCode",
		"locationReference", "reasonCode", "reasonReference", "insurance", "supportingInfo", "specimen", "bodySite", "note",
		"patientInstruction", "relevantHistory", "extension", "text"},
}

// ShareableTypes are the supporting resource types a referral message may
// bring (gateway.SupportingTypes, kept the same by a test there), which a
// profile shares whole by naming the type.
var ShareableTypes = []string{
	"AllergyIntolerance", "CarePlan", "Condition", "Consent", "Encounter", "Flag", "HealthcareService",
	"Location", "MedicationStatement", "Observation", "Organization", "Practitioner", "PractitionerRole",
	"QuestionnaireResponse",
}

// ShareableElement reports whether a share profile may name el.
func ShareableElement(el string) bool {
	if typ, name, ok := strings.Cut(el, "."); ok {
		return slices.Contains(shareableElements[typ], name)
	}
	if slices.Contains(ShareableTypes, el) {
		return true
	}
	return slices.Contains(shareableElements["Patient"], el) || slices.Contains(shareableElements["ServiceRequest"], el)
}

// Profile finds a share profile by name.
func (c Config) Profile(name string) (ShareProfile, bool) {
	i := slices.IndexFunc(c.ShareProfiles, func(p ShareProfile) bool { return p.Name == name })
	if i < 0 {
		return ShareProfile{}, false
	}
	return c.ShareProfiles[i], true
}

// ProviderConsent is the consent policy that applies to a provider: its
// own, else the deployment's.
func (c Config) ProviderConsent(p Provider) ConsentPolicy {
	if p.Consent != ConsentUnset {
		return p.Consent
	}
	return c.Consent
}

// UncheckedProviders are the providers outside the NHS whose referrals are
// sent with no consent checked, because neither they nor the deployment
// say consent: (serve warns about them).
func (c Config) UncheckedProviders() []string {
	var ids []string
	for _, p := range c.Providers {
		if !p.NHS && c.ProviderConsent(p) == ConsentUnset {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// consent checks the consent and share settings.
func (v *validator) consent(c Config) {
	policy := func(field string, p ConsentPolicy) bool {
		switch p {
		case ConsentUnset, ConsentRequired, ConsentAttested, ConsentNotRequired:
			return true
		}
		v.add(field, "%q is not one of required, attested, not-required", p)
		return false
	}
	policy("consent", c.Consent)
	names := map[string]bool{}
	for _, sp := range c.ShareProfiles {
		field := fmt.Sprintf("share_profiles.%s", sp.Name)
		if !reID.MatchString(sp.Name) {
			v.add(field, "%q is not a usable profile name (%s)", sp.Name, idRuleReason)
		}
		names[sp.Name] = true
		if len(sp.Elements) == 0 {
			v.add(field, "lists no elements: a profile shares at least one (the referral's status, code and subject are always kept)")
		}
		seen := map[string]bool{}
		for j, el := range sp.Elements {
			switch {
			case !ShareableElement(el):
				v.add(fmt.Sprintf("%s[%d]", field, j), "%q is not an element a profile can share: name a Patient or ServiceRequest element (name, telecom, address, birthDate, identifier, reasonCode, note, …; Patient.identifier to be precise) or a supporting resource type (Condition, Consent, …)", el)
			case seen[el]:
				v.add(fmt.Sprintf("%s[%d]", field, j), "%q is listed twice", el)
			}
			seen[el] = true
		}
	}
	for i, p := range c.Providers {
		prefix := fmt.Sprintf("providers[%d]", i)
		if !policy(prefix+".consent", p.Consent) {
			continue
		}
		if c.ProviderConsent(p) == ConsentNotRequired && !p.NHS {
			field := prefix + ".consent"
			if p.Consent == ConsentUnset {
				field = "consent"
			}
			v.add(field, "not-required applies only to providers inside the NHS (nhs: true); %s is not marked so: its referrals need consent (required or attested)", p.ID)
		}
		if p.Share != "" && !names[p.Share] {
			v.add(prefix+".share", "%q is not a profile under share_profiles", p.Share)
		}
	}
}
