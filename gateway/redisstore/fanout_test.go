package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/topic"
)

// changeJob queues a Task change's job on partition p's subscription
// stream, as the change's commit does, and reads it as consumer.
func changeJob(ctx context.Context, t *testing.T, s *Store, p partition, consumer string) gateway.QueuedJob {
	t.Helper()
	q := s.queueIn(p, gateway.QueueSubscription)
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add(ctx, map[string]string{"event": "task-changed", "task": idPrefix(p) + "task-1", "client": "gp-a"}); err != nil {
		t.Fatal(err)
	}
	jobs, err := q.Read(ctx, consumer, 1, 0)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("reading the change's job: %v, %v", jobs, err)
	}
	return jobs[0]
}

// eventsOf counts what a Task change gave each subscription: its event
// number so far and the events kept for sending.
func eventsOf(ctx context.Context, t *testing.T, s *Store, subs []*topic.SubscriptionView) (numbers, kept []int64) {
	t.Helper()
	for _, sub := range subs {
		n, err := s.EventCount(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, n)
		kept = append(kept, s.rdb.LLen(ctx, s.keys.subEvents(sub.ID)).Val())
	}
	return numbers, kept
}

// A spreading store numbers a Task change in its partition's job in two
// steps (the numbering under the plain tag, then finishing the job in the
// partition), each one slot. A worker that dies between them leaves the
// job pending; another takes it over and runs the change again: every
// subscription has its one event, and one job to send it, never two, and
// the change's job is finished. An older version of the Task given after
// it numbers nothing.
func TestFanoutInTwoStepsSurvivesACrashBetweenThem(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		sends := s.Queue(gateway.QueueSubscription)
		if err := sends.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		subs := []*topic.SubscriptionView{{ID: "sub-1"}, {ID: "sub-2"}, {ID: "sub-3"}}
		p := partition(9)
		ev := gateway.Event{Timestamp: time.UnixMilli(1_700_000_000_000), Task: "Task/" + idPrefix(p) + "task-1", Version: "2"}
		job := changeJob(ctx, t, s, p, "worker-1")

		// Worker 1 numbers the change, and dies before finishing its job.
		if err := s.number(ctx, nil, subs, "gp-a", ev); err != nil {
			t.Fatal(err)
		}
		// Worker 2 takes the job over, as reclaiming does, and runs it.
		taken, _, err := s.queueIn(p, gateway.QueueSubscription).Reclaim(ctx, "worker-2", 0, 10, "0-0")
		if err != nil || len(taken) != 1 || taken[0].ID != job.ID {
			t.Fatalf("reclaiming the change's job: %v, %v", taken, err)
		}
		if err := s.Fanout(ctx, taken[0], subs, "gp-a", ev); err != nil {
			t.Fatal(err)
		}
		// Worker 1, not dead after all, finishes what it started.
		if err := s.Fanout(ctx, job, subs, "gp-a", ev); err != nil {
			t.Fatal(err)
		}
		// An older version, given late, is not numbered.
		older := ev
		older.Version = "1"
		if err := s.Fanout(ctx, changeJob(ctx, t, s, p, "worker-2"), subs, "gp-a", older); err != nil {
			t.Fatal(err)
		}

		numbers, kept := eventsOf(ctx, t, s, subs)
		for i := range subs {
			if numbers[i] != 1 || kept[i] != 1 {
				t.Errorf("subscription %d: %d events numbered, %d kept; want one each", i, numbers[i], kept[i])
			}
		}
		if got := rdb.XLen(ctx, s.keys.queue(gateway.QueueSubscription)).Val(); got != int64(len(subs)) {
			t.Errorf("%d send jobs on the stream the workers read, want %d", got, len(subs))
		}
		changes := s.in(p).queue(gateway.QueueSubscription)
		if n, pending := rdb.XLen(ctx, changes).Val(), rdb.XPending(ctx, changes, gateway.WorkerGroup).Val().Count; n != 0 || pending != 0 {
			t.Errorf("the changes' stream keeps %d jobs, %d pending; want them finished", n, pending)
		}
	})
}

