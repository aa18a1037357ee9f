package queue

import (
	"github.com/google/uuid"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/topic"

	"fmt"
	"strconv"
	"time"
)

// A queued job is a few named string fields. Each type of job below is
// written and read by one codec (its Job method and its Read function), so
// a field's name is spelled once and a field that cannot be read is an
// error, never a silent zero. The fields of a job carry ids, versions and
// times only, never patient data.
const (
	fieldEvent          = "event"
	fieldTask           = "task"
	fieldServiceRequest = "service_request"
	fieldProvider       = "provider"
	fieldCategory       = "category"
	fieldDeliveryID     = "delivery_id"
	fieldAttempt        = "attempt"
	fieldAcceptedAt     = "accepted_at"
	fieldVersion        = "version"
	fieldStatus         = "status"
	fieldClient         = "client"
	fieldAt             = "at"
	fieldSubscription   = "subscription"
	// TimedOutField is the delivery job's count of attempts that timed out.
	TimedOutField = "timed_out"
	// The dead-letter queue adds why and when a job failed for good.
	fieldReason   = "reason"
	fieldFailedAt = "failed_at"
)

// Delivery events: a new referral for the provider, or the referrer's
// cancellation of one it had.
const (
	EventReferral  = "referral"
	EventCancelled = "cancelled"
	// EventWithdrawn tells a provider the patient withdrew consent: it must
	// delete what it received of the referral.
	EventWithdrawn = "withdrawn"
)

// Events of the notify and subscription queues.
const (
	// EventTaskChanged is a Task version the GP side must hear of.
	EventTaskChanged = "task-changed"
	// EventHandshake confirms a new or updated subscription with its endpoint.
	EventHandshake = "handshake"
	// EventSend sends a subscription's waiting events (the store's fan-out
	// queues it).
	EventSend = "send"
	// EventBarsResponse answers the sender of a BaRS referral: a Task
	// version whose status the sender is told of in a
	// servicerequest-response message (notify queue).
	EventBarsResponse = "bars-response"
)

// Delivery is one job of the delivery queue.
type Delivery struct {
	Job              gateway.QueuedJob
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
	// Task is the version of the referral Task the message was built from:
	// recording the delivery starts from it rather than reading it again
	// (a version changed meanwhile fails the commit, which reads afresh).
	Task     *gateway.Resource
	TaskView *gateway.TaskView // Task's view, read with it
	// Disclosure, when set, is the audit record of the message sent,
	// committed with the record of the delivery.
	Disclosure *gateway.AuditRecord
}

// ReadDelivery reads a delivery job. A job that cannot be read is a bug or
// tampering; the worker dead-letters it.
func ReadDelivery(j gateway.QueuedJob) (*Delivery, error) {
	f := j.Fields
	d := &Delivery{Job: j, Event: f[fieldEvent], TaskID: f[fieldTask], ServiceRequestID: f[fieldServiceRequest],
		ProviderID: f[fieldProvider], Category: f[fieldCategory], ID: f[fieldDeliveryID]}
	var err error
	if d.Attempt, err = Attempt(j); err != nil {
		return d, err
	}
	if d.TimedOut, err = optionalInt(j, TimedOutField); err != nil {
		return d, err
	}
	if d.ID == "" {
		d.ID = deliveryID(d.TaskID, d.Event)
	}
	if (d.Event != EventReferral && d.Event != EventCancelled && d.Event != EventWithdrawn) || gateway.CheckID(d.TaskID) != nil || d.ProviderID == "" {
		return d, fmt.Errorf("delivery job %s is malformed", j.ID)
	}
	return d, nil
}

// deliveryID is stable for one Task and event: every attempt, and a
// re-delivery after a crash, carries the same webhook-id.
func deliveryID(taskID, event string) string { return "msg_" + taskID + "_" + event }

// NextAttempt is the job's fields for its next attempt.
func (d *Delivery) NextAttempt() map[string]string {
	next := NextAttempt(d.Job)
	next[fieldDeliveryID] = d.ID
	next[TimedOutField] = strconv.Itoa(d.TimedOut)
	return next
}

// Unconfirmed reports whether the provider may have the delivery although
// no attempt was acknowledged: at least one attempt timed out, and a
// timeout is an unknown outcome (the receiver may have stored the message
// and answered too late), not a refusal.
func (d *Delivery) Unconfirmed() bool { return d.TimedOut > 0 }

