package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
)

// Delivery events: a new referral for the provider, or the referrer's
// cancellation of one it had.
const (
	EventReferral  = "referral"
	EventCancelled = "cancelled"
)

// businessStatusSystem codes where a referral is in its journey between
// Signpost and the provider (Task.businessStatus).
const businessStatusSystem = "https://signpost.health/fhir/CodeSystem/referral-business-status"

// Delivery is one job of the delivery queue.
type Delivery struct {
	Job              QueuedJob
	Event            string
	TaskID           string
	ServiceRequestID string
	ProviderID       string
	Category         string
	// Attempt counts the sends already made (0 for the first).
	Attempt int
	// TimedOut counts the sends that ran out of time before the provider
	// answered: each may have reached it, so none of them is a refusal.
	TimedOut int
	// ID is the webhook-id: the same for every attempt of this delivery, so
	// a provider that receives it twice (after a crash) can tell.
	ID string
	// Disclosed names the resources (with their versions) the message
	// built for this delivery holds, for the record of the disclosure.
	Disclosed []string
}

// ReadDelivery reads a delivery job. A job that cannot be read is a bug or
// tampering; the worker dead-letters it.
func ReadDelivery(j QueuedJob) (*Delivery, error) {
	f := j.Fields
	d := &Delivery{Job: j, Event: f["event"], TaskID: f["task"], ServiceRequestID: f["service_request"],
		ProviderID: f["provider"], Category: f["category"], ID: f["delivery_id"]}
	if n, err := strconv.Atoi(f["attempt"]); err == nil {
		d.Attempt = n
	}
	if n, err := strconv.Atoi(f[timedOutField]); err == nil {
		d.TimedOut = n
	}
	if d.ID == "" {
		d.ID = deliveryID(d.TaskID, d.Event)
	}
	if (d.Event != EventReferral && d.Event != EventCancelled) || checkID(d.TaskID) != nil || d.ProviderID == "" {
		return d, fmt.Errorf("delivery job %s is malformed", j.ID)
	}
	return d, nil
}

// deliveryID is stable for one Task and event: every attempt, and a
// re-delivery after a crash, carries the same webhook-id.
func deliveryID(taskID, event string) string { return "msg_" + taskID + "_" + event }

// NextAttempt is the job's fields for its next attempt.
func (d *Delivery) NextAttempt() map[string]string {
	next := make(map[string]string, len(d.Job.Fields)+2)
	for k, v := range d.Job.Fields {
		next[k] = v
	}
	next["attempt"] = strconv.Itoa(d.Attempt + 1)
	next["delivery_id"] = d.ID
	next[timedOutField] = strconv.Itoa(d.TimedOut)
	return next
}

// timedOutField is the delivery job's count of attempts that timed out.
const timedOutField = "timed_out"

// Unconfirmed reports whether the provider may have the delivery although
// no attempt was acknowledged: at least one attempt timed out, and a
// timeout is an unknown outcome (the receiver may have stored the message
// and answered too late), not a refusal.
func (d *Delivery) Unconfirmed() bool { return d.TimedOut > 0 }

func deliveryJob(event, taskID, srID string, rt *routing, now time.Time) Job {
	return Job{Queue: QueueDelivery, Fields: []string{
		"event", event,
		"task", taskID,
		"service_request", srID,
		"provider", rt.provider.ID,
		"category", rt.category,
		"delivery_id", deliveryID(taskID, event),
		"attempt", "0",
		"accepted_at", strconv.FormatInt(now.UnixMilli(), 10),
	}}
}

// notifyJobs tell the GP side that a Task changed: one job for write-back
// into its record, one for its subscriptions. Which Task, which version,
// its status, and whose referral it is.
func notifyJobs(task *Resource, status string) []Job {
	fields := []string{
		"event", "task-changed", "task", task.ID, "version", task.VersionID(), "status", status, "client", task.Owner,
		"at", strconv.FormatInt(task.LastUpdated.UnixMilli(), 10),
	}
	return []Job{{Queue: QueueNotify, Fields: fields}, {Queue: QueueSubscription, Fields: fields}}
}

