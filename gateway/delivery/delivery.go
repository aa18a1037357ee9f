package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/queue"
)

// Message is the thin payload of a delivery (documented in gateway/webhook/DELIVERY.md):
// what a provider needs to recognise the referral and fetch it, with its
// own credentials, through an audited read.
type Message struct {
	Type     string         `json:"type"`
	ID       string         `json:"id"`
	Provider string         `json:"provider"`
	Referral MessageDetails `json:"referral"`
	// Action is what the provider's system must do: "delete" when the
	// patient withdrew consent (referral.withdrawn), or nothing.
	Action string `json:"action,omitempty"`
}

// ErrWithheld is a referral's delivery found withheld from its provider
// (held for consent, or withdrawn since it was queued): nothing is sent,
// and the job is finished.
var ErrWithheld = errors.New("the referral is withheld from the provider")

// withheld reports a delivery whose Task is withheld: while a referral is
// held for consent, or after it was withdrawn, nothing of it goes to the
// provider (not the referral, nor a cancellation queued or retrying before
// the withdrawal landed) except the withdrawal's own delete notice.
func withheld(d *queue.Delivery, task *gateway.Resource) error {
	if blocked(d, task) {
		return ErrWithheld
	}
	return nil
}

func blocked(d *queue.Delivery, task *gateway.Resource) bool {
	return d.Event != queue.EventWithdrawn && gateway.Withheld(task.Body)
}

// MessageDetails are the referral's references and routing facts.
type MessageDetails struct {
	Task           string `json:"task"`
	ServiceRequest string `json:"serviceRequest"`
	Category       string `json:"category"`
	Priority       string `json:"priority,omitempty"`
	Status         string `json:"status"`
	AuthoredOn     string `json:"authoredOn,omitempty"`
}

// DeliveryBody builds what is sent: the thin JSON message, or with full a
// FHIR Bundle (collection) of the Task, ServiceRequest and Patient.
func (s *Service) DeliveryBody(ctx context.Context, d *queue.Delivery, full bool) ([]byte, error) {
	task, view, err := s.ReadTask(ctx, d.TaskID)
	if err != nil {
		return nil, err
	}
	d.Task, d.TaskView = task, view
	if err := withheld(d, task); err != nil {
		return nil, err
	}
	// A withdrawal names the referral and says delete it: it carries
	// nothing more of the patient, whatever the payload.
	if !full || d.Event == queue.EventWithdrawn {
		typ, action := "referral.requested", ""
		switch d.Event {
		case queue.EventCancelled:
			typ = "referral.cancelled"
		case queue.EventWithdrawn:
			typ, action = "referral.withdrawn", "delete"
		}
		// The thin message names the referral (and its category), no more.
		d.Disclosed = []string{task.Ref() + "/_history/" + task.VersionID(), gateway.TypeServiceRequest + "/" + d.ServiceRequestID}
		return json.Marshal(Message{Type: typ, ID: d.ID, Provider: d.ProviderID, Action: action, Referral: MessageDetails{
			Task: s.Base + "/" + task.Ref(), ServiceRequest: s.Base + "/" + gateway.TypeServiceRequest + "/" + d.ServiceRequestID,
			Category: d.Category, Priority: view.Priority, Status: string(view.Status), AuthoredOn: view.AuthoredOn}})
	}
	more, err := s.Store.ReadMany(ctx, []string{gateway.TypeServiceRequest + "/" + d.ServiceRequestID})
	if err != nil {
		return nil, err
	}
	// What the provider's share profile lets it see, as over the API.
	task, more = s.SharedWith(providerCaller(d), task), s.SharedAll(providerCaller(d), more)
	p, _, err := s.patientForProvider(ctx, d, task, view)
	if err != nil {
		return nil, err
	}
	if p != nil {
		more = append(more, p)
	}
	b := fhir.Bundle{ID: gateway.NewID(), Type: "collection", Timestamp: gateway.Instant(s.Now()), Total: -1}
	d.Disclosed = nil
	for _, r := range append([]*gateway.Resource{task}, more...) {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: s.Base + "/" + r.Ref(), Resource: r.Body})
		d.Disclosed = append(d.Disclosed, r.Ref()+"/_history/"+r.VersionID())
	}
	return b.Marshal(), nil
}

// providerCaller is the delivery's provider as a caller: what it is sent
// is what it could read over the API.
func providerCaller(d *queue.Delivery) gateway.Caller {
	return gateway.Caller{ClientID: d.ProviderID, Kind: gateway.CallerProvider}
}

