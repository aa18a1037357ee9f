// Package retention removes referrals whose loop closed long ago, and
// trims the audit trail by age (retention: in the configuration).
//
// A referral is removed when its Task is in a final status, its last
// change is older than the period, no job of the delivery, notify or
// subscription queues (nor a dead letter) still names its Task, and its
// ServiceRequest carries no legal hold (HoldSystem|HoldCode in meta.tag).
// Each is removed whole in one step of the store, which refuses if the
// referral changed since it was read: it is then looked at again next run.
// On a store that spreads referrals, what of it lies outside its
// partition (its Patient, its Task's fields in shared hashes) goes in
// steps after it; a run first finishes what a crash left between those
// steps (redisstore.Store.FinishRemovals), setting aside, for an
// operator, any it can never finish rather than stopping there.
package retention

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/redisstore"
)

// The legal hold: a ServiceRequest tagged with it (meta.tag, this system
// and code) is never removed, whatever its age.
const (
	HoldSystem = "https://signpost.health/fhir/CodeSystem/hold"
	HoldCode   = "legal-hold"
)

// BatchSize is how many candidates one batch looks at.
const BatchSize = 100

// Policy is the configured retention.
type Policy struct {
	ClosedAfter time.Duration // 0: referrals are kept for ever
	AuditAfter  time.Duration // 0: the audit trail is trimmed by count only
}

// Report is what a run did (or, dry, would do).
type Report struct {
	Removed      int   // referrals removed (dry: that would be)
	Bytes        int64 // Redis memory their keys held (MEMORY USAGE; an estimate)
	Held         int   // kept for a legal hold
	Queued       int   // kept: a job still names the Task
	Changed      int   // changed while being removed: looked at again next run
	TooLarge     int   // more supporting resources than a removal takes
	Steps        int   // bounded steps taken of referrals too large to go at once
	Finished     int   // removals an earlier run left half done (a crash between steps), finished
	SetAside     int   // such removals that cannot be finished (an undecodable record, a step Redis refuses): set aside for an operator, the run goes on
	AuditTrimmed int64
}

// Runner applies the policy to one store.
type Runner struct {
	Store  *redisstore.Store
	Policy Policy
	Now    func() time.Time
	// Pause is waited between batches, so intake is not disturbed.
	Pause time.Duration
	// Share, when above 0, is the most of the time retention works: after
	// each referral it waits in proportion to the time that referral took
	// (with 0.2, four times as long), so its reads and scripts come spread
	// out rather than in a burst of a whole batch. 0: no waiting.
	Share float64
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// terminal are the final statuses of a referral Task.
var terminal = []gateway.TaskStatus{gateway.TaskCompleted, gateway.TaskRejected, gateway.TaskCancelled,
	gateway.TaskFailed, gateway.TaskEnteredInError}

// Run removes (dry: counts) every referral the policy allows to go, in
// batches of BatchSize, and trims the audit trail.
func (r *Runner) Run(ctx context.Context, dry bool) (Report, error) {
	var rep Report
	if r.Policy.AuditAfter > 0 && !dry {
		n, err := r.Store.TrimAuditBefore(ctx, r.now().Add(-r.Policy.AuditAfter))
		if err != nil {
			return rep, err
		}
		rep.AuditTrimmed = n
	}
	if r.Policy.ClosedAfter <= 0 {
		return rep, nil
	}
	if !dry {
		done, err := r.Store.FinishRemovals(ctx)
		rep.Finished, rep.SetAside = done.Finished, done.SetAside
		if err != nil {
			return rep, err
		}
	}
	until := r.now().Add(-r.Policy.ClosedAfter)
	for _, st := range terminal {
		if !st.Terminal() {
			continue
		}
		offset := 0 // a dry run, and the kept, move the page on
		for {
			ids, _, err := r.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeTask,
				Groups: [][]string{{gateway.StatusTerm(string(st))}}, Until: until, Offset: offset, Count: BatchSize})
			if err != nil {
				return rep, err
			}
			if len(ids) == 0 {
				break
			}
			kept, err := r.batch(ctx, ids, until, dry, &rep)
			if err != nil {
				return rep, err
			}
			offset += kept
			if len(ids) < BatchSize {
				break
			}
			if r.Pause > 0 {
				select {
				case <-ctx.Done():
					return rep, ctx.Err()
				case <-time.After(r.Pause):
				}
			}
		}
	}
	return rep, nil
}

