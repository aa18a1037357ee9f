package intake

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// MaxTransactionEntries bounds a transaction, which is committed as one
// atomic step in the store and must stay small enough to be quick.
const MaxTransactionEntries = 100

// Transaction applies a transaction Bundle all-or-nothing. Entries may
// create (POST) or update (PUT) ServiceRequest, Task and Patient resources;
// urn:uuid: references between entries are resolved to the ids assigned.
func (s *Service) Transaction(ctx context.Context, caller gateway.Caller, body []byte) ([]*gateway.Outcome, error) {
	obj, err := s.parser.Parse(body, "Bundle")
	if err != nil {
		return nil, err
	}
	typ, _ := obj.String("type")
	switch typ {
	case "transaction":
	case "":
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.type", "Bundle.type is required; Signpost accepts transaction Bundles here")
	default:
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueNotSupported, "Bundle.type", "only transaction Bundles are accepted at the FHIR base")
	}
	raw, ok := obj.Member("entry")
	if !ok {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.entry", "a transaction needs at least one entry")
	}
	var entries []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
			IfMatch     string `json:"ifMatch"`
		} `json:"request"`
	}
	if err := gateway.DecodeView(raw, "Bundle.entry", &entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.entry", "a transaction needs at least one entry")
	}
	if len(entries) > MaxTransactionEntries {
		return nil, gateway.NewError(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry", "a transaction may have at most %d entries", MaxTransactionEntries)
	}
	var p gateway.Problems
	reqs := make([]*Request, 0, len(entries))
	seenURL := map[string]bool{}
	for i, e := range entries {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		if e.Request == nil {
			p.Add(fhir.IssueRequired, at+".request", "every transaction entry needs request.method and request.url")
			continue
		}
		if m := e.Request.Method; m != "POST" && m != "PUT" {
			p.Add(fhir.IssueNotSupported, at+".request.method", "transaction entries may POST or PUT; other methods (GET, DELETE, PATCH, HEAD) are not supported in a transaction")
			continue
		}
		if len(e.Resource) == 0 || e.Resource[0] != '{' {
			p.Add(fhir.IssueRequired, at+".resource", "a %s entry carries the resource it writes", e.Request.Method)
			continue
		}
		if e.FullURL != "" {
			if seenURL[e.FullURL] {
				p.Add(fhir.IssueInvalid, at+".fullUrl", "two entries have the same fullUrl")
			}
			seenURL[e.FullURL] = true
		}
		r := &Request{Method: e.Request.Method, Body: e.Resource, IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch,
			FullURL: e.FullURL, Expr: at + ".resource", inBundle: true}
		path, _, _ := strings.Cut(strings.TrimPrefix(s.LocalRef(e.Request.URL), "/"), "?")
		switch r.Method {
		case "POST":
			r.Type = path
		case "PUT":
			r.Type, r.ID, _ = strings.Cut(path, "/")
			if r.ID == "" {
				p.Add(fhir.IssueInvalid, at+".request.url", "a PUT entry's url is Type/id")
				continue
			}
		default:
			p.Add(fhir.IssueNotSupported, at+".request.method", "transaction entries may POST or PUT; other methods are not supported")
			continue
		}
		if r.Type != gateway.TypeServiceRequest && r.Type != gateway.TypeTask && r.Type != gateway.TypePatient {
			p.Add(fhir.IssueNotSupported, at+".request.url", "transactions may write ServiceRequest, Task and Patient resources")
			continue
		}
		reqs = append(reqs, r)
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	return s.apply(ctx, caller, reqs, nil)
}
