package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditRecord is what is kept of one interaction: who, what, outcome and
// when, and never patient details. It is stored as a few short fields
// (Fields), because the trail grows with every request; the FHIR AuditEvent
// is rendered from it when it is read (Event).
type AuditRecord struct {
	Recorded    time.Time
	Interaction string // restful-interaction code: create, read, vread, update, patch, search-type, transaction, token
	Action      string // C, R, U, D, E
	Status      int    // HTTP status of the answer
	Client      string // client id, or "" when unauthenticated
	Org         Identifier
	Address     string   // the caller's network address
	What        []string // references touched
	Query       string   // for searches: the type and the parameter names, never values
	// User is the person, for what was done in the web pages: the account's
	// address ("" for a system's API call).
	User string
	// Unlisted counts the references touched beyond the MaxAuditWhat kept
	// in What (a large search page, a long transaction).
	Unlisted int
	// Note says what Status alone does not: AuditStoredNote for a request
	// answered with an error after its change was stored. Signpost's own
	// words, never the request's.
	Note string
}

// AuditStoredNote is the Note of a request whose change was stored (What
// names what it stored) but which was answered with an error: what has to
// follow the commit before the answer (the referrals its Consents concern
// in other partitions, decided again) did not finish, and is left to the
// request's retry (StoredError).
const AuditStoredNote = "the change was stored; deciding again the referrals it concerns elsewhere did not finish and is left to the request's retry"

// Bounds of one audit record. Much of a record comes from the caller (the
// path's type and id, parameter names, a client id it claims), and the
// trail is kept for years: an anonymous caller must not be able to make a
// record large, however long its path or query.
const (
	// MaxAuditField caps every text field of a record, in bytes.
	MaxAuditField = 256
	// MaxAuditWhat caps the references one record lists; the rest are
	// counted (Unlisted).
	MaxAuditWhat = 100
)

// Bounded returns the record with every field within the bounds above.
func (r AuditRecord) Bounded() AuditRecord {
	r.Interaction, r.Action, r.Client = truncate(r.Interaction), truncate(r.Action), truncate(r.Client)
	r.Org = Identifier{truncate(r.Org.System), truncate(r.Org.Value)}
	r.Address, r.Query, r.User, r.Note = truncate(r.Address), truncate(r.Query), truncate(r.User), truncate(r.Note)
	if len(r.What) > MaxAuditWhat {
		r.Unlisted += len(r.What) - MaxAuditWhat
		r.What = r.What[:MaxAuditWhat]
	}
	what := make([]string, len(r.What))
	for i, ref := range r.What {
		// A reference is one field of the stream entry, joined by spaces.
		what[i] = truncate(strings.ReplaceAll(ref, " ", "%20"))
	}
	r.What = what
	return r
}

// truncate cuts s to MaxAuditField bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= MaxAuditField {
		return s
	}
	cut := MaxAuditField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Fields is the record as stream fields, within the bounds of a record.
func (r AuditRecord) Fields() []string {
	r = r.Bounded()
	f := []string{
		"t", strconv.FormatInt(r.Recorded.UnixMilli(), 10), "i", r.Interaction, "a", r.Action,
		"s", strconv.Itoa(r.Status), "c", r.Client, "os", r.Org.System, "ov", r.Org.Value,
		"ip", r.Address, "w", strings.Join(r.What, " "), "q", r.Query, "u", r.User,
	}
	if r.Unlisted > 0 {
		f = append(f, "wn", strconv.Itoa(r.Unlisted))
	}
	if r.Note != "" {
		f = append(f, "n", r.Note)
	}
	return f
}

// ReadAuditRecord reads a record back from its stream fields.
func ReadAuditRecord(f map[string]string) AuditRecord {
	ms, _ := strconv.ParseInt(f["t"], 10, 64)
	status, _ := strconv.Atoi(f["s"])
	unlisted, _ := strconv.Atoi(f["wn"])
	r := AuditRecord{Unlisted: unlisted, Recorded: time.UnixMilli(ms).UTC(), Interaction: f["i"], Action: f["a"], Status: status, Client: f["c"],
		Org: Identifier{f["os"], f["ov"]}, Address: f["ip"], Query: f["q"], User: f["u"], Note: f["n"]}
	if f["w"] != "" {
		r.What = strings.Split(f["w"], " ")
	}
	return r
}

// AuditEntry is one kept audit record with its position in the trail (its
// time and order).
type AuditEntry struct {
	ID     string
	Record AuditRecord
}

// Interactions of people with Signpost's pages that are not FHIR
// interactions: signing in (made, refused or locked out) and out. Their
// AuditEvents are DICOM User Authentication events.
const (
	InteractionLogin  = "login"
	InteractionLogout = "logout"
)

// InteractionExport is Signpost's own disclosure of resources to another
// system (a delivery to a provider, a write-back or a subscription
// notification to a GP system): the AuditEvent is a DICOM Export event
// with Signpost as the source and the recipient (Client, Org) as the
// destination.
const InteractionExport = "export"

// Disclosure is the record of resources sent to recipient (a provider's or
// GP system's id) through path (how, e.g. "delivery webhook"), kept once
// the recipient has acknowledged them.
func Disclosure(now time.Time, recipient string, org Identifier, path string, what []string) *AuditRecord {
	return &AuditRecord{Recorded: now, Interaction: InteractionExport, Action: "R", Status: http.StatusOK,
		Client: recipient, Org: org, What: what, Query: path}
}

// PortalUserSystem names the people who sign in to Signpost's pages, by
// their account's address.
const PortalUserSystem = "https://signpost.health/fhir/Id/portal-user"

// AuditIntent is the audit record of a request that may change data, as
// its caller hands it to a use case, which commits it with the change. The
// caller fills in what it knows before the request runs (when, which
// interaction, from where) and the status it answers a request that made a
// resource and one that did not; the use case adds who and what.
type AuditIntent struct {
	Record                     AuditRecord
	StatusCreated, StatusOther int
}
