package bars

import (
	"encoding/json"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/intake"
)

// MessageHeader.response.code (R4 response-code).
const (
	responseOK        = "ok"
	responseTransient = "transient-error"
	responseFatal     = "fatal-error"
)

// taskMembers are the Task elements a provider's Task entry may carry to
// Signpost's referral Task: those a provider sets over the API. Others are
// the referrer's or Signpost's, and are left as they are.
var taskMembers = []string{"status", "statusReason", "businessStatus", "output"}

// encounterStatus maps the status of the provider's current Encounter,
// which BaRS puts as the focus of a referral response to tell the sender
// how the case is going, onto the referral Task's status: planned is a
// case the provider has taken on; arrived, triaged, in-progress and
// onleave are under way; finished is done; cancelled is a case the
// provider will not see through.
var encounterStatus = map[string]gateway.TaskStatus{
	"planned":     gateway.TaskAccepted,
	"arrived":     gateway.TaskInProgress,
	"triaged":     gateway.TaskInProgress,
	"in-progress": gateway.TaskInProgress,
	"onleave":     gateway.TaskInProgress,
	"finished":    gateway.TaskCompleted,
	"cancelled":   gateway.TaskRejected,
}

// ReadResponse checks a provider's servicerequest-response and returns what
// it says of the referral Task. requestID is the provider's X-Request-Id.
//
// What moves the Task, first found first:
//   - a Task entry (as Signpost's own responses to GP systems carry): its
//     status, statusReason, businessStatus and output;
//   - an Encounter the MessageHeader focuses on (BaRS referral response
//     guidance): its status, by encounterStatus, and its reasonCode as the
//     reason a cancelled Encounter gives;
//   - response.code fatal-error: the provider's system could not take the
//     referral, which it declines (rejected), with the reason its
//     OperationOutcome (response.details, or an entry) gives.
//
// Anything else (ok or transient-error with neither) moves nothing: the
// response is acknowledged and the Task stays as it is.
func ReadResponse(obj *fhir.Object, requestID string) (*intake.MessageResponse, error) {
	id, err := messageID(obj)
	if err != nil {
		return nil, err
	}
	entries, _ := obj.Objects("entry")
	resources := make([]*fhir.Object, 0, len(entries))
	byURL := map[string]int{}
	for i, e := range entries {
		r, ok := e.Object("resource")
		if !ok {
			return nil, problem(gateway.KindInvalid, fhir.IssueRequired, "Bundle.entry["+strconv.Itoa(i)+"].resource", "every entry of a message carries a resource")
		}
		if url, _ := e.String("fullUrl"); url != "" {
			byURL[url] = i
		}
		resources = append(resources, r)
	}
	if len(resources) == 0 || resources[0].ResourceType() != "MessageHeader" {
		return nil, problem(gateway.KindInvalid, fhir.IssueStructure, header, "the first entry of a message must be its MessageHeader")
	}
	mh := resources[0]
	ev, _ := mh.Object("eventCoding")
	if system, _ := ev.String("system"); ev == nil || system != gateway.BaRSEventSystem {
		return nil, problem(gateway.KindInvalid, fhir.IssueValue, header+".eventCoding.system",
			"the event of a BaRS message is coded in %s", gateway.BaRSEventSystem)
	}
	if code, _ := ev.String("code"); code == gateway.BaRSServiceRequestRequest {
		return nil, problem(gateway.KindForbidden, fhir.IssueForbidden, header+".eventCoding.code",
			"a provider does not send referrals: it answers those Signpost sent it with %s", gateway.BaRSServiceRequestResponse)
	} else if code != gateway.BaRSServiceRequestResponse {
		return nil, problem(gateway.KindUnprocessable, fhir.IssueNotSupported, header+".eventCoding.code",
			"a provider sends Signpost %s messages, answering the referrals Signpost sent it", gateway.BaRSServiceRequestResponse)
	}
	resp, ok := mh.Object("response")
	answers, _ := resp.String("identifier")
	if !ok || answers == "" {
		return nil, problem(gateway.KindInvalid, fhir.IssueRequired, header+".response.identifier",
			"a servicerequest-response names the request message it answers (its Bundle.id) in response.identifier")
	}
	m := &intake.MessageResponse{MessageID: id, RequestID: requestID, Answers: answers, AnswersExpr: header + ".response.identifier"}
	code, _ := resp.String("code")
	switch code {
	case responseOK, responseTransient, responseFatal:
	default:
		return nil, problem(gateway.KindInvalid, fhir.IssueValue, header+".response.code", "response.code is ok, transient-error or fatal-error")
	}
	for i, r := range resources {
		if r.ResourceType() == gateway.TypeTask {
			m.Change, m.ChangeExpr = taskChange(r), "Bundle.entry["+strconv.Itoa(i)+"].resource"
			return m, nil
		}
	}
	focus, _ := mh.Objects("focus")
	for _, f := range focus {
		ref, _ := f.String("reference")
		if i, ok := byURL[ref]; ok && resources[i].ResourceType() == "Encounter" {
			change, err := encounterChange(resources[i], "Bundle.entry["+strconv.Itoa(i)+"].resource")
			if err != nil {
				return nil, err
			}
			m.Change, m.ChangeExpr = change, "Bundle.entry["+strconv.Itoa(i)+"].resource"
			return m, nil
		}
	}
	if code == responseFatal {
		reason := "the provider's system could not process the referral (fatal-error)"
		if text := outcomeText(resp, resources, byURL); text != "" {
			reason += ": " + text
		}
		m.Change = map[string]any{"status": gateway.TaskRejected, "statusReason": map[string]string{"text": reason}}
		m.ChangeExpr = header + ".response"
	}
	return m, nil
}

