package worker

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/webhook"
)

// Deliveries sends referrals to providers: the Handler of the delivery queue.
type Deliveries struct {
	Queue     Queue
	Domain    Domain
	Switch    Switch
	Sender    Sender
	Endpoints map[string]Endpoint // by provider id
	// Retry lists the waits between attempts; after the last, a dead letter.
	Retry   []time.Duration
	Log     *slog.Logger
	Now     func() time.Time
	Metrics *telemetry.Metrics
	// Audit keeps the record of each referral sent (nil: none).
	Audit Auditor
	// SendsPerProvider bounds the sends to one provider at once (default
	// DefaultPerProvider). A lane may hold more of the provider's jobs in
	// flight than that (DeliveryLane): the others record, in Redis, what
	// was sent, so a lane's round trips to Redis do not hold the
	// provider's send slots.
	SendsPerProvider int

	switches sync.Map // provider id → switchState: what Switch said, lately
	sends    sync.Map // provider id → chan struct{}: its send slots, taken
}

// sendSlot waits for one of the provider's SendsPerProvider send slots and
// returns its release, which may be called more than once; false when ctx
// ends first (the worker stopping: the job stays pending, for a reclaim).
func (h *Deliveries) sendSlot(ctx context.Context, providerID string) (release func(), ok bool) {
	slots, found := h.sends.Load(providerID)
	if !found {
		width := h.SendsPerProvider
		if width <= 0 {
			width = DefaultPerProvider
		}
		slots, _ = h.sends.LoadOrStore(providerID, make(chan struct{}, width))
	}
	taken := slots.(chan struct{})
	select {
	case taken <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	released := false
	return func() {
		if !released {
			released = true
			<-taken
		}
	}, true
}

// switchState is what Switch said of a provider's endpoint, and until when
// that is taken as still true.
type switchState struct {
	why   string
	until time.Time
}

// switchFresh is how long what Switch says is taken as still true. Asking
// it for every job costs a round trip per referral at intake's rate; an
// endpoint another worker disabled is known here within this, and the few
// sends made meanwhile meet its 410 themselves. Re-enabling by an operator
// takes effect within it too.
const switchFresh = time.Second

// endpointDisabled is Switch.EndpointDisabled, remembered for switchFresh.
func (h *Deliveries) endpointDisabled(ctx context.Context, providerID string, now time.Time) (string, error) {
	if v, ok := h.switches.Load(providerID); ok && now.Before(v.(switchState).until) {
		return v.(switchState).why, nil
	}
	why, err := h.Switch.EndpointDisabled(ctx, providerID)
	if err == nil {
		h.switches.Store(providerID, switchState{why: why, until: now.Add(switchFresh)})
	}
	return why, err
}

// Lanes are the providers.
func (h *Deliveries) Lanes() []string {
	return slices.Collect(maps.Keys(h.Endpoints))
}

// Lane is the job's provider.
func (h *Deliveries) Lane(job gateway.QueuedJob) string { return queue.JobLane(job) }

// handle sends one job and records its outcome. An error recording it
// leaves the job pending: it is reclaimed and sent again, with the same
// webhook-id, which the provider uses to recognise a repeat.
func (h *Deliveries) Handle(ctx context.Context, job gateway.QueuedJob) {
	logger, now := loggerOr(h.Log), clockOr(h.Now)
	d, err := queue.ReadDelivery(job)
	if err != nil {
		// Kept as it is for an operator to look at, never dropped.
		logger.Error("unreadable delivery job dead-lettered", "job", job.Name(), "error", err)
		record(logger, "dead letter (unreadable)", h.Queue.Bury(ctx, job, err.Error()))
		return
	}
	log := logger.With("task", d.TaskID, "provider", d.ProviderID, "event", d.Event, "attempt", d.Attempt+1, "delivery", d.ID)
	ep, ok := h.Endpoints[d.ProviderID]
	if !ok {
		// Perhaps this worker's configuration is older than the job (a
		// rolling deploy): retry on the schedule, so a worker that knows the
		// provider can take it; only after the last attempt a dead letter.
		h.retry(ctx, log, job, d, webhook.Result{Outcome: webhook.Retry, Reason: "the provider is not in this worker's configuration"}, now)
		return
	}
	if ep.Kind == "portal" {
		// Nothing is pushed: the referral waits in Signpost for the provider
		// (a withdrawn one has left its inbox already).
		h.Metrics.Job(ctx, gateway.QueueDelivery, "portal")
		record(log, "available in the portal", h.Domain.Delivered(ctx, d, ep.Name+" (in Signpost)"))
		return
	}
	if why, err := h.endpointDisabled(ctx, d.ProviderID, now()); err != nil {
		record(log, "endpoint check", err)
		return
	} else if why != "" {
		record(log, "dead letter", h.Domain.DeadLetter(ctx, d, "the provider's endpoint is disabled: "+why))
		return
	}
	// The slot is taken before the Task is read, so what is sent is what
	// the Task says when the provider's turn comes, not when the job was
	// read; it is given back as soon as the provider has answered.
	release, ok := h.sendSlot(ctx, d.ProviderID)
	if !ok {
		return // stopping: the job stays pending, and is reclaimed
	}
	defer release()
	msg := webhook.Message{ID: d.ID, URL: ep.URL, Secrets: ep.Secrets}
	switch ep.Kind {
	case "fhir":
		msg.URL = trimSlash(ep.URL) + "/Task"
		msg.ContentType = "application/fhir+json"
		msg.Body, err = h.Domain.TaskForProvider(ctx, d)
	case "bars":
		msg, err = h.barsMessage(ctx, d, ep)
	default:
		msg.Body, err = h.Domain.DeliveryBody(ctx, d, ep.Full)
		if ep.Full && d.Event != queue.EventWithdrawn { // a withdrawal is the thin message whatever the payload
			msg.ContentType = "application/fhir+json"
		}
	}
	if errors.Is(err, delivery.ErrWithheld) {
		// Held for consent or withdrawn since it was queued: nothing goes.
		h.Metrics.Job(ctx, gateway.QueueDelivery, "withheld")
		record(log, "withheld from the provider", h.Queue.Ack(ctx, job))
		return
	}
	if err != nil {
		record(log, "building the message", err)
		return
	}
	res := h.Sender.Send(ctx, msg)
	release() // what is left is Redis's: another job of the lane may send meanwhile
	if res.TimedOut {
		d.TimedOut++ // carried to the next attempt, and decides what a dead letter says
	}
	log = log.With("status", res.Status, "elapsed", res.Elapsed)
	switch res.Outcome {
	case webhook.Delivered:
		path := pathWebhook
		switch {
		case ep.Kind == "fhir":
			path = pathFHIR
		case ep.Kind == "bars":
			path = pathBars
		case ep.Full:
			path = pathWebhookFull
		}
		if h.Audit != nil && len(d.Disclosed) > 0 {
			d.Disclosure = gateway.Disclosure(now(), d.ProviderID, gateway.Identifier{}, path, d.Disclosed)
		}
		h.Metrics.Job(ctx, gateway.QueueDelivery, "delivered")
		h.Metrics.DeliveryAttempts(ctx, "delivered", d.Attempt+1)
		err := h.Domain.Delivered(ctx, d, ep.Name) // records the disclosure with the delivery
		if d.Disclosure != nil {
			// Not committed with it (an error, or another worker records the
			// delivery): what was sent is on record all the same.
			disclosed(ctx, h.Audit, log, now, d.ProviderID, gateway.Identifier{}, path, d.Disclosed)
		}
		record(log, "delivered", err)
	case webhook.Gone:
		reason := "the provider's endpoint answered 410 Gone"
		if err := h.Switch.DisableEndpoint(ctx, d.ProviderID, reason); err != nil {
			record(log, "disabling the endpoint", err)
			return
		}
		h.switches.Delete(d.ProviderID) // this worker knows at once
		h.Metrics.Job(ctx, gateway.QueueDelivery, "gone")
		record(log, "dead letter (endpoint disabled)", h.Domain.DeadLetter(ctx, d, reason))
	case webhook.Permanent:
		h.Metrics.Job(ctx, gateway.QueueDelivery, "dead-letter")
		h.Metrics.DeliveryAttempts(ctx, "dead-letter", d.Attempt+1)
		record(log, "dead letter", h.Domain.DeadLetter(ctx, d, res.Reason))
	default:
		h.retry(ctx, log, job, d, res, now)
	}
}

// retry puts a delivery off on the retry schedule, or after the last
// attempt dead-letters it.
func (h *Deliveries) retry(ctx context.Context, log *slog.Logger, job gateway.QueuedJob, d *queue.Delivery, res webhook.Result, now func() time.Time) {
	if d.Attempt >= len(h.Retry) {
		h.Metrics.Job(ctx, gateway.QueueDelivery, "dead-letter")
		h.Metrics.DeliveryAttempts(ctx, "dead-letter", d.Attempt+1)
		record(log, "dead letter", h.Domain.DeadLetter(ctx, d, res.Reason+" ("+strconv.Itoa(d.Attempt+1)+" attempts)"))
		return
	}
	h.Metrics.Job(ctx, gateway.QueueDelivery, "retry")
	wait := jitter(h.Retry[d.Attempt])
	if res.RetryAfter > wait {
		wait = res.RetryAfter
	}
	err := h.Queue.Later(ctx, job, d.NextAttempt(), now().Add(wait))
	record(log.With("reason", res.Reason, "retry_in", wait), "will retry", err)
}

// barsMessage is a delivery as an NHS BaRS servicerequest-request POSTed to
// the provider's {url}/$process-message. X-Request-Id is the message id,
// the same on every attempt, so a provider that has it already answers 409
// duplicate, which counts as delivered; otherwise it is retried, given up
// on and dead-lettered exactly as the other kinds are.
func (h *Deliveries) barsMessage(ctx context.Context, d *queue.Delivery, ep Endpoint) (webhook.Message, error) {
	req, err := h.Domain.BarsRequest(ctx, d)
	if err != nil {
		return webhook.Message{}, err
	}
	headers := map[string]string{"X-Request-Id": req.MessageID, "X-Correlation-Id": req.CorrelationID, "Accept": "application/fhir+json"}
	if ep.Token != "" {
		headers["Authorization"] = "Bearer " + ep.Token
	}
	return webhook.Message{ID: d.ID, URL: trimSlash(ep.URL) + "/$process-message", ContentType: "application/fhir+json",
		Body: req.Body, Headers: headers, Duplicate: fhir.SaysDuplicate}, nil
}
