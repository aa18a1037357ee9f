package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/queue"
)

// BaRS reason codes of the messages Signpost sends a provider: a referral
// is new; its cancellation is an update whose ServiceRequest is revoked
// (STANDARDS §4: BaRS has no cancel event).
const (
	barsReasonNew    = "new"
	barsReasonUpdate = "update"
	// barsReasonDelete tells the provider the patient withdrew consent:
	// it deletes what it holds of the referral.
	barsReasonDelete = "delete"
)

// BarsRequest is the servicerequest-request message a provider whose
// delivery kind is bars is sent for one delivery.
type BarsRequest struct {
	// MessageID is the message's Bundle.id and its X-Request-Id: the same
	// for every attempt of one delivery (derived from the delivery id), so
	// a provider that answers a resend 409 duplicate is recognised as
	// having it, and its servicerequest-response names it.
	MessageID string
	// CorrelationID is X-Correlation-Id: one per referral, so the provider
	// can tie the referral and its cancellation together.
	CorrelationID string
	Body          []byte
}

// BarsMessageID is the id of the message a delivery is sent as.
func BarsMessageID(d *queue.Delivery) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("signpost:bars-request:"+d.ID)).String()
}

// BarsRequest builds the message for a delivery, and before it is sent
// claims the key that ties its id to the Task (gateway.SentMessageKey), so
// a provider answering at once, before Signpost has recorded the delivery,
// still finds its referral. It holds the ServiceRequest as stored (for a
// cancellation, revoked), the Patient if the provider may see it (as over
// the API and in a full webhook), and the resources that came with the
// referral; each entry's fullUrl is Signpost's own URL for it, so the
// relative references between them resolve.
func (s *Service) BarsRequest(ctx context.Context, d *queue.Delivery) (*BarsRequest, error) {
	task, view, err := s.ReadTask(ctx, d.TaskID)
	if err != nil {
		return nil, err
	}
	d.Task, d.TaskView = task, view
	if err := withheld(d, task); err != nil {
		return nil, err
	}
	provider, ok := s.Router().Provider(d.ProviderID)
	if !ok || len(provider.Services) == 0 {
		// Configuration refuses a bars provider without a service; one
		// removed since the job was queued cannot be addressed.
		return nil, fmt.Errorf("provider %s has no BaRS service to address the message to", d.ProviderID)
	}
	srRef := gateway.TypeServiceRequest + "/" + d.ServiceRequestID
	sr, err := s.Store.Read(ctx, gateway.TypeServiceRequest, d.ServiceRequestID)
	if err != nil {
		return nil, err
	}
	sr = s.SharedWith(providerCaller(d), sr) // never nil: a ServiceRequest is always shared in part
	srBody := sr.Body
	reason := barsReasonNew
	if d.Event == queue.EventCancelled || d.Event == queue.EventWithdrawn {
		reason = barsReasonUpdate
		if d.Event == queue.EventWithdrawn {
			reason = barsReasonDelete
		}
		// A referral cancelled through its Task (REST) may still have an
		// active ServiceRequest; BaRS cancels by revoking it, so that is what
		// the provider is told.
		if st := gateway.RequestStatus(statusOf(sr.Body)); !st.Withdraws() {
			if srBody, err = setStatus(sr.Body, string(gateway.RequestRevoked)); err != nil {
				return nil, err
			}
		}
	}
	if d.Event == queue.EventWithdrawn {
		srBody = deleteNotice(srBody)
	}
	msgID := BarsMessageID(d)
	type entry struct {
		fullURL string
		body    []byte
	}
	entries := []entry{{s.Absolute(srRef), srBody}}
	d.Disclosed = []string{srRef + "/_history/" + sr.VersionID()}
	var p *gateway.Resource
	var id string
	var more []*gateway.Resource
	if d.Event != queue.EventWithdrawn { // a delete names the referral only
		if p, id, err = s.patientForProvider(ctx, d, task, view); err != nil {
			return nil, err
		}
		if more, err = s.Supporting(ctx, srRef); err != nil {
			return nil, err
		}
		more = s.SharedAll(providerCaller(d), more)
	}
	if p != nil {
		// Stored under a key scoped to its GP system; the referral names
		// it by its FHIR id, and the fullUrl must match that name.
		entries = append(entries, entry{s.Absolute(gateway.TypePatient + "/" + id), p.Body})
		d.Disclosed = append(d.Disclosed, p.Ref()+"/_history/"+p.VersionID())
	}
	for _, r := range more {
		entries = append(entries, entry{s.Absolute(r.Ref()), r.Body})
		d.Disclosed = append(d.Disclosed, r.Ref()+"/_history/"+r.VersionID())
	}
	header := map[string]any{
		"resourceType": "MessageHeader",
		// Derived from the message id, so a resend is the same message throughout.
		"id":          uuid.NewSHA1(uuid.NameSpaceURL, []byte(msgID+"/header")).String(),
		"eventCoding": map[string]string{"system": gateway.BaRSEventSystem, "code": gateway.BaRSServiceRequestRequest},
		"destination": []map[string]any{{"endpoint": provider.Services[0], "receiver": organization(provider.Organization, provider.DisplayName())}},
		"source":      map[string]string{"name": "Signpost", "software": "Signpost", "endpoint": s.Base},
		"reason":      map[string]any{"coding": []map[string]string{{"system": gateway.BaRSReasonSystem, "code": reason}}},
		"focus":       []map[string]string{{"reference": s.Absolute(srRef)}},
	}
	var requester struct {
		Requester json.RawMessage `json:"requester"`
	}
	_ = json.Unmarshal(task.Body, &requester) // stored bytes passed the raw checks
	if sender := senderOf(requester.Requester, s.Absolute); sender != nil {
		header["sender"] = sender
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	b := fhir.Bundle{ID: msgID, Type: "message", Timestamp: gateway.Instant(s.Now()), Total: -1}
	b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: "urn:uuid:" + header["id"].(string), Resource: hb})
	for _, e := range entries {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: e.fullURL, Resource: e.body})
	}
	if err := s.claimSent(ctx, msgID, task.Ref()); err != nil {
		return nil, err
	}
	return &BarsRequest{MessageID: msgID, Body: b.Marshal(),
		CorrelationID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("signpost:bars-correlation:"+task.ID)).String()}, nil
}

