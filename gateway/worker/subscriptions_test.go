package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/topic"
	"github.com/signpost-health/signpost/gateway/worker"
)

// subscriber is a rest-hook endpoint that records every notification.
type subscriber struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []notification
	headers []http.Header
	down    atomic.Bool
	calls   atomic.Int64 // every request, answered or refused
}

type notification struct {
	Kind    string
	Since   string
	Numbers []int
	Focus   []string
	Entries int
	Full    bool
}

func newSubscriber(t *testing.T) *subscriber {
	s := &subscriber{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if s.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mustBeR4(t, "a subscription notification", body)
		var b struct {
			Type  string
			Entry []struct {
				Resource json.RawMessage
			}
		}
		if err := json.Unmarshal(body, &b); err != nil || b.Type != "history" || len(b.Entry) == 0 {
			t.Errorf("not a history Bundle: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var params struct {
			ResourceType string
			Parameter    []struct {
				Name           string
				ValueCode      string
				ValueString    string
				ValueReference struct{ Reference string }
				Part           []struct {
					Name           string
					ValueString    string
					ValueReference struct{ Reference string }
				}
			}
		}
		_ = json.Unmarshal(b.Entry[0].Resource, &params)
		n := notification{Entries: len(b.Entry)}
		for _, p := range params.Parameter {
			switch p.Name {
			case "type":
				n.Kind = p.ValueCode
			case "events-since-subscription-start":
				n.Since = p.ValueString
			case "notification-event":
				for _, part := range p.Part {
					if part.Name == "event-number" {
						num, _ := strconv.Atoi(part.ValueString)
						n.Numbers = append(n.Numbers, num)
					}
					if part.Name == "focus" {
						n.Focus = append(n.Focus, part.ValueReference.Reference)
					}
				}
			}
		}
		for _, e := range b.Entry[1:] {
			if len(e.Resource) > 0 {
				n.Full = true
			}
		}
		s.mu.Lock()
		s.got = append(s.got, n)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *subscriber) events() []notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []notification
	for _, n := range s.got {
		if n.Kind == "event-notification" {
			out = append(out, n)
		}
	}
	return out
}

func (e *env) startSubscriptions() (stop func()) {
	return e.startSubscriptionsRetrying(slices.Repeat(ms(50), 20))
}

// startSubscriptionsRetrying runs subscriptions with a retry schedule of
// the test's own.
func (e *env) startSubscriptionsRetrying(retry []time.Duration) (stop func()) {
	return e.startSubscriptionsOn(e.svc.Subscriptions, retry)
}

// startSubscriptionsOn runs subscriptions over a domain of the test's own
// (one that watches what the worker does).
func (e *env) startSubscriptionsOn(domain worker.SubscriptionDomain, retry []time.Duration) (stop func()) {
	q := e.store.Queues(gateway.QueueSubscription) // every partition's, as cmd/signpost reads them
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	w := newQuickWorker(worker.Options{Queue: q, PerProvider: 1, LaneDepth: 4096, ReclaimIdle: time.Second, Consumer: "sub-" + gateway.NewID()[:8],
		Handler: &worker.Subscriptions{Queue: q, Domain: domain, Store: e.store, Client: client, Clients: []string{"practice-a", "practice-b"}, Retry: retry, Audit: e.store}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

func (e *env) subscribe(client, endpoint, payload string, filters ...string) string {
	e.t.Helper()
	var ext []string
	for _, f := range filters {
		ext = append(ext, `{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":"`+f+`"}`)
	}
	criteria := "" // an empty extension array is not valid R4: no filters, no _criteria
	if len(ext) > 0 {
		criteria = `"_criteria":{"extension":[` + strings.Join(ext, ",") + `]},`
	}
	body := `{"resourceType":"Subscription","status":"requested","reason":"closed loop","criteria":"` + topic.TaskTopic + `",` +
		criteria +
		`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","payload":"application/fhir+json",` +
		`"_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"` + payload + `"}]},` +
		`"header":["X-Subscriber-Key: synthetic-key"]}}`
	out, err := e.svc.Intake.Create(context.Background(), gateway.Caller{ClientID: client, Kind: gateway.CallerGP}, "Subscription", []byte(body), "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Resource.ID
}

// subscribeWithHeartbeat subscribes practice-a with a heartbeat period
// (seconds) and returns the subscription's id.
func (e *env) subscribeWithHeartbeat(endpoint string, period int) string {
	e.t.Helper()
	body := `{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"` + topic.TaskTopic + `",` +
		`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","payload":"application/fhir+json",` +
		`"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":` + strconv.Itoa(period) + `}]}}`
	out, err := e.svc.Intake.Create(context.Background(), gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}, "Subscription", []byte(body), "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Resource.ID
}

func (e *env) subStatus(id string) string {
	v, err := e.svc.Subscriptions.SubscriptionByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return v.Status
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(t)
	e.startSubscriptions()
	ok := e.subscribe("practice-a", s.srv.URL, topic.PayloadIDOnly)
	bad := e.subscribe("practice-a", "http://127.0.0.1:1/hook", topic.PayloadIDOnly)
	eventually(t, "the handshakes", func() bool { return e.subStatus(ok) == "active" && e.subStatus(bad) == "error" })
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) != 1 || s.got[0].Kind != "handshake" || s.headers[0].Get("X-Subscriber-Key") != "synthetic-key" {
		t.Errorf("subscriber got %+v", s.got)
	}
}

func TestNotificationsInOrderAcrossRestartAndOutage(t *testing.T) {
	t.Parallel()
	onEachRedisSpreadToo(t, testNotificationsInOrderAcrossRestartAndOutage)
}

func testNotificationsInOrderAcrossRestartAndOutage(t *testing.T, on redisKind) {
	t.Parallel()
	e := setup(t, on)
	s := newSubscriber(t)
	stop := e.startSubscriptions()
	sub := e.subscribe("practice-a", s.srv.URL, topic.PayloadIDOnly, "Task?requester=A81001")
	eventually(t, "the handshake", func() bool { return e.subStatus(sub) == "active" })
	task := e.refer("SUB-1", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "the first event", func() bool { return len(s.events()) == 1 })

	// The worker stops (a gateway restart); changes go on; a new worker
	// numbers them on from where the last stopped.
	stop()
	e.move(task, "in-progress", "")
	e.startSubscriptions()
	eventually(t, "the second event", func() bool { return len(s.events()) == 2 })

	// The subscriber is down for a while: events wait, then arrive in order.
	refusedFrom := s.calls.Load()
	s.down.Store(true)
	e.move(task, "on-hold", "waiting for the new season")
	e.move(task, "in-progress", "")
	e.move(task, "completed", "")
	eventually(t, "a few failed attempts", func() bool { return s.calls.Load()-refusedFrom >= 3 })
	s.down.Store(false)
	eventually(t, "every event after the outage", func() bool { return len(s.events()) == 5 })
	for i, n := range s.events() {
		if len(n.Numbers) != 1 || n.Numbers[0] != i+1 {
			t.Errorf("notification %d carries event numbers %v, want [%d]", i, n.Numbers, i+1)
		}
		if since, _ := strconv.Atoi(n.Since); len(n.Numbers) == 1 && since < n.Numbers[0] {
			t.Errorf("events-since-subscription-start %d is below the event's number %d", since, n.Numbers[0])
		}
		if len(n.Focus) != 1 || !strings.HasSuffix(n.Focus[0], "/Task/"+task) || n.Entries != 2 || n.Full {
			t.Errorf("id-only notification %+v", n)
		}
	}
}

func TestPayloadsFiltersAndIsolation(t *testing.T) {
	t.Parallel()
	onEachRedisSpreadToo(t, testPayloadsFiltersAndIsolation)
}

func testPayloadsFiltersAndIsolation(t *testing.T, on redisKind) {
	t.Parallel()
	e := setup(t, on)
	full, empty, other, filtered := newSubscriber(t), newSubscriber(t), newSubscriber(t), newSubscriber(t)
	e.startSubscriptions()
	subs := []string{
		e.subscribe("practice-a", full.srv.URL, topic.PayloadFullResource),
		e.subscribe("practice-a", empty.srv.URL, topic.PayloadEmpty),
		e.subscribe("practice-b", other.srv.URL, topic.PayloadFullResource), // another practice
		e.subscribe("practice-a", filtered.srv.URL, topic.PayloadIDOnly, "Task?status=completed"),
	}
	eventually(t, "handshakes", func() bool {
		for _, id := range subs {
			if e.subStatus(id) != "active" {
				return false
			}
		}
		return true
	})
	task := e.refer("PAY-1", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "full and empty notifications", func() bool { return len(full.events()) == 1 && len(empty.events()) == 1 })
	if n := full.events()[0]; !n.Full || n.Entries != 2 {
		t.Errorf("full-resource notification %+v", n)
	}
	if n := empty.events()[0]; n.Entries != 1 || len(n.Focus) != 0 {
		t.Errorf("empty notification %+v", n)
	}
	e.move(task, "completed", "")
	eventually(t, "the filtered subscription's one event", func() bool { return len(filtered.events()) == 1 })
	if n := len(other.events()); n != 0 {
		t.Errorf("another practice's subscriber got %d notifications", n)
	}
}

// A subscription that asked for heartbeats is sent one each period it
// hears nothing (the shortest period, its minute made to pass at once).
func TestHeartbeats(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(t)
	e.startSubscriptions()
	id := e.subscribeWithHeartbeat(s.srv.URL, int(topic.MinHeartbeat/time.Second))
	eventually(t, "the handshake", func() bool { return e.subStatus(id) == "active" })
	for want := 1; want <= 2; want++ {
		e.heartbeatDue(id)
		eventually(t, "a heartbeat each period, recorded as sent", func() bool {
			s.mu.Lock()
			n := 0
			for _, g := range s.got {
				if g.Kind == "heartbeat" {
					n++
				}
			}
			s.mu.Unlock()
			last, err := e.store.LastSent(context.Background(), id)
			return n >= want && err == nil && time.Since(last) < time.Hour
		})
	}
}

// heartbeatDue makes a subscription's heartbeat due: nothing sent to it
// for longer than any period, and the period's claim gone.
func (e *env) heartbeatDue(id string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.rdb.Set(ctx, "{signpost}:sl:"+id, time.Now().Add(-2*time.Hour).UnixMilli(), 0).Err(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.rdb.Del(ctx, "{signpost}:sh:"+id).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// Every process ticks about once a second; a subscriber still gets one
// heartbeat a period, and one attempt a period while it is down, not one
// a tick from each process.
func TestHeartbeatOncePerPeriodAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(t)
	stop := e.startSubscriptions()
	id := e.subscribeWithHeartbeat(s.srv.URL, 3600)
	eventually(t, "the handshake", func() bool { return e.subStatus(id) == "active" })
	stop()
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	process := func() *worker.Subscriptions {
		q := e.store.Queues(gateway.QueueSubscription)
		return &worker.Subscriptions{Queue: q, Domain: e.svc.Subscriptions, Store: e.store, Client: client, Clients: []string{"practice-a"}}
	}
	// Two processes tick ten times each, together, with a heartbeat due
	// (nothing sent for longer than the period).
	tickTogether := func() {
		lastSent := "{signpost}:sl:" + id
		if err := e.rdb.Set(context.Background(), lastSent, time.Now().Add(-2*time.Hour).UnixMilli(), 0).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, p := range []*worker.Subscriptions{process(), process()} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					p.Tick(context.Background())
				}
				p.Wait() // the heartbeats Tick started
			}()
		}
		wg.Wait()
	}
	before := s.calls.Load()
	tickTogether()
	if n := s.calls.Load() - before; n != 1 {
		t.Errorf("%d heartbeats sent in one period by two processes, want 1", n)
	}
	// The next period, the subscriber is down: one attempt, not twenty.
	if err := e.rdb.Del(context.Background(), "{signpost}:sh:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	s.down.Store(true)
	before = s.calls.Load()
	tickTogether()
	if n := s.calls.Load() - before; n != 1 {
		t.Errorf("%d heartbeats tried in one period at a subscriber that is down, want 1", n)
	}
}

// A subscriber down past the retry schedule is put in error with its
// events kept, and changes while it is in error are numbered and kept too;
// an update makes it active again after a new handshake, and the kept
// events arrive, numbered as before, followed by new ones.
func TestSubscriptionInErrorIsMadeActiveAgainByUpdate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(t)
	// The test waits for the retries to run out (the subscription in error):
	// a short schedule, so that is soon.
	e.startSubscriptionsRetrying(slices.Repeat(ms(5), 20))
	sub := e.subscribe("practice-a", s.srv.URL, topic.PayloadIDOnly)
	eventually(t, "the handshake", func() bool { return e.subStatus(sub) == "active" })
	task := e.refer("SUB-ERR-1", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "the first event", func() bool { return len(s.events()) == 1 })

	s.down.Store(true)
	e.move(task, "in-progress", "")
	eventually(t, "the subscription in error", func() bool { return e.subStatus(sub) == "error" })
	e.move(task, "on-hold", "waiting for the new season") // while it is in error

	s.down.Store(false)
	cur, err := e.store.Read(context.Background(), "Subscription", sub)
	if err != nil {
		t.Fatal(err)
	}
	caller := gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}
	if _, err := e.svc.Intake.Update(context.Background(), caller, "Subscription", sub, cur.Body, "", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "active again, and the kept events sent", func() bool {
		return e.subStatus(sub) == "active" && len(s.events()) == 3
	})
	e.move(task, "in-progress", "")
	eventually(t, "the next event", func() bool { return len(s.events()) == 4 })
	for i, n := range s.events() {
		if len(n.Numbers) != 1 || n.Numbers[0] != i+1 {
			t.Errorf("notification %d carries event numbers %v, want [%d]", i, n.Numbers, i+1)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	handshakes := 0
	for _, g := range s.got {
		if g.Kind == "handshake" {
			handshakes++
		}
	}
	if handshakes != 2 {
		t.Errorf("%d handshakes, want 2 (the subscription's and its update's)", handshakes)
	}
}

// A handshake confirms the endpoint of the version it was made for: one
// that an update overtook does not make the updated subscription active;
// the update's own handshake decides.
func TestOvertakenHandshakeDoesNotConfirmAnUpdate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gate := make(chan struct{})
	var calls atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-gate // the first handshake is still under way when the update comes
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(gate) })
	down := newSubscriber(t)
	down.down.Store(true)
	e.startSubscriptions()
	sub := e.subscribe("practice-a", slow.URL, topic.PayloadIDOnly)
	eventually(t, "the first handshake under way", func() bool { return calls.Load() == 1 })

	cur, err := e.store.Read(context.Background(), "Subscription", sub)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(string(cur.Body), slow.URL, down.srv.URL, 1)
	caller := gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}
	if _, err := e.svc.Intake.Update(context.Background(), caller, "Subscription", sub, []byte(moved), "", nil); err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{} // the first handshake succeeds, for the endpoint no longer in use
	eventually(t, "the update's handshake refused", func() bool { return e.subStatus(sub) == "error" })

	histories, err := e.store.Histories(context.Background(), "Subscription", []string{sub})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range histories[0] {
		var s struct {
			Status  string
			Channel struct{ Endpoint string }
		}
		_ = json.Unmarshal(v.Body, &s)
		if s.Status == "active" {
			t.Errorf("version %d is active for %s, which never answered a handshake", v.Version, s.Channel.Endpoint)
		}
	}
}

