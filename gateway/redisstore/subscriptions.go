package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/topic"
)

// subscriptionEvent is an event waiting to be sent, as kept in the list
// (fanout.lua writes it).
type subscriptionEvent struct {
	T    int64  `json:"t"`
	Task string `json:"task"`
	V    string `json:"v"`
	N    int64  `json:"n"`
}

// Fanout numbers a Task change for each matching subscription, queues a
// job to send each its event, and finishes the change's job.
//
// What the numbering writes lives under the plain tag, whatever the Task's
// partition: each subscription's counter and list (a subscription hears of
// Tasks in every partition, and its numbers are one sequence), the send
// jobs (on the legacy partition's subscription stream, which every worker
// reads), and the last version numbered per Task (subNumbered) beside
// them, so that one script checks and moves it with the numbering: a
// (Task, version) is numbered once, however often it is given. The
// change's job is in its Task's partition.
//
// When those are one slot (a store that does not spread, or a Task made
// before it spread), one script numbers and finishes the job, only while
// the job is still this consumer's: one round trip, as ever. Otherwise it
// is two steps, each in one slot: number, then finish the job. A crash
// between them leaves the job pending; it is retried (reclaimed), and the
// retry numbers nothing, since its version is numbered, and finishes it.
func (s *Store) Fanout(ctx context.Context, job gateway.QueuedJob, subs []*topic.SubscriptionView, client string, ev gateway.Event) error {
	changes := s.queueIn(partitionOfPlace(job.Place), gateway.QueueSubscription)
	if changes.stream == s.keys.queue(gateway.QueueSubscription) {
		return s.number(ctx, &job, subs, client, ev)
	}
	if err := s.number(ctx, nil, subs, client, ev); err != nil {
		return err
	}
	return changes.Ack(ctx, job)
}

// number runs fanout.lua: it numbers a Task change for subs, and, given
// the change's job (on the legacy partition's stream), finishes it in the
// same step.
func (s *Store) number(ctx context.Context, job *gateway.QueuedJob, subs []*topic.SubscriptionView, client string, ev gateway.Event) error {
	consumer, entry := "", ""
	if job != nil {
		consumer, entry = job.Consumer, job.ID
	}
	keys := []string{s.keys.queue(gateway.QueueSubscription), s.keys.subNumbered()}
	// The send jobs continue the trace of the change (this worker's span).
	args := []any{gateway.WorkerGroup, consumer, entry, ev.Timestamp.UnixMilli(), ev.Task, ev.Version,
		telemetry.TraceFields(ctx)["traceparent"], s.maxEvents, client, len(subs)}
	for _, sub := range subs {
		keys = append(keys, s.keys.subCounter(sub.ID), s.keys.subEvents(sub.ID))
		args = append(args, sub.ID)
	}
	return classify(fanoutScript.Run(ctx, s.rdb, keys, args...).Err())
}

// NextEvent returns the oldest event still to send to a subscription.
func (s *Store) NextEvent(ctx context.Context, subID string) (*gateway.Event, error) {
	b, err := s.rdb.LIndex(ctx, s.keys.subEvents(subID), 0).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	var e subscriptionEvent
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &gateway.Event{Number: e.N, Timestamp: time.UnixMilli(e.T).UTC(), Task: e.Task, Version: e.V}, nil
}

// SentEvent removes the oldest event once it was sent, only if it is still
// that event (one step: a second sender cannot pop the next one unsent),
// and records when the subscription last heard from Signpost.
func (s *Store) SentEvent(ctx context.Context, subID string, number int64) error {
	return classify(sentScript.Run(ctx, s.rdb, []string{s.keys.subEvents(subID), s.keys.subLastSent(subID), s.keys.subFailedBeats(subID)},
		number, time.Now().UnixMilli()).Err())
}

// EventCount is how many events a subscription has had since it started.
func (s *Store) EventCount(ctx context.Context, subID string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.keys.subCounter(subID)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, classify(err)
}

// LastSent is when Signpost last sent anything to a subscription (zero: never).
func (s *Store) LastSent(ctx context.Context, subID string) (time.Time, error) {
	ms, err := s.rdb.Get(ctx, s.keys.subLastSent(subID)).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), classify(err)
}

// ClaimHeartbeat reports whether this caller is the one to send a
// subscription's heartbeat now: the first to ask in a period.
func (s *Store) ClaimHeartbeat(ctx context.Context, subID string, period time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.subHeartbeat(subID), "1", period).Result()
	return ok, classify(err)
}

// MarkSent records a send that carried no event (a handshake, a heartbeat):
// the subscriber took it, so no heartbeat has failed since.
func (s *Store) MarkSent(ctx context.Context, subID string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.subLastSent(subID), time.Now().UnixMilli(), 0)
		p.Del(ctx, s.keys.subFailedBeats(subID))
		return nil
	})
	return classify(err)
}

// HeartbeatFailed counts a failed heartbeat and returns how many have
// failed in a row since the subscription was last sent anything. The count
// is forgotten keep after the last failure (a few periods: a subscription
// ended leaves nothing behind for long).
func (s *Store) HeartbeatFailed(ctx context.Context, subID string, keep time.Duration) (int64, error) {
	var n *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Incr(ctx, s.keys.subFailedBeats(subID))
		p.PExpire(ctx, s.keys.subFailedBeats(subID), keep)
		return nil
	})
	if err != nil {
		return 0, classify(err)
	}
	return n.Val(), nil
}

// LockSubscription takes the lease of sending one subscription's events,
// so one sender at a time drains its list: two would repeat events, or
// send them out of order. It expires on its own should the sender die.
func (s *Store) LockSubscription(ctx context.Context, subID, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.subSender(subID), token, ttl).Result()
	return ok, classify(err)
}

// RenewSubscription extends the sending lease while it is still this
// token's; false when it is lost (it expired, and another sender took it).
func (s *Store) RenewSubscription(ctx context.Context, subID, token string, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{s.keys.subSender(subID)}, token, ttl.Milliseconds()).Int()
	return n == 1, classify(err)
}

// UnlockSubscription gives the sending lease back, if it is still this token's.
func (s *Store) UnlockSubscription(ctx context.Context, subID, token string) error {
	return classify(unlockScript.Run(ctx, s.rdb, []string{s.keys.subSender(subID)}, token).Err())
}
