package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/gateway"
)

// Auditor keeps audit records where an operator can read them and nobody
// can change them (redisstore: an append-only stream).
type Auditor interface {
	Audit(ctx context.Context, r *gateway.AuditRecord) error
}

// auditWhatKey holds the references a handler touched, for the audit.
const auditWhatKey = "signpost.audit.what"

// auditClientKey holds the client a token request named (a registered
// client id, or ""), for the token endpoint's record: there is no caller
// until a token is issued.
const auditClientKey = "signpost.audit.client"

// unauditedKey marks a request answered 429 by the per-address limit: it
// did nothing, and auditing each would let an anonymous flood fill Redis
// with records of itself (the metrics count them by route and status).
const unauditedKey = "signpost.audit.skip"

// audited records what a request touched, for its AuditEvent.
func audited(c *gin.Context, refs ...string) {
	if v, ok := c.Get(auditWhatKey); ok {
		refs = append(v.([]string), refs...)
	}
	c.Set(auditWhatKey, refs)
}

// interactions names what a route does, by method and route template.
var interactions = map[string]struct{ subtype, action string }{
	"POST /fhir/:type":                          {"create", "C"},
	"GET /fhir/:type/:id":                       {"read", "R"},
	"GET /fhir/:type/:id/_history/:vid":         {"vread", "R"},
	"PUT /fhir/:type/:id":                       {"update", "U"},
	"PATCH /fhir/:type/:id":                     {"patch", "U"},
	"GET /fhir/:type":                           {"search-type", "E"},
	"GET /fhir/AuditEvent":                      {"search-type", "E"},
	"POST /fhir/:type/_search":                  {"search-type", "E"},
	"DELETE /fhir/:type/:id":                    {"delete", "D"},
	"GET /fhir/:type/:id/$status":               {"operation", "E"},
	"POST /fhir":                                {"transaction", "E"},
	"POST " + processMessageRoute:               {"operation", "C"},
	"POST /auth/token":                          {"token", "E"},
	"GET " + exportRoute:                        {"operation", "E"},
	"GET " + exportStatusRoute:                  {"operation", "R"},
	"DELETE " + exportStatusRoute:               {"operation", "D"},
	"GET " + exportFileRoute:                    {"operation", "R"},
	"GET /fhir/.well-known/smart-configuration": {},
}

// auditIntent is the audit record of a create, update, patch or message,
// for the handler to hand to the use case, which commits it with the
// change (nil when no trail is kept). The handler then says whether it was
// committed (auditCommitted); when it was not (nothing was written, or the
// request failed), accessLog keeps the record, as for any other interaction.
func (a *API) auditIntent(c *gin.Context) *gateway.AuditIntent {
	if a.auditor == nil {
		return nil
	}
	it := interactions[c.Request.Method+" "+c.FullPath()]
	intent := &gateway.AuditIntent{StatusCreated: http.StatusCreated, StatusOther: http.StatusOK,
		Record: gateway.AuditRecord{Recorded: c.GetTime(auditStartKey), Interaction: it.subtype, Action: it.action, Address: c.ClientIP()}}
	if c.FullPath() == processMessageRoute {
		// A message that makes a referral writes it, and is answered 200 (BaRS) whether new or repeated.
		intent.StatusCreated = http.StatusOK
	}
	return intent
}

// auditCommitted notes that the request's audit record was committed with
// its change, so accessLog does not keep it again.
func auditCommitted(c *gin.Context, out *gateway.Outcome) {
	if out != nil && out.Audited {
		c.Set(auditCommittedKey, true)
	}
}

// auditNoteKey holds the note of a request's audit record
// (gateway.AuditRecord.Note).
const auditNoteKey = "signpost.audit.note"

// auditStartKey holds when a request began, for its audit record.
const auditStartKey = "signpost.audit.start"

// auditCommittedKey marks a request whose audit record was committed with
// its change.
const auditCommittedKey = "signpost.audit.committed"

// auditRecord is what is kept of one interaction: who (client and
// organisation), what (references; for a search, the type and the names of
// its parameters, never their values, which can be NHS numbers), outcome and
// when. The AuditEvent is rendered from it when read (gateway.AuditRecord).
func (a *API) auditRecord(c *gin.Context, start time.Time) *gateway.AuditRecord {
	it, known := interactions[c.Request.Method+" "+c.FullPath()]
	if !known || it.subtype == "" {
		return nil // health, metadata and discovery are not interactions with data
	}
	if c.GetBool(unauditedKey) {
		return nil
	}
	r := &gateway.AuditRecord{Recorded: start, Interaction: it.subtype, Action: it.action, Status: c.Writer.Status(), Address: c.ClientIP(),
		Note: c.GetString(auditNoteKey)}
	if v, ok := c.Get(callerKey); ok {
		caller := v.(gateway.Caller)
		r.Client, r.Org = caller.ClientID, caller.Organization
	}
	if id := c.GetString(auditClientKey); id != "" && r.Client == "" {
		r.Client = id
	}
	if refs, ok := c.Get(auditWhatKey); ok {
		r.What = refs.([]string)
	}
	if len(r.What) == 0 && c.Param("id") != "" {
		r.What = []string{c.Param("type") + "/" + c.Param("id")} // what was asked for, found or not
	}
	if it.subtype == "search-type" && r.Client != "" {
		// Parameter names only for a known caller: from anyone else they
		// are whatever a stranger chose to write into the trail.
		names := make([]string, 0, len(c.Request.URL.Query()))
		for k := range c.Request.URL.Query() {
			names = append(names, k)
		}
		for k := range c.Request.PostForm {
			names = append(names, k)
		}
		slices.Sort(names)
		r.Query = c.Param("type") + " search by " + strings.Join(slices.Compact(names), ", ")
	}
	return r
}
