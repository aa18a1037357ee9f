package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

var secret = []byte("synthetic-webhook-secret-of-32-bytes!!")

// provider is a stub VCS provider endpoint: it checks every signature and
// records each webhook-id it sees, answering with whatever respond says.
type provider struct {
	srv     *httptest.Server
	mu      sync.Mutex
	seen    map[string]int // webhook-id -> deliveries received
	respond func(n int) int
	hits    atomic.Int64
	bodies  []string
}

func newProvider(t *testing.T, respond func(n int) int) *provider {
	p := &provider{seen: map[string]int{}, respond: respond}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(p.hits.Add(1))
		if err := webhook.Verify(r.Header, body, [][]byte{secret}, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("provider got a badly signed delivery: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		status := p.respond(n)
		if status < 300 {
			p.mu.Lock()
			p.seen[r.Header.Get("webhook-id")]++
			p.bodies = append(p.bodies, string(body))
			p.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) delivered() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.seen {
		out[k] = v
	}
	return out
}

type env struct {
	t testing.TB
	// redis is the one Redis the test runs on (nil on a cluster); rdb is
	// a client of whichever it runs on.
	redis *redistest.Server
	rdb   redis.UniversalClient
	store *redisstore.Store
	svc   *usecases.Set
	// spread: the store spreads referrals over its partitions.
	spread bool
}

var providers = []gateway.Provider{
	{ID: "walking", Name: "Walking for Health", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}, Categories: []string{"physical-activity"}},
	{ID: "advice", Name: "Money Advice", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X3C4D"}, Categories: []string{"money-debt-benefits"}},
}

// onOneRedis and onCluster choose what a test's Signpost runs on: one
// Redis, or a Redis Cluster of three primaries with a replica each, where
// every change is acknowledged only once its replica has it (as a cluster
// deployment runs with redis_wait_replicas: 1). spreading adds a store
// that spreads referrals over its partitions (redisstore.Store.SpreadReferrals).
type redisKind struct{ cluster, spread bool }

var (
	onOneRedis = redisKind{}
	onCluster  = redisKind{cluster: true}
)

// spreading is the same Redis with a store that spreads referrals.
func (k redisKind) spreading() redisKind { k.spread = true; return k }

// onEachRedis runs a test on one Redis and on a Redis Cluster: the same
// test, so that what holds on one holds on the other.
func onEachRedis(t *testing.T, test func(t *testing.T, on redisKind)) {
	t.Run("redis", func(t *testing.T) { test(t, onOneRedis) })
	t.Run("cluster", func(t *testing.T) { test(t, onCluster) })
}

// onEachRedisSpreadToo runs a test as onEachRedis does, and again with a
// store that spreads referrals, on one Redis and on a cluster: where a
// change's jobs are queued in its referral's partition.
func onEachRedisSpreadToo(t *testing.T, test func(t *testing.T, on redisKind)) {
	onEachRedis(t, test)
	t.Run("spread redis", func(t *testing.T) { test(t, onOneRedis.spreading()) })
	t.Run("spread cluster", func(t *testing.T) { test(t, onCluster.spreading()) })
}

func setup(t testing.TB, on ...redisKind) *env {
	e := &env{t: t}
	if len(on) > 0 && on[0].cluster || redistest.ClusterForced() {
		c := redistest.StartCluster(t)
		cc := redisstore.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}, nil)
		t.Cleanup(func() { cc.Close() })
		e.rdb = cc
		e.store = redisstore.New(cc, "signpost")
		e.store.WaitForReplicas(1, 2*time.Second)
	} else {
		e.redis = redistest.Start(t)
		e.rdb = e.redis.Client()
		e.store = redisstore.New(e.rdb, "signpost")
	}
	if len(on) > 0 && on[0].spread || redistest.SpreadForced() { // SIGNPOST_TEST_SPREAD: as a cluster deployment runs
		e.store.SpreadReferrals()
		e.spread = true
	}
	e.svc = usecases.New(gateway.Options{Store: e.store, Providers: providers, FHIRBase: "http://signpost.test/fhir",
		MeasureRules:      []gateway.MeasureRule{{Categories: []string{"*"}, Questionnaires: []string{"ons4"}, At: gateway.MeasurePoints}},
		SubscriberOrigins: everyOrigin{}})
	return e
}