// Message is the thin payload of a delivery (documented in gateway/webhook/DELIVERY.md):
// what a provider needs to recognise the referral and fetch it, with its
// own credentials, through an audited read.
type Message struct {
	Type     string         `json:"type"`
	ID       string         `json:"id"`
	Provider string         `json:"provider"`
	Referral MessageDetails `json:"referral"`
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
func (s *Service) DeliveryBody(ctx context.Context, d *Delivery, full bool) ([]byte, error) {
	task, view, err := s.readTask(ctx, d.TaskID)
	if err != nil {
		return nil, err
	}
	if !full {
		var t struct {
			Priority   string `json:"priority"`
			AuthoredOn string `json:"authoredOn"`
		}
		_ = json.Unmarshal(task.Body, &t)
		typ := "referral.requested"
		if d.Event == EventCancelled {
			typ = "referral.cancelled"
		}
		// The thin message names the referral (and its category), no more.
		d.Disclosed = []string{task.Ref() + "/_history/" + task.VersionID(), TypeServiceRequest + "/" + d.ServiceRequestID}
		return json.Marshal(Message{Type: typ, ID: d.ID, Provider: d.ProviderID, Referral: MessageDetails{
			Task: s.base + "/" + task.Ref(), ServiceRequest: s.base + "/" + TypeServiceRequest + "/" + d.ServiceRequestID,
			Category: d.Category, Priority: t.Priority, Status: view.Status, AuthoredOn: t.AuthoredOn}})
	}
	more, err := s.store.ReadMany(ctx, []string{TypeServiceRequest + "/" + d.ServiceRequestID})
	if err != nil {
		return nil, err
	}
	// The Patient goes with it only if the provider may see it, as over the API.
	if id, ok := strings.CutPrefix(s.localRef(view.For), TypePatient+"/"); ok {
		provider := Caller{ClientID: d.ProviderID, Kind: CallerProvider}
		p, err := s.patientOf(ctx, provider, task, id)
		if err != nil {
			return nil, err
		}
		if p != nil {
			more = append(more, p)
		}
	}
	b := fhir.Bundle{ID: NewID(), Type: "collection", Timestamp: Instant(s.now()), Total: -1}
	d.Disclosed = nil
	for _, r := range append([]*Resource{task}, more...) {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: s.base + "/" + r.Ref(), Resource: r.Body})
		d.Disclosed = append(d.Disclosed, r.Ref()+"/_history/"+r.VersionID())
	}
	return b.Marshal(), nil
}

// TaskForProvider is the referral Task as a provider's FHIR server gets it:
// its references made absolute, so they resolve back to Signpost.
func (s *Service) TaskForProvider(ctx context.Context, d *Delivery) ([]byte, error) {
	task, view, err := s.readTask(ctx, d.TaskID)
	if err != nil {
		return nil, err
	}
	d.Disclosed = []string{task.Ref() + "/_history/" + task.VersionID()}
	refs := map[string]string{}
	for _, r := range []string{view.Focus, view.For, view.Owner} {
		if r != "" && !strings.Contains(r, "://") && !strings.HasPrefix(r, "#") {
			refs[r] = s.base + "/" + r
		}
	}
	return fhir.RewriteReferences(task.Body, refs)
}

// Delivered records that the provider has the referral: a new Task version
// with businessStatus "delivered", the GP's notification, and the job's
// acknowledgement, in one step.
func (s *Service) Delivered(ctx context.Context, d *Delivery, providerName string) error {
	return s.recordDelivery(ctx, d, func(view *TaskView) (map[string]any, []Job) {
		status := map[string]any{"coding": []map[string]string{{"system": businessStatusSystem, "code": "delivered", "display": "Delivered to the provider"}},
			"text": "delivered to " + providerName}
		if d.Event == EventCancelled {
			status = map[string]any{"coding": []map[string]string{{"system": businessStatusSystem, "code": "cancellation-delivered", "display": "Cancellation delivered to the provider"}},
				"text": "cancellation delivered to " + providerName}
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
func (s *Service) DeadLetter(ctx context.Context, d *Delivery, reason string) error {
	if d.Unconfirmed() {
		return s.deadLetterUnconfirmed(ctx, d, reason)
	}
	return s.recordDelivery(ctx, d, func(view *TaskView) (map[string]any, []Job) {
		fields := []string{}
		for k, v := range d.Job.Fields {
			fields = append(fields, k, v)
		}
		fields = append(fields, "reason", reason, "failed_at", strconv.FormatInt(s.now().UnixMilli(), 10))
		dead := Job{Queue: QueueDeadLetter, Fields: fields}
		change := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": businessStatusSystem, "code": "undeliverable", "display": "Could not be delivered to the provider"}},
			"text":   "could not be delivered: " + reason}}
		// Signpost itself fails a referral it could not deliver: only one
		// still waiting for the provider (requested). Once the provider has
		// it, a failed send changes nothing about the referral.
		if d.Event == EventReferral && view.Status == "requested" {
			change["status"] = "failed"
			change["statusReason"] = map[string]string{"text": "Signpost could not deliver the referral to the provider: " + reason}
		}
		return change, []Job{dead}
	})
}

// BusinessDeliveryUnconfirmed is the business status of a referral whose
// delivery was never acknowledged but may have arrived (attempts timed out).
const BusinessDeliveryUnconfirmed = "delivery-unconfirmed"

// deadLetterUnconfirmed dead-letters a delivery whose outcome is unknown,
// leaving the referral's status as it is.
func (s *Service) deadLetterUnconfirmed(ctx context.Context, d *Delivery, reason string) error {
	return s.recordDelivery(ctx, d, func(view *TaskView) (map[string]any, []Job) {
		fields := []string{}
		for k, v := range d.Job.Fields {
			fields = append(fields, k, v)
		}
		fields = append(fields, "reason", "unconfirmed: "+reason, "failed_at", strconv.FormatInt(s.now().UnixMilli(), 10))
		text := fmt.Sprintf("delivery not confirmed: %d of %d attempts timed out, so the provider may have the referral; last: %s", d.TimedOut, d.Attempt+1, reason)
		change := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": businessStatusSystem, "code": BusinessDeliveryUnconfirmed, "display": "Delivery not confirmed by the provider"}},
			"text":   text}}
		return change, []Job{{Queue: QueueDeadLetter, Fields: fields}}
	})
}

