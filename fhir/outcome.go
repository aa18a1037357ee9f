package fhir

import (
	"encoding/json"
)

// Severity is OperationOutcome.issue.severity. It is a string, not an enum
// with a zero value, because the samply models marshal a zero severity as
// "fatal" — a plain string cannot silently escalate a warning.
type Severity string

const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// IssueType is OperationOutcome.issue.code, from the FHIR IssueType value set.
type IssueType string

const (
	IssueInvalid       IssueType = "invalid"
	IssueStructure     IssueType = "structure"
	IssueRequired      IssueType = "required"
	IssueValue         IssueType = "value"
	IssueInvariant     IssueType = "invariant"
	IssueSecurity      IssueType = "security"
	IssueLogin         IssueType = "login"
	IssueForbidden     IssueType = "forbidden"
	IssueNotSupported  IssueType = "not-supported"
	IssueDuplicate     IssueType = "duplicate"
	IssueNotFound      IssueType = "not-found"
	IssueConflict      IssueType = "conflict"
	IssueTooLong       IssueType = "too-long"
	IssueCodeInvalid   IssueType = "code-invalid"
	IssueBusinessRule  IssueType = "business-rule"
	IssueProcessing    IssueType = "processing"
	IssueTooCostly     IssueType = "too-costly"
	IssueThrottled     IssueType = "throttled"
	IssueTransient     IssueType = "transient"
	IssueException     IssueType = "exception"
	IssueInformational IssueType = "informational"
)

// HTTPErrorCodeSystem is NHS England's code system for the error codes BaRS
// puts in OperationOutcome.issue.details, so UK senders can act on errors the
// way they already do for BaRS receivers.
const HTTPErrorCodeSystem = "https://fhir.nhs.uk/CodeSystem/http-error-codes"

// Issue is one entry of an OperationOutcome. Diagnostics is read by people
// and must never carry values from a request body: those may be patient data.
type Issue struct {
	Severity    Severity
	Code        IssueType
	DetailsCode string // from HTTPErrorCodeSystem, e.g. "REC_BAD_REQUEST"; optional
	Diagnostics string
	Expression  []string // FHIRPath of the element at fault
}

type outcomeJSON struct {
	ResourceType string      `json:"resourceType"`
	Issue        []issueJSON `json:"issue"`
}

type issueJSON struct {
	Severity    Severity         `json:"severity"`
	Code        IssueType        `json:"code"`
	Details     *codeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
	Expression  []string         `json:"expression,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// OperationOutcome renders issues as an OperationOutcome resource. An empty
// list still yields a valid resource (FHIR requires at least one issue), with
// an informational "all ok" issue.
func OperationOutcome(issues ...Issue) []byte {
	out := outcomeJSON{ResourceType: "OperationOutcome", Issue: make([]issueJSON, 0, len(issues))}
	for _, is := range issues {
		j := issueJSON{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression}
		if j.Severity == "" {
			j.Severity = SeverityError
		}
		if j.Code == "" {
			j.Code = IssueProcessing
		}
		if is.DetailsCode != "" {
			j.Details = &codeableConcept{Coding: []coding{{System: HTTPErrorCodeSystem, Code: is.DetailsCode}}}
		}
		out.Issue = append(out.Issue, j)
	}
	if len(out.Issue) == 0 {
		out.Issue = append(out.Issue, issueJSON{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: "All OK"})
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Only strings and slices of strings: marshalling cannot fail.
		panic(err)
	}
	return b
}

// SaysDuplicate reports whether body is an OperationOutcome with an issue
// of code duplicate: how an NHS BaRS receiver answers (409) a message whose
// X-Request-Id it has processed already. Anything else, including a body
// that is not JSON, is not.
func SaysDuplicate(body []byte) bool {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code IssueType `json:"code"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return false
	}
	for _, is := range oo.Issue {
		if is.Code == IssueDuplicate {
			return true
		}
	}
	return false
}
