package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// spreadingDeliveries makes s spread referrals and returns its delivery
// queues, their streams and groups made.
func spreadingDeliveries(ctx context.Context, t *testing.T, s *Store) *Queues {
	t.Helper()
	s.SpreadReferrals()
	qs := s.Queues(gateway.QueueDelivery)
	if err := qs.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return qs
}

// A worker reading a spreading store's queue is handed every partition's
// jobs in turn: a partition with a long backlog does not hold back the
// few jobs of the others (each has its own reader), and each job says the
// partition it came from.
func TestQueuesReadEveryPartitionFairly(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		qs := spreadingDeliveries(ctx, t, s)
		busy := s.queueIn(3, gateway.QueueDelivery)
		for i := range 300 {
			if _, err := busy.Add(ctx, map[string]string{"task": idPrefix(3) + "busy" + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		quiet := map[string]bool{}
		for _, p := range []partition{legacy, 0, 9, 15} {
			for i := range 3 {
				task := idPrefix(p) + "quiet" + strconv.Itoa(i)
				if _, err := s.queueIn(p, gateway.QueueDelivery).Add(ctx, map[string]string{"task": task}); err != nil {
					t.Fatal(err)
				}
				quiet[task] = true
			}
		}
		busyRead := 0
		for len(quiet) > 0 {
			jobs, err := qs.Read(ctx, "w1", 10, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				task := j.Fields["task"]
				if j.Place != idPrefix(partitionOfID(task)) {
					t.Fatalf("job of %s says it is in %q", task, j.Place)
				}
				if quiet[task] {
					delete(quiet, task)
				} else {
					busyRead++
				}
			}
			if busyRead >= 300 {
				break
			}
		}
		if len(quiet) > 0 || busyRead > 100 {
			t.Errorf("%d of the busy partition's jobs read before the others' (%d of them still unread)", busyRead, len(quiet))
		}
	})
}

// A job is finished, put off, buried and reclaimed in the partition it was
// read from: put off, it comes back there when due; buried, it is among
// that partition's dead letters (named with its partition); a commit
// there finishes it with its writes; the reclaim walks every partition.
func TestQueuesFinishJobsInTheirPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		qs := spreadingDeliveries(ctx, t, s)
		for _, p := range []partition{5, 11} {
			for i := range 3 {
				if _, err := s.queueIn(p, gateway.QueueDelivery).Add(ctx, map[string]string{"task": idPrefix(p) + "t" + strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var jobs []gateway.QueuedJob
		reading, stopReading := context.WithCancel(ctx)
		for len(jobs) < 6 {
			got, err := qs.Read(reading, "w1", 10, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, got...)
		}
		stopReading() // the readers stop, as a worker's do when it stops
		byTask := map[string]gateway.QueuedJob{}
		for _, j := range jobs {
			byTask[j.Fields["task"]] = j
		}
		in5, in11 := idPrefix(5), idPrefix(11)
		if ok, err := qs.Take(ctx, byTask[in5+"t0"]); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		if err := qs.Later(ctx, byTask[in5+"t0"], map[string]string{"task": in5 + "t0", "attempt": "2"}, time.UnixMilli(1)); err != nil {
			t.Fatal(err)
		}
		if err := qs.Bury(ctx, byTask[in11+"t1"], "gone for good"); err != nil {
			t.Fatal(err)
		}
		if err := qs.Ack(ctx, byTask[in11+"t2"]); err != nil {
			t.Fatal(err)
		}
		// A commit in partition 5 finishes its job with its write.
		done := byTask[in5+"t1"]
		c := &gateway.Commit{Writes: []gateway.Write{write("Task", in5+"t1", 1, 0)}, Done: done.Ref()}
		if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
			t.Fatalf("commit finishing a job: %+v %v", res, err)
		}
		if n, err := qs.Promote(ctx, time.Now(), 10); err != nil || n != 1 {
			t.Errorf("promoted %d (%v), want the one put off", n, err)
		}
		if l := rdb.XLen(ctx, s.parts[5].queue(gateway.QueueDelivery)).Val(); l != 2 {
			// t0 back (promoted), t2 still held; t1 finished by the commit
			t.Errorf("partition 5's stream holds %d jobs, want 2: t0 promoted, t2 held", l)
		}
		dead, err := s.Queues(gateway.QueueDeadLetter).List(ctx)
		if err != nil || len(dead) != 1 || dead[0].Place != in11 || dead[0].Name() != in11+dead[0].ID || dead[0].Fields["reason"] != "gone for good" {
			t.Errorf("dead letters: %+v %v", dead, err)
		}
		// Reclaim: another worker takes over what w1 holds, partition by
		// partition, until a whole pass is made.
		cursor, reclaimed := "0-0", 0
		for pass := 0; pass < 100; pass++ {
			got, next, err := qs.Reclaim(ctx, "w2", 0, 100, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range got {
				if j.Fields["attempt"] == "2" {
					continue // the promoted t0, if a reader took it before it stopped
				}
				reclaimed++
				if j.Place != idPrefix(partitionOfID(j.Fields["task"])) {
					t.Errorf("reclaimed %s in %q", j.Fields["task"], j.Place)
				}
			}
			if cursor = next; cursor == "0-0" {
				break
			}
		}
		if cursor != "0-0" || reclaimed != 2 { // t2 of 5, t0 of 11 held
			t.Errorf("reclaimed %d jobs, cursor %s; want 2 (held by w1 in partitions 5 and 11)", reclaimed, cursor)
		}
	})
}

// One call of Reclaim (one tick of a worker's reclaim) walks every
// partition while little is pending: a job a stopped worker left in the
// last partition is taken over by the first call, not the seventeenth.
func TestQueuesReclaimEveryPartitionInOneCall(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		qs := spreadingDeliveries(ctx, t, s)
		last := s.queueIn(partitions-1, gateway.QueueDelivery)
		if _, err := last.Add(ctx, map[string]string{"task": idPrefix(partitions-1) + "left"}); err != nil {
			t.Fatal(err)
		}
		if held, err := last.Read(ctx, "stopped", 10, time.Millisecond); err != nil || len(held) != 1 {
			t.Fatalf("the stopped worker's read: %v %v", held, err)
		}
		got, next, err := qs.Reclaim(ctx, "w2", 0, 100, "0-0")
		if err != nil || len(got) != 1 || got[0].Fields["task"] != idPrefix(partitions-1)+"left" || got[0].Place != idPrefix(partitions-1) {
			t.Fatalf("the first call took over %+v (%v), want the job left in the last partition", got, err)
		}
		if next != "0-0" {
			t.Errorf("the first call stopped at %q, not after a whole pass", next)
		}
		// A count reached stops the walk where it is, to go on next call.
		for _, p := range []partition{2, 9} {
			q := s.queueIn(p, gateway.QueueDelivery)
			if _, err := q.Add(ctx, map[string]string{"task": idPrefix(p) + "left"}); err != nil {
				t.Fatal(err)
			}
			if _, err := q.Read(ctx, "stopped", 10, time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		first, next, err := qs.Reclaim(ctx, "w2", 0, 1, "0-0")
		if err != nil || len(first) != 1 || first[0].Place != idPrefix(2) || next == "0-0" {
			t.Fatalf("with count 1: %+v, next %q (%v)", first, next, err)
		}
		second, next, err := qs.Reclaim(ctx, "w2", 0, 1, next)
		if err != nil || len(second) != 1 || second[0].Place != idPrefix(9) {
			t.Fatalf("the next call: %+v, next %q (%v)", second, next, err)
		}
	})
}
