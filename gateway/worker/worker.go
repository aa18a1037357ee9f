// Package worker delivers referrals to providers: it reads the delivery
// queue through a consumer group, sends each job, and records the outcome —
// delivered, retry later, or dead letter — through the domain (gateway),
// which commits it atomically with the Task's new version. A job is only
// finished when its outcome is stored; a worker that dies leaves its jobs
// pending, and another worker reclaims and sends them again under the same
// webhook-id.
//
// It imports the domain, the webhook sender and, for the message a BaRS
// provider is sent, the delivery use case's type of it; Redis is behind the
// Queue interface (redisstore implements it).
package worker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/webhook"
)

// Queue is the delivery queue as the worker uses it.
type Queue interface {
	Ensure(ctx context.Context) error
	Read(ctx context.Context, consumer string, count int, block time.Duration) ([]gateway.QueuedJob, error)
	Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int, start string) ([]gateway.QueuedJob, string, error)
	// Forget removes the consumers that have gone (idle past idle, nothing
	// pending), other than self, and says how many.
	Forget(ctx context.Context, self string, idle time.Duration) (int, error)
	Take(ctx context.Context, job gateway.QueuedJob) (bool, error)
	Later(ctx context.Context, job gateway.QueuedJob, fields map[string]string, due time.Time) error
	Promote(ctx context.Context, now time.Time, max int) (int, error)
	Ack(ctx context.Context, job gateway.QueuedJob) error
	// Bury moves a job that cannot be handled to the dead-letter queue as it is.
	Bury(ctx context.Context, job gateway.QueuedJob, reason string) error
}

// Domain is what the worker asks of the delivery use case (gateway/delivery).
type Domain interface {
	DeliveryBody(ctx context.Context, d *queue.Delivery, full bool) ([]byte, error)
	TaskForProvider(ctx context.Context, d *queue.Delivery) ([]byte, error)
	BarsRequest(ctx context.Context, d *queue.Delivery) (*delivery.BarsRequest, error)
	Delivered(ctx context.Context, d *queue.Delivery, providerName string) error
	DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error
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
	Kind    string // "webhook", "fhir", "bars" or "portal"
	URL     string
	Secrets [][]byte
	Full    bool // webhook payload: a FHIR Bundle rather than the thin message
	// Token is the bearer token a bars delivery sends ("" for none).
	Token string
}

// Handler handles the jobs of one queue, in lanes: jobs of one lane (one
// provider, one GP system) wait only for each other.
type Handler interface {
	Lanes() []string
	Lane(job gateway.QueuedJob) string
	Handle(ctx context.Context, job gateway.QueuedJob)
}

// Ticker is a Handler that also has work on a clock (heartbeats): Tick is
// called every Options.TickEvery (a second by default), and may leave work
// running, which Wait waits
// for at shutdown (after the context given to Tick has ended).
type Ticker interface {
	Tick(ctx context.Context)
	Wait()
}

