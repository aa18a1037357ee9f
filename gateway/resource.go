package gateway

import (
	"strconv"
	"time"
)

// The resource types Signpost stores.
const (
	TypeServiceRequest = "ServiceRequest"
	TypeTask           = "Task"
	TypePatient        = "Patient"
	// TypeProvenance records who made each change to a referral Task;
	// Signpost writes them, clients read them.
	TypeProvenance = "Provenance"
	// TypeOrganization is what a provider is, as a referral Task's owner.
	TypeOrganization = "Organization"
	// TypeConsent is a GP system's record of what its patient agreed to
	// share (Consent and minimum necessary, in the README).
	TypeConsent = "Consent"
)

// Resource is one stored version of a resource. Body is the JSON as the
// client sent it with the server's id, meta.versionId and meta.lastUpdated
// set; it is served as it is, never re-serialised.
type Resource struct {
	Type        string
	ID          string
	Version     int
	LastUpdated time.Time
	Body        []byte
	// Owner is the client that created the resource: the GP system whose
	// referral it is. It never changes, and decides who may see it.
	Owner string
}

// Ref is the relative reference to the resource, "Type/id".
func (r *Resource) Ref() string { return r.Type + "/" + r.ID }

// VersionID is meta.versionId.
func (r *Resource) VersionID() string { return strconv.Itoa(r.Version) }

// ETag is the weak entity tag FHIR uses for versions.
func (r *Resource) ETag() string { return `W/"` + strconv.Itoa(r.Version) + `"` }

// Instant formats a time the way Signpost writes meta.lastUpdated: UTC with
// milliseconds, the precision of the search index.
func Instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Identifier is a business identifier (system and value), as FHIR has it.
type Identifier struct {
	System, Value string
}

// Caller is the system making a request, as authentication established it.
type Caller struct {
	// ClientID is the configured client (GP system) or provider id.
	ClientID     string
	Kind         CallerKind
	Organization Identifier
	// Person is the signed-in person acting for the client in Signpost's
	// web pages (their account's address); "" for a system's API call.
	Person string
}

// CallerKind says which side of a referral a caller is on, which decides
// what it may see and which Task transitions it may make.
type CallerKind int

const (
	// CallerOperator sees everything: a deployment without authentication
	// (loopback only) or an operator's tool.
	CallerOperator CallerKind = iota
	// CallerGP is a GP record system: it sees the referrals it made.
	CallerGP
	// CallerProvider is a VCS provider: it sees the referrals it was sent.
	CallerProvider
	// CallerExporter is an operator's system under SMART: it takes
	// system-level exports, identified or de-identified, and reads nothing
	// through the rest of the API.
	CallerExporter
	// CallerEvaluator is an evaluator's system: it takes de-identified
	// exports only, and reads nothing else.
	CallerEvaluator
)

// MayExport reports whether the caller may take system-level exports, and
// whether only de-identified ones.
func (c Caller) MayExport() (ok, deidentifiedOnly bool) {
	switch c.Kind {
	case CallerOperator, CallerExporter:
		return true, false
	case CallerEvaluator:
		return true, true
	}
	return false, false
}

// ExportOnly reports whether the caller may use the export operation and
// nothing else.
func (c Caller) ExportOnly() bool { return c.Kind == CallerExporter || c.Kind == CallerEvaluator }
