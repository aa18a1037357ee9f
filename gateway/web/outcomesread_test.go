package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/retention"
)

// The outcomes view and retention read what Signpost bounds of a referral,
// not what its Task's writers made it: a referral whose provider accepted
// it, contacted the person, ran sessions and completed it, with 100 notes
// of 20 KiB between the steps (over 2 MB of versions), is counted by the
// outcomes view, and summarised and removed by retention, with Redis
// sending each a few versions' worth. Its journey is the one its every
// version gives: the milestones its versions recorded as they were written
// are those all of them, read whole, say.
func TestOutcomesReadABoundOfEachReferral(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	task := e.refer("LONG-1", "390893007", "Alex Example")
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider, Organization: providers[0].Organization}
	note := strings.Repeat("n", 20<<10)
	size := 0
	notes := func(n int) {
		t.Helper()
		for range n {
			r, err := e.store.Read(ctx, gateway.TypeTask, task)
			if err != nil {
				t.Fatal(err)
			}
			body := fhir.ReplaceMembers(r.Body, map[string]any{"note": []map[string]string{{"text": strconv.Itoa(r.Version) + note}}})
			out, err := e.svc.Intake.Update(ctx, walking, gateway.TypeTask, task, body, `W/"`+strconv.Itoa(r.Version)+`"`, nil)
			if err != nil {
				t.Fatalf("note on version %d: %v", r.Version, err)
			}
			size = max(size, len(out.Resource.Body))
		}
	}
	step := func(s portal.Step) {
		t.Helper()
		s.Version = e.version(task)
		if _, err := e.svc.Portal.Progress(ctx, walking, task, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	notes(10)
	step(portal.Step{Action: portal.ActionAccept})
	notes(30)
	step(portal.Step{Action: portal.ActionContact})
	notes(30)
	step(portal.Step{Action: portal.ActionFirstSession})
	notes(30)
	step(portal.Step{Action: portal.ActionComplete, Code: "goals-met"})

	versions, err := e.store.Histories(ctx, gateway.TypeTask, []string{task})
	if err != nil {
		t.Fatal(err)
	}
	whole := gateway.ReachedBy(versions[0])
	for m := range gateway.MilestoneVoid {
		if whole.At[m].IsZero() {
			t.Fatalf("the referral's %d versions never reached milestone %d: the test proves nothing", len(versions[0]), m)
		}
	}
	recs, err := e.store.JourneyRecords(ctx, []string{task}, insights.OlderTaskWindow)
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[0].Reached; got == nil || *got != whole {
		t.Errorf("the milestones its versions recorded %+v; its versions read whole say %+v", got, whole)
	}

	from, to := time.Now().Add(-24*time.Hour), time.Now().Add(24*time.Hour)
	before := e.redisSent()
	report, err := e.svc.Insights.Insights(ctx, from, to)
	viewSent := e.redisSent() - before
	if err != nil {
		t.Fatal(err)
	}
	if f := report.Total.Funnel; f.Sent != 1 || f.Accepted != 1 || f.Started != 1 || f.Completed != 1 || report.Total.ToFirstContact.N != 1 {
		t.Errorf("the outcomes view counts %+v (first contact timed %d)", f, report.Total.ToFirstContact.N)
	}
	all := int64(len(versions[0]) * size)
	t.Logf("%d versions of up to %d bytes (%d in all); the outcomes view had Redis send %d bytes", len(versions[0]), size, all, viewSent)
	// The first version and the current one; the page of ids, and no
	// summaries kept yet: nowhere near 100 versions.
	if limit := int64(2*size + 64<<10); viewSent > limit {
		t.Errorf("the outcomes view had Redis send %d bytes; want at most %d (two versions of %d bytes and the rest)", viewSent, limit, size)
	}

	// Nothing waits for the Task (no worker ran here), so retention may
	// remove it once it is old enough.
	for _, name := range gateway.WorkerQueues {
		for _, q := range e.store.Queues(name).Partitions() {
			if err := e.store.Client().Del(ctx, q.Key()).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := &retention.Runner{Store: e.store, Policy: retention.Policy{ClosedAfter: time.Hour}, Now: func() time.Time { return to.Add(24 * time.Hour) }}
	before = e.redisSent()
	rep, err := run.Run(ctx, false)
	runSent := e.redisSent() - before
	if err != nil || rep.Removed != 1 {
		t.Fatalf("retention: %+v, %v", rep, err)
	}
	t.Logf("retention had Redis send %d bytes", runSent)
	// The Task read for the removal and for its summary (the first version
	// and the current), its ServiceRequest, Patient and the ids of its
	// Provenances and keys: a few versions' worth, not 100.
	if limit := int64(4*size + 128<<10); runSent > limit {
		t.Errorf("retention had Redis send %d bytes; want at most %d (four versions of %d bytes and the rest)", runSent, limit, size)
	}
	after, err := e.svc.Insights.Insights(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if after.Total.Funnel != report.Total.Funnel || after.Total.ToFirstContact != report.Total.ToFirstContact || after.Total.ToAcceptance != report.Total.ToAcceptance {
		t.Errorf("the summary retention kept counts %+v, the referral counted %+v", after.Total, report.Total)
	}
}
