package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// A receiver as slow as the delivery timeout stores each referral and
// answers too late. Every attempt carries the same webhook-id (its
// idempotency key), and when the attempts run out the referral is not
// failed as "could not be delivered", since the provider had it every
// time: it stays requested, its delivery unconfirmed, and waits in the
// dead-letter queue for an operator.
func TestTimedOutDeliveryIsUnconfirmedNotFailed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var mu sync.Mutex
	ids := map[string]int{}
	e.deliverToSlowReceiver(func(r *http.Request) {
		mu.Lock()
		ids[r.Header.Get("webhook-id")]++ // stored; the answer comes too late
		mu.Unlock()
	})

	task := e.refer("TO-1", "390893007")
	var dead []gateway.QueuedJob
	eventually(t, "the dead letter", func() bool {
		dead, _ = e.store.Queues(gateway.QueueDeadLetter).List(context.Background())
		return len(dead) == 1
	})
	v := e.task(task)
	if v.Status != "requested" || v.BusinessStatusCode != delivery.BusinessDeliveryUnconfirmed {
		t.Errorf("after attempts that all timed out the Task is %s / %s (%q), want requested / %s",
			v.Status, v.BusinessStatusCode, v.BusinessStatus, delivery.BusinessDeliveryUnconfirmed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids["msg_"+task+"_referral"] != 3 {
		t.Errorf("webhook-ids received %v, want one id on all 3 attempts", ids)
	}
	// An operator can send it again: same id, the referral still requested.
	if err := e.svc.Delivery.Redrive(context.Background(), dead[0]); err != nil {
		t.Errorf("re-driving an unconfirmed delivery: %v", err)
	}
}

// deliverToSlowReceiver runs a delivery worker whose provider ("walking")
// stores each referral (stored sees the request, its body read) and
// answers only after the 100 ms delivery timeout, until the test ends;
// attempts are 10 ms apart, two retries.
func (e *env) deliverToSlowReceiver(stored func(*http.Request)) {
	e.t.Helper()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // read, so the server notices the sender giving up
		stored(r)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	e.t.Cleanup(func() { close(release); slow.Close() })
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 100 * time.Millisecond})
	q := e.store.Queues(gateway.QueueDelivery)
	w := newQuickWorker(worker.Options{Queue: q, Handler: &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store,
		Sender: webhook.NewSender(client, time.Now), Retry: ms(10, 10),
		Endpoints: map[string]worker.Endpoint{"walking": {Name: "Slow", Kind: "webhook", URL: slow.URL, Secrets: [][]byte{secret}}}},
		Consumer: "test-" + gateway.NewID()[:8], ReclaimIdle: time.Minute, Grace: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}
