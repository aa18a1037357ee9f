package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// Queue is one job queue: a Redis stream read through the workers'
// consumer group, and a sorted set of jobs put off until later.
type Queue struct {
	rdb     redis.UniversalClient
	name    string
	place   string // the id prefix of its partition ("" for legacy), which its jobs carry
	stream  string
	delayed string
	dead    string // the dead-letter stream
}

// Queue returns the named queue (gateway.QueueDelivery, ...) of the legacy
// partition: every job of a store that does not spread (Queues: of one
// that does).
func (s *Store) Queue(name string) *Queue { return s.queueIn(legacy, name) }

// queueIn returns the named queue of partition p, with its own dead letters.
func (s *Store) queueIn(p partition, name string) *Queue {
	k := s.in(p)
	return &Queue{rdb: s.rdb, name: name, place: idPrefix(p), stream: k.queue(name), delayed: k.delayed(name), dead: k.queue(gateway.QueueDeadLetter)}
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Key is the key of the queue's stream, for what reads the stream itself
// (XINFO, in a test or an operator's look at the consumer group).
func (q *Queue) Key() string { return q.stream }

// Ensure creates the stream and the consumer group if they are missing.
func (q *Queue) Ensure(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.stream, gateway.WorkerGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return classify(err)
	}
	return nil
}

// Read takes up to count new jobs for consumer, waiting up to block.
func (q *Queue) Read(ctx context.Context, consumer string, count int, block time.Duration) ([]gateway.QueuedJob, error) {
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: gateway.WorkerGroup, Consumer: consumer,
		Streams: []string{q.stream, ">"}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			if err := q.Ensure(ctx); err != nil {
				return nil, err
			}
			return nil, nil
		}
		return nil, classify(err)
	}
	var out []gateway.QueuedJob
	for _, st := range res {
		out = append(out, q.jobs(st.Messages, consumer)...)
	}
	return out, nil
}

// Reclaim takes over jobs another consumer has held for longer than
// minIdle — a worker that crashed — so they are handled again. start is
// where the previous call stopped ("0-0" the first time); the next start is
// returned, "0-0" once the whole pending list has been scanned.
func (q *Queue) Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int, start string) ([]gateway.QueuedJob, string, error) {
	if start == "" {
		start = "0-0"
	}
	msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: q.stream, Group: gateway.WorkerGroup,
		Consumer: consumer, MinIdle: minIdle, Start: start, Count: int64(count)}).Result()
	if err != nil {
		return nil, "0-0", classify(err)
	}
	return q.jobs(msgs, consumer), next, nil
}

// Forget removes the consumers of the workers' group that have gone: idle
// for longer than idle with no job pending, other than self (forget.lua).
// Every process joins the group under a name of its own, so without this
// the group would keep a consumer for every process that ever ran. A
// consumer removed while it still runs (a process stalled for longer than
// idle) is added back by its next read, with nothing lost.
func (q *Queue) Forget(ctx context.Context, self string, idle time.Duration) (int, error) {
	n, err := forgetScript.Run(ctx, q.rdb, []string{q.stream}, gateway.WorkerGroup, idle.Milliseconds(), self).Int()
	return n, classify(err)
}

// Take claims a job for handling if consumer still holds it, resetting its
// idle time (take.lua).
func (q *Queue) Take(ctx context.Context, job gateway.QueuedJob) (bool, error) {
	n, err := takeScript.Run(ctx, q.rdb, []string{q.stream}, gateway.WorkerGroup, job.Consumer, job.ID).Int()
	return n == 1, classify(err)
}

func (q *Queue) jobs(msgs []redis.XMessage, consumer string) []gateway.QueuedJob {
	out := make([]gateway.QueuedJob, 0, len(msgs))
	for _, m := range msgs {
		j := gateway.QueuedJob{Queue: q.name, Place: q.place, ID: m.ID, Consumer: consumer, Fields: make(map[string]string, len(m.Values))}
		for k, v := range m.Values {
			j.Fields[k], _ = v.(string)
		}
		out = append(out, j)
	}
	return out
}

// Later puts a job off until due with new fields (its next attempt), and
// finishes its current entry, in one step.
func (q *Queue) Later(ctx context.Context, job gateway.QueuedJob, fields map[string]string, due time.Time) error {
	member, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return classify(laterScript.Run(ctx, q.rdb, []string{q.delayed, q.stream},
		due.UnixMilli(), member, gateway.WorkerGroup, job.ID, job.Consumer).Err())
}

