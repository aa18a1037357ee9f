package worker

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/writeback"
)

// WriteBackDomain is what write-back asks of the writeback use case.
type WriteBackDomain interface {
	WriteBack(ctx context.Context, taskID string, version int) (*writeback.WriteBack, error)
}

// WriteBackStore keeps what was last written to each GP system.
type WriteBackStore interface {
	WriteBackState(ctx context.Context, client, taskID string) (gateway.WriteBackState, error)
	SaveWriteBack(ctx context.Context, client, taskID string, st gateway.WriteBackState, job gateway.QueuedJob) error
	SetWriteBackState(ctx context.Context, client, taskID string, st gateway.WriteBackState) error
	LockWriteBack(ctx context.Context, client, taskID, token string, ttl time.Duration) (bool, error)
	UnlockWriteBack(ctx context.Context, client, taskID, token string) error
}

// WriteBacks writes each Task change back to the GP system whose referral it
// is: the Handler of the notify queue for clients with a write-back target.
// It always writes the Task's current version, so an older change arriving
// late never overwrites a newer one.
type WriteBacks struct {
	Queue   Queue
	Domain  WriteBackDomain
	State   WriteBackStore
	Targets map[string]*notify.GPServer // by client id
	Retry   []time.Duration
	Log     *slog.Logger
	Now     func() time.Time
	Metrics *telemetry.Metrics // nil: none
	// Audit keeps the record of each Task written back (nil: none).
	Audit Auditor
	// Answers sends the BaRS responses queued beside the write-backs (nil:
	// none are sent, and their jobs are acknowledged as they come).
	Answers *BarsResponses
}

// writeBackLease bounds how long one Task's write-back may hold it: longer
// than two requests to the GP server with their timeouts.
const writeBackLease = time.Minute

// Lanes are the GP systems with a write-back target or a BaRS endpoint:
// one failing never holds up another.
func (h *WriteBacks) Lanes() []string {
	lanes := slices.Collect(maps.Keys(h.Targets))
	if h.Answers != nil {
		for client := range h.Answers.Targets {
			if _, ok := h.Targets[client]; !ok {
				lanes = append(lanes, client)
			}
		}
	}
	return lanes
}

// Lane is the client whose referral the Task is.
func (h *WriteBacks) Lane(job gateway.QueuedJob) string { return queue.JobLane(job) }

