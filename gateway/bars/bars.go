// Package bars holds the rules of NHS England's Booking and Referral
// Standard (BaRS) messages Signpost receives at POST /fhir/$process-message:
// a Bundle of type message whose first entry is a MessageHeader naming the
// event, the reason, the destination and the focus. It checks a message and
// hands the domain (gateway) the referral it carries; it stores nothing.
//
// A servicerequest-request is taken with each reason of the BaRS
// message-reason CodeSystem: new makes a referral; update changes the
// referral an earlier new message of the same sender made (a ServiceRequest
// status of revoked cancels it, entered-in-error withdraws it); delete
// withdraws it. The referral an update or delete is about is named as the
// new message named it: by the ServiceRequest's business identifier or its
// entry's fullUrl. Other events (responses, bookings) are refused as not
// supported (422).
package bars

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/intake"
)

// The BaRS code systems and codes a message is read by.
const (
	ReasonNew    = "new"
	ReasonUpdate = "update"
	ReasonDelete = "delete"
)

// reasons maps the reason codes to what intake does with the message.
var reasons = map[string]intake.MessageReason{
	ReasonNew:    intake.MessageNew,
	ReasonUpdate: intake.MessageUpdate,
	ReasonDelete: intake.MessageDelete,
}

// MaxEntries bounds a message: all it carries is stored in one atomic
// commit, as a transaction's entries are.
const MaxEntries = conform.MaxTransactionEntries

// header is where the MessageHeader sits: BaRS, like FHIR messaging, puts
// it first.
const header = "Bundle.entry[0].resource"

// Read checks a BaRS servicerequest-request message and returns the
// referral it carries. The message has passed the checks every resource
// gets at the door already (intake.Service.ParseMessage: the raw JSON, R4's
// structure entry by entry, modifier extensions); these are the rules of
// the message. requestID is the sender's X-Request-Id ("": none).
//
// Every broken rule is an OperationOutcome issue at its element; the BaRS
// code (details.coding, http-error-codes) follows from the error kind:
// 400 REC_BAD_REQUEST for a message that is not well formed, 422
// REC_UNPROCESSABLE_ENTITY for one Signpost does not process.
func Read(obj *fhir.Object, requestID string) (*intake.MessageReferral, error) {
	id, err := messageID(obj)
	if err != nil {
		return nil, err
	}
	entries, _ := obj.Objects("entry")
	if len(entries) > MaxEntries {
		return nil, problem(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry",
			"a message may have at most %d entries; it is stored in one step", MaxEntries)
	}
	m := &intake.MessageReferral{MessageID: id, RequestID: requestID, Entries: map[string]string{}}
	byURL := map[string]int{}
	resources := make([]*fhir.Object, len(entries))
	urls := make([]string, len(entries))
	for i, e := range entries {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		r, ok := e.Object("resource")
		if !ok {
			return nil, problem(gateway.KindInvalid, fhir.IssueRequired, at+".resource", "every entry of a message carries a resource")
		}
		resources[i] = r
		url, _ := e.String("fullUrl")
		if url == "" {
			return nil, problem(gateway.KindInvalid, fhir.IssueRequired, at+".fullUrl", "every entry of a message needs a fullUrl: references between entries resolve by it")
		}
		if _, twice := byURL[url]; twice {
			return nil, problem(gateway.KindInvalid, fhir.IssueInvalid, at+".fullUrl", "two entries have the same fullUrl")
		}
		byURL[url], urls[i] = i, url
		m.Entries[url] = r.ResourceType()
	}
	if len(resources) == 0 || resources[0].ResourceType() != "MessageHeader" {
		return nil, problem(gateway.KindInvalid, fhir.IssueStructure, header, "the first entry of a message must be its MessageHeader")
	}
	mh := resources[0]
	reason, err := checkHeader(mh)
	if err != nil {
		return nil, err
	}
	m.Reason = reason
	// The focus: the ServiceRequest the message is about, an entry of it.
	focus, _ := mh.Objects("focus")
	if len(focus) != 1 {
		return nil, problem(gateway.KindInvalid, fhir.IssueInvalid, header+".focus",
			"a servicerequest-request has exactly one focus, the ServiceRequest entry")
	}
	ref, _ := focus[0].String("reference")
	i, ok := byURL[ref]
	if !ok || resources[i].ResourceType() != gateway.TypeServiceRequest {
		return nil, problem(gateway.KindInvalid, fhir.IssueInvalid, header+".focus[0].reference",
			"the focus must be the fullUrl of the message's ServiceRequest entry")
	}
	m.ServiceRequest = entry(ref, i, resources[i])
	// The Patient: the entry the ServiceRequest's subject names, if any.
	if subject, ok := resources[i].Object("subject"); ok {
		if ref, _ := subject.String("reference"); ref != "" {
			if j, ok := byURL[ref]; ok && resources[j].ResourceType() == gateway.TypePatient {
				p := entry(ref, j, resources[j])
				m.Patient = &p
			}
		}
	}
	if m.Patient == nil && slices.ContainsFunc(resources, func(r *fhir.Object) bool { return r.ResourceType() == gateway.TypePatient }) {
		return nil, problem(gateway.KindInvalid, fhir.IssueInvalid, "Bundle.entry",
			"the message's Patient entry must be the one its ServiceRequest's subject names (by the entry's fullUrl)")
	}
	if err := checkEntries(mh, resources, urls, m); err != nil {
		return nil, err
	}
	dests, _ := mh.Objects("destination")
	for k, d := range dests {
		if endpoint, _ := d.String("endpoint"); endpoint != "" {
			m.Destinations = append(m.Destinations, intake.MessageDestination{Endpoint: endpoint,
				Expr: header + ".destination[" + strconv.Itoa(k) + "].endpoint"})
		}
	}
	if len(m.Destinations) == 0 {
		return nil, problem(gateway.KindInvalid, fhir.IssueRequired, header+".destination",
			"a servicerequest-request names the service it is for in destination.endpoint")
	}
	return m, nil
}

