package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/export"
)

// The Bulk Data routes (FHIR Bulk Data Access IG, system-level export).
const (
	exportRoute       = "/fhir/$export"
	exportStatusRoute = "/fhir/$export-status/:job"
	exportFileRoute   = "/fhir/$export-file/:job/:file"
)

// deidentifiedExtension is the manifest extension saying an export was
// de-identified (its files hold pseudonyms, not NHS numbers).
const deidentifiedExtension = "https://signpost.health/fhir/StructureDefinition/deidentified"

// exportRetryAfter is how long a client polling a running export is asked
// to wait between requests, in seconds.
const exportRetryAfter = "5"

// ndjsonFormats are the _outputFormat values the IG says a server takes
// for NDJSON.
var ndjsonFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"}

// exportKickoff is GET /fhir/$export. Every problem with the request is
// named at once, by the header or parameter at fault.
func (a *API) exportKickoff(c *gin.Context) {
	if a.uc.Export == nil {
		a.failWith(c, gateway.KindNotSupported, fhir.IssueNotSupported, "this deployment does not export")
		return
	}
	var p gateway.Problems
	if !headerHas(c.Request.Header.Values("Prefer"), "respond-async") {
		p.Add(fhir.IssueRequired, "Prefer", "a bulk export is asynchronous: send Prefer: respond-async")
	}
	if !headerHas(c.Request.Header.Values("Accept"), "application/fhir+json") {
		p.Add(fhir.IssueRequired, "Accept", "send Accept: application/fhir+json, as the Bulk Data specification requires of a kick-off")
	}
	q := c.Request.URL.Query()
	var req export.Request
	for name, values := range q {
		switch name {
		case "_outputFormat":
			if len(values) != 1 || !slices.Contains(ndjsonFormats, values[0]) {
				p.Add(fhir.IssueNotSupported, "_outputFormat", "Signpost exports NDJSON only: leave _outputFormat out or send application/fhir+ndjson")
			}
		case "_type":
			types, err := export.CheckTypes(values)
			if err != nil {
				p.Issues = append(p.Issues, gateway.AsError(err).Issues...)
			}
			req.Types = types
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(values[0]))
			if len(values) != 1 || err != nil || !strings.Contains(values[0], "T") {
				p.Add(fhir.IssueValue, "_since", "_since is a FHIR instant, such as 2026-01-31T09:00:00Z (date, time to the second and a time zone), given once")
			}
			req.Since = t
		case "_deidentify":
			switch {
			case len(values) == 1 && values[0] == "true":
				req.Deidentify = true
			case len(values) == 1 && values[0] == "false":
			default:
				p.Add(fhir.IssueValue, "_deidentify", "_deidentify is true or false, given once")
			}
		default:
			p.Add(fhir.IssueNotSupported, name, "%s is not supported by Signpost's export; it takes _type, _since, _outputFormat and _deidentify", name)
		}
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		a.fail(c, err)
		return
	}
	// The token must allow reading every type exported (system/*.rs does).
	types := req.Types
	if len(types) == 0 {
		types = export.Types()
	}
	for _, typ := range types {
		if !a.allow(c, typ, auth.ActionRead) {
			return
		}
	}
	caller, _ := a.who(c, "")
	req.URL = a.fhirBase + "/$export"
	if raw := c.Request.URL.RawQuery; raw != "" {
		req.URL += "?" + raw
	}
	id, err := a.uc.Export.Start(c.Request.Context(), caller, req)
	if err != nil {
		a.fail(c, err)
		return
	}
	audited(c, exportRef(id))
	c.Header("Content-Location", a.fhirBase+"/$export-status/"+id)
	c.Status(http.StatusAccepted)
}

// exportOnlyExports keeps an operator's or evaluator's system (operators:
// in the configuration) to the export operation: its token's scopes may
// say system/*.rs, but it reads no record through any other route.
func (a *API) exportOnlyExports(c *gin.Context) {
	caller, ok := a.who(c, "")
	if !ok || !caller.ExportOnly() {
		return
	}
	switch c.FullPath() {
	case exportRoute, exportStatusRoute, exportFileRoute:
		return
	}
	a.failWith(c, gateway.KindForbidden, fhir.IssueForbidden,
		"this client takes system-level exports ($export) and may use nothing else")
}

