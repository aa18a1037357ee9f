package gateway

import (
	"fmt"
	"strconv"
	"time"
)

// Delivery events: a new referral for the provider, or the referrer's
// cancellation of one it had.
const (
	EventReferral  = "referral"
	EventCancelled = "cancelled"
)

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
	if n, err := strconv.Atoi(f[TimedOutField]); err == nil {
		d.TimedOut = n
	}
	if d.ID == "" {
		d.ID = deliveryID(d.TaskID, d.Event)
	}
	if (d.Event != EventReferral && d.Event != EventCancelled) || CheckID(d.TaskID) != nil || d.ProviderID == "" {
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
	next[TimedOutField] = strconv.Itoa(d.TimedOut)
	return next
}

// TimedOutField is the delivery job's count of attempts that timed out.
const TimedOutField = "timed_out"

// Unconfirmed reports whether the provider may have the delivery although
// no attempt was acknowledged: at least one attempt timed out, and a
// timeout is an unknown outcome (the receiver may have stored the message
// and answered too late), not a refusal.
func (d *Delivery) Unconfirmed() bool { return d.TimedOut > 0 }

func DeliveryJob(event, taskID, srID string, rt *Routing, now time.Time) Job {
	return Job{Queue: QueueDelivery, Fields: []string{
		"event", event,
		"task", taskID,
		"service_request", srID,
		"provider", rt.Provider.ID,
		"category", rt.Category,
		"delivery_id", deliveryID(taskID, event),
		"attempt", "0",
		"accepted_at", strconv.FormatInt(now.UnixMilli(), 10),
	}}
}

// NotifyJobs tell the GP side that a Task changed: one job for write-back
// into its record, one for its subscriptions. Which Task, which version,
// its status, and whose referral it is.
func NotifyJobs(task *Resource, status string) []Job {
	fields := []string{
		"event", "task-changed", "task", task.ID, "version", task.VersionID(), "status", status, "client", task.Owner,
		"at", strconv.FormatInt(task.LastUpdated.UnixMilli(), 10),
	}
	return []Job{{Queue: QueueNotify, Fields: fields}, {Queue: QueueSubscription, Fields: fields}}
}

type Routing struct {
	Category string
	Provider *Provider
}

// MaxAttempts bounds how often a plan is rebuilt after losing a race.
const MaxAttempts = 3
