package intake

import (
	"context"
	"errors"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
)

// Create stores a new resource. ifNoneExist is the raw If-None-Exist header
// (a search query); a match returns the existing resource instead. audit,
// when given, is the request's audit record, committed with the change
// (Outcome.Audited says it was).
func (s *Service) Create(ctx context.Context, caller gateway.Caller, typ string, body []byte, ifNoneExist string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	out, err := s.apply(ctx, caller, []*Request{{Method: "POST", Type: typ, Body: body, IfNoneExist: ifNoneExist}}, audit)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Update stores a new version of a resource. ifMatch is the raw If-Match
// header ("" for none). A Patient that does not exist yet is created with the
// client's id, as GP systems reference their own patient ids.
func (s *Service) Update(ctx context.Context, caller gateway.Caller, typ, id string, body []byte, ifMatch string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	out, err := s.apply(ctx, caller, []*Request{{Method: "PUT", Type: typ, ID: id, Body: body, IfMatch: ifMatch}}, audit)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Patch applies a JSON Patch (RFC 6902) to the current version of a Task —
// how a provider moves a referral on without sending the whole resource —
// and stores the result exactly as an update would be: the same rules, the
// same version checks, the same notifications.
func (s *Service) Patch(ctx context.Context, caller gateway.Caller, typ, id string, patch []byte, ifMatch string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	if typ != gateway.TypeTask {
		return nil, gateway.NewError(gateway.KindMethodNotAllowed, fhir.IssueNotSupported, "", "PATCH is supported for Task only; update other resources with PUT")
	}
	if err := gateway.CheckID(id); err != nil {
		return nil, err
	}
	ops, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueStructure, "", "the body is not a JSON Patch document (RFC 6902): an array of operations")
	}
	if len(ops) > maxPatchOps {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueTooCostly, "", "a JSON Patch may have at most %d operations", maxPatchOps)
	}
	for i, op := range ops {
		for _, path := range conform.PatchPaths(op) {
			if path == "/id" || path == "/meta" || strings.HasPrefix(path, "/meta/") || path == "/resourceType" || path == "" {
				return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "", "operation %d touches %s, which the server manages", i, path)
			}
		}
	}
	cur, err := s.ReadVisible(ctx, caller, typ, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NotFound(typ, id)
	}
	if err != nil {
		return nil, err
	}
	// Copies are bounded: a few doubling "copy" operations would otherwise
	// grow the document without limit.
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxPatchCopy
	patched, err := ops.ApplyWithOptions(cur.Body, opts)
	if err != nil {
		return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueProcessing, "", "the JSON Patch cannot be applied to the current version (a test failed, or a path does not exist)")
	}
	if ifMatch == "" {
		ifMatch = cur.ETag() // the patch was applied to this version: nothing else may have come between
	}
	return s.Update(ctx, caller, typ, id, patched, ifMatch, audit)
}

// JSON Patch limits: a status change is one or two operations.
const (
	maxPatchOps  = 50
	maxPatchCopy = 256 << 10
)

// ParseMessage checks a message Bundle as every resource is checked at the
// door: the raw JSON, R4's structure (every entry, with the broken required
// bindings beside) and the modifier extensions the deployment understands.
func (s *Service) ParseMessage(body []byte) (*fhir.Object, error) {
	return s.parser.Parse(body, "Bundle")
}