// exportStatus is GET /fhir/$export-status/{job}: 202 with X-Progress while
// the export runs, the manifest when it is done, an OperationOutcome (500)
// when it failed.
func (a *API) exportStatus(c *gin.Context) {
	if a.uc.Export == nil {
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotFound, "this deployment does not export")
		return
	}
	caller, _ := a.who(c, "")
	j, err := a.uc.Export.Status(c.Request.Context(), caller, c.Param("job"))
	if err != nil {
		a.fail(c, err)
		return
	}
	audited(c, exportRef(j.ID))
	switch j.Status {
	case export.StatusRunning:
		c.Header("Retry-After", exportRetryAfter)
		progress := j.Progress
		if progress == "" {
			progress = "started"
		}
		c.Header("X-Progress", progress)
		c.Status(http.StatusAccepted)
	case export.StatusFailed:
		// The export's outcome, not this request's: the request worked.
		c.Header("Expires", j.Finished.Add(a.uc.Export.Keep()).UTC().Format(http.TimeFormat))
		c.Data(http.StatusInternalServerError, fhirJSON, fhir.OperationOutcome(fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueException, Diagnostics: j.Failure}))
	default:
		type output struct {
			Type  string `json:"type"`
			URL   string `json:"url"`
			Count int    `json:"count"`
		}
		m := struct {
			TransactionTime     string   `json:"transactionTime"`
			Request             string   `json:"request"`
			RequiresAccessToken bool     `json:"requiresAccessToken"`
			Output              []output `json:"output"`
			Error               []output `json:"error"`
			// Extension says a de-identified export is one (the Bulk
			// Data manifest's extension object).
			Extension map[string]any `json:"extension,omitempty"`
		}{TransactionTime: gateway.Instant(j.TransactionTime), Request: j.Request, RequiresAccessToken: true, Output: []output{}, Error: []output{}}
		if j.Deidentified {
			m.Extension = map[string]any{deidentifiedExtension: true}
		}
		for _, o := range j.Output {
			m.Output = append(m.Output, output{Type: o.Type, URL: a.fhirBase + "/$export-file/" + j.ID + "/" + o.File, Count: o.Count})
		}
		body, _ := json.Marshal(m)
		c.Header("Expires", j.Finished.Add(a.uc.Export.Keep()).UTC().Format(http.TimeFormat))
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	}
}

// exportCancel is DELETE /fhir/$export-status/{job}: the export stops and
// its files are removed.
func (a *API) exportCancel(c *gin.Context) {
	if a.uc.Export == nil {
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotFound, "this deployment does not export")
		return
	}
	caller, _ := a.who(c, "")
	if err := a.uc.Export.Cancel(c.Request.Context(), caller, c.Param("job")); err != nil {
		a.fail(c, err)
		return
	}
	audited(c, exportRef(c.Param("job")))
	c.Status(http.StatusAccepted)
}

// exportFile is GET /fhir/$export-file/{job}/{file}: one NDJSON file,
// streamed from disk.
func (a *API) exportFile(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if a.uc.Export == nil {
		a.failWith(c, gateway.KindNotFound, fhir.IssueNotFound, "this deployment does not export")
		return
	}
	caller, _ := a.who(c, "")
	f, err := a.uc.Export.File(c.Request.Context(), caller, c.Param("job"), c.Param("file"))
	if err != nil {
		a.fail(c, err)
		return
	}
	defer f.Close()
	audited(c, exportRef(c.Param("job")))
	c.Header("Content-Type", "application/fhir+ndjson")
	if st, err := f.Stat(); err == nil {
		c.Header("Content-Length", strconv.FormatInt(st.Size(), 10))
	}
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, f); err != nil {
		a.log.Warn("export file: the download ended early", "error", err)
	}
}

// exportRef is what an audit record names for an export job: its status
// URL, relative to the FHIR base (the job is no resource, but the trail
// should say which export was started, polled or downloaded).
func exportRef(id string) string { return "$export-status/" + id }

// headerHas reports whether any of a header's comma-separated values is
// want (parameters after ";" ignored, case-insensitive).
func headerHas(values []string, want string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			token, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(token), want) {
				return true
			}
		}
	}
	return false
}
