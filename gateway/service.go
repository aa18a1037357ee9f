package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/mappings"
)

// Options are the Service's dependencies and policies, all given at start.
type Options struct {
	Store Store
	Codes *mappings.Table
	// Outcomes codes the outcomes written back to GP records (default: the embedded table).
	Outcomes *mappings.OutcomeTable
	// Providers receive referrals; the order decides precedence within a category.
	Providers []Provider
	// TriageUnmapped sends referrals whose code is not in the table to the
	// link-worker category instead of refusing them.
	TriageUnmapped bool
	// StrictNHSNumber refuses NHS numbers that fail Modulus 11; otherwise they
	// are accepted with a warning (NHS England's own examples fail it).
	StrictNHSNumber bool
	// FHIRBase is the absolute URL of the FHIR API, used to recognise
	// absolute references to Signpost's own resources.
	FHIRBase string
	// MaxDepth caps JSON nesting (default 64).
	MaxDepth int
	// UnderstoodModifiers are the modifierExtension urls the deployment
	// understands; a resource carrying another is refused.
	UnderstoodModifiers []string
	// MaxSubscriptions caps the subscriptions one client has that are not
	// ended (default DefaultMaxSubscriptions).
	MaxSubscriptions int
	Now              func() time.Time
	NewID            func() string
}

// Service is the referral gateway's domain logic: accept, read, update and
// search the resources of a referral. It is safe for concurrent use.
type Service struct {
	store     Store
	codes     *mappings.Table
	outcomes  *mappings.OutcomeTable
	router    *Router
	triage    bool
	strictNHS bool
	base      string
	maxDepth  int
	// understood holds the modifierExtension urls that may be processed.
	understood map[string]bool
	maxSubs    int
	now        func() time.Time
	newID      func() string
}

// NewService wires a Service.
func NewService(o Options) *Service {
	s := &Service{store: patientStore{o.Store}, codes: o.Codes, router: NewRouter(o.Providers), triage: o.TriageUnmapped,
		strictNHS: o.StrictNHSNumber, base: strings.TrimSuffix(o.FHIRBase, "/"), maxDepth: o.MaxDepth, now: o.Now, newID: o.NewID}
	if s.codes == nil {
		s.codes = mappings.Default()
	}
	s.outcomes = o.Outcomes
	if s.outcomes == nil {
		s.outcomes = mappings.DefaultOutcomes()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = NewID
	}
	if s.maxDepth == 0 {
		s.maxDepth = 64
	}
	s.understood = make(map[string]bool, len(o.UnderstoodModifiers))
	for _, u := range o.UnderstoodModifiers {
		s.understood[u] = true
	}
	s.maxSubs = o.MaxSubscriptions
	if s.maxSubs <= 0 {
		s.maxSubs = DefaultMaxSubscriptions
	}
	return s
}

// Router exposes the routing table (for the metadata and the web pages).
func (s *Service) Router() *Router { return s.router }

// NewID returns a random UUID (version 4), the form of every id Signpost
// assigns: unguessable, so ids leak nothing about volumes or order.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// Outcome is the result of one create or update.
type Outcome struct {
	Resource *Resource
	// Created is true when this request made the resource (201), false when
	// it updated one or found an identical earlier request (200).
	Created bool
	// Warnings are issues that did not stop the request (an NHS number
	// failing its check under the warn policy).
	Warnings []fhir.Issue
	// Category is the social prescribing category a referral was routed
	// to ("" when it was not routed), for the metrics.
	Category string
}