// A notification that fails for good puts in error the version of the
// subscription it was sent for, not one an update made meanwhile: that
// one names an endpoint of its own, which its own handshake decides.
func TestFailedNotificationLeavesAnUpdateAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"valueCode":"handshake"`)) {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusBadRequest) // for good: no retry
	}))
	t.Cleanup(refusing.Close)
	moved := newSubscriber(t)
	hook := &errorHook{SubscriptionDomain: e.svc.Subscriptions, set: make(chan string, 4)}
	// The update lands after the notification failed and before the
	// worker records it.
	hook.before = func(id string) {
		cur, err := e.store.Read(context.Background(), "Subscription", id)
		if err != nil {
			t.Error(err)
			return
		}
		body := strings.Replace(string(cur.Body), refusing.URL, moved.srv.URL, 1)
		caller := gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}
		if _, err := e.svc.Intake.Update(context.Background(), caller, "Subscription", id, []byte(body), "", nil); err != nil {
			t.Error(err)
		}
	}
	e.startSubscriptionsOn(hook, slices.Repeat(ms(5), 20))
	sub := e.subscribe("practice-a", refusing.URL, topic.PayloadIDOnly)
	eventually(t, "the handshake", func() bool { return e.subStatus(sub) == "active" })
	e.move(e.refer("SUB-UPD-1", "390893007"), "accepted", "")
	select {
	case <-hook.set:
	case <-time.After(time.Minute):
		t.Fatal("the refused notification never put the subscription in error")
	}
	if got := e.subStatus(sub); got == "error" {
		t.Errorf("the updated subscription is in error after a notification to its old endpoint failed")
	}
	eventually(t, "the update's own handshake", func() bool { return e.subStatus(sub) == "active" })
}

// errorHook runs before as the worker puts a subscription in error, and
// says when it has.
type errorHook struct {
	worker.SubscriptionDomain
	before func(id string)
	set    chan string
}

func (h *errorHook) SetSubscriptionStatus(ctx context.Context, id, status, reason string, version int) error {
	if status != "error" {
		return h.SubscriptionDomain.SetSubscriptionStatus(ctx, id, status, reason, version)
	}
	h.before(id)
	err := h.SubscriptionDomain.SetSubscriptionStatus(ctx, id, status, reason, version)
	h.set <- id
	return err
}

// mustBeR4 holds what Signpost sends a GP system to the R4 structure rules
// intake holds senders to: the GP's strict parser must be able to read it.
func mustBeR4(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, is := range structure.Validate(body).Issues {
		t.Errorf("%s is not valid R4: %s %v: %s", what, is.Code, is.Expression, is.Diagnostics)
	}
}
