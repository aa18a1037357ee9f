package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// errorStatus is the one table that turns a domain error kind into an HTTP
// status, the issue type used when an issue has none, and the BaRS error
// code in issue.details. BaRS codes are given only where NHS England's
// published examples show them; the others are left out rather than guessed.
var errorStatus = map[gateway.ErrorKind]struct {
	status int
	issue  fhir.IssueType
	bars   string
}{
	gateway.KindInvalid:              {http.StatusBadRequest, fhir.IssueInvalid, "REC_BAD_REQUEST"},
	gateway.KindNotSupported:         {http.StatusBadRequest, fhir.IssueNotSupported, "REC_BAD_REQUEST"},
	gateway.KindMethodNotAllowed:     {http.StatusMethodNotAllowed, fhir.IssueNotSupported, ""},
	gateway.KindUnauthorized:         {http.StatusUnauthorized, fhir.IssueLogin, ""},
	gateway.KindForbidden:            {http.StatusForbidden, fhir.IssueForbidden, ""},
	gateway.KindNotFound:             {http.StatusNotFound, fhir.IssueNotFound, "REC_NOT_FOUND"},
	gateway.KindConflict:             {http.StatusConflict, fhir.IssueConflict, "REC_CONFLICT"},
	gateway.KindDuplicate:            {http.StatusConflict, fhir.IssueDuplicate, "REC_CONFLICT"},
	gateway.KindPreconditionFailed:   {http.StatusPreconditionFailed, fhir.IssueConflict, ""},
	gateway.KindTooLarge:             {http.StatusRequestEntityTooLarge, fhir.IssueTooLong, ""},
	gateway.KindUnsupportedMedia:     {http.StatusUnsupportedMediaType, fhir.IssueNotSupported, ""},
	gateway.KindUnprocessable:        {http.StatusUnprocessableEntity, fhir.IssueBusinessRule, "REC_UNPROCESSABLE_ENTITY"},
	gateway.KindTooManyRequests:      {http.StatusTooManyRequests, fhir.IssueThrottled, ""},
	gateway.KindUnavailable:          {http.StatusServiceUnavailable, fhir.IssueTransient, "REC_SERVICE_UNAVAILABLE"},
	gateway.KindInternal:             {http.StatusInternalServerError, fhir.IssueException, "REC_SERVER_ERROR"},
	gateway.KindNotAcceptable:        {http.StatusNotAcceptable, fhir.IssueNotSupported, ""},
	gateway.KindGone:                 {http.StatusGone, fhir.IssueNotFound, ""},
	gateway.KindPreconditionRequired: {http.StatusPreconditionRequired, fhir.IssueRequired, ""},
}

// kindName names error kinds in metrics.
var kindName = map[gateway.ErrorKind]string{
	gateway.KindInternal: "internal", gateway.KindInvalid: "invalid", gateway.KindNotSupported: "not-supported",
	gateway.KindMethodNotAllowed: "method-not-allowed", gateway.KindUnauthorized: "unauthorized", gateway.KindForbidden: "forbidden",
	gateway.KindNotFound: "not-found", gateway.KindConflict: "conflict", gateway.KindDuplicate: "duplicate",
	gateway.KindPreconditionFailed: "precondition-failed", gateway.KindTooLarge: "too-large", gateway.KindUnsupportedMedia: "unsupported-media",
	gateway.KindUnprocessable: "unprocessable", gateway.KindTooManyRequests: "too-many-requests", gateway.KindUnavailable: "unavailable",
	gateway.KindNotAcceptable: "not-acceptable", gateway.KindGone: "gone", gateway.KindPreconditionRequired: "precondition-required",
}

// isReferral reports whether a request creates a referral (the metrics
// count referrals apart from other requests).
func isReferral(c *gin.Context) bool {
	return c.Request.Method == http.MethodPost && (c.FullPath() == "/fhir/:type" && c.Param("type") == gateway.TypeServiceRequest || c.FullPath() == processMessageRoute)
}

// retryAfterSeconds is what a client is asked to wait when storage is down:
// long enough for Redis to restart or fail over, short enough that a GP
// system's retry loop succeeds soon after.
const retryAfterSeconds = "5"

// clockRetryAfterSeconds is what a client is asked to wait when this
// server's clock is behind the store's: nothing is down, and the request
// sent again soon is likely taken by another server whose clock is right.
const clockRetryAfterSeconds = "1"

// retryAfterFor is the Retry-After of a 503 for err.
func retryAfterFor(err error) string {
	if errors.Is(err, gateway.ErrClockBehind) {
		return clockRetryAfterSeconds
	}
	return retryAfterSeconds
}

// outcomeFor renders an error as its HTTP status and OperationOutcome.
func outcomeFor(e *gateway.Error) (int, []byte) {
	row, ok := errorStatus[e.Kind]
	if !ok {
		row = errorStatus[gateway.KindInternal]
	}
	issues := make([]fhir.Issue, len(e.Issues))
	for i, is := range e.Issues {
		if is.Code == "" {
			is.Code = row.issue
		}
		if is.DetailsCode == "" && is.Severity != fhir.SeverityWarning {
			is.DetailsCode = row.bars
		}
		issues[i] = is
	}
	return row.status, fhir.OperationOutcome(issues...)
}