// everyOrigin registers every subscription endpoint for every GP system:
// these tests' subscribers listen on loopback, and which endpoints may be
// reached is the API's test (httpapi), with the worker wired as
// cmd/signpost wires it.
type everyOrigin struct{}

func (everyOrigin) Registered(client, endpoint string) bool { return true }

// newQuickWorker is worker.New with the worker's clocks turned up: reads
// that block only briefly (a read under way is not cut short, so every
// stop would otherwise wait up to a second for one), retries promoted and
// ticks made every few milliseconds. The tests then wait on the effects
// they look for, not on the polling of a production worker.
func newQuickWorker(o worker.Options) *worker.Worker {
	o.ReadBlock = 50 * time.Millisecond
	o.PromoteEvery = 5 * time.Millisecond
	o.TickEvery = 50 * time.Millisecond
	o.ErrorPause = 50 * time.Millisecond
	return worker.New(o)
}

// startWorker runs a worker until the test ends (or stop is called). Its
// grace period is short: a send still under way when a worker stops is one
// a stub endpoint holds open on purpose, and the grace running out is what
// leaves its job pending for another worker.
func (e *env) startWorker(endpoints map[string]worker.Endpoint, retry []time.Duration) (stop func()) {
	return e.startWorkerWithLane(endpoints, retry, 4, 0)
}