// DeadLetterJob is the delivery as a dead letter: its fields, with why and
// when it failed for good.
func (d *Delivery) DeadLetterJob(reason string, at time.Time) gateway.Job {
	fields := make([]string, 0, 2*len(d.Job.Fields)+4)
	for k, v := range d.Job.Fields {
		fields = append(fields, k, v)
	}
	return gateway.Job{Queue: gateway.QueueDeadLetter, Fields: append(fields, fieldReason, reason, fieldFailedAt, strconv.FormatInt(at.UnixMilli(), 10))}
}

// DeliveryJob queues a referral (or its cancellation) for its provider.
func DeliveryJob(event, taskID, srID string, rt *gateway.Routing, now time.Time) gateway.Job {
	return gateway.Job{Queue: gateway.QueueDelivery, Fields: []string{
		fieldEvent, event,
		fieldTask, taskID,
		fieldServiceRequest, srID,
		fieldProvider, rt.Provider.ID,
		fieldCategory, rt.Category,
		fieldDeliveryID, deliveryID(taskID, event),
		fieldAttempt, "0",
		fieldAcceptedAt, strconv.FormatInt(now.UnixMilli(), 10),
	}}
}

// IsDeliveryOf reports whether a job delivers event for a Task.
func IsDeliveryOf(j gateway.Job, taskID, event string) bool {
	if j.Queue != gateway.QueueDelivery {
		return false
	}
	var task, ev string
	for i := 0; i+1 < len(j.Fields); i += 2 {
		switch j.Fields[i] {
		case fieldTask:
			task = j.Fields[i+1]
		case fieldEvent:
			ev = j.Fields[i+1]
		}
	}
	return task == taskID && ev == event
}

// TaskChanged is a job of the notify and subscription queues: a Task
// version the GP side must hear of (written back into its record, sent to
// its subscriptions).
type TaskChanged struct {
	TaskID  string
	Version int
	Status  gateway.TaskStatus
	Client  string    // whose referral the Task is
	At      time.Time // when the version was stored (zero: unknown)
}

// NotifyJobs tell the GP side that a Task changed (from the status it had):
// one job for write-back into its record (for a client that takes
// write-back, c.WritesBack), one for its subscriptions (for a client
// that has one when the change is stored), and,
// when the Task came to a status a BaRS sender is answered with, one for
// that answer (a later change that keeps the status, a note or a business
// status, is not answered again). The answer is queued for
// every referral, as the commit changing a Task does not read how the
// referral came in; the worker drops it at once for a referral that did not
// come as a BaRS message or a client with no BaRS endpoint.
func NotifyJobs(c *gateway.Core, task *gateway.Resource, from, status gateway.TaskStatus) []gateway.Job {
	changed := TaskChanged{TaskID: task.ID, Version: task.Version, Status: status, Client: task.Owner, At: task.LastUpdated}
	fields := changed.fields()
	jobs := make([]gateway.Job, 0, 3)
	if c.WritesBack(task.Owner) {
		jobs = append(jobs, gateway.Job{Queue: gateway.QueueNotify, Fields: fields})
	}
	jobs = append(jobs, gateway.Job{Queue: gateway.QueueSubscription, Fields: fields,
		OnlyIfAny: &gateway.IndexTerm{Type: topic.TypeSubscription, Term: gateway.ClientTerm(task.Owner)}})
	if status != from && Answered(status) {
		jobs = append(jobs, BarsResponse{TaskChanged: changed}.Job())
	}
	return jobs
}

// answered are the statuses a BaRS sender hears of: the provider's
// decision (accepted, rejected with its statusReason) and how the referral
// ended (completed, failed, cancelled). The steps between (in-progress,
// on-hold) are the provider's own work, as the write-back's outcome codes
// also leave them out.
var answered = map[gateway.TaskStatus]bool{
	gateway.TaskAccepted: true, gateway.TaskRejected: true, gateway.TaskCompleted: true,
	gateway.TaskFailed: true, gateway.TaskCancelled: true,
}

// Answered reports whether a Task status is answered to a BaRS sender.
func Answered(s gateway.TaskStatus) bool { return answered[s] }

// BarsResponse is a job of the notify queue: send the BaRS
// servicerequest-response for one Task version to the referral's sender.
type BarsResponse struct {
	TaskChanged
	// Attempt counts the sends already made (0 for the first).
	Attempt int
}

// Job is the response as a queued job.
func (b BarsResponse) Job() gateway.Job {
	fields := b.TaskChanged.fields()
	fields[1] = EventBarsResponse // fields() starts with the event
	return gateway.Job{Queue: gateway.QueueNotify, Fields: append(fields, fieldAttempt, strconv.Itoa(b.Attempt))}
}

