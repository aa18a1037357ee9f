package conform

import (
	"github.com/signpost-health/signpost/gateway"

	"errors"

	"github.com/signpost-health/signpost/fhir"
)

// Parse runs the raw-JSON checks, checks the resource type, and checks the
// resource against R4's structure.
func (s *Parser) Parse(body []byte, typ string) (*fhir.Object, error) {
	obj, err := s.ParseRaw(body, typ)
	if err != nil {
		return nil, err
	}
	if err := s.checkStructure(body, typ); err != nil {
		var e *gateway.Error
		if errors.As(err, &e) && e.Kind == gateway.KindInvalid {
			return nil, withBindingProblems(e, obj, typ)
		}
		return nil, err
	}
	return obj, nil
}

// ParseRaw runs the raw-JSON checks and checks the resource type, for a
// body whose structure was checked already (a transaction entry, checked
// with its Bundle; a body whose references were rewritten).
func (s *Parser) ParseRaw(body []byte, typ string) (*fhir.Object, error) {
	obj, err := fhir.ParseResource(body, fhir.ParseOptions{MaxDepth: s.maxDepth})
	if err != nil {
		var re *fhir.RawError
		if errors.As(err, &re) {
			is := fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueStructure, Diagnostics: re.Message}
			if re.Expression != "" {
				is.Expression = []string{re.Expression}
			}
			if re.Kind == fhir.MissingResourceType || re.Kind == fhir.BadResourceType {
				is.Code = fhir.IssueRequired
			}
			return nil, &gateway.Error{Kind: gateway.KindInvalid, Issues: []fhir.Issue{is}, Err: err}
		}
		return nil, &gateway.Error{Kind: gateway.KindInvalid, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueStructure, Diagnostics: "the body is not a valid FHIR JSON resource"}}}
	}
	if obj.ResourceType() != typ {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "resourceType",
			"resourceType must be %q at this endpoint, found %q", typ, obj.ResourceType())
	}
	return obj, nil
}
