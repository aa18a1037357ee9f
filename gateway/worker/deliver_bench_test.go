package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// BenchmarkDeliver measures one delivery as a worker handles it, the job
// read already: building the webhook, sending it over loopback HTTP to a
// receiver that answers 204, and recording the outcome in Redis, with
// serve's JSON log handler writing to nowhere. Its allocations and time
// per delivery are what a worker pays for each referral intake queued;
// DefaultPerProvider deliveries are in flight at once, as in one lane.
//
//	go test ./gateway/worker -run '^$' -bench Deliver -benchmem -benchtime 2000x
func BenchmarkDeliver(b *testing.B) {
	e := setup(b)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(receiver.Close)
	ctx := context.Background()
	for i := range b.N {
		body := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/id","value":"BENCH-` + strconv.Itoa(i) + `"}],` +
			`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}]},` +
			`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}},` +
			`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`
		if _, err := e.svc.Intake.Create(ctx, gateway.Caller{ClientID: "practice-a"}, "ServiceRequest", []byte(body), "", nil); err != nil {
			b.Fatal(err)
		}
	}
	q := e.store.Queues(gateway.QueueDelivery)
	if err := q.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	var jobs []gateway.QueuedJob
	for len(jobs) < b.N {
		got, err := q.Read(ctx, "bench", 500, time.Second)
		if err != nil || len(got) == 0 {
			b.Fatalf("read %d of %d jobs: %v", len(jobs), b.N, err)
		}
		jobs = append(jobs, got...)
	}
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	h := &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store, Sender: webhook.NewSender(client, time.Now),
		Endpoints: map[string]worker.Endpoint{"walking": {Name: "Walking for Health", URL: receiver.URL, Secrets: [][]byte{secret}}},
		Retry:     ms(100), Log: slog.New(telemetry.LogHandler(slog.NewJSONHandler(io.Discard, nil)))}
	// As a lane runs them: worker.DefaultPerProvider in flight at once.
	next := make(chan gateway.QueuedJob, len(jobs))
	for _, job := range jobs {
		next <- job
	}
	close(next)
	var lane sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range worker.DefaultPerProvider {
		lane.Go(func() {
			for job := range next {
				h.Handle(ctx, job)
			}
		})
	}
	lane.Wait()
	b.StopTimer()
	if waiting, delayed, pending, _, err := q.Stats(ctx); err != nil || waiting+delayed+pending != 0 {
		b.Fatalf("deliveries left after handling them: %d waiting, %d delayed, %d pending (%v)", waiting, delayed, pending, err)
	}
}
