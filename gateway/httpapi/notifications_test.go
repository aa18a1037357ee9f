package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/worker"
)

// restHook is a subscriber's rest-hook endpoint: it records the event
// numbers and focus of every event notification it is sent.
type restHook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []hookEvent
}

// hookEvent is one event a notification carried.
type hookEvent struct {
	number int
	focus  string
}

func newRestHook(t *testing.T) *restHook {
	h := &restHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Entry []struct {
				Resource struct {
					Parameter []struct {
						Name      string
						ValueCode string
						Part      []struct {
							Name           string
							ValueString    string
							ValueReference struct{ Reference string }
						}
					}
				}
			}
		}
		if err := json.Unmarshal(body, &b); err != nil || len(b.Entry) == 0 {
			t.Errorf("not a notification Bundle: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, p := range b.Entry[0].Resource.Parameter {
			if p.Name != "notification-event" {
				continue
			}
			var ev hookEvent
			for _, part := range p.Part {
				switch part.Name {
				case "event-number":
					ev.number, _ = strconv.Atoi(part.ValueString)
				case "focus":
					ev.focus = part.ValueReference.Reference
				}
			}
			h.events = append(h.events, ev)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *restHook) received() []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookEvent(nil), h.events...)
}

// startSubscriptionWorker runs the subscription queue's worker as
// cmd/signpost wires it (every partition's queue, one job at a time per
// GP system, outbound_allow only for registered origins), with
// outbound_allow 127.0.0.0/8: endpoints on loopback are reached when their
// origin is registered for their GP system (e.origins).
func (e *env) startSubscriptionWorker() {
	chosen, registered := notify.SubscriberClients(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueSubscription)
	w := worker.New(worker.Options{Queue: q,
		Handler: &worker.Subscriptions{Queue: q, Domain: e.svc.Subscriptions, Store: e.store, Client: chosen, Registered: registered,
			Clients: []string{"practice-a", "practice-b"}, Retry: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond},
			Log: slog.New(slog.NewJSONHandler(e.logs, nil))},
		Consumer: "sub-" + gateway.NewID()[:8], ReclaimIdle: time.Second, PerProvider: 1, LaneDepth: 4096,
		ReadBlock: 50 * time.Millisecond, PromoteEvery: 5 * time.Millisecond, ErrorPause: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// A GP system subscribed to its referrals' Tasks hears of each change the
// provider makes, numbered 1, 2, 3 in the order made, each once; its
// $status counts them. Another practice's subscription hears nothing.
func TestSubscribersHearOfEachTaskChangeInOrder(t *testing.T) {
	onOneRedisAndSpreadOnCluster(t, testSubscribersHearOfEachTaskChangeInOrder)
}

func testSubscribersHearOfEachTaskChangeInOrder(t *testing.T, on ...func(*options)) {
	e := setup(t, on...)
	mine, theirs := newRestHook(t), newRestHook(t)
	e.startSubscriptionWorker()
	subscribe := func(who, endpoint string) string {
		e.origins.register(who, endpoint, true) // the GP system's own, on loopback
		sub := `{"resourceType":"Subscription","status":"active","reason":"closed loop","criteria":"http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",` +
			`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","payload":"application/fhir+json"}}`
		return e.post("/Subscription", []byte(sub), as(who)...).must(t, http.StatusCreated).json(t)["id"].(string)
	}
	id := subscribe("practice-a", mine.srv.URL)
	other := subscribe("practice-b", theirs.srv.URL)
	eventually(t, "the handshakes", func() bool {
		return e.get("/Subscription/"+id, as("practice-a")...).json(t)["status"] == "active" &&
			e.get("/Subscription/"+other, as("practice-b")...).json(t)["status"] == "active"
	})
	sr := e.post("/ServiceRequest", referral("SUB-E2E-1", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)
	taskID := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), as("practice-a")...), "match")[0]["id"].(string)
	if e.store.Spread() && e.store.PlaceOf(taskID) == "" {
		t.Fatalf("a spreading store made the referral's Task %q outside its partitions", taskID)
	}
	moves := []string{"accepted", "in-progress", "completed"}
	for _, status := range moves {
		e.providerMoves(t, taskID, status, "")
	}
	eventually(t, "an event for each change", func() bool { return len(mine.received()) >= len(moves) })
	time.Sleep(200 * time.Millisecond) // long enough for a repeat to show
	got := mine.received()
	if len(got) != len(moves) {
		t.Errorf("%d events, want %d: %+v", len(got), len(moves), got)
	}
	for i, ev := range got {
		if ev.number != i+1 || !strings.HasSuffix(ev.focus, "/Task/"+taskID) {
			t.Errorf("event %d is number %d about %s; want number %d about Task/%s", i, ev.number, ev.focus, i+1, taskID)
		}
	}
	st := e.get("/Subscription/"+id+"/$status", as("practice-a")...).must(t, http.StatusOK)
	if want := `"events-since-subscription-start","valueString":"` + strconv.Itoa(len(moves)) + `"`; !strings.Contains(string(st.body), want) {
		t.Errorf("$status does not count %d events: %s", len(moves), st.body)
	}
	if n := len(theirs.received()); n != 0 {
		t.Errorf("another practice's subscriber heard of %d events", n)
	}
}