// Options configure a Worker.
type Options struct {
	Queue   Queue
	Handler Handler
	// Consumer names this worker in the consumer group (unique per process).
	Consumer string
	// PerProvider bounds the jobs in flight in one lane, so a slow or dead
	// endpoint holds only its own lane, never the others. Default
	// DefaultPerProvider.
	PerProvider int
	// ReclaimIdle is how long a job may be held before another worker takes
	// it over; longer than the slowest send.
	ReclaimIdle time.Duration
	// ForgetIdle is how long a consumer with nothing pending may be idle
	// before it counts as gone and is removed from the group (default an
	// hour; a running worker reads at least every ReadBlock).
	ForgetIdle time.Duration
	// Grace is how long in-flight sends may finish at shutdown.
	Grace time.Duration
	// LaneDepth is how many jobs may wait in one lane before new ones are
	// put off for a second (default 64). A lane handled one job at a time,
	// for order, wants a deeper one, so a burst waits in memory, not a second.
	LaneDepth int
	// ReadBlock is how long one read of the queue waits for new jobs
	// (default a second). A read under way is not cut short at shutdown,
	// so it also bounds how long stopping waits for the read.
	ReadBlock time.Duration
	// PromoteEvery is how often retries that have come due are put back on
	// the queue (default 200 ms): how late, at most, a retry is sent.
	PromoteEvery time.Duration
	// TickEvery is how often a Ticker handler's Tick is called (default a
	// second).
	TickEvery time.Duration
	// ErrorPause is how long the worker waits after Redis fails before it
	// tries again (default a second), so an outage is not met with a storm
	// of retries.
	ErrorPause time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

// Worker runs deliveries until its context ends.
type Worker struct {
	o     Options
	lanes map[string]chan gateway.QueuedJob
	// stuck holds, by lane, until when a full lane is not waited for.
	stuck map[string]time.Time
	mu    sync.Mutex
	// queued holds the jobs in this worker's lanes or in hand, so a job it
	// reclaims from itself while it still waits in a lane is not queued twice.
	queued sync.Map
}

// laneWait is how long the reader waits for room in a full lane before it
// puts the job off for a second.
const laneWait = 100 * time.Millisecond

// laneDepth is how many jobs wait in one provider's lane before the worker
// puts new ones off briefly instead (which keeps reading for other lanes).
const laneDepth = 64

// DefaultPerProvider is how many jobs of one lane a worker has in flight
// when Options.PerProvider is not set. An HTTP client sending a lane's jobs
// should keep as many connections idle per host (outbound.Options.IdlePerHost),
// or it closes and reopens connections under load.
const DefaultPerProvider = 16

// DeliveryLane is how many of one provider's deliveries a worker has in
// flight: twice the sends it makes to the provider at once
// (Deliveries.SendsPerProvider, DefaultPerProvider), so that while those
// wait on the provider as many again read the Task or record the
// delivery in Redis. In alternated drains on two CPUs it delivered
// 1.14-1.32 times as fast as a lane of 16 holding its places through all
// three, at less CPU per delivery, its round trips to Redis shared with
// more others; a lane of 48 was no faster (deploy/BENCHMARKS.md).
const DeliveryLane = 2 * DefaultPerProvider

// New makes a Worker, filling in defaults.
func New(o Options) *Worker {
	if o.PerProvider <= 0 {
		o.PerProvider = DefaultPerProvider
	}
	if o.ReclaimIdle <= 0 {
		o.ReclaimIdle = time.Minute
	}
	if o.ForgetIdle <= 0 {
		o.ForgetIdle = time.Hour
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.LaneDepth <= 0 {
		o.LaneDepth = laneDepth
	}
	if o.ReadBlock <= 0 {
		o.ReadBlock = time.Second
	}
	if o.PromoteEvery <= 0 {
		o.PromoteEvery = 200 * time.Millisecond
	}
	if o.TickEvery <= 0 {
		o.TickEvery = time.Second
	}
	if o.ErrorPause <= 0 {
		o.ErrorPause = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Worker{o: o, lanes: map[string]chan gateway.QueuedJob{}, stuck: map[string]time.Time{}}
}

// Run reads and delivers until ctx ends, then shuts down in order: stop
// taking jobs, let sends in flight finish within Grace, and leave the rest
// pending for another worker to reclaim.
func (w *Worker) Run(ctx context.Context) error {
	// Redis may not answer yet (serve starts anyway): keep trying, as the
	// API does, until it does or the worker is stopped.
	for {
		err := w.o.Queue.Ensure(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		w.pause(ctx, "preparing the queue", err)
	}
	// Sends get their own context: cancelled only when the grace period
	// after shutdown has run out.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var lanes sync.WaitGroup
	for _, id := range w.o.Handler.Lanes() {
		ch := make(chan gateway.QueuedJob, w.o.LaneDepth)
		w.lanes[id] = ch
		for i := 0; i < w.o.PerProvider; i++ {
			lanes.Add(1)
			go func() {
				defer lanes.Done()
				for job := range ch {
					w.take(work, job)
				}
			}()
		}
	}
	loopFuncs := []func(context.Context){w.read, w.promote, w.reclaim}
	if t, ok := w.o.Handler.(Ticker); ok {
		loopFuncs = append(loopFuncs, func(ctx context.Context) {
			tick := time.NewTicker(w.o.TickEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					t.Tick(ctx)
				}
			}
		})
	}
	var loops sync.WaitGroup
	for _, loop := range loopFuncs {
		loops.Add(1)
		go func() { defer loops.Done(); loop(ctx) }()
	}
	<-ctx.Done()
	loops.Wait()
	if t, ok := w.o.Handler.(Ticker); ok {
		t.Wait()
	}
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
		jobs, err := w.o.Queue.Read(ctx, w.o.Consumer, 32, w.o.ReadBlock)
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
	t := time.NewTicker(w.o.PromoteEvery)
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
	cursor := "0-0"
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			jobs, next, err := w.o.Queue.Reclaim(ctx, w.o.Consumer, w.o.ReclaimIdle, 100, cursor)
			if err != nil {
				if ctx.Err() == nil {
					w.o.Log.Warn("reclaiming deliveries", "error", err)
				}
				continue
			}
			cursor = next // go on from here next time, so a long pending list is scanned through
			if cursor == "0-0" {
				w.forget(ctx) // a whole pass made: what was left behind is being handled
			}
			for _, j := range jobs {
				w.o.Log.Info("delivery reclaimed from a worker that stopped", "job", j.Name(), "task", queue.JobTask(j))
				w.dispatch(ctx, j)
			}
		}
	}
}

// forget removes from the consumer group the workers that have gone once
// nothing is pending for them (their jobs reclaimed). Every process joins
// under a name of its own, so otherwise each restart would leave one behind
// for good.
func (w *Worker) forget(ctx context.Context) {
	n, err := w.o.Queue.Forget(ctx, w.o.Consumer, w.o.ForgetIdle)
	switch {
	case err != nil && ctx.Err() == nil:
		w.o.Log.Warn("removing workers that have gone from the consumer group", "error", err)
	case n > 0:
		w.o.Log.Info("removed workers that have gone from the consumer group", "workers", n)
	}
}

// dispatch hands a job to its provider's lane without waiting: a full lane
// (a slow provider) puts the job off a moment rather than stall reading.
func (w *Worker) dispatch(ctx context.Context, job gateway.QueuedJob) {
	if _, already := w.queued.LoadOrStore(job.Name(), w.o.Now()); already {
		return // reclaimed from this worker while it still waits in a lane
	}
	lane := w.o.Handler.Lane(job)
	w.mu.Lock()
	ch, ok := w.lanes[lane]
	stuck := w.o.Now().Before(w.stuck[lane])
	w.mu.Unlock()
	if !ok {
		w.take(ctx, job) // no lane (not configured): the handler says what becomes of it
		return
	}
	select {
	case ch <- job:
		return
	default:
	}
	// The lane is full. In a burst, waiting a little for room keeps the
	// job's order and costs a round trip less than putting it off; a lane
	// that stays full (a slow provider) is not waited for again for a
	// second, so it holds up the reading of the other lanes once, briefly.
	wait := laneWait
	if stuck {
		wait = 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case ch <- job:
	case <-ctx.Done():
		w.queued.Delete(job.Name()) // still pending: reclaimed after a restart
	case <-t.C:
		w.mu.Lock()
		w.stuck[lane] = w.o.Now().Add(time.Second)
		w.mu.Unlock()
		w.queued.Delete(job.Name())
		if err := w.o.Queue.Later(ctx, job, job.Fields, w.o.Now().Add(time.Second)); err != nil {
			w.o.Log.Warn("putting a delivery off", "job", job.Name(), "error", err)
		}
	}
}

// take handles a job if this worker still holds it: while it waited in a
// lane, another worker may have reclaimed it. Taking it also resets its
// idle time, so it is not reclaimed while it is being handled.
func (w *Worker) take(ctx context.Context, job gateway.QueuedJob) {
	defer w.queued.Delete(job.Name())
	read, _ := w.queued.Load(job.Name())
	if since, ok := read.(time.Time); !ok || w.o.Now().Sub(since) >= w.o.ReclaimIdle/4 {
		ok, err := w.o.Queue.Take(ctx, job)
		if err != nil {
			w.o.Log.Warn("taking a job", "job", job.Name(), "error", err)
			return // still pending: handled after a reclaim
		}
		if !ok {
			w.o.Log.Info("job handled by another worker", "job", job.Name())
			return
		}
	}
	// A job read moments ago is still this worker's without asking Redis:
	// another worker reclaims only a job idle for ReclaimIdle, and handling
	// it (bounded by twice the send's timeout: a wait for one of the
	// provider's send slots, then the send; a third of ReclaimIdle in
	// serve) ends well before a quarter of it plus that has passed. At intake's
	// rate that saves one round trip per job.
	// The job continues the trace of the change that queued it.
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(job.Fields))
	attempt, _ := queue.Attempt(job)
	ctx, span := tracer().Start(ctx, job.Queue+" process", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "redis"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", job.Queue), attribute.String("messaging.message.id", job.ID),
			attribute.Int("signpost.attempt", attempt)))
	defer span.End()
	w.o.Handler.Handle(ctx, job)
}