// startWorkerWithLane is startWorker with a provider's lane lane jobs wide
// and sends of them at once (0: the default).
func (e *env) startWorkerWithLane(endpoints map[string]worker.Endpoint, retry []time.Duration, lane, sends int) (stop func()) {
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueDelivery)
	w := newQuickWorker(worker.Options{Queue: q, Handler: &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store,
		Sender: webhook.NewSender(client, time.Now), Endpoints: endpoints, Retry: retry, SendsPerProvider: sends},
		Consumer: "test-" + gateway.NewID()[:8], PerProvider: lane, ReclaimIdle: 500 * time.Millisecond, ForgetIdle: time.Second, Grace: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// allDelivered reports whether every one of tasks is recorded delivered
// to the Walking provider.
func (e *env) allDelivered(tasks []string) bool {
	for _, id := range tasks {
		if e.task(id).BusinessStatus != "delivered to Walking" {
			return false
		}
	}
	return true
}

func (e *env) refer(ident, code string) string {
	e.t.Helper()
	body := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`
	out, err := e.svc.Intake.Create(context.Background(), gateway.Caller{ClientID: "practice-a"}, "ServiceRequest", []byte(body), "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	res, _, err := e.store.Search(context.Background(), &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"focus=ServiceRequest/" + out.Resource.ID}}, Count: 1})
	if err != nil || len(res) != 1 {
		e.t.Fatalf("no Task for the referral: %v", err)
	}
	if e.spread && e.store.PlaceOf(res[0]) == "" {
		e.t.Fatalf("a spreading store made the referral's Task %q outside its partitions", res[0])
	}
	return res[0]
}

func (e *env) task(id string) *gateway.TaskView {
	e.t.Helper()
	r, err := e.store.Read(context.Background(), "Task", id)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := gateway.ParseTask(r.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// eventually waits for cond, failing after a deadline. Deliveries are
// asynchronous; the test waits on their visible effect, not on time.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestDeliversSignedWithStableID(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testDeliversSignedWithStableID)
}

func testDeliversSignedWithStableID(t *testing.T, on redisKind) {
	t.Parallel()
	e := setup(t, on)
	p := newProvider(t, func(int) int { return http.StatusNoContent })
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}}}, ms(10, 20))
	task := e.refer("D-1", "390893007")
	eventually(t, "delivery", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
	got := p.delivered()
	if got["msg_"+task+"_referral"] != 1 || len(got) != 1 {
		t.Errorf("provider saw %v", got)
	}
	var msg delivery.Message
	if err := json.Unmarshal([]byte(p.bodies[0]), &msg); err != nil || msg.Referral.Task != "http://signpost.test/fhir/Task/"+task || msg.Type != "referral.requested" {
		t.Errorf("thin message %+v %v", msg, err)
	}
	if strings.Contains(p.bodies[0], "9434765919") {
		t.Error("the thin message carries the NHS number")
	}
	// The message's priority and authoredOn are the Task's that was sent.
	sent, err := e.store.ReadVersion(context.Background(), "Task", task, 1)
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ Priority, AuthoredOn string }
	if err := json.Unmarshal(sent.Body, &want); err != nil || want.AuthoredOn == "" {
		t.Fatalf("the Task sent has no authoredOn (%v): %s", err, sent.Body)
	}
	if msg.Referral.Priority != want.Priority || msg.Referral.AuthoredOn != want.AuthoredOn {
		t.Errorf("thin message priority %q, authoredOn %q; the Task's are %q, %q", msg.Referral.Priority, msg.Referral.AuthoredOn, want.Priority, want.AuthoredOn)
	}
	if notes, _ := e.store.Queues(gateway.QueueNotify).List(context.Background()); len(notes) < 1 {
		t.Error("no GP notification queued for the delivery")
	}
}

func TestProviderDownThenBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var up atomic.Bool
	p := newProvider(t, func(int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}}}, ms(50, 50, 50, 50, 50, 50, 50, 50, 50, 50))
	task := e.refer("DB-1", "390893007")
	eventually(t, "a few failed attempts", func() bool { return p.hits.Load() >= 3 })
	up.Store(true)
	eventually(t, "delivery once the provider is back", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
	if v := e.task(task); v.Status != "requested" {
		t.Errorf("status %s after delivery", v.Status)
	}
}

func TestFailsUntilLastAttemptThenDeadLetter(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := newProvider(t, func(int) int { return http.StatusInternalServerError })
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}}}, ms(10, 10, 10))
	task := e.refer("DL-1", "390893007")
	eventually(t, "the Task to fail", func() bool { return e.task(task).Status == "failed" })
	if n := p.hits.Load(); n != 4 {
		t.Errorf("%d attempts, want 4 (the first and one per retry wait)", n)
	}
	v := e.task(task)
	if !strings.Contains(v.StatusReason, "500") {
		t.Errorf("statusReason %q does not say why", v.StatusReason)
	}
	dead, err := e.store.Queues(gateway.QueueDeadLetter).List(context.Background())
	if err != nil || len(dead) != 1 || dead[0].Fields["task"] != task {
		t.Fatalf("dead letters %v %v", dead, err)
	}
	// Re-driven by an operator: requested again, and delivered when the provider answers.
	p.respond = func(int) int { return http.StatusOK }
	if err := e.svc.Delivery.Redrive(context.Background(), dead[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-driven delivery", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
	if v := e.task(task); v.Status != "requested" {
		t.Errorf("status after re-drive %s", v.Status)
	}
	if dead, _ := e.store.Queues(gateway.QueueDeadLetter).List(context.Background()); len(dead) != 0 {
		t.Errorf("dead letter not removed after re-drive")
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := newProvider(t, func(int) int { return http.StatusGone })
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: p.srv.URL, Secrets: [][]byte{secret}}}, ms(10, 10, 10))
	first := e.refer("G-1", "390893007")
	eventually(t, "the first to fail", func() bool { return e.task(first).Status == "failed" })
	second := e.refer("G-2", "390893007")
	eventually(t, "the second to fail without a send", func() bool { return e.task(second).Status == "failed" })
	if n := p.hits.Load(); n != 1 {
		t.Errorf("%d sends to a gone endpoint, want 1", n)
	}
	if why, _ := e.store.EndpointDisabled(context.Background(), "walking"); why == "" {
		t.Error("endpoint not disabled")
	}
}

func TestSlowProviderDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	fast := newProvider(t, func(int) int { return http.StatusOK })
	e.startWorker(map[string]worker.Endpoint{
		"walking": {Name: "Slow", Kind: "webhook", URL: slow.URL, Secrets: [][]byte{secret}},
		"advice":  {Name: "Fast", Kind: "webhook", URL: fast.srv.URL, Secrets: [][]byte{secret}},
	}, ms(1000))
	for i := 0; i < 10; i++ {
		e.refer(fmt.Sprintf("SL-%d", i), "390893007") // to the slow provider
	}
	var tasks []string
	for i := 0; i < 5; i++ {
		tasks = append(tasks, e.refer(fmt.Sprintf("FA-%d", i), "710913009")) // to the fast one
	}
	// The slow provider never answers until the test ends, so every one of
	// its sends is still hanging: the healthy provider's deliveries all
	// completing meanwhile is the proof that it waits for nothing.
	eventually(t, "the healthy provider's deliveries, with the slow one still hanging", func() bool {
		for _, id := range tasks {
			if e.task(id).BusinessStatus != "delivered to Fast" {
				return false
			}
		}
		return true
	})
}

// A worker that stops (or dies) with deliveries in flight leaves them
// pending; another worker reclaims them and sends them again under the
// same webhook-id, so the provider can recognise a repeat.
func TestWorkerStoppedMidDeliveryIsReclaimed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var block atomic.Bool
	block.Store(true)
	gate := make(chan struct{})
	var openGate sync.Once
	var held sync.Map // webhook-ids of the sends the first worker made
	var inFlight atomic.Int64
	var seen sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		if block.Load() {
			held.Store(id, true)
			inFlight.Add(1)
			<-gate // the first worker's sends never complete
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n, _ := seen.LoadOrStore(id, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { openGate.Do(func() { close(gate) }); srv.Close() })
	ep := map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: srv.URL, Secrets: [][]byte{secret}}}
	var tasks []string
	for i := 0; i < 6; i++ {
		tasks = append(tasks, e.refer(fmt.Sprintf("RC-%d", i), "390893007"))
	}
	stopFirst := e.startWorker(ep, ms(5000))
	// Four sends in flight (the lane's width) and two jobs waiting behind
	// them: all are this worker's when it stops.
	eventually(t, "the first worker's sends under way", func() bool { return inFlight.Load() == 4 })
	stopFirst() // its grace period runs out with the sends hanging: every job stays pending
	block.Store(false)
	openGate.Do(func() { close(gate) })
	e.startWorker(ep, ms(5000))
	eventually(t, "every referral delivered by the second worker", func() bool { return e.allDelivered(tasks) })
	seen.Range(func(k, v any) bool {
		if !strings.HasPrefix(k.(string), "msg_") {
			t.Errorf("webhook-id %v", k)
		}
		return true
	})
	held.Range(func(k, _ any) bool {
		if _, ok := seen.Load(k); !ok {
			t.Errorf("send %v cut off by the first worker's stop was not sent again under its webhook-id", k)
		}
		return true
	})
	// The stopped worker, its jobs taken over, is removed from the group of
	// every partition's stream: one worker is left in them all.
	eventually(t, "the stopped worker removed from the consumer group", func() bool {
		workers := map[string]bool{}
		for _, q := range e.store.Queues(gateway.QueueDelivery).Partitions() {
			consumers, err := e.rdb.XInfoConsumers(context.Background(), q.Key(), gateway.WorkerGroup).Result()
			if err != nil {
				return false
			}
			for _, c := range consumers {
				workers[c.Name] = true
			}
		}
		return len(workers) == 1
	})
}

func TestFHIRDeliveryPostsTheTaskWithAbsoluteReferences(t *testing.T) {
	t.Parallel()
	e := setup(t)
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/fhir/Task" || r.Header.Get("Content-Type") != "application/fhir+json" {
			t.Errorf("FHIR delivery to %s as %s", r.URL.Path, r.Header.Get("Content-Type"))
		}
		select {
		case got <- string(body):
		default:
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	e.startWorker(map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "fhir", URL: srv.URL + "/fhir/"}}, ms(10))
	task := e.refer("F-1", "390893007")
	body := <-got
	var posted struct {
		ResourceType string
		Focus        struct{ Reference string }
		Owner        struct{ Reference string }
	}
	if err := json.Unmarshal([]byte(body), &posted); err != nil || posted.ResourceType != "Task" ||
		!strings.HasPrefix(posted.Focus.Reference, "http://signpost.test/fhir/ServiceRequest/") || posted.Owner.Reference != "http://signpost.test/fhir/Organization/walking" {
		t.Errorf("posted %s", body)
	}
	eventually(t, "delivered", func() bool { return e.task(task).BusinessStatus == "delivered to Walking" })
}

// Stream entry ids are unique only within one stream: a store that
// spreads referrals has a stream per partition, and two of them can hand
// out the same id in the same millisecond. The worker tells such jobs
// apart by their partition too, so neither waits for a reclaim.
func TestJobsWithOneEntryIDInTwoPartitionsAreBothHandled(t *testing.T) {
	t.Parallel()
	q := &oneReadQueue{jobs: []gateway.QueuedJob{
		{Queue: gateway.QueueDelivery, Place: "p03-", ID: "1796316686496-0", Fields: map[string]string{"lane": "a"}},
		{Queue: gateway.QueueDelivery, Place: "p04-", ID: "1796316686496-0", Fields: map[string]string{"lane": "a"}},
	}}
	h := &recordingHandler{}
	w := worker.New(worker.Options{Queue: q, Handler: h, Consumer: "w1", ReadBlock: 10 * time.Millisecond, ReclaimIdle: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	eventually(t, "both jobs handled", func() bool { return len(h.handled()) == 2 })
	cancel()
	<-done
	if got := h.handled(); got[0] == got[1] {
		t.Errorf("handled %v, want each partition's job once", got)
	}
}

// oneReadQueue hands out its jobs on the first read, then nothing.
type oneReadQueue struct {
	mu   sync.Mutex
	jobs []gateway.QueuedJob
}

func (q *oneReadQueue) Ensure(context.Context) error { return nil }
func (q *oneReadQueue) Read(ctx context.Context, _ string, _ int, block time.Duration) ([]gateway.QueuedJob, error) {
	q.mu.Lock()
	jobs := q.jobs
	q.jobs = nil
	q.mu.Unlock()
	if len(jobs) == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(block):
		}
	}
	return jobs, nil
}
func (q *oneReadQueue) Reclaim(context.Context, string, time.Duration, int, string) ([]gateway.QueuedJob, string, error) {
	return nil, "0-0", nil
}
func (q *oneReadQueue) Forget(context.Context, string, time.Duration) (int, error) { return 0, nil }
func (q *oneReadQueue) Take(context.Context, gateway.QueuedJob) (bool, error)      { return true, nil }
func (q *oneReadQueue) Promote(context.Context, time.Time, int) (int, error)       { return 0, nil }
func (q *oneReadQueue) Ack(context.Context, gateway.QueuedJob) error               { return nil }
func (q *oneReadQueue) Bury(context.Context, gateway.QueuedJob, string) error      { return nil }
func (q *oneReadQueue) Later(context.Context, gateway.QueuedJob, map[string]string, time.Time) error {
	return nil
}

// recordingHandler handles every job of lane "a" by noting its name.
type recordingHandler struct {
	mu   sync.Mutex
	jobs []string
}

func (h *recordingHandler) Lanes() []string                   { return []string{"a"} }
func (h *recordingHandler) Lane(job gateway.QueuedJob) string { return job.Fields["lane"] }
func (h *recordingHandler) Handle(_ context.Context, job gateway.QueuedJob) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jobs = append(h.jobs, job.Name())
}

func (h *recordingHandler) handled() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.jobs)
}

// A lane holds more of a provider's jobs than the provider is sent at once
// (Deliveries.SendsPerProvider), so that the others read and record in
// Redis meanwhile; the provider never has more sends than that under way.
// A worker stopped while jobs wait for a send slot leaves them pending,
// and the next worker delivers them.
func TestProviderIsSentNoMoreThanItsSendSlotsAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gate := make(chan struct{})
	var openGate sync.Once
	var inFlight, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-gate
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { openGate.Do(func() { close(gate) }); srv.Close() })
	ep := map[string]worker.Endpoint{"walking": {Name: "Walking", Kind: "webhook", URL: srv.URL, Secrets: [][]byte{secret}}}
	var tasks []string
	for i := range 10 {
		tasks = append(tasks, e.refer(fmt.Sprintf("SLOT-%d", i), "390893007"))
	}
	stop := e.startWorkerWithLane(ep, ms(5000), 8, 3)
	eventually(t, "three sends under way", func() bool { return inFlight.Load() == 3 })
	time.Sleep(200 * time.Millisecond) // five more of the lane's jobs in hand, waiting for a slot
	stop()
	if n := most.Load(); n != 3 {
		t.Errorf("the provider had %d sends under way at once; its send slots are 3", n)
	}
	openGate.Do(func() { close(gate) })
	e.startWorker(ep, ms(5000))
	eventually(t, "every referral delivered by the next worker", func() bool { return e.allDelivered(tasks) })
}