// batch handles one page of candidates; it returns how many stay (so the
// next page starts after them).
func (r *Runner) batch(ctx context.Context, ids []string, until time.Time, dry bool, rep *Report) (int, error) {
	queued, err := r.Store.QueuedTasks(ctx)
	if errors.Is(err, redisstore.ErrQueuesTooLong) {
		return len(ids), nil
	}
	if err != nil {
		return 0, err
	}
	kept := 0
	var began time.Time // when the previous referral's handling began
	for i, id := range ids {
		if i > 0 {
			if err := r.pace(ctx, time.Since(began)); err != nil {
				return kept, err
			}
		}
		began = time.Now()
		if queued[id] {
			rep.Queued++
			kept++
			continue
		}
		rm, err := r.Store.ReadRemoval(ctx, id)
		if errors.Is(err, gateway.ErrNotFound) {
			continue
		}
		if err != nil {
			return kept, err
		}
		switch {
		case !gateway.TaskStatus(status(rm.Task.Body)).Terminal() || !rm.Task.LastUpdated.Before(until):
			rep.Changed++ // changed since the search
			kept++
			continue
		case rm.ServiceRequest != nil && Held(rm.ServiceRequest.Body):
			rep.Held++
			kept++
			continue
		case rm.TooLarge:
			rep.TooLarge++
			kept++
			continue
		}
		if rm.Step && !dry {
			// Too large to go at once: bounded steps first, each while the
			// Task is as read, then the rest in one removal.
			if rm, err = r.steps(ctx, rm, rep); errors.Is(err, gateway.ErrNotFound) {
				continue
			} else if err != nil {
				return kept, err
			}
			if rm.Step {
				rep.Changed++ // changed between steps, or more steps than one run takes: next run
				kept++
				continue
			}
		}
		if dry {
			n, err := r.Store.MemoryUsage(ctx, rm.Keys())
			if err != nil {
				return kept, err
			}
			rep.Removed++
			rep.Bytes += n
			kept++
			continue
		}
		n, _ := r.Store.MemoryUsage(ctx, rm.Keys())
		keep, current, err := r.keep(ctx, rm)
		if err != nil {
			return kept, err
		}
		if !current {
			rep.Changed++ // a version came after the read
			kept++
			continue
		}
		rm.Keep = keep
		switch err := r.Store.RemoveReferral(ctx, rm); {
		case errors.Is(err, redisstore.ErrRemovalChanged):
			rep.Changed++
			kept++
		case err != nil:
			return kept, err
		default:
			rep.Removed++
			rep.Bytes += n
		}
	}
	return kept, nil
}

// pace waits after a referral whose handling took took (WaitAfter).
func (r *Runner) pace(ctx context.Context, took time.Duration) error {
	wait := r.WaitAfter(took)
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// WaitAfter is how long retention waits after a referral whose handling
// took took, so that it works r.Share of the time: it depends on that
// referral alone, never on the time since an earlier run.
func (r *Runner) WaitAfter(took time.Duration) time.Duration {
	if r.Share <= 0 || r.Share >= 1 {
		return 0
	}
	return time.Duration(float64(took) * (1 - r.Share) / r.Share)
}

// maxSteps bounds the steps one run takes of one referral: at most
// MaxRemovedProvenances Provenances or MaxClaimedKeys keys each.
const maxSteps = 50

// steps removes a referral too large for one removal a bounded share at a
// time, and returns the removal of what is left (still a Step if the
// referral changed or maxSteps were not enough; a later run goes on).
func (r *Runner) steps(ctx context.Context, rm *redisstore.Removal, rep *Report) (*redisstore.Removal, error) {
	for range maxSteps {
		if !rm.Step {
			return rm, nil
		}
		switch err := r.Store.RemoveReferral(ctx, rm); {
		case errors.Is(err, redisstore.ErrRemovalChanged):
			return rm, nil
		case err != nil:
			return nil, err
		}
		rep.Steps++
		next, err := r.Store.ReadRemoval(ctx, rm.Task.ID)
		if err != nil {
			return nil, err
		}
		rm = next
		if r.Pause > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(r.Pause / 10):
			}
		}
	}
	return rm, nil
}

// keep is what stays of the referral: its journey's summary, read from
// what the Task's versions recorded up to the one the removal read
// (current is false when a later one came meanwhile: the removal would be
// refused anyway), as the outcomes view reads it, so the read is the same
// few fields and versions however many versions the Task has. A Task
// entered in error is counted nowhere, so nothing of it is kept.
func (r *Runner) keep(ctx context.Context, rm *redisstore.Removal) (keep *gateway.KeptJourney, current bool, err error) {
	recs, err := r.Store.JourneyRecords(ctx, []string{rm.Task.ID}, insights.OlderTaskWindow)
	if err != nil {
		return nil, false, err
	}
	vs := recs[0].Versions
	if len(vs) == 0 || vs[len(vs)-1].Version != rm.Task.Version {
		return nil, false, nil
	}
	keep, _, err = insights.Summarise(ctx, r.Store, rm.Task.ID, recs[0])
	return keep, err == nil, err
}

func status(body []byte) string {
	var t struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(body, &t)
	return t.Status
}

// Held reports whether a ServiceRequest carries the legal hold.
func Held(body []byte) bool {
	var sr struct {
		Meta struct {
			Tag []struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"tag"`
		} `json:"meta"`
	}
	_ = json.Unmarshal(body, &sr)
	for _, t := range sr.Meta.Tag {
		if t.System == HoldSystem && t.Code == HoldCode {
			return true
		}
	}
	return false
}