// messageID checks that a Bundle is a message and returns its id
// (Bundle.id), the identity by which a message sent again is known.
func messageID(obj *fhir.Object) (string, error) {
	if typ, _ := obj.String("type"); typ != "message" {
		return "", problem(gateway.KindInvalid, fhir.IssueInvalid, "Bundle.type", "Bundle.type must be message at $process-message")
	}
	id, _ := obj.String("id")
	if id == "" {
		return "", problem(gateway.KindInvalid, fhir.IssueRequired, "Bundle.id", "Bundle.id is required: it is the message's identity, by which a message sent again is known")
	}
	return id, nil
}

// checkHeader checks the event and returns the reason.
func checkHeader(mh *fhir.Object) (intake.MessageReason, error) {
	ev, ok := mh.Object("eventCoding")
	if !ok {
		// R4 requires event[x]; an eventUri cannot name a BaRS event.
		return 0, problem(gateway.KindInvalid, fhir.IssueRequired, header+".eventCoding",
			"a BaRS message names its event in eventCoding (system %s)", gateway.BaRSEventSystem)
	}
	if system, _ := ev.String("system"); system != gateway.BaRSEventSystem {
		return 0, problem(gateway.KindInvalid, fhir.IssueValue, header+".eventCoding.system",
			"the event of a BaRS message is coded in %s", gateway.BaRSEventSystem)
	}
	if code, _ := ev.String("code"); code != gateway.BaRSServiceRequestRequest {
		return 0, problem(gateway.KindUnprocessable, fhir.IssueNotSupported, header+".eventCoding.code",
			"Signpost processes the BaRS event %s (a referral) only", gateway.BaRSServiceRequestRequest)
	}
	rc, ok := mh.Object("reason")
	if !ok {
		return 0, problem(gateway.KindInvalid, fhir.IssueRequired, header+".reason",
			"a servicerequest-request gives its reason (system %s): new, update or delete", gateway.BaRSReasonSystem)
	}
	codings, _ := rc.Objects("coding")
	for k, c := range codings {
		system, _ := c.String("system")
		if system != gateway.BaRSReasonSystem {
			continue
		}
		code, _ := c.String("code")
		reason, known := reasons[code]
		if !known {
			return 0, problem(gateway.KindUnprocessable, fhir.IssueNotSupported, header+".reason.coding["+strconv.Itoa(k)+"].code",
				"a servicerequest-request's reason is %s, %s or %s", ReasonNew, ReasonUpdate, ReasonDelete)
		}
		return reason, nil
	}
	return 0, problem(gateway.KindInvalid, fhir.IssueRequired, header+".reason.coding",
		"the reason must be coded in %s", gateway.BaRSReasonSystem)
}

func entry(fullURL string, i int, r *fhir.Object) intake.MessageEntry {
	return intake.MessageEntry{FullURL: fullURL, Expr: "Bundle.entry[" + strconv.Itoa(i) + "].resource", Body: r.Bytes()}
}

func problem(kind gateway.ErrorKind, code fhir.IssueType, expr, format string, args ...any) error {
	is := fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...), Expression: []string{expr}}
	return &gateway.Error{Kind: kind, Issues: []fhir.Issue{is}}
}
