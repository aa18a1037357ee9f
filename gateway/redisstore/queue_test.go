package redisstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/topic"
)

// Only a consumer that has gone — idle past the limit, nothing pending — is
// forgotten; one that still holds a job keeps it, however long it is idle.
func TestForgetRemovesOnlyGoneConsumersWithNothingPending(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s := New(r.Client(), "test")
	ctx := context.Background()
	q := s.Queue(gateway.QueueDelivery)
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(consumer string) []gateway.QueuedJob {
		t.Helper()
		if _, err := q.Add(ctx, map[string]string{"event": "referral"}); err != nil {
			t.Fatal(err)
		}
		jobs, err := q.Read(ctx, consumer, 1, 0)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("read for %s: %v %v", consumer, jobs, err)
		}
		return jobs
	}
	held := read("gone-holding")[0]                          // stopped with a job in hand
	if err := q.Ack(ctx, read("gone-idle")[0]); err != nil { // stopped with nothing in hand
		t.Fatal(err)
	}
	if err := q.Ack(ctx, read("self")[0]); err != nil {
		t.Fatal(err)
	}
	// Gone means idle past the limit: wait until Redis counts the three
	// idle for longer, then read as "live", well within it.
	const limit = 250 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		infos, err := r.Client().XInfoConsumers(ctx, s.keys.queue(gateway.QueueDelivery), gateway.WorkerGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) == 3 && !slices.ContainsFunc(infos, func(c redis.XInfoConsumer) bool { return c.Idle <= limit }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers not idle past %s: %+v", limit, infos)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := q.Ack(ctx, read("live")[0]); err != nil { // read just now
		t.Fatal(err)
	}
	n, err := q.Forget(ctx, "self", limit)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("forgot %d consumers, want 1", n)
	}
	consumers := map[string]bool{}
	infos, err := r.Client().XInfoConsumers(ctx, s.keys.queue(gateway.QueueDelivery), gateway.WorkerGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range infos {
		consumers[c.Name] = true
	}
	for name, want := range map[string]bool{"gone-holding": true, "gone-idle": false, "self": true, "live": true} {
		if consumers[name] != want {
			t.Errorf("consumer %s kept: %v, want %v", name, consumers[name], want)
		}
	}
	pending, err := r.Client().XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.keys.queue(gateway.QueueDelivery),
		Group: gateway.WorkerGroup, Start: "-", End: "+", Count: 10}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != held.ID || pending[0].Consumer != "gone-holding" {
		t.Errorf("pending after forgetting: %+v, want only %s held by gone-holding", pending, held.ID)
	}
}

// A subscription that takes no events keeps the newest ones, up to the cap;
// the oldest go, and the numbers show the gap.
func TestSubscriptionEventsAreCapped(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s := New(r.Client(), "test")
	s.maxEvents = 3
	ctx := context.Background()
	q := s.Queue(gateway.QueueSubscription)
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	sub := []*topic.SubscriptionView{{ID: "sub-1"}}
	for v := 1; v <= 5; v++ {
		if _, err := q.Add(ctx, map[string]string{"event": "task-changed"}); err != nil {
			t.Fatal(err)
		}
		jobs, err := q.Read(ctx, "worker", 1, 0)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("reading the change: %v %v", jobs, err)
		}
		ev := gateway.Event{Timestamp: time.Now(), Task: "Task/t-1", Version: strconv.Itoa(v)}
		if err := s.Fanout(ctx, jobs[0], sub, "practice-a", ev); err != nil {
			t.Fatal(err)
		}
	}
	var numbers []int64
	for {
		ev, err := s.NextEvent(ctx, "sub-1")
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			break
		}
		numbers = append(numbers, ev.Number)
		if err := s.SentEvent(ctx, "sub-1", ev.Number); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(numbers, []int64{3, 4, 5}) {
		t.Errorf("events kept %v, want the newest three [3 4 5]", numbers)
	}
	if n, err := s.EventCount(ctx, "sub-1"); err != nil || n != 5 {
		t.Errorf("events since the subscription started: %d %v, want 5", n, err)
	}
}