// Handle writes one change back.
func (h *WriteBacks) Handle(ctx context.Context, job gateway.QueuedJob) {
	logger, now := loggerOr(h.Log), clockOr(h.Now)
	if queue.JobEvent(job) == queue.EventBarsResponse {
		if h.Answers == nil {
			record(logger.With("job", job.Name()), "no BaRS responses configured", h.Queue.Ack(ctx, job))
			return
		}
		h.Answers.Handle(ctx, job)
		return
	}
	changed, err := queue.ReadTaskChanged(job)
	if err != nil {
		record(logger.With("job", job.Name()), "unreadable write-back job", h.Queue.Bury(ctx, job, err.Error()))
		return
	}
	client, taskID := changed.Client, changed.TaskID
	log := logger.With("task", taskID, "client", client)
	target, ok := h.Targets[client]
	if !ok {
		record(log, "no write-back for this client", h.Queue.Ack(ctx, job))
		return
	}
	// One writer per Task: two would race, and an older status could land
	// after a newer one. A Task already being written waits its turn.
	token := gateway.NewID()
	locked, err := h.State.LockWriteBack(ctx, client, taskID, token, writeBackLease)
	if err != nil {
		record(log, "taking the write-back lease", err)
		return
	}
	if !locked {
		record(log, "another write-back of this Task is under way; waiting", h.Queue.Later(ctx, job, job.Fields, now().Add(200*time.Millisecond)))
		return
	}
	defer func() { _ = h.State.UnlockWriteBack(context.WithoutCancel(ctx), client, taskID, token) }()
	st, err := h.State.WriteBackState(ctx, client, taskID)
	if err != nil {
		record(log, "reading write-back state", err)
		return
	}
	// 1. The GP's copy of the Task, always at its current version.
	cur, err := h.Domain.WriteBack(ctx, taskID, 0)
	if err != nil {
		record(log, "reading the Task", err)
		return
	}
	if cur.Task.Version > st.Version {
		var res notify.Result
		if st.GPID == "" {
			res = target.Create(ctx, "Task", cur.TaskBody(""), cur.TaskQuery())
			if res.OK() && res.ID == "" {
				// Made before (an answer lost), or made now without a
				// Location: find it by Signpost's identifier.
				res = target.Find(ctx, "Task", cur.TaskQuery())
			}
		} else {
			res = target.Update(ctx, "Task", st.GPID, cur.TaskBody(st.GPID), st.GPETag)
			if res.Conflict() {
				// The GP copy changed since; Signpost holds the referral's
				// status, so it writes again over the version there now.
				if v := target.Version(ctx, "Task", st.GPID); v.OK() {
					res = target.Update(ctx, "Task", st.GPID, cur.TaskBody(st.GPID), v.ETag)
				}
			}
			res.ID = st.GPID
		}
		if !res.OK() || res.ID == "" {
			h.retry(ctx, log, job, res)
			return
		}
		disclosed(ctx, h.Audit, log, now, client, gateway.Identifier{}, pathWriteBack, []string{cur.Task.Ref() + "/_history/" + cur.Task.VersionID()})
		st.GPID, st.GPETag, st.Version = res.ID, res.ETag, cur.Task.Version
		// Kept at once: a later step failing must not forget the copy.
		if err := h.State.SetWriteBackState(ctx, client, taskID, st); err != nil {
			record(log, "recording the GP copy", err)
			return
		}
	}
	// 2. The outcome measures' scores the Task names, each version once.
	for _, sc := range cur.Scores {
		if slices.Contains(st.Scores, sc.Ref) {
			continue
		}
		if out := target.Create(ctx, "Observation", sc.Body, sc.Query); !out.OK() {
			h.retry(ctx, log, job, out)
			return
		}
		disclosed(ctx, h.Audit, log, now, client, gateway.Identifier{}, pathWriteBack+" (outcome measure Observation)", []string{sc.Ref})
		st.Scores = append(st.Scores, sc.Ref)
		if err := h.State.SetWriteBackState(ctx, client, taskID, st); err != nil {
			record(log, "recording a filed score", err)
			return
		}
	}
	// 3. The outcome entry of this job's own change, from its own version,
	// once per status: a status the Task passed through while the GP
	// server was down is still coded.
	if changed.Version > 0 && !slices.Contains(st.Filed, changed.Status) {
		at, err := h.Domain.WriteBack(ctx, taskID, changed.Version)
		if err != nil {
			record(log, "reading the Task version", err)
			return
		}
		if at.Outcome != nil {
			if out := target.Create(ctx, "Observation", at.Outcome, at.OutcomeQuery); !out.OK() {
				h.retry(ctx, log, job, out)
				return
			}
			disclosed(ctx, h.Audit, log, now, client, gateway.Identifier{}, pathWriteBack+" (outcome Observation)", []string{at.Task.Ref() + "/_history/" + at.Task.VersionID()})
			st.Filed = append(st.Filed, at.Status)
		}
	}
	err = h.State.SaveWriteBack(ctx, client, taskID, st, job)
	if err == nil && !changed.At.IsZero() {
		h.Metrics.NotificationLag(ctx, "write-back", changed.At)
	}
	record(log.With("version", st.Version), "written back", err)
}

// retry puts a failed write-back off, or after the last attempt moves it
// to the dead-letter queue (signpost dlq replay sends it again; the next
// change of the Task writes its current state anyway).
func (h *WriteBacks) retry(ctx context.Context, log *slog.Logger, job gateway.QueuedJob, res notify.Result) {
	retryOrBury(ctx, h.Queue, h.Retry, clockOr(h.Now), log, job, res, "write-back to the GP system failed: ")
}
