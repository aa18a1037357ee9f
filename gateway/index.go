package gateway

import (
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Index terms are the strings a resource can be found by: "param=value".
// They are computed here, in the domain, from the typed view of a version,
// so the store needs to know nothing about FHIR search. Every term is built
// by a constructor of this file (Term and those named for what they find):
// the tenancy boundary (ClientTerm, ProviderTerm, OwnerTerm) is spelled
// nowhere else, in Go or in the store's scripts, which take terms as given.

// Term is the index term of a search parameter and a value.
func Term(param, value string) string { return param + "=" + value }

// StatusTerm finds resources by status.
func StatusTerm(code string) string { return Term("status", code) }

// SubjectTerm finds resources whose subject is ref ("Type/id").
func SubjectTerm(ref string) string { return Term("subject", ref) }

// FocusTerm finds Tasks whose focus is ref.
func FocusTerm(ref string) string { return Term("focus", ref) }

// TargetTerm finds Provenances of ref.
func TargetTerm(ref string) string { return Term("target", ref) }

// RequesterTerm finds resources whose requester is ref (or an identifier value).
func RequesterTerm(ref string) string { return Term("requester", ref) }

// RequesterIdentifierTerm finds resources whose requester has the
// identifier v (a value, or system|value).
func RequesterIdentifierTerm(v string) string { return Term("requester:identifier", v) }

// ClientTerm indexes every resource under the client that owns it.
func ClientTerm(clientID string) string { return "_client=" + clientID }

// ProviderTerm indexes a referral under the provider it was routed to.
func ProviderTerm(providerID string) string { return "_provider=" + providerID }

// PatientIDTerm indexes a Patient under its FHIR id, which is not unique
// across clients (the store's set of all ids holds PatientKeys).
func PatientIDTerm(id string) string { return "id=" + id }

// idTerm names a resource by id. It is never stored as an index set: the
// store answers it from the type's set of all ids.
func idTerm(id string) string { return IDTermPrefix + id }

// IDTermPrefix marks the terms a store answers from its set of all ids.
const IDTermPrefix = "_id="

// tokenTerms indexes a coding under "system|code" ("|code" for a code with
// no system). A search for the bare code, in any system, is expanded to
// every system registered for the parameter (tokens.go), so one index entry
// serves both: each entry is a sorted-set insertion on the referral's write
// path, about 2.6 µs of Redis's single thread (BENCHMARKS.md).
func tokenTerms(terms []string, param string, system, code *string) []string {
	if code == nil || *code == "" {
		return terms
	}
	if system != nil && *system != "" {
		return append(terms, Term(param, *system+"|"+*code))
	}
	return append(terms, Term(param, "|"+*code))
}

func identifierTerms(terms []string, param string, ids []models.Identifier) []string {
	for _, id := range ids {
		terms = tokenTerms(terms, param, id.System, id.Value)
	}
	return terms
}

// referenceTerms indexes a reference by "Type/id" (a search by bare id is
// expanded to the parameter's target types instead, which keeps one index
// term per reference), and its identifier under "param:identifier", so that
// a reference by business identifier (an ODS code) can be searched as well.
func referenceTerms(terms []string, param string, ref *models.Reference, base string) []string {
	if ref == nil {
		return terms
	}
	if ref.Reference != nil && *ref.Reference != "" {
		v := *ref.Reference
		if base != "" {
			v = strings.TrimPrefix(v, base+"/")
		}
		// A versioned reference is found by its resource: a search by
		// patient=Patient/x finds a referral for Patient/x/_history/2.
		v, _, _ = strings.Cut(v, "/_history/")
		terms = append(terms, Term(param, v))
	}
	if id := ref.Identifier; id != nil {
		terms = tokenTerms(terms, param+":identifier", id.System, id.Value)
	}
	return terms
}

func ServiceRequestTerms(id string, sr *ReferralView, base string) []string {
	terms := []string{StatusTerm(sr.Status)}
	terms = identifierTerms(terms, "identifier", sr.Identifier)
	terms = referenceTerms(terms, "subject", &sr.Subject, base)
	terms = referenceTerms(terms, "requester", sr.Requester, base)
	for i := range sr.Performer {
		terms = referenceTerms(terms, "performer", &sr.Performer[i], base)
	}
	if sr.Code != nil {
		for _, c := range sr.Code.Coding {
			terms = tokenTerms(terms, "code", c.System, c.Code)
		}
	}
	return dedupe(terms)
}

func TaskTerms(id string, t *models.Task, base string) []string {
	terms := []string{StatusTerm(t.Status.Code())}
	terms = identifierTerms(terms, "identifier", t.Identifier)
	terms = referenceTerms(terms, "focus", t.Focus, base)
	if t.Owner != nil && t.Owner.Reference != nil {
		// Only by reference: the owner is always a configured provider, so a
		// search by its identifier is turned into its reference (search.go).
		// A referral held for consent, or whose consent was withdrawn, is
		// not its provider's to find (consent.go).
		if taskWithheld(t) {
			terms = append(terms, WithheldOwnerTerm(*t.Owner.Reference))
		} else {
			terms = append(terms, Term("owner", *t.Owner.Reference))
		}
	}
	terms = referenceTerms(terms, "requester", t.Requester, base)
	terms = referenceTerms(terms, "subject", t.For, base)
	// Task.code is not indexed: every referral Task is "fulfill" (checked on
	// create and update), so a search by code filters nothing or finds nothing.
	return dedupe(terms)
}

// indexedTask is a Task with only the members its index terms (TaskTerms)
// and its journey step (TaskStepOf) come from, from JSON that passed the
// raw checks. Decoding only those skips input and output, whose samply
// types hold every value[x] by value and cost most of a whole Task's
// decode.
func indexedTask(body []byte) *models.Task {
	var m struct {
		Status         models.TaskStatus       `json:"status"`
		StatusReason   *models.CodeableConcept `json:"statusReason"`
		BusinessStatus *models.CodeableConcept `json:"businessStatus"`
		Identifier     []models.Identifier     `json:"identifier"`
		Focus          *models.Reference       `json:"focus"`
		Owner          *models.Reference       `json:"owner"`
		Requester      *models.Reference       `json:"requester"`
		For            *models.Reference       `json:"for"`
		Meta           *models.Meta            `json:"meta"`
	}
	// A body Signpost built from a stored version: it decodes (with v2,
	// as the views do, in a third of encoding/json's time).
	_ = DecodeView(body, TypeTask, &m)
	return &models.Task{Status: m.Status, StatusReason: m.StatusReason, BusinessStatus: m.BusinessStatus, Identifier: m.Identifier,
		Focus: m.Focus, Owner: m.Owner, Requester: m.Requester, For: m.For, Meta: m.Meta}
}

// ReferralTaskTerms are the terms of the referral Task Signpost writes for
// subject (Task.for), requested by requester, computed from what built it
// rather than by decoding it again.
func ReferralTaskTerms(taskID, srID string, subject, requester *models.Reference, p *Provider, base string) []string {
	terms := []string{StatusTerm(string(TaskRequested)), FocusTerm(TypeServiceRequest + "/" + srID), OwnerTerm(p.ID)}
	terms = referenceTerms(terms, "subject", subject, base)
	terms = referenceTerms(terms, "requester", requester, base)
	return dedupe(terms)
}

func PatientTerms(id string, p *models.Patient) []string {
	return dedupe(identifierTerms([]string{PatientIDTerm(id)}, "identifier", p.Identifier))
}

func dedupe(terms []string) []string {
	seen := make(map[string]struct{}, len(terms))
	out := terms[:0]
	for _, t := range terms {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}

// MatchNothing is an index term no resource has.
const MatchNothing = "_none"

// OwnerTerm finds the resources a provider owns (Task.owner): the tenancy
// boundary between providers.
func OwnerTerm(providerID string) string { return Term("owner", TypeOrganization+"/"+providerID) }

// taskWithheld reports whether a Task's view carries the withheld tag.
func taskWithheld(t *models.Task) bool {
	if t.Meta == nil {
		return false
	}
	for _, c := range t.Meta.Tag {
		if c.System != nil && *c.System == DisclosureTagSystem && c.Code != nil && *c.Code == TagWithheld {
			return true
		}
	}
	return false
}
