package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/bars"
	"github.com/signpost-health/signpost/gateway/intake"
)

// processMessageRoute is the BaRS endpoint. Gin matches this literal
// segment before the /fhir/:type parameter.
const processMessageRoute = "/fhir/$process-message"

// processMessage is POST /fhir/$process-message: a BaRS
// servicerequest-request from a GP system. A new one makes a referral
// exactly as POST /fhir/ServiceRequest does, so it needs the same scope; an
// update or delete changes (or withdraws) the referral the same client's new
// message made, as a PUT of its ServiceRequest does, so it needs the update
// scope as well: a token that may only create referrals must not rewrite or
// withdraw them. What the message stores beside the referral (its Consent,
// Encounter, Practitioners, …) needs what a transaction entry storing it
// needs (messageWrites): a Consent decides what a provider is sent, so the
// right to refer is not the right to record one. The Patient entry is the
// documented exception (README, Who may do what).
func (a *API) processMessage(c *gin.Context) {
	caller, _ := a.who(c, "")
	if caller.Kind == gateway.CallerProvider {
		// A provider sends responses to the referrals Signpost sent it.
		a.processResponse(c, caller)
		return
	}
	if !a.allow(c, gateway.TypeServiceRequest, auth.ActionCreate) {
		return
	}
	requestID := senderRequestID(c)
	obj, err := a.uc.Intake.ParseMessage(requestBody(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	msg, err := bars.Read(obj, requestID)
	if err != nil {
		a.fail(c, err)
		return
	}
	if msg.Reason != intake.MessageNew && !a.allow(c, gateway.TypeServiceRequest, auth.ActionUpdate) {
		return
	}
	audit := a.auditIntent(c)
	if audit != nil && msg.Reason != intake.MessageNew {
		audit.Record.Action = "U" // it changes the referral an earlier message made
	}
	got, err := a.uc.Intake.ReceiveReferral(c.Request.Context(), caller, msg, messageWrites(c), audit)
	if err != nil {
		a.fail(c, err)
		return
	}
	sr := got.ServiceRequest
	auditCommitted(c, sr)
	if msg.Reason == intake.MessageNew {
		result := "created"
		if !sr.Created {
			result = "repeat"
		}
		a.metrics.Referral(c.Request.Context(), result, sr.Category, "")
	}
	if got.Task != nil {
		audited(c, sr.Resource.Ref(), got.Task.Ref())
	} else {
		audited(c, sr.Resource.Ref())
	}
	a.versionHeaders(c, sr.Resource)
	c.Data(http.StatusOK, fhirJSON, a.messageAnswer(msg, got))
}

// messageAnswer is the synchronous answer to a request message. The BaRS
// API specification (NHSDigital/booking-and-referral-fhir-api,
// specification/booking-and-referral.yaml, POST /$process-message,
// response 200, example process_message/POST-success.json) answers 200
// with a message Bundle of what was processed: here a MessageHeader whose
// response names the message received (its Bundle.id) with code ok, the
// stored ServiceRequest and its referral Task (as they are after an update
// or delete), and the warnings, if any.
func (a *API) messageAnswer(msg *intake.MessageReferral, got *intake.ReceivedReferral) []byte {
	sr := got.ServiceRequest.Resource
	header := map[string]any{
		"resourceType": "MessageHeader",
		"id":           gateway.NewID(),
		"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": gateway.BaRSServiceRequestRequest},
		"source":       map[string]string{"endpoint": a.fhirBase + "/$process-message", "software": "Signpost"},
		"response":     map[string]string{"identifier": msg.MessageID, "code": "ok"},
		"focus":        []map[string]string{{"reference": sr.Ref()}},
	}
	hb, err := json.Marshal(header)
	if err != nil {
		panic(err) // strings and maps only
	}
	b := fhir.Bundle{ID: gateway.NewID(), Type: "message", Timestamp: gateway.Instant(time.Now()), Total: -1}
	b.Entries = append(b.Entries,
		fhir.BundleEntry{FullURL: "urn:uuid:" + gateway.NewID(), Resource: hb},
		fhir.BundleEntry{FullURL: a.fhirBase + "/" + sr.Ref(), Resource: sr.Body})
	if t := got.Task; t != nil {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: a.fhirBase + "/" + t.Ref(), Resource: t.Body})
	}
	if w := got.Warnings; len(w) > 0 {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: "urn:uuid:" + gateway.NewID(), Resource: fhir.OperationOutcome(w...)})
	}
	return b.Marshal()
}

// senderRequestID is the caller's X-Request-Id. Only the sender's own is an
// idempotency key; one correlation made up when it sent none (or one too
// long) is not.
func senderRequestID(c *gin.Context) string {
	requestID := c.GetHeader("X-Request-Id")
	if len(requestID) > maxCorrelationID {
		return ""
	}
	return requestID
}

// processResponse is POST /fhir/$process-message from a provider: a BaRS
// servicerequest-response to a referral Signpost sent it (delivery kind
// bars). It moves the referral Task as the provider's PUT of it would, so
// it needs the same scope.
func (a *API) processResponse(c *gin.Context, caller gateway.Caller) {
	if !a.allow(c, gateway.TypeTask, auth.ActionUpdate) {
		return
	}
	obj, err := a.uc.Intake.ParseMessage(requestBody(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	msg, err := bars.ReadResponse(obj, senderRequestID(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	audit := a.auditIntent(c)
	if audit != nil {
		audit.Record.Action = "U" // it changes the referral Task
	}
	out, err := a.uc.Intake.ReceiveResponse(c.Request.Context(), caller, msg, audit)
	if err != nil {
		a.fail(c, err)
		return
	}
	auditCommitted(c, out)
	task := out.Resource
	audited(c, task.Ref())
	a.versionHeaders(c, task)
	header := map[string]any{
		"resourceType": "MessageHeader",
		"id":           gateway.NewID(),
		"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": gateway.BaRSServiceRequestResponse},
		"source":       map[string]string{"endpoint": a.fhirBase + "/$process-message", "software": "Signpost"},
		"response":     map[string]string{"identifier": msg.MessageID, "code": "ok"},
		"focus":        []map[string]string{{"reference": a.fhirBase + "/" + task.Ref()}},
	}
	hb, err := json.Marshal(header)
	if err != nil {
		panic(err) // strings and maps only
	}
	b := fhir.Bundle{ID: gateway.NewID(), Type: "message", Timestamp: gateway.Instant(time.Now()), Total: -1}
	b.Entries = append(b.Entries,
		fhir.BundleEntry{FullURL: "urn:uuid:" + header["id"].(string), Resource: hb},
		fhir.BundleEntry{FullURL: a.fhirBase + "/" + task.Ref(), Resource: task.Body})
	c.Data(http.StatusOK, fhirJSON, b.Marshal())
}
