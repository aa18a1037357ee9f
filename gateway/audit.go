package gateway

import (
	"cmp"
	"encoding/json"
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
}

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
	r.Address, r.Query, r.User = truncate(r.Address), truncate(r.Query), truncate(r.User)
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
	return f
}

// ReadAuditRecord reads a record back from its stream fields.
func ReadAuditRecord(f map[string]string) AuditRecord {
	ms, _ := strconv.ParseInt(f["t"], 10, 64)
	status, _ := strconv.Atoi(f["s"])
	unlisted, _ := strconv.Atoi(f["wn"])
	r := AuditRecord{Unlisted: unlisted, Recorded: time.UnixMilli(ms).UTC(), Interaction: f["i"], Action: f["a"], Status: status, Client: f["c"],
		Org: Identifier{f["os"], f["ov"]}, Address: f["ip"], Query: f["q"], User: f["u"]}
	if f["w"] != "" {
		r.What = strings.Split(f["w"], " ")
	}
	return r
}

// Interactions of people with Signpost's pages that are not FHIR
// interactions: signing in (made, refused or locked out) and out. Their
// AuditEvents are DICOM User Authentication events.
const (
	InteractionLogin  = "login"
	InteractionLogout = "logout"
)

// userAuthentication is the AuditEvent type and subtypes of sign-in and
// sign-out (DICOM, as IHE's audit profiles use them).
var userAuthentication = map[string]map[string]string{
	InteractionLogin:  {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"},
	InteractionLogout: {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110123", "display": "Logout"},
}

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

// balpProfiles are the IHE Basic Audit Log Pattern profiles by interaction.
var balpProfiles = map[string]string{
	"create": "IHE.BasicAudit.Create", "read": "IHE.BasicAudit.Read", "vread": "IHE.BasicAudit.Read",
	"update": "IHE.BasicAudit.Update", "patch": "IHE.BasicAudit.Update", "search-type": "IHE.BasicAudit.Query",
}

// Event renders the record as a FHIR AuditEvent in the IHE BALP shape.
// observer is the FHIR base of the Signpost that kept it.
func (r AuditRecord) Event(observer string) []byte {
	outcome := "0"
	switch {
	case r.Status >= 500:
		outcome = "8"
	case r.Status >= 400:
		outcome = "4"
	}
	who := map[string]any{"display": r.Client}
	if r.Client == "" {
		who["display"] = "unauthenticated"
	}
	if r.Org.Value != "" {
		who["identifier"] = map[string]string{"system": r.Org.System, "value": r.Org.Value}
	}
	entityType := map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}
	var entities []map[string]any
	// A search's query first, then what it returned.
	if r.Query != "" {
		entities = append(entities, map[string]any{"type": entityType, "description": r.Query})
	}
	for _, ref := range r.What {
		entities = append(entities, map[string]any{"what": map[string]string{"reference": ref}, "type": entityType})
	}
	if r.Unlisted > 0 {
		entities = append(entities, map[string]any{"type": entityType, "description": strconv.Itoa(r.Unlisted) + " more resources, not listed"})
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"},
		"subtype":      []map[string]string{{"system": "http://hl7.org/fhir/restful-interaction", "code": r.Interaction}},
		"action":       r.Action,
		"recorded":     Instant(r.Recorded),
		"outcome":      outcome,
		"outcomeDesc":  strconv.Itoa(r.Status) + " " + http.StatusText(r.Status),
		"agent": []map[string]any{
			withNetwork(map[string]any{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}}},
				"who": who, "requestor": true}, r.Address, "2"),
			withNetwork(map[string]any{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}}},
				"who": map[string]string{"display": "Signpost"}, "requestor": false}, observer, "5"),
		},
		"source": map[string]any{"observer": map[string]string{"display": "Signpost"},
			"type": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}}},
	}
	if r.Interaction == InteractionExport {
		// Signpost sent: it is the source and requestor, the recipient the
		// destination (IHE's export of data to another party).
		recipient := map[string]any{"display": cmp.Or(r.Client, "unknown recipient")}
		if r.Org.Value != "" {
			recipient["identifier"] = map[string]string{"system": r.Org.System, "value": r.Org.Value}
		}
		ev["type"] = map[string]string{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}
		delete(ev, "subtype")
		if r.Query != "" {
			ev["subtype"] = []map[string]string{{"system": "https://signpost.health/fhir/CodeSystem/disclosure-path", "code": r.Query}}
		}
		ev["agent"] = []map[string]any{
			withNetwork(map[string]any{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}}},
				"who": map[string]string{"display": "Signpost"}, "requestor": true}, observer, "5"),
			{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}}},
				"who": recipient, "requestor": false},
		}
	}
	if sub, ok := userAuthentication[r.Interaction]; ok {
		ev["type"] = map[string]string{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication"}
		ev["subtype"] = []map[string]string{sub}
	}
	if r.User != "" {
		// A person acted through Signpost's pages: they are the requestor,
		// the provider's organisation the system they acted for.
		agents := ev["agent"].([]map[string]any)
		agents[0]["requestor"] = false
		ev["agent"] = append(agents, map[string]any{
			"type": map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user"}}},
			"who":  map[string]any{"identifier": map[string]string{"system": PortalUserSystem, "value": r.User}}, "requestor": true})
	}
	if p := balpProfiles[r.Interaction]; p != "" {
		ev["meta"] = map[string]any{"profile": []string{"https://profiles.ihe.net/ITI/BALP/StructureDefinition/" + p}}
	}
	if len(entities) > 0 {
		ev["entity"] = entities
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err) // strings and maps only
	}
	return b
}

// withNetwork adds an agent's network address, when it is known: an empty
// address is not valid FHIR, and says nothing.
func withNetwork(agent map[string]any, address, typ string) map[string]any {
	if address != "" {
		agent["network"] = map[string]string{"address": address, "type": typ}
	}
	return agent
}