// claimSent ties a message id to its Task, once; claiming it again for the
// same Task (a retry, a redrive) is no change.
func (s *Service) claimSent(ctx context.Context, msgID, taskRef string) error {
	key := gateway.SentMessageKey(msgID)
	held, err := s.Store.Lookup(ctx, key)
	if err != nil || held == taskRef {
		return err
	}
	res, err := s.Commit(ctx, &gateway.Commit{Unique: []gateway.UniqueKey{{Key: key, Value: taskRef, Of: taskRef}}})
	if err != nil {
		return err
	}
	if res.Held != nil && res.Held.Holder != taskRef {
		return fmt.Errorf("BaRS message %s is tied to %s already, not %s", msgID, res.Held.Holder, taskRef)
	}
	return nil
}

// organization is a logical reference to an organisation by its
// identifier (an ODS code): the receiver of a message, which Signpost holds
// no Organization resource for.
func organization(id gateway.Identifier, name string) map[string]any {
	r := map[string]any{"display": name}
	if id.Value != "" {
		r["identifier"] = map[string]string{"system": id.System, "value": id.Value}
	}
	return r
}

// senderOf is MessageHeader.sender, who answers for the referral: the
// referral Task's requester (the GP's practitioner or organisation), its
// reference made absolute; nil when the requester is of a type a sender
// cannot be (R4: Practitioner, PractitionerRole or Organization).
func senderOf(requester json.RawMessage, absolute func(string) string) map[string]any {
	var r map[string]any
	if len(requester) == 0 || json.Unmarshal(requester, &r) != nil {
		return nil
	}
	if ref, ok := r["reference"].(string); ok {
		// Type/id, or an absolute URL ending so; a urn: names an entry of
		// the GP's message, which this one does not carry.
		parts := strings.Split(ref, "/")
		typ := ""
		if len(parts) >= 2 && !strings.HasPrefix(ref, "urn:") {
			typ = parts[len(parts)-2]
		}
		switch typ {
		case gateway.TypeOrganization, "Practitioner", "PractitionerRole":
			r["reference"] = absolute(ref)
		default:
			delete(r, "reference")
		}
	}
	if r["reference"] == nil && r["identifier"] == nil {
		return nil
	}
	return r
}

// deleteNoticeMembers are what a delete message keeps of the ServiceRequest:
// what names the referral (its id, the GP's identifier for it), that it is
// revoked, and R4's required intent and subject. The provider is being told
// to delete the referral after consent was withdrawn; it is sent nothing
// more of it.
var deleteNoticeMembers = []string{"resourceType", "id", "meta", "identifier", "status", "intent", "subject"}

// deleteNotice is the ServiceRequest (revoked, cut to the provider's share
// profile) as a delete message carries it: its deleteNoticeMembers, its
// meta only its profiles, its subject only the reference to the patient
// (or, with none, what of the patient's identifier the profile shares).
func deleteNotice(sr []byte) []byte {
	var members map[string]json.RawMessage
	if json.Unmarshal(sr, &members) != nil {
		return sr // stored bytes passed the raw checks; never here
	}
	var meta struct {
		Profile []string `json:"profile"`
	}
	_ = json.Unmarshal(members["meta"], &meta)
	delete(members, "meta")
	if len(meta.Profile) > 0 {
		members["meta"], _ = json.Marshal(map[string]any{"profile": meta.Profile})
	}
	var subject map[string]json.RawMessage
	if json.Unmarshal(members["subject"], &subject) == nil {
		kept := map[string]json.RawMessage{}
		if ref, ok := subject["reference"]; ok {
			kept["reference"] = ref
		} else if id, ok := subject["identifier"]; ok {
			kept["identifier"] = id
		} else {
			kept["display"] = json.RawMessage(`"the patient"`)
		}
		members["subject"], _ = json.Marshal(kept)
	}
	out := []byte(`{"resourceType":"ServiceRequest"`)
	for _, name := range deleteNoticeMembers[1:] {
		if v, ok := members[name]; ok {
			k, _ := json.Marshal(name)
			out = append(append(append(append(out, ','), k...), ':'), v...)
		}
	}
	return append(out, '}')
}

// statusOf is a stored resource's status.
func statusOf(body []byte) string {
	var v struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Status
}

// setStatus is a stored resource with another status.
func setStatus(body []byte, status string) ([]byte, error) {
	return fhir.ReplaceMembers(body, map[string]any{"status": status}), nil
}
