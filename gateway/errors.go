package gateway

import (
	"errors"
	"fmt"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// ErrorKind says how a failure should be answered. httpapi turns each kind
// into one HTTP status in one table; nothing else in the domain knows HTTP.
type ErrorKind int

const (
	KindInternal             ErrorKind = iota // a bug or an unexpected state: 500, details logged only
	KindInvalid                               // the request is malformed or breaks a FHIR rule: 400
	KindNotSupported                          // a valid FHIR request Signpost does not implement: 400
	KindMethodNotAllowed                      // the endpoint exists, but not with this method: 405
	KindUnauthorized                          // no valid access token: 401
	KindForbidden                             // the caller's role or scopes may not do this at all: 403
	KindNotFound                              // 404
	KindConflict                              // the change contradicts stored state: 409
	KindDuplicate                             // a repeat of something already processed: 409
	KindPreconditionFailed                    // If-Match or If-None-Exist did not hold: 412
	KindTooLarge                              // 413
	KindUnsupportedMedia                      // 415
	KindUnprocessable                         // well-formed but against a business rule (unmapped code, no provider): 422
	KindTooManyRequests                       // over the client's rate limit: 429
	KindUnavailable                           // storage is unreachable; try again: 503
	KindNotAcceptable                         // the caller accepts no format Signpost serves: 406
	KindGone                                  // what a link pointed to can no longer be had (an old paging link): 410
	KindPreconditionRequired                  // an update that must name the version it replaces (If-Match) did not: 428
)

// Error is a failure the caller is told about. Issues say which element is at
// fault and what was expected; Err is the internal cause, for the log only.
type Error struct {
	Kind   ErrorKind
	Issues []fhir.Issue
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(is.Expression) > 0 {
			b.WriteString(strings.Join(is.Expression, ","))
			b.WriteString(": ")
		}
		b.WriteString(is.Diagnostics)
	}
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// NewError builds an Error with one issue. expr may be empty when the fault
// is not one element (a whole body, a header).
func NewError(kind ErrorKind, code fhir.IssueType, expr, format string, args ...any) *Error {
	is := fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return &Error{Kind: kind, Issues: []fhir.Issue{is}}
}

// Problems collects every problem found in a resource so that a caller
// learns all of them from one request, not one per round trip.
type Problems struct {
	Issues   []fhir.Issue
	Warnings []fhir.Issue
	// Max, when set, bounds the issues listed (the last of them says the
	// rest are not), as the structure check bounds its own
	// (structure.MaxIssues): a body could otherwise make an answer many
	// times its size.
	Max int
}

func (p *Problems) Add(code fhir.IssueType, expr, format string, args ...any) {
	switch {
	case p.Max > 0 && len(p.Issues) >= p.Max:
		return
	case p.Max > 0 && len(p.Issues) == p.Max-1:
		p.Issues = append(p.Issues, fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueTooCostly,
			Diagnostics: fmt.Sprintf("more than %d problems: the rest are not listed", p.Max-1)})
		return
	}
	p.Issues = append(p.Issues, fhir.Issue{Severity: fhir.SeverityError, Code: code, Expression: []string{expr}, Diagnostics: fmt.Sprintf(format, args...)})
}

func (p *Problems) Warn(code fhir.IssueType, expr, format string, args ...any) {
	p.Warnings = append(p.Warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: code, Expression: []string{expr}, Diagnostics: fmt.Sprintf(format, args...)})
}

func (p *Problems) OK() bool { return len(p.Issues) == 0 }

// Err returns the collected problems as one Error of the given kind, or nil.
func (p *Problems) Err(kind ErrorKind) error {
	if p.OK() {
		return nil
	}
	return &Error{Kind: kind, Issues: p.Issues}
}

// StoredError is a failure after the request's change was stored: what
// has to follow its commit before the answer (a Consent's referrals in
// other partitions decided again) did not finish, and the request sent
// again finishes it. Stored names what the commit stored ("Type/id"), for
// the request's audit record (AuditStoredNote), which must not read as if
// nothing was stored.
type StoredError struct {
	Err    error
	Stored []string
}

func (e *StoredError) Error() string {
	return "the change was stored, but what follows it did not finish: " + e.Err.Error()
}

func (e *StoredError) Unwrap() error { return e.Err }

// ErrUnavailable marks a storage failure that is worth retrying (Redis down,
// a timeout). Stores wrap their transient errors with it.
var ErrUnavailable = errors.New("storage unavailable")

// ErrStoreFull marks a write storage refused for want of memory (Redis at
// maxmemory with noeviction). It is a kind of ErrUnavailable: nothing was
// stored and the request can be retried once memory is freed or added.
var ErrStoreFull = fmt.Errorf("%w: out of memory", ErrUnavailable)

// ErrClockBehind marks a write the store refused because the process
// that stamped it (meta.lastUpdated, the time paging orders by) has a
// clock behind the store's: stamped more than FollowLag before the
// store's own clock. Nothing was stored; it is a kind of ErrUnavailable,
// since the request sent again may reach a process whose clock is right,
// and the host's clock needs an operator.
var ErrClockBehind = fmt.Errorf("%w: this server's clock is behind the store's", ErrUnavailable)

// ErrContended marks a change a store gave up on because what it read to
// make it kept changing under other writers: nothing was written, and the
// request can be sent again.
var ErrContended = errors.New("the data kept changing while the change was made")

// ErrNotFound is what a Store returns for a resource or version it does not hold.
var ErrNotFound = errors.New("not found")

// AsError turns any error into an *Error a caller can be shown, keeping
// internal causes out of the issues.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, ErrStoreFull) {
		return &Error{Kind: KindUnavailable, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueTransient,
			Diagnostics: "Signpost's store is full and refusing writes, so this request was not stored. Retry after the Retry-After interval: a referral sent again with the same identifier is recognised, never made twice."}}}
	}
	if errors.Is(err, ErrClockBehind) {
		return &Error{Kind: KindUnavailable, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueTransient,
			Diagnostics: "this Signpost server's clock is behind its store's, so this request was not stored. Retry after the Retry-After interval: a referral sent again with the same identifier is recognised, never made twice."}}}
	}
	if errors.Is(err, ErrContended) {
		return &Error{Kind: KindConflict, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueConflict,
			Diagnostics: "the resources this request changes kept changing under other requests, so nothing was changed; send it again"}}}
	}
	if errors.Is(err, ErrUnavailable) {
		return &Error{Kind: KindUnavailable, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueTransient,
			Diagnostics: "Signpost cannot reach its store right now, so this request is not confirmed. Retry after the Retry-After interval: a referral sent again with the same identifier is recognised, never made twice."}}}
	}
	var stored *StoredError
	if errors.As(err, &stored) {
		return &Error{Kind: KindInternal, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityFatal, Code: fhir.IssueException,
			Diagnostics: "internal error after the change was stored: what has to follow it did not finish; send the request again to finish it"}}}
	}
	return &Error{Kind: KindInternal, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityFatal, Code: fhir.IssueException,
		Diagnostics: "internal error; nothing was changed"}}}
}
