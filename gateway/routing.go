package gateway

import (
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/mappings"
)

// Provider is a voluntary and community sector organisation that receives
// referrals for the categories it serves.
type Provider struct {
	ID           string
	Name         string
	Organization Identifier
	Categories   []string
	// Services are the BaRS destination endpoints (MessageHeader.destination
	// endpoint, e.g. a DoS service id "http://fhir.nhs.uk/Id/dos-service-id|111111111")
	// whose messages go to this provider.
	Services []string
	// Consent is what must be on record before a referral's details are
	// sent to the provider.
	Consent ConsentPolicy
	// Share, when set, limits what the provider sees of a referral
	// (minimum necessary); nil: everything the GP sent.
	Share *ShareProfile
}

// DisplayName is the name people read for the provider: its configured
// name, or its id when the configuration gives none. It is never empty: an
// empty display is invalid FHIR, and "delivered to " with nothing after it
// tells the GP nothing.
func (p *Provider) DisplayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// Reference is the Task.owner Signpost writes for the provider: a literal
// Reference by id for searches, and the ODS identifier so systems that do
// not know Signpost's ids can still tell who it is.
func (p *Provider) Reference() ProviderReference {
	r := ProviderReference{Display: p.DisplayName(), Reference: TypeOrganization + "/" + p.ID, Type: TypeOrganization}
	r.Identifier.System, r.Identifier.Value = p.Organization.System, p.Organization.Value
	return r
}

// ProviderReference is a Reference to a provider's Organization. Its fields
// are in the order encoding/json gave the map it replaced.
type ProviderReference struct {
	Display    string `json:"display"`
	Identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Reference string `json:"reference"`
	Type      string `json:"type"`
}

// Router chooses the provider of a referral. It is built once from the
// configuration and only read afterwards, so it needs no locking.
type Router struct {
	providers  []*Provider
	byCategory map[string][]*Provider
	byOrg      map[Identifier]*Provider
	byID       map[string]*Provider
	byService  map[string]*Provider
}

// NewRouter indexes providers. For a category served by several providers
// the first in configuration order is chosen, so routing is predictable and
// an operator decides precedence by ordering the file.
func NewRouter(providers []Provider) *Router {
	r := &Router{byCategory: map[string][]*Provider{}, byOrg: map[Identifier]*Provider{}, byID: map[string]*Provider{}, byService: map[string]*Provider{}}
	for i := range providers {
		p := &providers[i]
		r.providers = append(r.providers, p)
		r.byOrg[p.Organization] = p
		r.byID[p.ID] = p
		for _, c := range p.Categories {
			r.byCategory[c] = append(r.byCategory[c], p)
		}
		for _, sv := range p.Services {
			if _, taken := r.byService[sv]; !taken { // configuration refuses a service named twice
				r.byService[sv] = p
			}
		}
	}
	return r
}

// ForService returns the provider serving a BaRS destination endpoint.
func (r *Router) ForService(endpoint string) (*Provider, bool) {
	p, ok := r.byService[endpoint]
	return p, ok
}

// Provider returns a configured provider by id.
func (r *Router) Provider(id string) (*Provider, bool) {
	p, ok := r.byID[id]
	return p, ok
}

// ProviderFor returns the provider a reference names, by
// "Organization/<provider id>" or by its organisation identifier.
func (r *Router) ProviderFor(ref *models.Reference) (*Provider, bool) {
	if ref == nil {
		return nil, false
	}
	if ref.Identifier != nil && ref.Identifier.System != nil && ref.Identifier.Value != nil {
		if p, ok := r.byOrg[Identifier{*ref.Identifier.System, *ref.Identifier.Value}]; ok {
			return p, true
		}
	}
	if ref.Reference != nil {
		if id, ok := strings.CutPrefix(*ref.Reference, TypeOrganization+"/"); ok {
			if p, ok := r.byID[id]; ok {
				return p, true
			}
		}
	}
	return nil, false
}

// Route picks the provider for a category. A performer naming a configured
// provider wins over the category: the GP (or link worker) chose it. Other
// performers (a practitioner, an organisation Signpost does not serve) do not
// route and are kept in the stored request.
func (r *Router) Route(category string, performers []models.Reference) (*Provider, error) {
	for i := range performers {
		if p, ok := r.ProviderFor(&performers[i]); ok {
			return p, nil
		}
	}
	if ps := r.byCategory[category]; len(ps) > 0 {
		return ps[0], nil
	}
	return nil, NewError(KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.code",
		"no provider in this Signpost deployment takes referrals in the social prescribing category %q (%s); name a provider it serves in ServiceRequest.performer, or ask the deployment's operator to add the category to a provider",
		category, mappings.CategoryLabel(category))
}

// Categorise finds the social prescribing category of a referral code: the
// first coding the table knows wins. An unknown code is refused, or sent to
// the link worker for triage, as the deployment chooses.
func Categorise(codes *mappings.Table, code *models.CodeableConcept, triage bool) (string, error) {
	var tried []string
	if code != nil {
		for i, c := range code.Coding {
			if c.System == nil || c.Code == nil {
				continue
			}
			if *c.System == fhir.SNOMEDSystem {
				if err := mappings.ValidSCTID(*c.Code); err != nil {
					return "", NewError(KindInvalid, fhir.IssueCodeInvalid, "ServiceRequest.code.coding["+itoa(i)+"].code",
						"not a valid SNOMED CT identifier: %v", err)
				}
			}
			if e, ok := codes.Lookup(*c.System, *c.Code); ok {
				return e.Category, nil
			}
			tried = append(tried, *c.System+"|"+*c.Code)
		}
	}
	if triage {
		return mappings.TriageCategory, nil
	}
	if len(tried) == 0 {
		return "", NewError(KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.code.coding",
			"the referral has no coding with both system and code; a SNOMED CT code (system http://snomed.info/sct) decides where it goes")
	}
	return "", NewError(KindUnprocessable, fhir.IssueBusinessRule, "ServiceRequest.code.coding",
		"this Signpost deployment does not route referrals coded %s: the code is not in its social prescribing code table; use a code from the table, or ask the deployment's operator to add the code (or to send unknown codes to a link worker)",
		strings.Join(tried, ", "))
}

// ByOrganization lists the providers whose organisation identifier is v,
// given as a value or as system|value.
func (r *Router) ByOrganization(v string) []*Provider {
	var out []*Provider
	for _, p := range r.providers {
		if v == p.Organization.Value || v == p.Organization.System+"|"+p.Organization.Value {
			out = append(out, p)
		}
	}
	return out
}

// Routing is where a referral goes: its social prescribing category and
// the provider serving it.
type Routing struct {
	Category string
	Provider *Provider
}
