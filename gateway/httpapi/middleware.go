package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/topic"
)

const fhirJSON = "application/fhir+json; charset=utf-8"

// fail answers a request with the OperationOutcome of an error. Internal
// causes are logged, never sent.
func (a *API) fail(c *gin.Context, err error) {
	e := gateway.AsError(err)
	status, body := outcomeFor(e)
	var stored *gateway.StoredError
	if errors.As(err, &stored) {
		// The audit record says what was stored, not only the error.
		audited(c, stored.Stored...)
		c.Set(auditNoteKey, gateway.AuditStoredNote)
	}
	if isReferral(c) {
		a.metrics.Referral(c.Request.Context(), "refused", "", kindName[e.Kind])
	}
	if e.Kind == gateway.KindUnavailable {
		c.Header("Retry-After", retryAfterFor(err))
	}
	scopeChallenge(c, err)
	if e.Kind == gateway.KindInternal || e.Kind == gateway.KindUnavailable {
		// Causes come from Signpost and Redis, never from request bodies.
		a.log.Error("request failed", "route", c.FullPath(), "status", status, "error", e.Err)
	}
	c.Data(status, fhirJSON, body)
	c.Abort()
}

func (a *API) failWith(c *gin.Context, kind gateway.ErrorKind, code fhir.IssueType, format string, args ...any) {
	a.fail(c, &gateway.Error{Kind: kind, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}}})
}

// recoverPanics turns a panic into a 500 OperationOutcome. The panic value
// is not logged: it could hold request data.
func (a *API) recoverPanics(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("panic while handling a request", "route", c.FullPath(), "panic_type", fmt.Sprintf("%T", p))
			a.fail(c, errors.New("panic"))
		}
	}()
	c.Next()
}

// accessLog logs one line a request, and keeps its AuditEvent. The log has
// the route template, not the path or query, because those can hold patient
// identifiers (identifier=...|NHS number).
func (a *API) accessLog(c *gin.Context) {
	start := time.Now()
	c.Set(auditStartKey, start)
	c.Next()
	if a.auditor != nil && !c.GetBool(auditCommittedKey) {
		if rec := a.auditRecord(c, start); rec != nil {
			if err := a.auditor.Audit(c.Request.Context(), rec); err != nil {
				a.log.Error("audit event not kept", "route", c.FullPath(), "error", err)
			}
		}
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	a.metrics.HTTPRequest(c.Request.Context(), route, c.Request.Method, c.Writer.Status(), time.Since(start))
	a.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request",
		slog.String("method", c.Request.Method), slog.String("route", route),
		slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(start)),
		slog.String("request_id", c.Writer.Header().Get("X-Request-Id")))
}

// maxCorrelationID bounds the X-Request-Id and X-Correlation-Id echoed (and
// kept as a BaRS idempotency key): longer ones are not the UUIDs BaRS sends.
const maxCorrelationID = 128

// correlation echoes the BaRS correlation headers, and gives every request
// an X-Request-Id so a caller can quote it when reporting a problem.
func (a *API) correlation(c *gin.Context) {
	rid := c.GetHeader("X-Request-Id")
	if rid == "" || len(rid) > maxCorrelationID {
		rid = gateway.NewID()
	}
	c.Header("X-Request-Id", rid)
	if cid := c.GetHeader("X-Correlation-Id"); cid != "" && len(cid) <= maxCorrelationID {
		c.Header("X-Correlation-Id", cid)
	}
	c.Next()
}

// Limiter counts requests against a per-key limit shared by every replica.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// limitByClient applies the rate limit to authenticated clients. Without
// authentication (loopback only) there is no client to count.
// Over it, the request is not audited either: it did nothing, and a
// stolen token must not be able to flood the trail (which is trimmed by
// count, so a flood would push older records out); the metrics count it.
func (a *API) limitByClient(c *gin.Context) {
	if v, ok := c.Get(callerKey); ok && v.(gateway.Caller).Kind != gateway.CallerOperator {
		if a.limit(c, a.limiter, clientLimitKey(v.(gateway.Caller).ClientID), "this client"); c.IsAborted() {
			c.Set(unauditedKey, true)
		}
	}
}

// limitByAddress applies the per-address limit to what a caller not yet
// known may make Signpost do: the token endpoint (the caller is not known
// until its assertion is verified, which is the costly part) and FHIR
// requests refused for want of a valid token, each of which is audited.
// Over it, the request is answered 429 and not audited (unauditedKey), so
// an anonymous flood costs Redis one small counter per address.
func (a *API) limitByAddress(c *gin.Context) {
	a.limit(c, a.addressLimiter, "addr:"+c.ClientIP(), "this address")
	if c.IsAborted() {
		c.Set(unauditedKey, true)
	}
}

func (a *API) limit(c *gin.Context, l Limiter, key, who string) {
	if l == nil {
		return
	}
	ok, wait, err := l.Allow(c.Request.Context(), key)
	if err != nil {
		if !errors.Is(err, gateway.ErrUnavailable) {
			err = fmt.Errorf("%w: rate limit: %v", gateway.ErrUnavailable, err)
		}
		a.fail(c, err)
		return
	}
	if !ok {
		secs := int(wait.Seconds() + 0.999)
		c.Header("Retry-After", strconv.Itoa(max(secs, 1)))
		a.failWith(c, gateway.KindTooManyRequests, fhir.IssueThrottled, "too many requests from %s; retry after %d s", who, max(secs, 1))
	}
}

func (a *API) fhirHeaders(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if !acceptsJSON(c.Request.Header.Values("Accept"), c.Query("_format")) {
		a.failWith(c, gateway.KindNotAcceptable, fhir.IssueNotSupported,
			"Signpost serves FHIR JSON only: ask for application/fhir+json (Accept or _format); XML and other formats are not served")
		return
	}
	c.Next()
}

