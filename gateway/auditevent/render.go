package auditevent

import (
	"github.com/signpost-health/signpost/gateway"

	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
)

// userAuthentication is the AuditEvent type and subtypes of sign-in and
// sign-out (DICOM, as IHE's audit profiles use them).
var userAuthentication = map[string]map[string]string{
	gateway.InteractionLogin:  {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"},
	gateway.InteractionLogout: {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110123", "display": "Logout"},
}

// balpProfiles are the IHE Basic Audit Log Pattern profiles by interaction.
var balpProfiles = map[string]string{
	"create": "IHE.BasicAudit.Create", "read": "IHE.BasicAudit.Read", "vread": "IHE.BasicAudit.Read",
	"update": "IHE.BasicAudit.Update", "patch": "IHE.BasicAudit.Update", "search-type": "IHE.BasicAudit.Query",
}

// Render renders the record as a FHIR AuditEvent in the IHE BALP shape.
// observer is the FHIR base of the Signpost that kept it.
func Render(r gateway.AuditRecord, observer string) []byte {
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
		"recorded":     gateway.Instant(r.Recorded),
		"outcome":      outcome,
		"outcomeDesc":  outcomeDesc(r),
		"agent": []map[string]any{
			withNetwork(map[string]any{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}}},
				"who": who, "requestor": true}, r.Address, "2"),
			withNetwork(map[string]any{"type": map[string]any{"coding": []map[string]string{{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}}},
				"who": map[string]string{"display": "Signpost"}, "requestor": false}, observer, "5"),
		},
		"source": map[string]any{"observer": map[string]string{"display": "Signpost"},
			"type": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}}},
	}
	if r.Interaction == gateway.InteractionExport {
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
			"who":  map[string]any{"identifier": map[string]string{"system": gateway.PortalUserSystem, "value": r.User}}, "requestor": true})
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

// outcomeDesc is the answer's status, and the record's note when it has
// one (a change stored although the answer is an error).
func outcomeDesc(r gateway.AuditRecord) string {
	desc := strconv.Itoa(r.Status) + " " + http.StatusText(r.Status)
	if r.Note != "" {
		desc += "; " + r.Note
	}
	return desc
}