// patientForProvider is the Patient a referral Task is for, when the
// delivery's provider may see it (nil otherwise), as over the API, with the
// FHIR id the referral names it by.
func (s *Service) patientForProvider(ctx context.Context, d *queue.Delivery, task *gateway.Resource, view *gateway.TaskView) (*gateway.Resource, string, error) {
	id, ok := strings.CutPrefix(s.LocalRef(view.For), gateway.TypePatient+"/")
	if !ok {
		return nil, "", nil
	}
	p, err := s.PatientOf(ctx, providerCaller(d), task, id)
	return p, id, err
}

// TaskForProvider is the referral Task as a provider's FHIR server gets it:
// its references made absolute, so they resolve back to Signpost.
func (s *Service) TaskForProvider(ctx context.Context, d *queue.Delivery) ([]byte, error) {
	task, view, err := s.ReadTask(ctx, d.TaskID)
	if err != nil {
		return nil, err
	}
	d.Task, d.TaskView = task, view
	if err := withheld(d, task); err != nil {
		return nil, err
	}
	d.Disclosed = []string{task.Ref() + "/_history/" + task.VersionID()}
	refs := map[string]string{}
	for _, r := range []string{view.Focus, view.For, view.Owner} {
		if r != "" && !strings.Contains(r, "://") && !strings.HasPrefix(r, "#") {
			refs[r] = s.Base + "/" + r
		}
	}
	return fhir.RewriteReferences(s.SharedWith(providerCaller(d), task).Body, refs)
}

// Delivered records that the provider has the referral: a new Task version
// with businessStatus "delivered", the GP's notification, and the job's
// acknowledgement, in one step.
func (s *Service) Delivered(ctx context.Context, d *queue.Delivery, providerName string) error {
	return s.recordDelivery(ctx, d, func(view *gateway.TaskView) (map[string]any, []gateway.Job) {
		status := map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": gateway.BusinessDelivered, "display": "Delivered to the provider"}},
			"text": "delivered to " + providerName}
		switch d.Event {
		case queue.EventCancelled:
			status = map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": "cancellation-delivered", "display": "Cancellation delivered to the provider"}},
				"text": "cancellation delivered to " + providerName}
		case queue.EventWithdrawn:
			status = map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": "withdrawal-delivered", "display": "Provider told to delete the referral"}},
				"text": "consent withdrawn: " + providerName + " told to delete the referral"}
		}
		return map[string]any{"businessStatus": status}, nil
	})
}

// DeadLetter records that a delivery failed for good: the job goes to the
// dead-letter queue, and a referral Task that was still waiting becomes
// failed with the reason, so the GP learns of it. When an attempt timed
// out the provider may have the referral (a receiver as slow as the
// timeout stores it and answers late), so Signpost does not tell the GP it
// could not be delivered: the Task stays requested, with business status
// "delivery-unconfirmed", and the dead letter waits for an operator to
// confirm with the provider or send it again (the same webhook-id, which
// the provider deduplicates on).
func (s *Service) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	if d.Unconfirmed() {
		return s.deadLetterUnconfirmed(ctx, d, reason)
	}
	return s.recordDelivery(ctx, d, func(view *gateway.TaskView) (map[string]any, []gateway.Job) {
		dead := d.DeadLetterJob(reason, s.Now())
		change := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": "undeliverable", "display": "Could not be delivered to the provider"}},
			"text":   "could not be delivered: " + reason}}
		// Signpost itself fails a referral it could not deliver: only one
		// still waiting for the provider (requested). Once the provider has
		// it, a failed send changes nothing about the referral.
		if d.Event == queue.EventReferral && view.Status == gateway.TaskRequested {
			change["status"] = gateway.TaskFailed
			change["statusReason"] = map[string]string{"text": "Signpost could not deliver the referral to the provider: " + reason}
		}
		return change, []gateway.Job{dead}
	})
}

// BusinessDeliveryUnconfirmed is the business status of a referral whose
// delivery was never acknowledged but may have arrived (attempts timed out).
const BusinessDeliveryUnconfirmed = "delivery-unconfirmed"

// deadLetterUnconfirmed dead-letters a delivery whose outcome is unknown,
// leaving the referral's status as it is.
func (s *Service) deadLetterUnconfirmed(ctx context.Context, d *queue.Delivery, reason string) error {
	return s.recordDelivery(ctx, d, func(view *gateway.TaskView) (map[string]any, []gateway.Job) {
		text := fmt.Sprintf("delivery not confirmed: %d of %d attempts timed out, so the provider may have the referral; last: %s", d.TimedOut, d.Attempt+1, reason)
		change := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": BusinessDeliveryUnconfirmed, "display": "Delivery not confirmed by the provider"}},
			"text":   text}}
		return change, []gateway.Job{d.DeadLetterJob("unconfirmed: "+reason, s.Now())}
	})
}