// acceptsJSON reports whether a caller takes FHIR JSON: an Accept header
// with a JSON media type or a wildcard among its ranges (or none at all),
// and a _format (FHIR's override of Accept) that is absent or JSON.
func acceptsJSON(accept []string, format string) bool {
	if format != "" {
		switch strings.ToLower(strings.TrimSpace(format)) {
		case "json", "application/json", "application/fhir+json":
		default:
			mt, _, err := mime.ParseMediaType(format)
			if err != nil || (mt != "application/json" && mt != "application/fhir+json") {
				return false
			}
		}
	}
	ranges := 0
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			ranges++
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || params["q"] == "0" {
				continue
			}
			switch mt {
			case "application/fhir+json", "application/json", "application/*", "*/*":
				return true
			}
		}
	}
	return ranges == 0
}

func (a *API) noRoute(c *gin.Context) {
	a.failWith(c, gateway.KindNotFound, fhir.IssueNotFound, "no such endpoint; the FHIR API is at /fhir (see /fhir/metadata)")
}

func (a *API) noMethod(c *gin.Context) {
	a.failWith(c, gateway.KindMethodNotAllowed, fhir.IssueNotSupported, "this interaction is not supported on this endpoint; see /fhir/metadata")
}

var knownTypes = map[string]bool{gateway.TypeServiceRequest: true, gateway.TypeTask: true, gateway.TypePatient: true, gateway.TypeProvenance: true, topic.TypeSubscription: true}

func (a *API) knownType(c *gin.Context) {
	typ := c.Param("type")
	switch {
	case knownTypes[typ]:
	case typ == gateway.TypeQuestionnaire && c.Request.Method == http.MethodGet && c.Param("id") == "":
		// searched; read by id through readableType
	case typ == gateway.TypeQuestionnaire:
		a.failWith(c, gateway.KindMethodNotAllowed, fhir.IssueNotSupported,
			"Questionnaires are the deployment's outcome measures, served read-only (GET /fhir/Questionnaire, GET /fhir/Questionnaire/{id}); a deployment adds its own with the questionnaires setting")
	case typ == gateway.TypeQuestionnaireResponse && (c.Request.Method == http.MethodPost && c.Param("id") == "" && !strings.HasSuffix(c.FullPath(), "/_search") ||
		c.Request.Method == http.MethodPut):
		// a provider records (POST) or corrects (PUT) an outcome measure
	case typ == "Consent" && (c.Request.Method == http.MethodPost && c.FullPath() == "/fhir/:type" ||
		c.Request.Method == http.MethodPut && c.FullPath() == "/fhir/:type/:id"):
		// A GP system records the patient's consent to share (or its
		// withdrawal) on its own; read by id as the others, not searched.
	case gateway.IsSupporting(typ):
		a.failWith(c, gateway.KindMethodNotAllowed, fhir.IssueNotSupported,
			"%s resources are kept as the referral messages that brought them (or, for outcome measures, as the provider recorded them) and are read by id (GET /fhir/%s/{id}), as their referral's references name them; they are not searched or written on their own", typ, typ)
	default:
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotSupported, "Signpost does not serve %q resources; it serves ServiceRequest, Task, Patient, Provenance, Subscription and Questionnaire, records QuestionnaireResponses, and reads the resources a BaRS message brought", typ)
	}
}

// readableType lets reads by id through for the known types, the
// Questionnaires and the supporting resources messages bring
// (gateway.IsSupporting).
func (a *API) readableType(c *gin.Context) {
	if typ := c.Param("type"); !gateway.IsSupporting(typ) && typ != gateway.TypeQuestionnaire {
		a.knownType(c)
	}
}

// withBody checks the media type and encoding and reads the body within the
// configured limit, before any handler sees it.
func (a *API) withBody(c *gin.Context) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		a.failWith(c, gateway.KindUnsupportedMedia, fhir.IssueNotSupported, "Content-Type must be application/fhir+json (or application/json)")
		return
	}
	if enc := strings.TrimSpace(c.GetHeader("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		a.failWith(c, gateway.KindUnsupportedMedia, fhir.IssueNotSupported, "compressed request bodies are not accepted; send the body with no Content-Encoding")
		return
	}
	if c.Request.ContentLength > a.maxBody {
		a.tooLarge(c)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.tooLarge(c)
			return
		}
		a.failWith(c, gateway.KindInvalid, fhir.IssueStructure, "the request body could not be read")
		return
	}
	// RFC 8259 lets a parser ignore a UTF-8 byte order mark, and some
	// Windows systems send one; it is not part of the JSON text, nor stored.
	body = bytes.TrimPrefix(body, utf8BOM)
	c.Set(bodyKey, body)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

const bodyKey = "signpost.body"

// withPatchBody reads a JSON Patch body (application/json-patch+json).
func (a *API) withPatchBody(c *gin.Context) {
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json-patch+json" {
		a.failWith(c, gateway.KindUnsupportedMedia, fhir.IssueNotSupported, "PATCH takes a JSON Patch document: Content-Type application/json-patch+json")
		return
	}
	c.Request.Header.Set("Content-Type", "application/json")
	a.withBody(c)
}

func (a *API) tooLarge(c *gin.Context) {
	a.failWith(c, gateway.KindTooLarge, fhir.IssueTooLong, "the request body is larger than the limit of %d bytes", a.maxBody)
}

func requestBody(c *gin.Context) []byte {
	b, _ := c.Get(bodyKey)
	body, _ := b.([]byte)
	return body
}

// prefer reads one token of the Prefer header (RFC 7240), e.g. "return".
func prefer(c *gin.Context, name string) string {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.EqualFold(strings.TrimSpace(k), name) {
				return strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	return ""
}
