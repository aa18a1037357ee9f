package intake

import (
	"context"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
)

// Transaction applies a transaction Bundle all-or-nothing. Entries may
// create (POST) or update (PUT) ServiceRequest, Task and Patient resources;
// urn:uuid: references between entries are resolved to the ids assigned.
func (s *Service) Transaction(ctx context.Context, caller gateway.Caller, body []byte) ([]*gateway.Outcome, error) {
	obj, err := s.parser.Parse(body, "Bundle")
	if err != nil {
		return nil, err
	}
	entries, err := conform.ReadTransaction(obj, s.LocalRef)
	if err != nil {
		return nil, err
	}
	reqs := make([]*Request, len(entries))
	for i, e := range entries {
		reqs[i] = &Request{Method: e.Method, Type: e.Type, ID: e.ID, Body: e.Body, IfNoneExist: e.IfNoneExist, IfMatch: e.IfMatch,
			FullURL: e.FullURL, Expr: e.Expr, inBundle: true}
	}
	return s.apply(ctx, caller, reqs, nil)
}