// Create stores a new resource. ifNoneExist is the raw If-None-Exist header
// (a search query); a match returns the existing resource instead.
func (s *Service) Create(ctx context.Context, caller Caller, typ string, body []byte, ifNoneExist string) (*Outcome, error) {
	out, err := s.apply(ctx, caller, []*Request{{Method: "POST", Type: typ, Body: body, IfNoneExist: ifNoneExist}}, false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Update stores a new version of a resource. ifMatch is the raw If-Match
// header ("" for none). A Patient that does not exist yet is created with the
// client's id, as GP systems reference their own patient ids.
func (s *Service) Update(ctx context.Context, caller Caller, typ, id string, body []byte, ifMatch string) (*Outcome, error) {
	out, err := s.apply(ctx, caller, []*Request{{Method: "PUT", Type: typ, ID: id, Body: body, IfMatch: ifMatch}}, false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Patch applies a JSON Patch (RFC 6902) to the current version of a Task —
// how a provider moves a referral on without sending the whole resource —
// and stores the result exactly as an update would be: the same rules, the
// same version checks, the same notifications.
func (s *Service) Patch(ctx context.Context, caller Caller, typ, id string, patch []byte, ifMatch string) (*Outcome, error) {
	if typ != TypeTask {
		return nil, newError(KindMethodNotAllowed, fhir.IssueNotSupported, "", "PATCH is supported for Task only; update other resources with PUT")
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	ops, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, newError(KindInvalid, fhir.IssueStructure, "", "the body is not a JSON Patch document (RFC 6902): an array of operations")
	}
	if len(ops) > maxPatchOps {
		return nil, newError(KindInvalid, fhir.IssueTooCostly, "", "a JSON Patch may have at most %d operations", maxPatchOps)
	}
	for i, op := range ops {
		for _, path := range patchPaths(op) {
			if path == "/id" || path == "/meta" || strings.HasPrefix(path, "/meta/") || path == "/resourceType" || path == "" {
				return nil, newError(KindInvalid, fhir.IssueInvalid, "", "operation %d touches %s, which the server manages", i, path)
			}
		}
	}
	cur, err := s.readVisible(ctx, caller, typ, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(typ, id)
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
		return nil, newError(KindUnprocessable, fhir.IssueProcessing, "", "the JSON Patch cannot be applied to the current version (a test failed, or a path does not exist)")
	}
	if ifMatch == "" {
		ifMatch = cur.ETag() // the patch was applied to this version: nothing else may have come between
	}
	return s.Update(ctx, caller, typ, id, patched, ifMatch)
}

// JSON Patch limits: a status change is one or two operations.
const (
	maxPatchOps  = 50
	maxPatchCopy = 256 << 10
)

// patchPaths are the pointers an operation reads or writes.
func patchPaths(op jsonpatch.Operation) []string {
	path, _ := op.Path()
	out := []string{path}
	if from, err := op.From(); err == nil {
		out = append(out, from)
	}
	return out
}

// Read returns the current version of a resource.
func (s *Service) Read(ctx context.Context, caller Caller, typ, id string) (*Resource, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, err := s.readVisible(ctx, caller, typ, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(typ, id)
	}
	return r, err
}

// ReadVersion returns one version of a resource.
func (s *Service) ReadVersion(ctx context.Context, caller Caller, typ, id, vid string) (*Resource, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	v, err := strconv.Atoi(vid)
	if err != nil || v < 1 || strconv.Itoa(v) != vid {
		return nil, newError(KindNotFound, fhir.IssueNotFound, "", "version ids are positive whole numbers")
	}
	key := id
	if typ == TypePatient {
		key, err = s.patientKey(ctx, caller, id)
	}
	var r *Resource
	if err == nil {
		r, err = s.store.ReadVersion(ctx, typ, key, v)
	}
	if err == nil {
		var ok bool
		if ok, err = s.visible(ctx, caller, r); err == nil && !ok {
			err = ErrNotFound
		}
	}
	if errors.Is(err, ErrNotFound) {
		return nil, newError(KindNotFound, fhir.IssueNotFound, "", "no such version of a %s is known to this client", typ)
	}
	return r, err
}

// Ping reports whether storage answers; /readyz uses it.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

func notFound(typ, id string) error {
	// The id is left out: a client-chosen Patient id can be anything,
	// an NHS number included.
	return newError(KindNotFound, fhir.IssueNotFound, "", "no such %s is known to this client", typ)
}

// checkID enforces the FHIR id syntax, [A-Za-z0-9\-\.]{1,64}.
// ValidID reports whether id is a FHIR resource id (1 to 64 letters, digits,
// '-' and '.').
func ValidID(id string) bool { return checkID(id) == nil }

func checkID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return newError(KindInvalid, fhir.IssueValue, "", "a resource id is 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return newError(KindInvalid, fhir.IssueValue, "", "a resource id may hold only letters, digits, '-' and '.'")
		}
	}
	return nil
}

// parseIfMatch reads a weak or strong ETag holding a version number.
func parseIfMatch(h string) (int, error) {
	v := strings.TrimSpace(h)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, newError(KindInvalid, fhir.IssueValue, "", `If-Match must be an ETag such as W/"3" naming a version`)
	}
	return n, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// ParseMessage checks a message Bundle as every resource is checked at the
// door: the raw JSON, R4's structure (every entry, with the broken required
// bindings beside) and the modifier extensions the deployment understands.
func (s *Service) ParseMessage(body []byte) (*fhir.Object, error) { return s.parse(body, "Bundle") }
