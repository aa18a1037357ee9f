package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auditevent"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/topic"
)

// who returns the caller authenticate established, after checking the
// token allows the interaction on the request's resource type.
func (a *API) who(c *gin.Context, action auth.Action) (gateway.Caller, bool) {
	if action != "" && !a.allow(c, c.Param("type"), action) {
		return gateway.Caller{}, false
	}
	v, _ := c.Get(callerKey)
	caller, _ := v.(gateway.Caller)
	return caller, true
}

func (a *API) create(c *gin.Context) {
	caller, ok := a.who(c, auth.ActionCreate)
	if !ok {
		return
	}
	if c.Param("type") == gateway.TypeQuestionnaireResponse {
		a.recordMeasure(c, caller, "")
		return
	}
	out, err := a.uc.Intake.Create(c.Request.Context(), caller, c.Param("type"), requestBody(c), c.GetHeader("If-None-Exist"), a.auditIntent(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	if isReferral(c) {
		result := "created"
		if !out.Created {
			result = "repeat"
		}
		a.metrics.Referral(c.Request.Context(), result, out.Category, "")
	}
	a.writeOutcome(c, out)
}

func (a *API) update(c *gin.Context) {
	caller, ok := a.who(c, auth.ActionUpdate)
	if !ok {
		return
	}
	if c.Param("type") == gateway.TypeQuestionnaireResponse {
		a.recordMeasure(c, caller, c.Param("id"))
		return
	}
	out, err := a.uc.Intake.Update(c.Request.Context(), caller, c.Param("type"), c.Param("id"), requestBody(c), c.GetHeader("If-Match"), a.auditIntent(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeOutcome(c, out)
}

func (a *API) patch(c *gin.Context) {
	caller, ok := a.who(c, auth.ActionUpdate)
	if !ok {
		return
	}
	out, err := a.uc.Intake.Patch(c.Request.Context(), caller, c.Param("type"), c.Param("id"), requestBody(c), c.GetHeader("If-Match"), a.auditIntent(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeOutcome(c, out)
}

// recordMeasure is a provider recording an outcome measure (POST
// QuestionnaireResponse) or correcting one (PUT, id given).
func (a *API) recordMeasure(c *gin.Context, caller gateway.Caller, id string) {
	var out *gateway.Outcome
	var err error
	if id == "" {
		out, err = a.uc.Measures.Record(c.Request.Context(), caller, requestBody(c), a.auditIntent(c))
	} else {
		out, err = a.uc.Measures.Correct(c.Request.Context(), caller, id, requestBody(c), c.GetHeader("If-Match"), a.auditIntent(c))
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeOutcome(c, out)
}

// writeOutcome answers a create or update: 201 when this request made the
// resource, 200 when it updated one or repeated an earlier create; the body
// is what the Prefer header asks for.
func (a *API) writeOutcome(c *gin.Context, out *gateway.Outcome) {
	r := out.Resource
	audited(c, r.Ref())
	auditCommitted(c, out)
	status := outcomeStatus(out)
	a.versionHeaders(c, r)
	c.Header("Location", a.fhirBase+"/"+r.Ref()+"/_history/"+r.VersionID())
	switch prefer(c, "return") {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		c.Data(status, fhirJSON, fhir.OperationOutcome(out.Warnings...))
	default:
		c.Data(status, fhirJSON, r.Body)
	}
}

// outcomeStatus is the status of a stored create or update (and what its
// audit record says).
func outcomeStatus(out *gateway.Outcome) int {
	if out.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (a *API) versionHeaders(c *gin.Context, r *gateway.Resource) {
	c.Header("ETag", r.ETag())
	c.Header("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
}

func (a *API) read(c *gin.Context) {
	caller, ok := a.who(c, auth.ActionRead)
	if !ok {
		return
	}
	// GET /fhir/Patient/_history (a type's history) and /fhir/Patient/$op
	// share the read's path shape: say what they are, not that the "id" is bad.
	switch id := c.Param("id"); {
	case id == "_history":
		a.failWith(c, gateway.KindNotSupported, fhir.IssueNotSupported,
			"the history of a whole type is not supported; read one resource's versions at /fhir/{type}/{id}/_history/{vid}")
		return
	case strings.HasPrefix(id, "$") || strings.HasPrefix(id, "_"):
		a.failWith(c, gateway.KindNotSupported, fhir.IssueNotSupported,
			"this type-level interaction or operation is not supported; /fhir/metadata lists what is")
		return
	}
	if c.Param("type") == gateway.TypeQuestionnaire {
		r, err := a.uc.Measures.Questionnaire(c.Param("id"))
		if err != nil {
			a.fail(c, err)
			return
		}
		a.writeResource(c, r)
		return
	}
	r, err := a.uc.Search.Read(c.Request.Context(), caller, c.Param("type"), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeResource(c, r)
}

func (a *API) vread(c *gin.Context) {
	caller, ok := a.who(c, auth.ActionRead)
	if !ok {
		return
	}
	if c.Param("type") == gateway.TypeQuestionnaire {
		r, err := a.uc.Measures.Questionnaire(c.Param("id"))
		if err == nil && c.Param("vid") != r.VersionID() {
			err = gateway.NotFound(gateway.TypeQuestionnaire, c.Param("id"))
		}
		if err != nil {
			a.fail(c, err)
			return
		}
		a.writeResource(c, r)
		return
	}
	r, err := a.uc.Search.ReadVersion(c.Request.Context(), caller, c.Param("type"), c.Param("id"), c.Param("vid"))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeResource(c, r)
}

func (a *API) writeResource(c *gin.Context, r *gateway.Resource) {
	audited(c, r.Ref()+"/_history/"+r.VersionID())
	a.versionHeaders(c, r)
	if inm := c.GetHeader("If-None-Match"); inm != "" && strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(r.ETag(), "W/") {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, fhirJSON, r.Body)
}

func (a *API) search(c *gin.Context) {
	a.runSearch(c, c.Request.URL.Query())
}

// maxSearchForm bounds a search by POST: parameters, not documents.
const maxSearchForm = 16 << 10

// searchPost is search by POST with form parameters, which keeps patient
// identifiers out of URLs and so out of proxies' logs.
func (a *API) searchPost(c *gin.Context) {
	if mt := c.ContentType(); mt != "application/x-www-form-urlencoded" {
		a.failWith(c, gateway.KindUnsupportedMedia, fhir.IssueNotSupported, "search by POST takes application/x-www-form-urlencoded parameters")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxSearchForm)
	if err := c.Request.ParseForm(); err != nil {
		a.failWith(c, gateway.KindInvalid, fhir.IssueInvalid, "the search parameters could not be read")
		return
	}
	a.runSearch(c, c.Request.Form)
}

func (a *API) runSearch(c *gin.Context, params url.Values) {
	caller, ok := a.who(c, auth.ActionSearch)
	if !ok {
		return
	}
	// Included resources are read too: the token must allow reading them.
	if params.Has("_include") && !a.allow(c, gateway.TypeServiceRequest, auth.ActionRead) {
		return
	}
	typ := c.Param("type")
	var res *gateway.SearchResult
	var err error
	if typ == gateway.TypeQuestionnaire {
		var found []*gateway.Resource
		found, err = a.uc.Measures.SearchQuestionnaires(params, prefer(c, "handling") == "lenient")
		res = &gateway.SearchResult{Matches: found, Total: len(found), Self: params.Encode()}
	} else {
		res, err = a.uc.Search.Search(c.Request.Context(), caller, typ, params, prefer(c, "handling") == "lenient")
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	b := fhir.Bundle{ID: gateway.NewID(), Type: "searchset", Timestamp: gateway.Instant(time.Now()), Total: res.Total}
	link := func(rel, q string) {
		if q != "" || rel == "self" {
			b.Links = append(b.Links, fhir.BundleLink{Relation: rel, URL: a.fhirBase + "/" + typ + "?" + q})
		}
	}
	link("self", res.Self)
	link("next", res.Next)
	link("previous", res.Previous)
	// The record of a search names what it disclosed, as a read's does
	// (at most gateway.MaxAuditWhat references; the rest are counted).
	refs := make([]string, 0, len(res.Matches)+len(res.Included))
	for _, r := range res.Matches {
		refs = append(refs, r.Ref()+"/_history/"+r.VersionID())
	}
	for _, r := range res.Included {
		refs = append(refs, r.Ref()+"/_history/"+r.VersionID())
	}
	audited(c, refs...)
	for _, r := range res.Matches {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: a.fhirBase + "/" + r.Ref(), Resource: r.Body, Search: "match"})
	}
	for _, r := range res.Included {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: a.fhirBase + "/" + r.Ref(), Resource: r.Body, Search: "include"})
	}
	c.Data(http.StatusOK, fhirJSON, b.Marshal())
}

func (a *API) transaction(c *gin.Context) {
	caller, ok := a.who(c, "")
	if !ok || !a.allowTransaction(c, requestBody(c)) {
		return
	}
	outs, err := a.uc.Intake.Transaction(c.Request.Context(), caller, requestBody(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	minimal := prefer(c, "return") == "minimal"
	b := fhir.Bundle{ID: gateway.NewID(), Type: "transaction-response", Timestamp: gateway.Instant(time.Now()), Total: -1}
	for _, out := range outs {
		r := out.Resource
		audited(c, r.Ref())
		status := "200 OK"
		if out.Created {
			status = "201 Created"
		}
		e := fhir.BundleEntry{FullURL: a.fhirBase + "/" + r.Ref(), Response: &fhir.EntryResponse{
			Status: status, Location: r.Ref() + "/_history/" + r.VersionID(), ETag: r.ETag(), LastModified: gateway.Instant(r.LastUpdated)}}
		if !minimal {
			e.Resource = r.Body
		}
		if len(out.Warnings) > 0 {
			e.Response.Outcome = fhir.OperationOutcome(out.Warnings...)
		}
		b.Entries = append(b.Entries, e)
	}
	c.Data(http.StatusOK, fhirJSON, b.Marshal())
}

// subscriptionStatus is GET /fhir/Subscription/{id}/$status.
func (a *API) subscriptionStatus(c *gin.Context) {
	if c.Param("type") != topic.TypeSubscription {
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotSupported, "$status is an operation on Subscription")
		return
	}
	caller, ok := a.who(c, auth.ActionRead)
	if !ok {
		return
	}
	body, err := a.uc.Subscriptions.SubscriptionStatus(c.Request.Context(), caller, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	audited(c, topic.TypeSubscription+"/"+c.Param("id"))
	c.Data(http.StatusOK, fhirJSON, body)
}

// endSubscription is DELETE /fhir/Subscription/{id}: the subscription is
// ended (status off). Other resources are not deleted: a referral's history
// is the record.
func (a *API) endSubscription(c *gin.Context) {
	if c.Param("type") != topic.TypeSubscription {
		allow := "GET, PUT"
		if c.Param("type") == gateway.TypeTask {
			allow = "GET, PUT, PATCH"
		}
		c.Header("Allow", allow)
		a.failWith(c, gateway.KindMethodNotAllowed, fhir.IssueNotSupported, "only a Subscription can be deleted (ended); referrals are kept")
		return
	}
	caller, ok := a.who(c, auth.ActionDelete)
	if !ok {
		return
	}
	if err := a.uc.Subscriptions.EndSubscription(c.Request.Context(), caller, c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	audited(c, topic.TypeSubscription+"/"+c.Param("id"))
	c.Status(http.StatusNoContent)
}

func (a *API) capabilities(c *gin.Context) {
	c.Data(http.StatusOK, fhirJSON, a.metadata)
}

func (a *API) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz reports whether Signpost can accept referrals: it can only when
// Redis answers and takes writes, since nothing is acknowledged before it is
// stored there.
func (a *API) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
	defer cancel()
	if err := a.uc.Core.Ping(ctx); err != nil {
		a.log.Warn("not ready", "error", err)
		c.Header("Retry-After", retryAfterSeconds)
		reason := "Redis does not answer"
		if errors.Is(err, gateway.ErrStoreFull) {
			reason = "Redis is refusing writes: it is out of memory"
		}
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": reason})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// disclosures answers GET /fhir/AuditEvent?entity={ServiceRequest|Task}/{id}:
// a referring practice reads, for one of its referrals, every record of a
// provider receiving or reading its resources, as AuditEvents, newest
// first. The caller's token must allow reading the type it names.
func (a *API) disclosures(c *gin.Context) {
	params := c.Request.URL.Query()
	for name := range params {
		if name != "entity" {
			a.failWith(c, gateway.KindInvalid, fhir.IssueNotSupported, "AuditEvent is searched by entity (the referral: ServiceRequest/{id} or Task/{id}) only; %q is not supported", name)
			return
		}
	}
	entity := strings.TrimPrefix(params.Get("entity"), a.fhirBase+"/")
	typ, _, _ := strings.Cut(entity, "/")
	if typ != gateway.TypeServiceRequest && typ != gateway.TypeTask {
		a.failWith(c, gateway.KindInvalid, fhir.IssueRequired, "entity is required: the referral, ServiceRequest/{id} or Task/{id}")
		return
	}
	if !a.allow(c, typ, auth.ActionRead) {
		return
	}
	caller, _ := a.who(c, "")
	if a.uc.Disclosures == nil {
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotSupported, "this deployment keeps no audit trail to read")
		return
	}
	res, err := a.uc.Disclosures.ForReferral(c.Request.Context(), caller, entity)
	if err != nil {
		a.fail(c, err)
		return
	}
	audited(c, entity)
	b := fhir.Bundle{ID: gateway.NewID(), Type: "searchset", Timestamp: gateway.Instant(time.Now()), Total: len(res.Records)}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "self", URL: a.fhirBase + "/AuditEvent?entity=" + entity})
	for _, r := range res.Records {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: "urn:uuid:" + gateway.NewID(), Resource: auditevent.Render(r, a.fhirBase), Search: "match"})
	}
	if !res.Complete {
		oo := fhir.OperationOutcome(fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueTooCostly,
			Diagnostics: "only the newest audit records were read; older disclosures of this referral may exist in the trail (signpost audit tail)"})
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: "urn:uuid:" + gateway.NewID(), Resource: oo, Search: "outcome"})
	}
	c.Data(http.StatusOK, fhirJSON, b.Marshal())
}