// MessageID is the response message's id (its Bundle.id and X-Request-Id):
// the same for every attempt at one Task version, so a sender that gets it
// twice (a resend after a crash or a lost answer) can tell it is one
// message. A name-based UUID, as BaRS ids are UUIDs.
func (b BarsResponse) MessageID() string {
	return uuid.NewSHA1(barsNamespace, []byte(b.TaskID+"/"+strconv.Itoa(b.Version))).String()
}

// barsNamespace keeps Signpost's response ids apart from other name-based
// UUIDs; fixed for ever, since changing it would change every id.
var barsNamespace = uuid.MustParse("0f9d4c3e-6a51-5b8e-9d2c-5b1a7e3f4c21")

// ReadBarsResponse reads a bars-response job.
func ReadBarsResponse(j gateway.QueuedJob) (BarsResponse, error) {
	if j.Fields[fieldEvent] != EventBarsResponse {
		return BarsResponse{}, fmt.Errorf("bars-response job %s is malformed", j.ID)
	}
	f := make(map[string]string, len(j.Fields))
	for k, v := range j.Fields {
		f[k] = v
	}
	f[fieldEvent] = EventTaskChanged
	changed, err := ReadTaskChanged(gateway.QueuedJob{Queue: j.Queue, ID: j.ID, Consumer: j.Consumer, Fields: f})
	if err != nil {
		return BarsResponse{}, fmt.Errorf("bars-response job %s is malformed", j.ID)
	}
	b := BarsResponse{TaskChanged: changed}
	if b.Version == 0 {
		// The answer is about one version: without it the id would not be stable.
		return b, fmt.Errorf("bars-response job %s has no version", j.ID)
	}
	b.Attempt, err = Attempt(j)
	return b, err
}

func (c TaskChanged) fields() []string {
	return []string{
		fieldEvent, EventTaskChanged, fieldTask, c.TaskID, fieldVersion, strconv.Itoa(c.Version),
		fieldStatus, string(c.Status), fieldClient, c.Client, fieldAt, strconv.FormatInt(c.At.UnixMilli(), 10),
	}
}

// ReadTaskChanged reads a task-changed job.
func ReadTaskChanged(j gateway.QueuedJob) (TaskChanged, error) {
	f := j.Fields
	c := TaskChanged{TaskID: f[fieldTask], Status: gateway.TaskStatus(f[fieldStatus]), Client: f[fieldClient]}
	if f[fieldEvent] != EventTaskChanged || gateway.CheckID(c.TaskID) != nil || c.Client == "" {
		return c, fmt.Errorf("task-changed job %s is malformed", j.ID)
	}
	// Version and time may be absent from jobs queued by older gateways
	// (0: the current version; zero time: unknown), never unreadable.
	var err error
	if c.Version, err = optionalInt(j, fieldVersion); err != nil {
		return c, err
	}
	ms, err := optionalInt(j, fieldAt)
	if err != nil {
		return c, err
	}
	if ms > 0 {
		c.At = time.UnixMilli(int64(ms)).UTC()
	}
	return c, nil
}

// Handshake is a job of the subscription queue: confirm a subscription
// with its endpoint.
type Handshake struct {
	SubscriptionID string
	Client         string
	// Version is the subscription version the handshake was queued for
	// (0 from gateways older than versioned handshakes): an update made
	// while it ran has a handshake of its own.
	Version int
}

// Job is the handshake as a queued job.
func (h Handshake) Job() gateway.Job {
	return gateway.Job{Queue: gateway.QueueSubscription, Fields: []string{
		fieldEvent, EventHandshake, fieldSubscription, h.SubscriptionID, fieldClient, h.Client, fieldVersion, strconv.Itoa(h.Version)}}
}

// ReadHandshake reads a handshake job.
func ReadHandshake(j gateway.QueuedJob) (Handshake, error) {
	h := Handshake{SubscriptionID: j.Fields[fieldSubscription], Client: j.Fields[fieldClient]}
	if j.Fields[fieldEvent] != EventHandshake || gateway.CheckID(h.SubscriptionID) != nil {
		return h, fmt.Errorf("handshake job %s is malformed", j.ID)
	}
	var err error
	h.Version, err = optionalInt(j, fieldVersion)
	return h, err
}

