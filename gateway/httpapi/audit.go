package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// Auditor keeps AuditEvents where an operator can read them and nobody can
// change them (redisstore: an append-only stream).
type Auditor interface {
	Audit(ctx context.Context, event []byte) error
}

// auditWhatKey holds the references a handler touched, for the audit.
const auditWhatKey = "signpost.audit.what"

// audited records what a request touched, for its AuditEvent.
func audited(c *gin.Context, refs ...string) {
	if v, ok := c.Get(auditWhatKey); ok {
		refs = append(v.([]string), refs...)
	}
	c.Set(auditWhatKey, refs)
}

// interactions names what a route does, by method and route template.
var interactions = map[string]struct{ subtype, action, profile string }{
	"POST /fhir/:type":                          {"create", "C", "IHE.BasicAudit.Create"},
	"GET /fhir/:type/:id":                       {"read", "R", "IHE.BasicAudit.Read"},
	"GET /fhir/:type/:id/_history/:vid":         {"vread", "R", "IHE.BasicAudit.Read"},
	"PUT /fhir/:type/:id":                       {"update", "U", "IHE.BasicAudit.Update"},
	"PATCH /fhir/:type/:id":                     {"patch", "U", "IHE.BasicAudit.Update"},
	"GET /fhir/:type":                           {"search-type", "E", "IHE.BasicAudit.Query"},
	"POST /fhir/:type/_search":                  {"search-type", "E", "IHE.BasicAudit.Query"},
	"POST /fhir":                                {"transaction", "E", ""},
	"POST /auth/token":                          {"token", "E", ""},
	"GET /fhir/.well-known/smart-configuration": {},
}

// auditEvent builds the IHE Basic Audit Log Pattern (BALP) shape of one
// interaction: who (client and organisation), what (resource references;
// for a search, the type and the names of its parameters, never their
// values, which can be NHS numbers), outcome and when. Never patient details.
func (a *API) auditEvent(c *gin.Context, start time.Time) []byte {
	route := c.FullPath()
	it, known := interactions[c.Request.Method+" "+route]
	if !known || it.subtype == "" {
		return nil // health, metadata and discovery are not interactions with data
	}
	status := c.Writer.Status()
	outcome := "0"
	switch {
	case status >= 500:
		outcome = "8"
	case status >= 400:
		outcome = "4"
	}
	var who map[string]any
	if v, ok := c.Get(callerKey); ok {
		caller := v.(gateway.Caller)
		who = map[string]any{"display": caller.ClientID}
		if caller.Organization.Value != "" {
			who["identifier"] = map[string]string{"system": caller.Organization.System, "value": caller.Organization.Value}
		}
	} else {
		who = map[string]any{"display": "unauthenticated"}
	}
	var entities []map[string]any
	refs, _ := c.Get(auditWhatKey)
	what, _ := refs.([]string)
	if len(what) == 0 && c.Param("id") != "" {
		what = []string{c.Param("type") + "/" + c.Param("id")} // what was asked for, found or not
	}
	for _, ref := range what {
		entities = append(entities, map[string]any{"what": map[string]string{"reference": ref},
			"type": map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}})
	}
	if it.subtype == "search-type" {
		names := make([]string, 0, len(c.Request.URL.Query()))
		for k := range c.Request.URL.Query() {
			names = append(names, k)
		}
		for k := range c.Request.PostForm {
			names = append(names, k)
		}
		slices.Sort(names)
		entities = append(entities, map[string]any{
			"type":        map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
			"description": c.Param("type") + " search by " + strings.Join(slices.Compact(names), ", "),
		})
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"},
		"subtype":      []map[string]string{{"system": "http://hl7.org/fhir/restful-interaction", "code": it.subtype}},
		"action":       it.action,
		"recorded":     gateway.Instant(start),
		"outcome":      outcome,
		"outcomeDesc":  strconv.Itoa(status) + " " + http.StatusText(status),
		"agent": []map[string]any{
			{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}}},
				"who": who, "requestor": true, "network": map[string]string{"address": c.ClientIP(), "type": "2"}},
			{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}}},
				"who": map[string]string{"display": "Signpost"}, "requestor": false, "network": map[string]string{"address": a.fhirBase, "type": "5"}},
		},
		"source": map[string]any{"observer": map[string]string{"display": "Signpost"},
			"type": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}}},
	}
	if it.profile != "" {
		ev["meta"] = map[string]any{"profile": []string{"https://profiles.ihe.net/ITI/BALP/StructureDefinition/" + it.profile}}
	}
	if len(entities) > 0 {
		ev["entity"] = entities
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fhir.OperationOutcome() // not reachable: only strings and maps
	}
	return b
}