// Promote moves up to max jobs that are due by now back onto the stream.
func (q *Queue) Promote(ctx context.Context, now time.Time, max int) (int, error) {
	n, err := promoteScript.Run(ctx, q.rdb, []string{q.delayed, q.stream}, now.UnixMilli(), max).Int()
	return n, classify(err)
}

// Add appends a job (used to re-drive a dead letter).
func (q *Queue) Add(ctx context.Context, fields map[string]string) (string, error) {
	id, err := q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.stream, Values: fields}).Result()
	return id, classify(err)
}

// List returns every job on the stream, oldest first, reading it in pages.
func (q *Queue) List(ctx context.Context) ([]gateway.QueuedJob, error) {
	var out []gateway.QueuedJob
	start := "-"
	for {
		msgs, err := q.rdb.XRangeN(ctx, q.stream, start, "+", 1000).Result()
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, q.jobs(msgs, "")...)
		if len(msgs) < 1000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// Get returns one job by its entry id.
func (q *Queue) Get(ctx context.Context, id string) (*gateway.QueuedJob, error) {
	msgs, err := q.rdb.XRangeN(ctx, q.stream, id, id, 1).Result()
	if err != nil {
		return nil, classify(err)
	}
	if len(msgs) == 0 {
		return nil, gateway.ErrNotFound
	}
	return &q.jobs(msgs, "")[0], nil
}

// Remove deletes one job (a dead letter that was re-driven).
func (q *Queue) Remove(ctx context.Context, id string) error {
	return classify(q.rdb.XDel(ctx, q.stream, id).Err())
}

// Depth reports how many jobs wait on the stream and in the delayed set.
func (q *Queue) Depth(ctx context.Context) (stream, delayed int64, err error) {
	pipe := q.rdb.Pipeline()
	s := pipe.XLen(ctx, q.stream)
	d := pipe.ZCard(ctx, q.delayed)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, classify(err)
	}
	return s.Val(), d.Val(), nil
}

// Bury moves a job that cannot be handled to the dead-letter stream with the
// reason, and finishes it, in one transaction.
func (q *Queue) Bury(ctx context.Context, job gateway.QueuedJob, reason string) error {
	fields := make(map[string]any, len(job.Fields)+2)
	for k, v := range job.Fields {
		fields[k] = v
	}
	fields["reason"], fields["failed_at"] = reason, strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := q.rdb.TxPipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: q.dead, Values: fields})
	pipe.XAck(ctx, q.stream, gateway.WorkerGroup, job.ID)
	pipe.XDel(ctx, q.stream, job.ID)
	_, err := pipe.Exec(ctx)
	return classify(err)
}

// Ack finishes a job without recording anything (nothing to do for it),
// if its consumer still holds it (finish.lua).
func (q *Queue) Ack(ctx context.Context, job gateway.QueuedJob) error {
	return classify(finishScript.Run(ctx, q.rdb, []string{q.stream}, gateway.WorkerGroup, job.Consumer, job.ID).Err())
}

// Stats reads the queue's state for the metrics: jobs waiting on the
// stream, put off, held by a worker, and the age of the oldest entry.
func (q *Queue) Stats(ctx context.Context) (waiting, delayed, pending int64, oldest time.Duration, err error) {
	pipe := q.rdb.Pipeline()
	l := pipe.XLen(ctx, q.stream)
	d := pipe.ZCard(ctx, q.delayed)
	first := pipe.XRangeN(ctx, q.stream, "-", "+", 1)
	p := pipe.XPending(ctx, q.stream, gateway.WorkerGroup)
	_, _ = pipe.Exec(ctx) // a missing group or stream reads as zero
	if l.Err() != nil && !errors.Is(l.Err(), redis.Nil) {
		return 0, 0, 0, 0, classify(l.Err())
	}
	if msgs := first.Val(); len(msgs) > 0 {
		if ms, err := strconv.ParseInt(strings.SplitN(msgs[0].ID, "-", 2)[0], 10, 64); err == nil {
			oldest = time.Since(time.UnixMilli(ms))
		}
	}
	if p.Err() == nil {
		pending = p.Val().Count
	}
	return l.Val(), d.Val(), pending, oldest, nil
}
