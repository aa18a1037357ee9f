package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/writeback"
)

// pathBarsResponse names the disclosure of a BaRS response in the audit.
const pathBarsResponse = "BaRS servicerequest-response"

// BarsDomain is what answering a BaRS sender asks of the writeback use case.
type BarsDomain interface {
	BarsAnswer(ctx context.Context, job queue.BarsResponse, endpoint string) (*writeback.BarsAnswer, error)
}

// BarsResponses answers the senders of BaRS referrals: each bars-response
// job of the notify queue becomes one servicerequest-response message
// POSTed to the client's BaRS endpoint (clients[].bars). It runs in the
// notify queue's worker, beside write-back (WriteBacks hands it its jobs),
// so it has that queue's durability: a job is acknowledged only once the
// sender took the message, retried on the client's schedule, then
// dead-lettered.
type BarsResponses struct {
	Queue   Queue
	Domain  BarsDomain
	Targets map[string]*notify.BarsEndpoint // by client id
	Retry   []time.Duration
	Log     *slog.Logger
	Now     func() time.Time
	// Audit keeps the record of each response sent (nil: none).
	Audit Auditor
	// Metrics counts the responses by outcome (nil: none).
	Metrics *telemetry.Metrics
}

// Handle sends one response.
func (h *BarsResponses) Handle(ctx context.Context, job gateway.QueuedJob) {
	logger, now := loggerOr(h.Log), clockOr(h.Now)
	b, err := queue.ReadBarsResponse(job)
	if err != nil {
		record(logger.With("job", job.Name()), "unreadable BaRS response job", h.Queue.Bury(ctx, job, err.Error()))
		return
	}
	log := logger.With("task", b.TaskID, "client", b.Client, "version", b.Version)
	target, ok := h.Targets[b.Client]
	if !ok {
		record(log, "no BaRS endpoint for this client", h.Queue.Ack(ctx, job))
		return
	}
	answer, err := h.Domain.BarsAnswer(ctx, b, target.Base)
	if err != nil {
		record(log, "building the BaRS response", err) // left pending: reclaimed and tried again
		return
	}
	if answer == nil {
		record(log, "not a BaRS referral; nothing to answer", h.Queue.Ack(ctx, job))
		return
	}
	// The request message's id is the correlation id: the sender's own
	// X-Correlation-Id is not kept, and this id ties the answer to it.
	res := target.ProcessMessage(ctx, answer.MessageID, answer.RequestID, answer.Body)
	if !res.OK() {
		h.Metrics.BarsResponse(ctx, retryOrBury(ctx, h.Queue, h.Retry, now, log, job, res, "BaRS response to the sender failed: "))
		return
	}
	h.Metrics.BarsResponse(ctx, "sent")
	disclosed(ctx, h.Audit, log, now, b.Client, gateway.Identifier{}, pathBarsResponse, answer.Disclosed)
	record(log.With("message", answer.MessageID), "BaRS response sent", h.Queue.Ack(ctx, job))
}

// retryOrBury puts a failed send off, or after the last attempt (or an
// answer not worth retrying) moves it to the dead-letter queue, from where
// signpost dlq replay sends it again. It says which: "retry" or
// "dead-letter".
func retryOrBury(ctx context.Context, q Queue, schedule []time.Duration, now func() time.Time, log *slog.Logger, job gateway.QueuedJob, res notify.Result, why string) string {
	attempt, _ := queue.Attempt(job) // unreadable: the first of the retries
	log = log.With("attempt", attempt+1, "reason", res.Reason)
	if !res.Retry || attempt >= len(schedule) {
		record(log.With("status", res.Status), "dead letter", q.Bury(ctx, job, why+res.Reason))
		return "dead-letter"
	}
	wait := jitter(schedule[attempt])
	record(log.With("retry_in", wait), "will retry", q.Later(ctx, job, queue.NextAttempt(job), now().Add(wait)))
	return "retry"
}
