package writeback

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/queue"
)

// What a response says of the request it answers.
const (
	// barsResponseOK is MessageHeader.response.code (R4 response-code): the
	// request message was processed. A declined referral is still a
	// processed message, so it is ok too, with the decision (Task status
	// rejected and its statusReason) in the Task entry; transient-error and
	// fatal-error name a message that could not be processed, which
	// Signpost answers synchronously, with the HTTP status of
	// $process-message, never later.
	barsResponseOK = "ok"
)

// BarsAnswer is the servicerequest-response telling a BaRS sender what
// became of its referral at one Task version.
type BarsAnswer struct {
	// MessageID is the response's Bundle.id and X-Request-Id, stable per
	// Task version (queue.BarsResponse.MessageID).
	MessageID string
	// RequestID is the id (Bundle.id) of the request message answered.
	RequestID string
	Body      []byte
	// Disclosed names what the message holds, with versions, for the audit.
	Disclosed []string
}

// BarsAnswer builds the response for one job, sent to endpoint (the
// sender's BaRS base). It is nil, with no error, for a referral that did
// not come in a BaRS message: there is no request to answer.
func (s *Service) BarsAnswer(ctx context.Context, job queue.BarsResponse, endpoint string) (*BarsAnswer, error) {
	task, err := s.Store.ReadVersion(ctx, gateway.TypeTask, job.TaskID, job.Version)
	if err != nil {
		return nil, err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	srID, ok := strings.CutPrefix(s.LocalRef(view.Focus), gateway.TypeServiceRequest+"/")
	if !ok {
		return nil, nil // not a referral Task
	}
	requestID, err := s.Store.Lookup(ctx, gateway.MessageOriginKey(srID))
	if err != nil || requestID == "" {
		return nil, err
	}
	// The ServiceRequest as it stands now: the sender's own referral, with
	// any update it sent since.
	sr, err := s.Store.Read(ctx, gateway.TypeServiceRequest, srID)
	if err != nil {
		return nil, err
	}
	msgID := job.MessageID()
	srURL, taskURL := s.Absolute(sr.Ref()), s.Absolute(task.Ref())
	header := map[string]any{
		"resourceType": "MessageHeader",
		// Derived from the message id, so a resend is the same message throughout.
		"id":          uuid.NewSHA1(uuid.NameSpaceURL, []byte(msgID+"/header")).String(),
		"eventCoding": map[string]string{"system": gateway.BaRSEventSystem, "code": gateway.BaRSServiceRequestResponse},
		"destination": []map[string]string{{"endpoint": endpoint}},
		"source":      map[string]string{"name": "Signpost", "endpoint": s.Base},
		"response":    map[string]string{"identifier": requestID, "code": barsResponseOK},
		"focus":       []map[string]string{{"reference": srURL}, {"reference": taskURL}},
	}
	bundle := map[string]any{
		"resourceType": "Bundle",
		"id":           msgID,
		"type":         "message",
		"timestamp":    gateway.Instant(task.LastUpdated),
		"entry": []map[string]any{
			{"fullUrl": "urn:uuid:" + header["id"].(string), "resource": header},
			{"fullUrl": srURL, "resource": s.absoluteRefs(sr.Body, "subject", "requester")},
			{"fullUrl": taskURL, "resource": s.absoluteRefs(task.Body, "focus", "for", "owner", "requester")},
		},
	}
	disclosed := []string{sr.Ref() + "/_history/" + sr.VersionID(), task.Ref() + "/_history/" + task.VersionID()}
	// The outcome measures' scores the Task names go with it.
	scores, err := s.MeasureScores(ctx, task)
	if err != nil {
		return nil, err
	}
	for _, o := range scores {
		bundle["entry"] = append(bundle["entry"].([]map[string]any), map[string]any{"fullUrl": s.Absolute(o.Ref()),
			"resource": s.absoluteRefs(o.Body, "subject", "basedOn", "focus", "derivedFrom", "performer")})
		disclosed = append(disclosed, o.Ref()+"/_history/"+o.VersionID())
	}
	body, err := json.Marshal(bundle)
	if err != nil {
		return nil, err
	}
	return &BarsAnswer{MessageID: msgID, RequestID: requestID, Body: body, Disclosed: disclosed}, nil
}

// absoluteRefs is a stored resource with the named references made
// absolute: the receiver resolves them against Signpost, not against
// its own server.
func (s *Service) absoluteRefs(body []byte, names ...string) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil { // stored bytes passed the raw checks
		return body
	}
	absolute := func(v any) {
		if ref, ok := v.(map[string]any); ok {
			if r, ok := ref["reference"].(string); ok {
				ref["reference"] = s.Absolute(r)
			}
		}
	}
	for _, name := range names {
		absolute(m[name])
		if list, ok := m[name].([]any); ok {
			for _, item := range list {
				absolute(item)
			}
		}
	}
	b, _ := json.Marshal(m)
	return b
}
