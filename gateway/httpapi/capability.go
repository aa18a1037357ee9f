package httpapi

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/query"
	"github.com/signpost-health/signpost/gateway/topic"
)

// CapabilityInfo is what /fhir/metadata says of the deployment.
type CapabilityInfo struct {
	Version  string // Signpost's version
	AuthMode string // "smart" or "none"
}

// capabilityStatement is built from the same tables the API runs on (the
// routes here, gateway's search parameters), so it cannot promise more than
// Signpost does.
func capabilityStatement(info CapabilityInfo, fhirBase string, now time.Time) []byte {
	type param struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type resource struct {
		Type              string        `json:"type"`
		Profile           string        `json:"profile,omitempty"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchParam       []param       `json:"searchParam,omitempty"`
		Documentation     string        `json:"documentation,omitempty"`
	}
	res := func(typ, profile string, updateCreate bool, includes []string, interactions ...string) resource {
		r := resource{Type: typ, Profile: profile, Versioning: "versioned-update", ReadHistory: false, UpdateCreate: updateCreate,
			ConditionalCreate: true, ConditionalDelete: "not-supported", SearchInclude: includes}
		if len(interactions) == 0 {
			interactions = []string{"create", "read", "vread", "update", "search-type"}
		}
		for _, i := range interactions {
			r.Interaction = append(r.Interaction, interaction{i})
		}
		params := query.SearchParams(typ)
		names := make([]string, 0, len(params))
		for n := range params {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			r.SearchParam = append(r.SearchParam, param{Name: n, Type: params[n]})
		}
		r.SearchParam = append(r.SearchParam,
			param{Name: "_lastUpdated", Type: "date", Documentation: "prefixes eq, gt, ge, lt, le, sa, eb; results are ordered by _lastUpdated"},
			param{Name: "_count", Type: "number", Documentation: "page size, default 50, at most 500; next links carry a cursor that keeps the order the search had at its first page, so no match is skipped or repeated while matches change"},
			param{Name: "_sort", Type: "special", Documentation: "_lastUpdated or -_lastUpdated"})
		return r
	}
	// What a BaRS message brings beside its referral: kept as received,
	// read by id by whoever may see the referral.
	var supporting []resource
	for _, typ := range gateway.SupportingTypes() {
		r := res(typ, "http://hl7.org/fhir/StructureDefinition/"+typ, false, nil, "read", "vread")
		r.ConditionalCreate, r.SearchParam = false, nil // read by id only
		r.Documentation = "Kept as a BaRS servicerequest-request brought it, its references to the message's other entries resolved to what was stored; readable by the referring client and by the provider its referral went to (as its share profile allows)."
		switch typ {
		case gateway.TypeQuestionnaireResponse:
			r = res(typ, "http://hl7.org/fhir/StructureDefinition/"+typ, false, nil, "create", "read", "vread", "update")
			r.ConditionalCreate, r.SearchParam = false, nil
			r.Documentation = "Outcome measures: the provider a referral went to records the person's answers (POST) at first contact and at completion (extension " + gateway.MeasurePointExtension +
				" valueCode first-contact or completion), basedOn the referral's ServiceRequest, for a Questionnaire the deployment asks of that referral; checked against the Questionnaire (items, types, ranges, options, required answers; 422 naming each item at fault), " +
				"scored into Observations and linked from the referral Task's output. The same response again is answered with the one stored; a correction is a PUT (If-Match required, 428 without) making a new version, or none when the answers are as stored. A recording holds only questionnaire, status, authored, basedOn, subject, author, the measure-point extension and items' linkId and answer; anything else is 422 naming it. Also kept as a BaRS message brought it. Read by id by the referring client and the provider."
		case gateway.TypeObservation:
			r.Documentation = "Outcome measures' scores (category survey, coded by the deployment's scores table; subject the patient, basedOn the referral, focus the referral Task, derivedFrom the QuestionnaireResponse), named in the referral Task's output, sent with the Task in full-resource notifications, write-back and BaRS responses; also kept as a BaRS message brought it. Read by id by the referring client and the provider."
		case "Consent":
			// A GP system records the patient's consent to share, and its withdrawal, on its own too.
			r = res(typ, "http://hl7.org/fhir/StructureDefinition/"+typ, false, nil, "create", "update", "read", "vread")
			r.ConditionalCreate, r.SearchParam = false, nil
			r.Documentation = "The patient's consent to share their details with a provider. A GP system creates or updates one (also as a transaction entry) for a patient " +
				"(patient by reference or NHS number; status, scope and category required); one sent with a referral (BaRS message, transaction) is that referral's. " +
				"An active Consent permits disclosure to the organisations its provision.actor names (one sent with a referral and naming none: to the referral's provider); " +
				"provision.type deny refuses it. A referral whose provider needs consent (consent: required | attested) and has none is held (Task on-hold, statusReason " +
				gateway.ConsentReasonSystem + "#awaiting-consent) and sent when one arrives; a Consent made inactive or rejected withdraws the referrals it covered " +
				"(Task cancelled, #consent-withdrawn; the provider is told to delete them). Not searched."
		}
		supporting = append(supporting, r)
	}
	questionnaire := resource{Type: gateway.TypeQuestionnaire, Profile: "http://hl7.org/fhir/StructureDefinition/Questionnaire", Versioning: "versioned",
		ConditionalDelete: "not-supported", Interaction: []interaction{{"read"}, {"vread"}, {"search-type"}},
		SearchParam:   []param{{Name: "_id", Type: "token"}, {Name: "url", Type: "uri", Documentation: "with |version, the version served"}, {Name: "name", Type: "string"}, {Name: "status", Type: "token"}},
		Documentation: "The deployment's outcome measures, served read-only (built in: ons4, the ONS personal well-being questions; ucla3, the three-item UCLA loneliness scale)."}
	supporting = append(supporting, questionnaire)
	security := map[string]any{"cors": false, "description": "No authentication: this deployment listens on loopback only."}
	if info.AuthMode != "none" {
		security = map[string]any{"cors": false, "description": "SMART Backend Services (client_credentials with private_key_jwt)."}
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         now.UTC().Format(time.RFC3339),
		"publisher":    "Signpost",
		"kind":         "instance",
		"software":     map[string]string{"name": "Signpost", "version": info.Version},
		"implementation": map[string]string{
			"description": "Signpost: social prescribing referral gateway",
			"url":         fhirBase,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"patchFormat": []string{"application/json-patch+json"},
		"rest": []map[string]any{{
			"mode": "server",
			"documentation": "Every resource written (and every transaction entry) is checked against the R4 StructureDefinitions " +
				"(element names, JSON types, cardinality, choice types, primitive formats, ext-1, dom-2 to dom-5, ref-1, txt-1, txt-2) " +
				"and refused with every problem listed; required bindings of status, intent and priority are checked; " +
				"a modifierExtension the deployment does not understand is refused.",
			"security": security,
			"resource": append([]resource{
				res(gateway.TypeServiceRequest, "http://hl7.org/fhir/StructureDefinition/ServiceRequest", false, nil),
				res(gateway.TypeTask, "http://hl7.org/fhir/StructureDefinition/Task", false, []string{"Task:focus", "Task:patient"},
					"create", "read", "vread", "update", "patch", "search-type"),
				res(gateway.TypePatient, "http://hl7.org/fhir/StructureDefinition/Patient", true, nil),
				func() resource {
					r := res(topic.TypeSubscription, "http://hl7.org/fhir/StructureDefinition/Subscription", false, nil, "create", "read", "vread", "update", "delete", "search-type")
					r.ConditionalCreate = false
					return r
				}(),
				func() resource {
					r := res("AuditEvent", "http://hl7.org/fhir/StructureDefinition/AuditEvent", false, nil, "search-type")
					r.ConditionalCreate, r.Versioning = false, "no-version"
					r.SearchParam = []param{{Name: "entity", Type: "reference",
						Documentation: "required, and the only parameter: the referral, ServiceRequest/{id} or Task/{id}, of the calling GP system (an operator: any)"}}
					r.Documentation = "A referral's disclosures, for its referrer: every record of a provider being sent (webhook, FHIR, BaRS, portal) or reading (API, inbox) the referral's resources, newest first, " +
						"read from the audit trail back to the referral's creation (at most the newest 200,000 records: an OperationOutcome entry says when older ones were not read). Providers may not search it."
					return r
				}(),
				func() resource {
					r := res(gateway.TypeProvenance, "http://hl7.org/fhir/StructureDefinition/Provenance", false, nil, "read", "vread", "search-type")
					r.ConditionalCreate = false
					return r
				}(),
			}, supporting...),
			"interaction": []interaction{{"transaction"}},
			// NHS BaRS: a servicerequest-request (reason new) makes a referral.
			"operation": []map[string]string{{
				"name":       "export",
				"definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
				"documentation": "FHIR Bulk Data system-level export, for operators and evaluators only (with SMART, a client configured under operators:, whose token may read every type exported, such as system/*.rs; an evaluator takes _deidentify=true exports only): " +
					"GET [base]/$export with Prefer: respond-async and Accept: application/fhir+json; _type (comma-separated: the types this server stores), _since (an instant; compared with meta.lastUpdated) " +
					"and _outputFormat (NDJSON only); _deidentify=true writes every resource de-identified (NHS numbers and other patient identifiers as keyed pseudonyms, each Patient's id, and the id in every reference to it, as a keyed pseudonym of the GP system holding it and its id, names, contact details and free text removed, birth dates to the year or removed, as the deployment configures; refused when the deployment has no pseudonym key). " +
					"Patient ids are each GP system's own, so in the full export a Patient's id is SHA-256 of Patient|{client}|{id} in lower-case base32, unique in the export and the same in every one, and every reference to one of this server's Patients (relative, or absolute under this base) names it so (read as the Patient of the GP system whose resource holds the reference); resources are otherwise as stored. " +
					"The answer is 202 with Content-Location; poll it (202 with X-Progress and Retry-After) for the manifest, then GET each file (application/fhir+ndjson) with the same token; " +
					"DELETE the status URL to cancel. Finished exports and their files are kept for the configured time (export.keep). POST kick-off, _typeFilter, _elements and patient are not supported.",
			}, {
				"name":          "process-message",
				"definition":    "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
				"documentation": "NHS Booking and Referral Standard messages: a servicerequest-request with reason new makes a referral, routed by MessageHeader.destination.endpoint to the provider serving it; reason update changes the referral the sender's new message made (ServiceRequest status revoked or entered-in-error cancels it), and delete withdraws it. From a provider, a servicerequest-response to a referral Signpost sent it (delivery kind bars; MessageHeader.response.identifier its Bundle.id) moves that referral's Task as the provider's own update would: a Task entry's status, statusReason, businessStatus and output, or the status of the Encounter in focus, or fatal-error as a decline. Other events are refused (422).",
			}},
		}},
	}
	// Messaging: the BaRS messages Signpost receives at $process-message,
	// over HTTP at its FHIR base, and those it sends: the referral request
	// to a provider whose delivery kind is bars, and the response to a GP
	// system with a BaRS endpoint. supportedMessage names the request's
	// published MessageDefinition; the responses, whose definitions BaRS
	// publishes per application, are described in the documentation only.
	cs["messaging"] = []map[string]any{{
		"endpoint": []map[string]any{{
			"protocol": map[string]string{"system": "http://terminology.hl7.org/CodeSystem/message-transport", "code": "http"},
			"address":  fhirBase,
		}},
		"documentation": "NHS Booking and Referral Standard: a GP system POSTs a servicerequest-request message Bundle to $process-message, routed by MessageHeader.destination.endpoint (a configured service identifier); the answer is a response message Bundle. Signpost sends the referral on as a servicerequest-request to a provider whose delivery kind is bars ({url}/$process-message), and takes that provider's servicerequest-response at $process-message; it answers a GP system with a BaRS endpoint with servicerequest-response messages.",
		"supportedMessage": []map[string]string{
			{"mode": "receiver", "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral"},
			{"mode": "sender", "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral"},
		},
	}}
	b, err := json.Marshal(cs)
	if err != nil {
		panic(err)
	}
	return b
}
