// Package worker delivers referrals to providers: it reads the delivery
// queue through a consumer group, sends each job, and records the outcome —
// delivered, retry later, or dead letter — through the domain (gateway),
// which commits it atomically with the Task's new version. A job is only
// finished when its outcome is stored; a worker that dies leaves its jobs
// pending, and another worker reclaims and sends them again under the same
// webhook-id.
//
// It imports the domain and the webhook sender; Redis is behind the Queue
// interface (redisstore implements it).
package worker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/webhook"
)

// Queue is the delivery queue as the worker uses it.
type Queue interface {
	Ensure(ctx context.Context) error
	Read(ctx context.Context, consumer string, count int, block time.Duration) ([]gateway.QueuedJob, error)
	Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int) ([]gateway.QueuedJob, error)
	Later(ctx context.Context, job gateway.QueuedJob, fields map[string]string, due time.Time) error
	Promote(ctx context.Context, now time.Time, max int) (int, error)
	Ack(ctx context.Context, id string) error
}

// Domain is what the worker asks of the domain (gateway.Service).
type Domain interface {
	DeliveryBody(ctx context.Context, d *gateway.Delivery, full bool) ([]byte, error)
	TaskForProvider(ctx context.Context, d *gateway.Delivery) ([]byte, error)
	Delivered(ctx context.Context, d *gateway.Delivery, providerName string) error
	DeadLetter(ctx context.Context, d *gateway.Delivery, reason string) error
}

// Switch remembers endpoints that answered 410 Gone, for every worker.
type Switch interface {
	DisableEndpoint(ctx context.Context, providerID, reason string) error
	EndpointDisabled(ctx context.Context, providerID string) (string, error)
}

// Sender sends one message (webhook.Sender).
type Sender interface {
	Send(ctx context.Context, m webhook.Message) webhook.Result
}

// Endpoint is how one provider receives referrals.
type Endpoint struct {
	Name    string
	Kind    string // "webhook", "fhir" or "portal"
	URL     string
	Secrets [][]byte
	Full    bool // webhook payload: a FHIR Bundle rather than the thin message
}

// Options configure a Worker.
type Options struct {
	Queue     Queue
	Domain    Domain
	Switch    Switch
	Sender    Sender
	Endpoints map[string]Endpoint // by provider id
	// Retry lists the waits between attempts; after the last, a dead letter.
	Retry []time.Duration
	// Consumer names this worker in the consumer group (unique per process).
	Consumer string
	// PerProvider bounds the sends in flight to one provider, so a slow or
	// dead provider holds only its own lane, never the others.
	PerProvider int
	// ReclaimIdle is how long a job may be held before another worker takes
	// it over; longer than the slowest send.
	ReclaimIdle time.Duration
	// Grace is how long in-flight sends may finish at shutdown.
	Grace time.Duration
	Log   *slog.Logger
	Now   func() time.Time
}

// Worker runs deliveries until its context ends.
type Worker struct {
	o     Options
	lanes map[string]chan gateway.QueuedJob
	mu    sync.Mutex
}

// laneDepth is how many jobs wait in one provider's lane before the worker
// puts new ones off briefly instead (which keeps reading for other lanes).
const laneDepth = 64

// New makes a Worker, filling in defaults.
func New(o Options) *Worker {
	if o.PerProvider <= 0 {
		o.PerProvider = 4
	}
	if o.ReclaimIdle <= 0 {
		o.ReclaimIdle = time.Minute
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Worker{o: o, lanes: map[string]chan gateway.QueuedJob{}}
}

// Run reads and delivers until ctx ends, then shuts down in order: stop
// taking jobs, let sends in flight finish within Grace, and leave the rest
// pending for another worker to reclaim.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.o.Queue.Ensure(ctx); err != nil {
		return err
	}
	// Sends get their own context: cancelled only when the grace period
	// after shutdown has run out.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var lanes sync.WaitGroup
	for id := range w.o.Endpoints {
		ch := make(chan gateway.QueuedJob, laneDepth)
		w.lanes[id] = ch
		for i := 0; i < w.o.PerProvider; i++ {
			lanes.Add(1)
			go func() {
				defer lanes.Done()
				for job := range ch {
					w.handle(work, job)
				}
			}()
		}
	}
	var loops sync.WaitGroup
	for _, loop := range []func(context.Context){w.read, w.promote, w.reclaim} {
		loops.Add(1)
		go func() { defer loops.Done(); loop(ctx) }()
	}
	<-ctx.Done()
	loops.Wait()
	w.mu.Lock()
	for _, ch := range w.lanes {
		close(ch)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { lanes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.o.Grace):
		stopWork() // what is still sending stays pending and is reclaimed
		<-done
	}
	return nil
}

func (w *Worker) read(ctx context.Context) {
	for ctx.Err() == nil {
		jobs, err := w.o.Queue.Read(ctx, w.o.Consumer, 32, time.Second)
		if err != nil {
			w.pause(ctx, "reading the delivery queue", err)
			continue
		}
		for _, j := range jobs {
			w.dispatch(ctx, j)
		}
	}
}

// promote moves retries that are due back onto the queue.
func (w *Worker) promote(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := w.o.Queue.Promote(ctx, w.o.Now(), 500); err != nil && ctx.Err() == nil {
				w.o.Log.Warn("promoting due retries", "error", err)
			}
		}
	}
}

