package redisstore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/signpost-health/signpost/gateway"
)

// Concurrent commits share pipelines, and each caller gets its own reply:
// a held key is reported to the one commit that lost, never to another.
func TestBatchedCommitsGetTheirOwnReplies(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	const n = 201 // 67 pairs of commits claiming one key, and 67 alone
	results := make([]*gateway.CommitResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every third commit claims the key of the one before it.
			key := "k" + strconv.Itoa(i)
			if i%3 == 2 {
				key = "k" + strconv.Itoa(i-1)
			}
			c := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: key, Value: "Task/t" + strconv.Itoa(i)}},
				Writes: []gateway.Write{write("Task", "t"+strconv.Itoa(i), 1, 0, "status=requested")}}
			results[i], errs[i] = s.Commit(ctx, c)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("commit %d: %v", i, errs[i])
		}
	}
	for i := 1; i < n; i += 3 {
		a, b := results[i], results[i+1] // the two claims of one key
		if a.OK() == b.OK() {
			t.Fatalf("commits %d and %d: exactly one should hold k%d: %+v, %+v", i, i+1, i, a, b)
		}
		loser := a
		if a.OK() {
			loser = b
		}
		winner := "Task/t" + strconv.Itoa(i)
		if !a.OK() {
			winner = "Task/t" + strconv.Itoa(i+1)
		}
		if loser.Held == nil || loser.Held.Holder != winner {
			t.Errorf("k%d: the losing commit was told %+v, want held by %s", i, loser.Held, winner)
		}
	}
	if got := r.Client().ZCard(ctx, s.keys.all("Task")).Val(); got != n-n/3 {
		t.Errorf("%d Tasks stored, want %d", got, n-n/3)
	}
}

// A caller that has gone before its pipeline leaves is not sent at all.
func TestBatchedCommandOfAGoneCallerIsNotSent(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cmd := redis.NewStatusCmd(ctx, "set", "gone", "1")
	if err := s.batch.do(ctx, cmd); !errors.Is(err, context.Canceled) {
		t.Fatalf("do with an ended context: %v, want context.Canceled", err)
	}
	// Wait until no flusher is left: every waiting command has been sent
	// or dropped by then.
	for idle := false; !idle; {
		s.batch.mu.Lock()
		idle = s.batch.flushers == 0
		s.batch.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if n := r.Client().Exists(context.Background(), "gone").Val(); n != 0 {
		t.Error("the command of a caller that had gone was sent")
	}
}

// A Redis that has lost its scripts (restart, SCRIPT FLUSH) answers the
// batched EVALSHA with NOSCRIPT; the commit is sent again with the script.
func TestCommitAfterScriptFlush(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}})
	if err != nil || !res.OK() {
		t.Fatalf("commit after SCRIPT FLUSH: %+v %v", res, err)
	}
	if v := r.Client().HGet(ctx, s.keys.resource("Task", "t1"), "v").Val(); v != "1" {
		t.Errorf("version %q stored, want 1", v)
	}
}

// Concurrent reads share round trips, as commits do (a delivery reads its
// Task on its own), and each caller gets the resource it asked for. Redis
// has not loaded the read script yet, as after a restart: the readers
// answered NOSCRIPT together load it once, not once each.
func TestConcurrentReadsShareRoundTrips(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	const n = 200
	for i := range n {
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t"+strconv.Itoa(i), 1, 0, "status=requested")}}); err != nil || !res.OK() {
			t.Fatalf("commit %d: %+v %v", i, res, err)
		}
	}
	trips := &roundTrips{}
	s.rdb.AddHook(trips) // the store's own client
	start := make(chan struct{})
	got := make([]*gateway.Resource, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Read(ctx, "Task", "t"+strconv.Itoa(i))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("read %d: %v", i, errs[i])
		}
		if want := `{"resourceType":"Task","id":"t` + strconv.Itoa(i) + `"}`; string(got[i].Body) != want || got[i].ID != "t"+strconv.Itoa(i) {
			t.Fatalf("read %d got %s %s, want %s", i, got[i].Ref(), got[i].Body, want)
		}
	}
	// Each read alone would be n round trips; the bound leaves room for a
	// slow machine starting the readers one at a time.
	if got := trips.n.Load(); got > n/2 {
		t.Errorf("%d reads took %d round trips to Redis, want at most %d", n, got, n/2)
	}
	// commit.lua once, read.lua once: a reader that started late (after
	// the load began) may load it once more, so the bound is a little
	// looser than that; loading it once per reader would be 200.
	k := commandCalls(t, r)["script|load"]
	if k == 0 {
		t.Fatal("no script was loaded")
	}
	if k > 4 {
		t.Errorf("%d readers answered NOSCRIPT loaded scripts %d times in all, want at most 4", n, k)
	}
}

// A Redis that has lost its scripts answers a batched read NOSCRIPT; the
// read is sent again with the script.
func TestReadAfterScriptFlush(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}}); err != nil || !res.OK() {
		t.Fatalf("commit: %+v %v", res, err)
	}
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(ctx, "Task", "t1")
	if err != nil || got.Version != 1 {
		t.Fatalf("read after SCRIPT FLUSH: %+v %v", got, err)
	}
}

// So is a read of resources in several partitions, one pipeline of runs.
func TestReadAcrossPartitionsAfterScriptFlush(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.SpreadReferrals()
	ctx := context.Background()
	ids := []string{idPrefix(3) + "a", idPrefix(7) + "b"}
	for _, id := range ids {
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0, "status=requested")}}); err != nil || !res.OK() {
			t.Fatalf("commit %s: %+v %v", id, res, err)
		}
	}
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadMany(ctx, []string{"Task/" + ids[0], "Task/" + ids[1]})
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("ReadMany across partitions after SCRIPT FLUSH: %v %v", got, err)
	}
}

// A batched commit still shows in its request's trace: a client span under
// the caller's span, however many requests shared the pipeline.
func TestBatchedCommandIsTracedUnderItsCaller(t *testing.T) {
	s, _ := newStore(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if err := s.batch.do(ctx, redis.NewStatusCmd(ctx, "ping")); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, sp := range rec.Ended() {
		if sp.Name() == "ping" {
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() || sp.SpanKind() != trace.SpanKindClient {
				t.Errorf("ping span: parent %v kind %v, want under the request, client", sp.Parent().SpanID(), sp.SpanKind())
			}
			return
		}
	}
	t.Errorf("no span for the batched command among %d", len(rec.Ended()))
}