// taskChange is what a Task entry sets of the referral Task.
func taskChange(t *fhir.Object) map[string]any {
	out := map[string]any{}
	for _, name := range taskMembers {
		if v, ok := t.Member(name); ok {
			out[name] = json.RawMessage(v)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// encounterChange is what the focus Encounter says of the referral Task.
func encounterChange(enc *fhir.Object, expr string) (map[string]any, error) {
	st, _ := enc.String("status")
	status, known := encounterStatus[st]
	if !known {
		return nil, problem(gateway.KindUnprocessable, fhir.IssueNotSupported, expr+".status",
			"an Encounter status of %q says nothing Signpost can tell the referrer; send planned, in-progress, finished or cancelled", st)
	}
	change := map[string]any{"status": status}
	if status.NeedsReason() {
		reason := "the provider cancelled the encounter"
		if rc, _ := enc.Objects("reasonCode"); len(rc) > 0 {
			if text := conceptText(rc[0]); text != "" {
				reason = text
			}
		}
		change["statusReason"] = map[string]string{"text": reason}
	}
	return change, nil
}

// outcomeText is what the OperationOutcome of a fatal-error response says:
// the one response.details names, or else the first in the message.
func outcomeText(resp *fhir.Object, resources []*fhir.Object, byURL map[string]int) string {
	var oo *fhir.Object
	if d, ok := resp.Object("details"); ok {
		ref, _ := d.String("reference")
		if i, ok := byURL[ref]; ok {
			oo = resources[i]
		}
	}
	for _, r := range resources {
		if oo == nil && r.ResourceType() == "OperationOutcome" {
			oo = r
		}
	}
	if oo == nil {
		return ""
	}
	issues, _ := oo.Objects("issue")
	for _, is := range issues {
		if text, _ := is.String("diagnostics"); text != "" {
			return text
		}
		if d, ok := is.Object("details"); ok {
			if text := conceptText(d); text != "" {
				return text
			}
		}
	}
	return ""
}

// conceptText is a CodeableConcept's text, or its first coding's display.
func conceptText(c *fhir.Object) string {
	if text, _ := c.String("text"); text != "" {
		return text
	}
	codings, _ := c.Objects("coding")
	for _, cd := range codings {
		if d, _ := cd.String("display"); d != "" {
			return d
		}
	}
	return ""
}