// recordDelivery writes a new version of the delivery's Task with the
// members change returns, with the jobs, the GP notification and the
// acknowledgement of the delivery job, retrying if the Task changed meanwhile.
func (s *Service) recordDelivery(ctx context.Context, d *queue.Delivery, change func(*gateway.TaskView) (map[string]any, []gateway.Job)) error {
	cur, view := d.Task, d.TaskView // the version the message was built from, if it was
	for attempt := 0; attempt < queue.MaxAttempts; attempt++ {
		if cur == nil || view == nil || attempt > 0 {
			var err error
			cur, view, err = s.ReadTask(ctx, d.TaskID)
			if errors.Is(err, gateway.ErrNotFound) {
				return fmt.Errorf("delivery job %s: its Task is not held", d.Job.ID)
			}
			if err != nil {
				return err
			}
		}
		members, jobs := change(view)
		c := queue.TaskChange(s.Core, cur, view, members, jobs, d.Job.Ref())
		if blocked(d, cur) {
			// Withdrawn while it was being sent: the Task is the
			// withdrawal's now, and says so; what was sent stays on record
			// and the withdrawal's own delivery tells the provider to delete it.
			c = &gateway.Commit{Done: d.Job.Ref()}
		}
		// What was sent is on record with its delivery. When another worker
		// took the job over (Lost), the record is left in d.Disclosure for
		// the caller to keep apart.
		c.Audit = d.Disclosure
		res, err := s.Commit(ctx, c)
		if err != nil {
			return err
		}
		if res.OK() {
			d.Disclosure = nil // on record with the delivery
			return nil
		}
		if res.Lost {
			return nil // recorded; or another worker took the job over and records it
		}
	}
	return errors.New("the Task kept changing while a delivery was recorded")
}

// Why a dead letter is not re-driven.
var (
	ErrMovedOn         = errors.New("the referral has moved on since the delivery failed")
	ErrAlreadyRedriven = errors.New("the dead letter was re-driven already")
)

// failedUnaccepted reports whether the failed referral Task id was never
// accepted. Signpost fails only a referral still requested (DeadLetter); a
// provider fails only one it accepted (the status moves), and may give its
// failure any business status, "undeliverable" too. So a failed referral
// that was accepted is the provider's failure, however it reads.
func (s *Service) failedUnaccepted(ctx context.Context, id string) (bool, error) {
	recs, err := s.Store.JourneyRecords(ctx, []string{id}, insights.OlderTaskWindow)
	if err != nil {
		return false, err
	}
	return recs[0].Journey().At[gateway.MilestoneAccepted].IsZero(), nil
}

// Redrive sends a dead letter again, as an operator asks after fixing its
// cause: the job goes back on the delivery queue with its attempts reset
// (and the same webhook-id), a Task that failed because of it is requested
// again, and the dead letter is removed, in one step.
func (s *Service) Redrive(ctx context.Context, dead gateway.QueuedJob) error {
	d, err := queue.ReadDelivery(dead)
	if err != nil {
		return err
	}
	var fields []string
	for k, v := range queue.ReadDeadLetter(dead).Replayed() {
		fields = append(fields, k, v)
	}
	job := gateway.Job{Queue: gateway.QueueDelivery, Fields: fields}
	// No consumer: the commit checks the dead letter still exists, so the
	// same dead letter is re-driven once however often replay is asked.
	ack := &gateway.JobRef{Queue: gateway.QueueDeadLetter, Place: dead.Place, ID: dead.ID}
	for attempt := 0; attempt < queue.MaxAttempts; attempt++ {
		cur, view, err := s.ReadTask(ctx, d.TaskID)
		if err != nil {
			return err
		}
		// Only a failure Signpost recorded is undone: a Task the provider
		// closed (failed, completed, rejected) or that was cancelled has
		// moved on, and a referral is not sent to it again.
		signpostFailed := view.Status == gateway.TaskFailed && view.BusinessStatusCode == "undeliverable"
		if signpostFailed && d.Event == queue.EventReferral {
			if signpostFailed, err = s.failedUnaccepted(ctx, d.TaskID); err != nil {
				return err
			}
		}
		if d.Event == queue.EventReferral && view.Status != gateway.TaskRequested && !signpostFailed {
			return fmt.Errorf("%w: the referral is %s", ErrMovedOn, view.Status)
		}
		members := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": gateway.BusinessRedriven, "display": "Sent again by an operator"}},
			"text":   "sent again by an operator after a failed delivery"}}
		if signpostFailed && d.Event == queue.EventReferral {
			members["status"] = gateway.TaskRequested
			members["statusReason"] = map[string]string{"text": "delivery is being retried by an operator"}
		}
		res, err := s.Commit(ctx, queue.TaskChange(s.Core, cur, view, members, []gateway.Job{job}, ack))
		if err != nil {
			return err
		}
		if res.Lost {
			return ErrAlreadyRedriven
		}
		if res.OK() {
			return nil
		}
	}
	return errors.New("the Task kept changing while a dead letter was re-driven")
}
