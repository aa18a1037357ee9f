package measures

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// Questionnaires are served read-only, from the deployment's measures: a
// provider's system reads what to ask, and a GP system what a score means.
// They are the same for every caller, so reading one is not audited as a
// disclosure of anyone's data (the API still records the interaction).

// Questionnaire reads one Questionnaire by id.
func (s *Service) Questionnaire(id string) (*gateway.Resource, error) {
	q, ok := s.Measures.ByID(id)
	if !ok {
		return nil, gateway.NotFound(gateway.TypeQuestionnaire, id)
	}
	return questionnaireResource(q), nil
}

// questionnaireResource is a measure as a stored resource: version 1, last
// updated on its date, so reads carry meta, an ETag and Last-Modified as
// every other resource does.
func questionnaireResource(q *mappings.Questionnaire) *gateway.Resource {
	obj, err := fhir.ParseResource(q.Body, fhir.ParseOptions{})
	if err != nil {
		panic(err) // checked when the measures were loaded
	}
	date, _ := obj.String("date")
	at, err := time.Parse(time.DateOnly, date)
	if err != nil {
		at = time.Unix(0, 0)
	}
	return &gateway.Resource{Type: gateway.TypeQuestionnaire, ID: q.ID, Version: 1, LastUpdated: at.UTC(),
		Body: obj.WithServerFields(q.ID, "1", gateway.Instant(at))}
}

// questionnaireParams are the search parameters taken: the ones a client
// finds a measure by.
var questionnaireParams = []string{"_id", "url", "name", "status", "_count"}

// SearchQuestionnaires finds Questionnaires by _id, url (with |version),
// name or status; lenient ignores parameters it does not take.
func (s *Service) SearchQuestionnaires(params url.Values, lenient bool) ([]*gateway.Resource, error) {
	for name := range params {
		if !slices.Contains(questionnaireParams, name) && !lenient {
			return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueNotSupported, "", "Questionnaire is searched by %s; other parameters are refused unless Prefer: handling=lenient", strings.Join(questionnaireParams[:4], ", "))
		}
	}
	var out []*gateway.Resource
	for _, q := range s.Measures.List() {
		r := questionnaireResource(q)
		obj, _ := fhir.ParseResource(r.Body, fhir.ParseOptions{})
		name, _ := obj.String("name")
		status, _ := obj.String("status")
		match := func(param, have string, also ...string) bool {
			vals := params[param]
			if len(vals) == 0 {
				return true
			}
			for _, v := range vals {
				for _, one := range strings.Split(v, ",") {
					if one == have || slices.Contains(also, one) || (param == "name" && strings.HasPrefix(strings.ToLower(have), strings.ToLower(one))) {
						return true
					}
				}
			}
			return false
		}
		if match("_id", q.ID) && match("url", q.URL, q.URL+"|"+q.Version) && match("name", name) && match("status", status) {
			out = append(out, r)
		}
	}
	return out, nil
}
