package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/worker"
)

// A referral Signpost failed to deliver, re-driven by an operator and then
// delivered, accepted and completed, ended completed: the failure was not
// its end. The outcomes view, the journey its Task's versions recorded
// (Store.JourneyRecords) and what retention keeps of it all say so, and
// agree with the journey its versions' bodies give.
func TestRedrivenReferralEndsAsItLastEnded(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testRedrivenReferralEndsAsItLastEnded)
}

func testRedrivenReferralEndsAsItLastEnded(t *testing.T, on redisKind) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, on)
	var up atomic.Bool
	p := newProvider(t, func(int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}}}, ms(10, 10, 10))
	from := time.Now().Add(-time.Hour)
	task := e.refer("RD-1", "390893007")
	eventually(t, "the Task to fail", func() bool { return e.task(task).Status == gateway.TaskFailed })
	dead, err := e.store.Queues(gateway.QueueDeadLetter).List(ctx)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %v %v", dead, err)
	}
	up.Store(true)
	if err := e.svc.Delivery.Redrive(ctx, dead[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the re-driven delivery", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
	e.move(task, "accepted", "")
	e.move(task, "in-progress", "")
	e.move(task, "completed", "")

	recs, err := e.store.JourneyRecords(ctx, []string{task}, insights.OlderTaskWindow)
	if err != nil {
		t.Fatal(err)
	}
	reached := recs[0].Reached
	if reached == nil {
		t.Fatal("the Task's versions recorded no journey")
	}
	current, err := e.store.Read(ctx, gateway.TypeTask, task)
	if err != nil {
		t.Fatal(err)
	}
	if reached.End.Status != gateway.TaskCompleted || !reached.At[gateway.MilestoneEnded].Equal(current.LastUpdated) {
		t.Errorf("recorded end %s at %v; want completed at %v (the completing version)", reached.End.Status, reached.At[gateway.MilestoneEnded], current.LastUpdated)
	}
	for _, m := range []gateway.Milestone{gateway.MilestoneDelivered, gateway.MilestoneAccepted, gateway.MilestoneStarted} {
		if reached.At[m].IsZero() {
			t.Errorf("milestone %d not recorded", m)
		}
	}
	// Every version read gives the journey recorded, to the millisecond.
	var versions []*gateway.Resource
	for v := 1; v <= current.Version; v++ {
		r, err := e.store.ReadVersion(ctx, gateway.TypeTask, task, v)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, r)
	}
	by := gateway.ReachedBy(versions)
	for m := range gateway.Milestones {
		if !by.At[m].Equal(reached.At[m]) {
			t.Errorf("milestone %d: the versions give %v; recorded %v", m, by.At[m], reached.At[m])
		}
	}
	if by.End != reached.End {
		t.Errorf("the versions end %+v; recorded %+v", by.End, reached.End)
	}

	report, err := e.svc.Insights.Insights(ctx, from, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f := report.Total.Funnel; f.Sent != 1 || f.Completed != 1 || f.Failed != 0 || f.Open() != 0 {
		t.Errorf("outcomes view funnel %+v; want one referral, completed", f)
	}
	keep, ok, err := insights.Summarise(ctx, e.store, task, recs[0])
	if err != nil || !ok {
		t.Fatalf("summary %v %v", ok, err)
	}
	if j, err := insights.ParseSummary(keep.Summary); err != nil || j.End != insights.EndCompleted {
		t.Errorf("retention would keep the referral as ended %q (%v); want completed", j.End, err)
	}
}

// A referral the provider failed is not sent again, nor its ending taken
// back, whatever business status its failure gives: here the provider had
// the referral (its delivery unconfirmed, dead-lettered), accepted it and
// failed it as "undeliverable", the code Signpost's own failure gives, and
// an operator re-drives the dead letter.
func TestRedriveLeavesAProvidersFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.deliverToSlowReceiver(func(*http.Request) {})

	task := e.refer("RP-1", "390893007")
	var dead []gateway.QueuedJob
	eventually(t, "the dead letter", func() bool {
		dead, _ = e.store.Queues(gateway.QueueDeadLetter).List(ctx)
		return len(dead) == 1
	})
	e.move(task, "accepted", "")
	e.provide(task, map[string]any{"status": "failed", "statusReason": map[string]any{"text": "could not reach the person"},
		"businessStatus": map[string]any{"coding": []map[string]any{{"system": gateway.BusinessStatusSystem, "code": "undeliverable"}}}})
	if v := e.task(task); v.Status != gateway.TaskFailed || v.BusinessStatusCode != "undeliverable" {
		t.Fatalf("the provider's failure reads %s / %s", v.Status, v.BusinessStatusCode)
	}
	if err := e.svc.Delivery.Redrive(ctx, dead[0]); !errors.Is(err, delivery.ErrMovedOn) {
		t.Errorf("re-driving the dead letter of a referral the provider failed: %v, want ErrMovedOn", err)
	}
	if v := e.task(task); v.Status != gateway.TaskFailed {
		t.Errorf("the provider's failure was taken back: the Task is %s", v.Status)
	}
	recs, err := e.store.JourneyRecords(ctx, []string{task}, insights.OlderTaskWindow)
	if err != nil {
		t.Fatal(err)
	}
	if j := recs[0].Journey(); j.End.Status != gateway.TaskFailed || j.At[gateway.MilestoneEnded].IsZero() {
		t.Errorf("the provider's failure is no longer the referral's end: %+v", j)
	}
}

// provide updates a Task as the provider would, with the members given.
func (e *env) provide(taskID string, members map[string]any) {
	e.t.Helper()
	cur, err := e.store.Read(context.Background(), "Task", taskID)
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(cur.Body, &m)
	maps.Copy(m, members)
	b, _ := json.Marshal(m)
	caller := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	if _, err := e.svc.Intake.Update(context.Background(), caller, "Task", taskID, b, cur.ETag(), nil); err != nil {
		e.t.Fatal(err)
	}
}