// callCounter counts the commands a client sends, one each, pipelined or
// not: the round trips of a step that sends one command at a time.
type callCounter struct{ n atomic.Int64 }

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// What numbering a change and recording a write-back cost, in calls to
// Redis: one each for a store that does not spread (and for a spreading
// store's jobs made before it spread), as before partitions; a spreading
// store's notification of a change in a numbered partition takes two (the
// numbering, then finishing the job), and its write-back stays one (the
// state is kept in the Task's partition).
func TestFanoutAndWriteBackCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	subs := []*topic.SubscriptionView{{ID: "sub-1"}, {ID: "sub-2"}}
	for _, c := range []struct {
		name       string
		spread     bool
		place      partition
		fanout, wb int64
	}{
		{"store that does not spread", false, legacy, 1, 1},
		{"spreading store, a Task made before it spread", true, legacy, 1, 1},
		{"spreading store, a Task in a partition", true, 4, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, r := newStore(t)
			counter := &callCounter{}
			rdb := r.Client()
			rdb.AddHook(counter)
			s := New(rdb, "test")
			if c.spread {
				s.SpreadReferrals()
			}
			if err := s.Queue(gateway.QueueSubscription).Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			notify := s.queueIn(c.place, gateway.QueueNotify)
			if err := notify.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			taskID := idPrefix(c.place) + "task-1"
			// Once first, so that the scripts are loaded (a first EVALSHA
			// is answered NOSCRIPT and followed by EVAL).
			for version, warm := range []bool{true, false} {
				ev := gateway.Event{Timestamp: time.UnixMilli(1_700_000_000_000), Task: "Task/" + taskID, Version: strconv.Itoa(version + 1)}
				job := changeJob(ctx, t, s, c.place, "worker-1")
				if _, err := notify.Add(ctx, map[string]string{"task": taskID}); err != nil {
					t.Fatal(err)
				}
				wbJobs, err := notify.Read(ctx, "worker-1", 1, 0)
				if err != nil || len(wbJobs) != 1 {
					t.Fatalf("reading the notify job: %v, %v", wbJobs, err)
				}
				before := counter.n.Load()
				if err := s.Fanout(ctx, job, subs, "gp-a", ev); err != nil {
					t.Fatal(err)
				}
				fanout := counter.n.Load() - before
				before = counter.n.Load()
				if err := s.SaveWriteBack(ctx, "gp-a", taskID, gateway.WriteBackState{Version: version + 1}, wbJobs[0]); err != nil {
					t.Fatal(err)
				}
				wb := counter.n.Load() - before
				if warm {
					continue
				}
				if fanout != c.fanout || wb != c.wb {
					t.Errorf("Fanout took %d calls, SaveWriteBack %d; want %d and %d", fanout, wb, c.fanout, c.wb)
				}
			}
			if st, err := s.WriteBackState(ctx, "gp-a", taskID); err != nil || st.Version != 2 {
				t.Errorf("write-back state %+v, %v; want version 2", st, err)
			}
			if numbers, _ := eventsOf(ctx, t, s, subs); numbers[0] != 2 || numbers[1] != 2 {
				t.Errorf("events numbered %v, want 2 each", numbers)
			}
		})
	}
}

// A spreading store keeps a Task's write-back state in the Task's
// partition, beside the notify jobs of its changes: on a Redis Cluster,
// recording a write-back finishes its job in the same step (one slot),
// and the state is read back by the Task alone.
func TestSpreadStoreWritesBackInTheTasksPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		for _, p := range []partition{legacy, 3, 12} {
			taskID := idPrefix(p) + "task-1"
			q, job := takenNotifyJob(t, s, p, taskID)
			if err := s.SaveWriteBack(ctx, "gp-a", taskID, gateway.WriteBackState{GPID: "gp-1", Version: 3}, job); err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
			if st, err := s.WriteBackState(ctx, "gp-a", taskID); err != nil || st.GPID != "gp-1" || st.Version != 3 {
				t.Errorf("partition %d: state read back %+v, %v", p, st, err)
			}
			if !rdb.HExists(ctx, s.in(p).writeBack("gp-a"), taskID).Val() {
				t.Errorf("partition %d: the state is not in the Task's partition", p)
			}
			if n := rdb.XLen(ctx, q.stream).Val(); n != 0 {
				t.Errorf("partition %d: %d notify jobs left, want the job finished", p, n)
			}
		}
	})
}

// A notify job finished in a partition other than its Task's (none is
// queued so today: a safeguard) is recorded in two steps, each one slot,
// the state first: on a cluster it is not refused as cross-slot, and the
// state and the finished job are both there.
func TestWriteBackOfAJobElsewhereIsTwoSteps(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		taskID := idPrefix(5) + "task-1"
		q, job := takenNotifyJob(t, s, 2, taskID)
		if err := s.SaveWriteBack(ctx, "gp-a", taskID, gateway.WriteBackState{Version: 4}, job); err != nil {
			t.Fatal(err)
		}
		if st, err := s.WriteBackState(ctx, "gp-a", taskID); err != nil || st.Version != 4 {
			t.Errorf("state read back %+v, %v", st, err)
		}
		if n := rdb.XLen(ctx, q.stream).Val(); n != 0 {
			t.Errorf("%d notify jobs left, want the job finished", n)
		}
	})
}

// takenNotifyJob queues a notify job for a Task in partition p's queue and
// takes it, as worker-1.
func takenNotifyJob(t *testing.T, s *Store, p partition, taskID string) (*Queue, gateway.QueuedJob) {
	t.Helper()
	ctx := context.Background()
	q := s.queueIn(p, gateway.QueueNotify)
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add(ctx, map[string]string{"task": taskID}); err != nil {
		t.Fatal(err)
	}
	jobs, err := q.Read(ctx, "worker-1", 1, 0)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("reading the notify job: %v, %v", jobs, err)
	}
	return q, jobs[0]
}