// Auditor keeps the record of each disclosure Signpost makes (redisstore:
// the audit stream).
type Auditor interface {
	Audit(ctx context.Context, r *gateway.AuditRecord) error
}

// Paths of disclosure, named in the audit record of each.
const (
	pathWebhook     = "delivery webhook"
	pathWebhookFull = "delivery webhook (full)"
	pathFHIR        = "delivery fhir"
	pathBars        = "delivery bars"
	pathWriteBack   = "write-back"
	pathRestHook    = "rest-hook "
)

// disclosed keeps the record of resources a recipient has acknowledged.
// It is kept after the send, apart from the job's own bookkeeping: a
// record that cannot be kept is logged (the send happened either way, and
// sending again to keep it would disclose twice).
func disclosed(ctx context.Context, a Auditor, log *slog.Logger, now func() time.Time, recipient string, org gateway.Identifier, path string, what []string) {
	if a == nil || len(what) == 0 {
		return
	}
	if err := a.Audit(ctx, gateway.Disclosure(now(), recipient, org, path, what)); err != nil {
		log.Error("disclosure not audited", "path", path, "error", err)
	}
}

// loggerOr and clockOr are a handler's logger and clock, or the defaults.
// Handlers default them without writing to themselves: Handle runs in
// every lane at once.
func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

func clockOr(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// tracer is the worker's tracer from the tracer provider installed now. It
// is not kept in a package variable: OpenTelemetry ties a tracer taken
// before any provider is installed to the first one ever installed, so a
// process that starts tracing again (a second serve in one test binary)
// would send its spans to a provider already shut down.
func tracer() trace.Tracer {
	return otel.Tracer("github.com/signpost-health/signpost/gateway/worker")
}

// record logs an outcome, or the failure to store it. Logs carry ids and
// statuses only, never a message body.
func record(log *slog.Logger, outcome string, err error) {
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
	case <-time.After(w.o.ErrorPause):
	}
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