// recordDelivery writes a new version of the delivery's Task with the
// members change returns, with the jobs, the GP notification and the
// acknowledgement of the delivery job, retrying if the Task changed meanwhile.
func (s *Service) recordDelivery(ctx context.Context, d *Delivery, change func(*TaskView) (map[string]any, []Job)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := s.store.Read(ctx, TypeTask, d.TaskID)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delivery job %s: its Task is not held", d.Job.ID)
		}
		if err != nil {
			return err
		}
		view, err := ReadTask(cur.Body)
		if err != nil {
			return err
		}
		members, jobs := change(view)
		res, err := s.commit(ctx, s.taskChange(cur, view, members, jobs, d.Job.Ref()))
		if err != nil {
			return err
		}
		if res.OK() || res.Lost {
			return nil // recorded; or another worker took the job over and records it
		}
	}
	return errors.New("the Task kept changing while a delivery was recorded")
}

// taskChange builds the commit of a system-made Task version: the members
// given replace the current ones, lastModified is now, and the GP is told.
func (s *Service) taskChange(cur *Resource, view *TaskView, members map[string]any, jobs []Job, done *JobRef) *Commit {
	now := s.now().UTC().Truncate(time.Millisecond)
	members["lastModified"] = Instant(now)
	body := cur.Body
	for name := range members {
		body = withoutMember(body, name)
	}
	obj, err := fhir.ParseResource(appendMembers(body, members), fhir.ParseOptions{})
	if err != nil {
		panic(err) // built from stored bytes that passed the same checks
	}
	next := &Resource{Type: TypeTask, ID: cur.ID, Version: cur.Version + 1, LastUpdated: now, Owner: cur.Owner,
		Body: obj.WithServerFields(cur.ID, strconv.Itoa(cur.Version+1), Instant(now))}
	status := view.Status
	if st, ok := members["status"].(string); ok {
		status = st
	}
	var task models.Task
	_ = json.Unmarshal(next.Body, &task) // passed the raw checks just above
	terms := append(taskTerms(cur.ID, &task, s.base), clientTerm(cur.Owner))
	return &Commit{Writes: []Write{{Resource: next, Expect: cur.Version, Terms: terms}},
		Jobs: append(jobs, notifyJobs(next, status)...), Done: done}
}

// Why a dead letter is not re-driven.
var (
	ErrMovedOn         = errors.New("the referral has moved on since the delivery failed")
	ErrAlreadyRedriven = errors.New("the dead letter was re-driven already")
)

// Redrive sends a dead letter again, as an operator asks after fixing its
// cause: the job goes back on the delivery queue with its attempts reset
// (and the same webhook-id), a Task that failed because of it is requested
// again, and the dead letter is removed, in one step.
func (s *Service) Redrive(ctx context.Context, dead QueuedJob) error {
	d, err := ReadDelivery(dead)
	if err != nil {
		return err
	}
	fields := []string{}
	for k, v := range dead.Fields {
		if k == "reason" || k == "failed_at" || k == "attempt" || k == timedOutField {
			continue
		}
		fields = append(fields, k, v)
	}
	job := Job{Queue: QueueDelivery, Fields: append(fields, "attempt", "0")}
	// No consumer: the commit checks the dead letter still exists, so the
	// same dead letter is re-driven once however often replay is asked.
	ack := &JobRef{Queue: QueueDeadLetter, ID: dead.ID}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, view, err := s.readTask(ctx, d.TaskID)
		if err != nil {
			return err
		}
		// Only a failure Signpost recorded is undone: a Task the provider
		// closed (failed, completed, rejected) or that was cancelled has
		// moved on, and a referral is not sent to it again.
		signpostFailed := view.Status == "failed" && view.BusinessStatusCode == "undeliverable"
		if d.Event == EventReferral && view.Status != "requested" && !signpostFailed {
			return fmt.Errorf("%w: the referral is %s", ErrMovedOn, view.Status)
		}
		members := map[string]any{"businessStatus": map[string]any{
			"coding": []map[string]string{{"system": businessStatusSystem, "code": "redriven", "display": "Sent again by an operator"}},
			"text":   "sent again by an operator after a failed delivery"}}
		if signpostFailed && d.Event == EventReferral {
			members["status"] = "requested"
			members["statusReason"] = map[string]string{"text": "delivery is being retried by an operator"}
		}
		res, err := s.commit(ctx, s.taskChange(cur, view, members, []Job{job}, ack))
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