// reclaim takes over jobs held too long by a worker that is gone.
func (w *Worker) reclaim(ctx context.Context) {
	t := time.NewTicker(w.o.ReclaimIdle / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			jobs, err := w.o.Queue.Reclaim(ctx, w.o.Consumer, w.o.ReclaimIdle, 100)
			if err != nil {
				if ctx.Err() == nil {
					w.o.Log.Warn("reclaiming deliveries", "error", err)
				}
				continue
			}
			for _, j := range jobs {
				w.o.Log.Info("delivery reclaimed from a worker that stopped", "job", j.ID, "task", j.Fields["task"])
				w.dispatch(ctx, j)
			}
		}
	}
}

// dispatch hands a job to its provider's lane without waiting: a full lane
// (a slow provider) puts the job off a moment rather than stall reading.
func (w *Worker) dispatch(ctx context.Context, job gateway.QueuedJob) {
	w.mu.Lock()
	ch, ok := w.lanes[job.Fields["provider"]]
	w.mu.Unlock()
	if !ok {
		w.handle(ctx, job) // not a configured provider: dead-lettered there
		return
	}
	select {
	case ch <- job:
	default:
		if err := w.o.Queue.Later(ctx, job, job.Fields, w.o.Now().Add(time.Second)); err != nil {
			w.o.Log.Warn("putting a delivery off", "job", job.ID, "error", err)
		}
	}
}

// handle sends one job and records its outcome. An error recording it
// leaves the job pending: it is reclaimed and sent again, with the same
// webhook-id, which the provider uses to recognise a repeat.
func (w *Worker) handle(ctx context.Context, job gateway.QueuedJob) {
	d, err := gateway.ReadDelivery(job)
	if err != nil {
		w.o.Log.Error("unreadable delivery job dropped", "job", job.ID, "error", err)
		_ = w.o.Queue.Ack(ctx, job.ID)
		return
	}
	log := w.o.Log.With("task", d.TaskID, "provider", d.ProviderID, "event", d.Event, "attempt", d.Attempt+1, "delivery", d.ID)
	ep, ok := w.o.Endpoints[d.ProviderID]
	if !ok {
		w.record(log, "dead letter", w.o.Domain.DeadLetter(ctx, d, "the provider is no longer in the configuration"))
		return
	}
	if ep.Kind == "portal" {
		// Nothing is pushed: the referral waits in Signpost for the provider.
		w.record(log, "available in the portal", w.o.Domain.Delivered(ctx, d, ep.Name+" (in Signpost)"))
		return
	}
	if why, err := w.o.Switch.EndpointDisabled(ctx, d.ProviderID); err != nil {
		w.record(log, "endpoint check", err)
		return
	} else if why != "" {
		w.record(log, "dead letter", w.o.Domain.DeadLetter(ctx, d, "the provider's endpoint is disabled: "+why))
		return
	}
	msg := webhook.Message{ID: d.ID, URL: ep.URL, Secrets: ep.Secrets}
	if ep.Kind == "fhir" {
		msg.URL = trimSlash(ep.URL) + "/Task"
		msg.ContentType = "application/fhir+json"
		msg.Body, err = w.o.Domain.TaskForProvider(ctx, d)
	} else {
		msg.Body, err = w.o.Domain.DeliveryBody(ctx, d, ep.Full)
		if ep.Full {
			msg.ContentType = "application/fhir+json"
		}
	}
	if err != nil {
		w.record(log, "building the message", err)
		return
	}
	res := w.o.Sender.Send(ctx, msg)
	log = log.With("status", res.Status, "elapsed", res.Elapsed)
	switch res.Outcome {
	case webhook.Delivered:
		w.record(log, "delivered", w.o.Domain.Delivered(ctx, d, ep.Name))
	case webhook.Gone:
		reason := "the provider's endpoint answered 410 Gone"
		if err := w.o.Switch.DisableEndpoint(ctx, d.ProviderID, reason); err != nil {
			w.record(log, "disabling the endpoint", err)
			return
		}
		w.record(log, "dead letter (endpoint disabled)", w.o.Domain.DeadLetter(ctx, d, reason))
	case webhook.Permanent:
		w.record(log, "dead letter", w.o.Domain.DeadLetter(ctx, d, res.Reason))
	default:
		if d.Attempt >= len(w.o.Retry) {
			w.record(log, "dead letter", w.o.Domain.DeadLetter(ctx, d, res.Reason+" ("+strconv.Itoa(d.Attempt+1)+" attempts)"))
			return
		}
		wait := jitter(w.o.Retry[d.Attempt])
		if res.RetryAfter > wait {
			wait = res.RetryAfter
		}
		err := w.o.Queue.Later(ctx, job, d.NextAttempt(), w.o.Now().Add(wait))
		w.record(log.With("reason", res.Reason, "retry_in", wait), "will retry", err)
	}
}

// record logs an outcome, or the failure to store it. Logs carry ids and
// statuses only, never a message body.
func (w *Worker) record(log *slog.Logger, outcome string, err error) {
	if err != nil {
		log.Error("delivery outcome not stored; the job stays pending", "outcome", outcome, "error", err)
		return
	}
	log.Info("delivery", "outcome", outcome)
}

// jitter spreads retries over ±10% so providers coming back are not hit by
// every waiting delivery at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

func (w *Worker) pause(ctx context.Context, what string, err error) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	w.o.Log.Warn(what, "error", err)
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