// SendJob queues the sending of a subscription's waiting events.
func SendJob(subscriptionID, client string) gateway.Job {
	return gateway.Job{Queue: gateway.QueueSubscription, Fields: []string{fieldEvent, EventSend, fieldSubscription, subscriptionID, fieldClient, client}}
}

// ReadSend reads a send job: the subscription whose events wait.
func ReadSend(j gateway.QueuedJob) (subscriptionID string, err error) {
	id := j.Fields[fieldSubscription]
	if j.Fields[fieldEvent] != EventSend || gateway.CheckID(id) != nil {
		return "", fmt.Errorf("send job %s is malformed", j.ID)
	}
	return id, nil
}

// JobEvent is the event of a job of any queue ("" when it has none).
func JobEvent(j gateway.QueuedJob) string { return j.Fields[fieldEvent] }

// JobLane is what a job's lane is keyed by: the provider of a delivery,
// the client (GP system) of a notify or subscription job.
func JobLane(j gateway.QueuedJob) string {
	if j.Queue == gateway.QueueDelivery {
		return j.Fields[fieldProvider]
	}
	return j.Fields[fieldClient]
}

// JobTask is the Task a job is about, for the logs ("" when none).
func JobTask(j gateway.QueuedJob) string { return j.Fields[fieldTask] }

// Attempt is how many times a job was tried already (0 for the first).
func Attempt(j gateway.QueuedJob) (int, error) { return optionalInt(j, fieldAttempt) }

// NextAttempt is the job's fields for its next attempt: the same fields
// (trace context included) with the attempt counted.
func NextAttempt(j gateway.QueuedJob) map[string]string {
	attempt, _ := Attempt(j) // a job whose count cannot be read starts again from one
	next := make(map[string]string, len(j.Fields)+1)
	for k, v := range j.Fields {
		next[k] = v
	}
	next[fieldAttempt] = strconv.Itoa(attempt + 1)
	return next
}

// DeadLetter is a job of the dead-letter queue, as an operator reads it.
type DeadLetter struct {
	Job      gateway.QueuedJob
	Event    string
	TaskID   string
	Provider string // a delivery's provider ("" for a write-back)
	Client   string // a write-back's GP system ("" for a delivery)
	Reason   string
	FailedAt time.Time // zero when not recorded
}

// ReadDeadLetter reads a dead letter.
func ReadDeadLetter(j gateway.QueuedJob) DeadLetter {
	d := DeadLetter{Job: j, Event: j.Fields[fieldEvent], TaskID: j.Fields[fieldTask], Provider: j.Fields[fieldProvider],
		Client: j.Fields[fieldClient], Reason: j.Fields[fieldReason]}
	if ms, err := strconv.ParseInt(j.Fields[fieldFailedAt], 10, 64); err == nil {
		d.FailedAt = time.UnixMilli(ms).UTC()
	}
	return d
}

// Replayed is a dead letter's fields as a job to run again: its own fields,
// without what the dead-letter queue and earlier attempts added, from its
// first attempt.
func (d DeadLetter) Replayed() map[string]string {
	fields := make(map[string]string, len(d.Job.Fields))
	for k, v := range d.Job.Fields {
		if k != fieldReason && k != fieldFailedAt && k != fieldAttempt && k != TimedOutField {
			fields[k] = v
		}
	}
	fields[fieldAttempt] = "0"
	return fields
}

// requiredInt reads a whole-number field that must be there.
func requiredInt(j gateway.QueuedJob, name string) (int, error) {
	v, ok := j.Fields[name]
	if !ok {
		return 0, fmt.Errorf("job %s has no %s", j.ID, name)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("job %s: %s is not a whole number", j.ID, name)
	}
	return n, nil
}

// optionalInt reads a whole-number field that may be absent (0).
func optionalInt(j gateway.QueuedJob, name string) (int, error) {
	if _, ok := j.Fields[name]; !ok {
		return 0, nil
	}
	return requiredInt(j, name)
}

// MaxAttempts bounds how often a plan is rebuilt after losing a race.
const MaxAttempts = 3

// TaskChange is a Task changed by Signpost itself (a delivery recorded, a
// referral revoked): its new version with the jobs given, and the GP side
// told of it, in one commit.
func TaskChange(c *gateway.Core, cur *gateway.Resource, view *gateway.TaskView, members map[string]any, jobs []gateway.Job, done *gateway.JobRef) *gateway.Commit {
	commit, status := c.TaskVersion(cur, view, members, jobs, done)
	commit.Jobs = append(commit.Jobs, NotifyJobs(c, commit.Writes[0].Resource, view.Status, status)...)
	return commit
}
