package worker_test

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auditevent"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/topic"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// disclosures returns the audit trail's records of Signpost's own
// disclosures, as "recipient path what...".
func (e *env) disclosures() []string {
	e.t.Helper()
	entries, err := e.store.AuditTail(context.Background(), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		r := en.Record
		if r.Interaction != gateway.InteractionExport {
			continue
		}
		ev := string(auditevent.Render(r, "http://signpost.test/fhir"))
		if !strings.Contains(ev, `"code":"110106"`) || strings.Contains(ev, "9434765919") {
			e.t.Errorf("disclosure AuditEvent %s", ev)
		}
		out = append(out, r.Client+" "+r.Query+" "+strings.Join(r.What, " "))
	}
	return out
}

func run(t testing.TB, w *worker.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
}

// A referral sent to a provider is audited once it is acknowledged — who
// received which resources (and versions), through which path — and a
// send the provider refused is not a disclosure.
func TestDeliveryIsAuditedAsADisclosure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := newProvider(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueDelivery)
	run(t, newQuickWorker(worker.Options{Queue: q, Handler: &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store, Audit: e.store,
		Sender: webhook.NewSender(client, time.Now), Retry: ms(10, 10),
		Endpoints: map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}, Full: true}}},
		Consumer: "test-" + gateway.NewID()[:8], ReclaimIdle: 500 * time.Millisecond}))
	task := e.refer("DIS-1", "390893007")
	eventually(t, "delivery", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
	got := e.disclosures()
	if len(got) != 1 || !strings.HasPrefix(got[0], "walking delivery webhook (full) Task/"+task+"/_history/1 ServiceRequest/") {
		t.Errorf("disclosures %q, want the one acknowledged delivery of the Task and its ServiceRequest to walking", got)
	}
}

// A Task written back into the GP record, and a subscription notification,
// are each audited as a disclosure to the GP system.
func TestWriteBackAndNotificationAuditedAsDisclosures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gp := newGPServer(t)
	sub := newSubscriber(t)
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	nq := e.store.Queues(gateway.QueueNotify)
	run(t, newQuickWorker(worker.Options{Queue: nq, Consumer: "wb-" + gateway.NewID()[:8], ReclaimIdle: time.Second,
		Handler: &worker.WriteBacks{Queue: nq, Domain: e.svc.WriteBack, State: e.store, Retry: ms(20, 20, 20), Audit: e.store,
			Targets: map[string]*notify.GPServer{"practice-a": {Base: gp.srv.URL + "/fhir", Client: client}}}}))
	sq := e.store.Queues(gateway.QueueSubscription)
	run(t, newQuickWorker(worker.Options{Queue: sq, PerProvider: 1, LaneDepth: 4096, ReclaimIdle: time.Second, Consumer: "sub-" + gateway.NewID()[:8],
		Handler: &worker.Subscriptions{Queue: sq, Domain: e.svc.Subscriptions, Store: e.store, Client: client, Clients: []string{"practice-a"}, Retry: ms(50, 50, 50), Audit: e.store}}))
	id := e.subscribe("practice-a", sub.srv.URL, topic.PayloadFullResource)
	eventually(t, "the handshake", func() bool { return e.subStatus(id) == "active" })
	task := e.refer("DIS-2", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "the acceptance in the GP record and the notification", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.obs) == 1 && len(sub.events()) == 1
	})
	// The write-back's own records follow its sends at once; wait for them.
	eventually(t, "the records", func() bool { return len(e.disclosures()) >= 3 })
	got := e.disclosures()
	for _, want := range []string{
		"practice-a write-back Task/" + task + "/_history/2",
		"practice-a write-back (outcome Observation) Task/" + task + "/_history/2",
		"practice-a rest-hook full-resource Subscription/" + id + " Task/" + task + "/_history/2",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("disclosures %q lack %q", got, want)
		}
	}
}
