package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// Queues is one job queue of a store that spreads referrals: a stream (with
// its delayed set) in every partition, since a job is queued by the commit
// of the referral it is about, in that referral's partition. It does for
// the workers what one Queue does, over all of them:
//
//   - reading: one blocking reader per partition feeds what Read returns, so
//     a busy partition cannot starve another (each has its own reader, and
//     the readers take turns handing over what they read);
//   - Take, Later, Ack and Bury act on the partition the job was read from
//     (gateway.QueuedJob.Place), as the commit that finishes a job does;
//   - Reclaim walks every partition's pending list in turn, Promote and
//     Forget act on each, Stats sums them.
type Queues struct {
	name  string
	parts []*Queue // legacy first

	readOnce sync.Once
	read     chan readBatch

	mu        sync.Mutex
	reclaimAt int // the partition Reclaim is in (an index into parts)
}

// readBatch is what one partition's reader read.
type readBatch struct {
	jobs []gateway.QueuedJob
	err  error
}

// Queues returns the named queue over every partition that may hold its
// jobs (legacy only, for a store that does not spread).
func (s *Store) Queues(name string) *Queues {
	qs := &Queues{name: name}
	for _, p := range s.partitionsInUse() {
		qs.parts = append(qs.parts, s.queueIn(p, name))
	}
	return qs
}

// Name is the queue's name.
func (qs *Queues) Name() string { return qs.name }

// Partitions are the queue's partitions' queues, legacy first.
func (qs *Queues) Partitions() []*Queue { return qs.parts }

// of is the partition's queue a job was read from.
func (qs *Queues) of(job gateway.QueuedJob) *Queue {
	for _, q := range qs.parts {
		if q.place == job.Place {
			return q
		}
	}
	return qs.parts[0]
}

// Ensure creates every partition's stream and consumer group.
func (qs *Queues) Ensure(ctx context.Context) error {
	for _, q := range qs.parts {
		if err := q.Ensure(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the jobs one partition's reader read, waiting up to block.
// The readers start with the first Read, for consumer and count, and run
// until its ctx ends; each waits up to block on its own stream, and hands
// over what it read before reading again.
func (qs *Queues) Read(ctx context.Context, consumer string, count int, block time.Duration) ([]gateway.QueuedJob, error) {
	if len(qs.parts) == 1 {
		return qs.parts[0].Read(ctx, consumer, count, block)
	}
	qs.readOnce.Do(func() {
		qs.read = make(chan readBatch)
		for _, q := range qs.parts {
			go func() {
				for ctx.Err() == nil {
					jobs, err := q.Read(ctx, consumer, count, block)
					if len(jobs) == 0 && err == nil {
						continue
					}
					select {
					case qs.read <- readBatch{jobs, err}:
					case <-ctx.Done():
						return // what it read stays pending, and is reclaimed
					}
					if err != nil {
						time.Sleep(block) // the caller pauses too; do not spin on a Redis that is away
					}
				}
			}()
		}
	})
	t := time.NewTimer(block)
	defer t.Stop()
	select {
	case b := <-qs.read:
		return b.jobs, b.err
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, nil
	}
}

// Reclaim takes over jobs held too long, walking the partitions: start is
// where the previous call stopped ("0-0" the first time); the next start
// is returned, "0-0" once every partition's pending list has been scanned.
// A call goes on from one partition to the next until it has count jobs or
// a partition has more to scan, so that one call (one tick of the worker's
// reclaim) is a whole pass when little is pending. One partition a call
// would make a job left by a stopped worker in the last partition wait 17
// ticks: with the default reclaim idle of 60 s, a tick every 30 s, over
// eight minutes rather than one.
func (qs *Queues) Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int, start string) ([]gateway.QueuedJob, string, error) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	at, cursor := 0, "0-0"
	if i, c, ok := strings.Cut(start, "/"); ok {
		at, _ = strconv.Atoi(i)
		cursor = c
	}
	if at >= len(qs.parts) {
		at, cursor = 0, "0-0"
	}
	var out []gateway.QueuedJob
	for {
		jobs, next, err := qs.parts[at].Reclaim(ctx, consumer, minIdle, count-len(out), cursor)
		if err != nil {
			if len(out) > 0 {
				// What was taken over is handed out; this partition is
				// tried again, and its error reported, next call.
				return out, strconv.Itoa(at) + "/" + cursor, nil
			}
			return nil, start, err
		}
		out = append(out, jobs...)
		if next != "0-0" {
			return out, strconv.Itoa(at) + "/" + next, nil // more to scan here
		}
		if at++; at == len(qs.parts) {
			return out, "0-0", nil // a whole pass made
		}
		cursor = "0-0"
		if len(out) >= count {
			return out, strconv.Itoa(at) + "/" + cursor, nil
		}
	}
}

// Forget removes the consumers that have gone, in every partition.
func (qs *Queues) Forget(ctx context.Context, self string, idle time.Duration) (int, error) {
	total := 0
	for _, q := range qs.parts {
		n, err := q.Forget(ctx, self, idle)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Take claims a job in the partition it was read from.
func (qs *Queues) Take(ctx context.Context, job gateway.QueuedJob) (bool, error) {
	return qs.of(job).Take(ctx, job)
}

// Later puts a job off, in the partition it was read from.
func (qs *Queues) Later(ctx context.Context, job gateway.QueuedJob, fields map[string]string, due time.Time) error {
	return qs.of(job).Later(ctx, job, fields, due)
}

// Promote moves jobs that are due back onto their streams, up to max in
// each partition.
func (qs *Queues) Promote(ctx context.Context, now time.Time, max int) (int, error) {
	total := 0
	for _, q := range qs.parts {
		n, err := q.Promote(ctx, now, max)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Ack finishes a job in the partition it was read from.
func (qs *Queues) Ack(ctx context.Context, job gateway.QueuedJob) error {
	return qs.of(job).Ack(ctx, job)
}

// Bury moves a job to its partition's dead letters.
func (qs *Queues) Bury(ctx context.Context, job gateway.QueuedJob, reason string) error {
	return qs.of(job).Bury(ctx, job, reason)
}

// List returns every job on every partition's stream, partition by
// partition, each oldest first.
func (qs *Queues) List(ctx context.Context) ([]gateway.QueuedJob, error) {
	var out []gateway.QueuedJob
	for _, q := range qs.parts {
		jobs, err := q.List(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, jobs...)
	}
	return out, nil
}

// Stats sums the partitions' state for the metrics; oldest is the oldest
// of them all.
func (qs *Queues) Stats(ctx context.Context) (waiting, delayed, pending int64, oldest time.Duration, err error) {
	for _, q := range qs.parts {
		w, d, p, o, err := q.Stats(ctx)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		waiting, delayed, pending, oldest = waiting+w, delayed+d, pending+p, max(oldest, o)
	}
	return waiting, delayed, pending, oldest, nil
}

// Add appends a job to the queue of the partition place names (a dead
// letter re-driven goes back where its referral is).
func (qs *Queues) Add(ctx context.Context, place string, fields map[string]string) (string, error) {
	for _, q := range qs.parts {
		if q.place == place {
			return q.Add(ctx, fields)
		}
	}
	return "", fmt.Errorf("redisstore: no partition %q of queue %s", place, qs.name)
}

// Remove deletes one job from the partition it was read from.
func (qs *Queues) Remove(ctx context.Context, job gateway.QueuedJob) error {
	return qs.of(job).Remove(ctx, job.ID)
}
