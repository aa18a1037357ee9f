package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/disclosures"
	"github.com/signpost-health/signpost/gateway/export"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
	"github.com/signpost-health/signpost/mappings"
)

// env is one Signpost over its own redis-server, reached through real HTTP.
type env struct {
	t *testing.T
	// redis is the one Redis the test runs on (nil on a cluster); rdb is
	// a client of whichever it runs on.
	redis   *redistest.Server
	cluster *redistest.Cluster
	rdb     redis.UniversalClient
	srv     *httptest.Server
	base    string // FHIR base URL
	logs    *syncBuffer
	client  *http.Client
	store   *redisstore.Store
	svc     *usecases.Set
	// exportDir is where $export writes its files.
	exportDir string
	// origins are the subscription origins registered for GP systems, as
	// clients[].subscription_origins registers them (none at first).
	origins *registeredOrigins
}

// registeredOrigins is gateway.SubscriberOrigins for tests, whose
// endpoints get their ports as they start: a test registers the origin of
// an endpoint for a GP system, as an operator lists it in
// clients[].subscription_origins, and may withdraw it.
type registeredOrigins struct {
	mu sync.Mutex
	by map[string]map[string]bool
}

func (r *registeredOrigins) Registered(client, endpoint string) bool {
	origin, ok := gateway.Origin(endpoint)
	r.mu.Lock()
	defer r.mu.Unlock()
	return ok && r.by[client][origin]
}

// register registers endpoint's origin for client (true) or withdraws it.
func (r *registeredOrigins) register(client, endpoint string, registered bool) {
	origin, ok := gateway.Origin(endpoint)
	if !ok {
		panic("not an origin: " + endpoint)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[string]map[string]bool{}
	}
	if r.by[client] == nil {
		r.by[client] = map[string]bool{}
	}
	r.by[client][origin] = registered
}

type options struct {
	triage    bool
	warnNHS   bool
	maxBody   int64
	codes     *mappings.Table
	providers []gateway.Provider
	smart     []auth.Client // when set, callers authenticate with SMART tokens
	rate      float64       // requests per second per client; 0: no limit
	burst     int
	addrRate  float64 // per address, for callers without a valid token; 0: no limit
	addrBurst int
	proxies   []netip.Prefix // trusted proxies
	// understood are the modifierExtension urls the deployment understands.
	understood []string
	maxSubs    int // subscriptions per client; 0: the default
	// pseudonymKey is the de-identified export's key; nil: none.
	pseudonymKey []byte
	// measures are the outcome measures asked; none: none.
	measures []gateway.MeasureRule
	// cluster: run on a Redis Cluster (onCluster) rather than one Redis;
	// oneRedis: on one Redis even when the run asks for clusters
	// (onOneRedis).
	cluster, oneRedis bool
	// onto: run on this cluster, already started (onto), rather than a
	// new one.
	onto *redistest.Cluster
	// spread: the store spreads referrals over its partitions (spread);
	// unspread: it does not, even when the run forces spreading
	// (redistest.EnvSpread), for the tests whose subject is such a store.
	spread, unspread bool
	// hook, when set, runs between a change's planning and its commit
	// (hookedStore).
	hook *commitHook
	// now, when set, is the clock the use cases stamp versions by
	// (withNow); time.Now otherwise.
	now func() time.Time
}

// withNow makes the use cases stamp what they write by now, as a server
// whose clock is not Redis's would.
func withNow(now func() time.Time) func(*options) {
	return func(o *options) { o.now = now }
}

// withCommitHook makes the use cases commit through h, so that a test can
// land a request between another's planning and its commit, where only a
// race would put it otherwise.
func withCommitHook(h *commitHook) func(*options) {
	return func(o *options) { o.hook = h }
}

// commitHook holds a test's step to run just before a commit reaches the
// store. The step says whether it was for that commit: once it was, it is
// dropped, so the commits it makes itself and those after go as usual.
type commitHook struct {
	mu     sync.Mutex
	before func(c *gateway.Commit) bool
}

// set arms the hook with step.
func (h *commitHook) set(step func(c *gateway.Commit) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before = step
}

// fire runs the armed step on c, without the lock: the step may send
// requests whose commits come back through the hook.
func (h *commitHook) fire(c *gateway.Commit) {
	h.mu.Lock()
	step := h.before
	h.mu.Unlock()
	if step == nil || !step(c) {
		return
	}
	h.mu.Lock()
	h.before = nil
	h.mu.Unlock()
}

// hookedStore is the store with a commitHook before each commit; all else
// (the Placer, the queues) is the store's own.
type hookedStore struct {
	*redisstore.Store
	hook *commitHook
}

func (s hookedStore) Commit(ctx context.Context, c *gateway.Commit) (*gateway.CommitResult, error) {
	s.hook.fire(c)
	return s.Store.Commit(ctx, c)
}

// onOneRedis and onCluster choose what a test's Signpost runs on: one
// Redis, or a Redis Cluster of three primaries with a replica each, where
// every change is acknowledged only once its replica has it (as a cluster
// deployment runs with redis_wait_replicas: 1). A test that chooses
// neither runs on one Redis, or on a cluster when the run asks for one
// (SIGNPOST_TEST_SPREAD=cluster); one that stops, fills or measures its
// Redis itself says onOneRedis.
func onOneRedis(o *options) { o.oneRedis = true }
func onCluster(o *options)  { o.cluster = true }

// onto runs a test's Signpost on a cluster the test started (and filled)
// itself.
func onto(c *redistest.Cluster) func(*options) {
	return func(o *options) { o.cluster, o.onto = true, c }
}

// spread makes the store spread referrals over its partitions
// (redisstore.Store.SpreadReferrals).
func spread(o *options) { o.spread = true }

// unspread keeps every key in the legacy partition even in a run that
// forces spreading (SIGNPOST_TEST_SPREAD): for a test about a store that
// does not spread, or one that starts spreading later.
func unspread(o *options) { o.unspread = true }

// onOneRedisAndSpreadOnCluster runs a test on one Redis with a store that
// does not spread (as every deployment runs today), and on a Redis Cluster
// with a store that spreads referrals over its partitions (as
// redis_cluster will): a change's jobs are then in its referral's
// partition, on another primary than what is kept under the plain tag.
func onOneRedisAndSpreadOnCluster(t *testing.T, test func(t *testing.T, on ...func(*options))) {
	t.Run("redis", func(t *testing.T) { test(t, onOneRedis) })
	t.Run("spread cluster", func(t *testing.T) { test(t, spread, onCluster) })
}

// onOneRedisSpreadOrNot runs a test on one Redis with a store that does
// not spread (even in a run that forces spreading) and with one that does.
func onOneRedisSpreadOrNot(t *testing.T, test func(t *testing.T, on ...func(*options))) {
	t.Run("redis", func(t *testing.T) { t.Parallel(); test(t, onOneRedis, unspread) })
	t.Run("spread redis", func(t *testing.T) { t.Parallel(); test(t, onOneRedis, spread) })
}

// onEachRedis runs a test on one Redis and on a Redis Cluster: the same
// test, so that what holds on one holds on the other.
func onEachRedis(t *testing.T, test func(t *testing.T, on func(*options))) {
	t.Run("redis", func(t *testing.T) { test(t, onOneRedis) })
	t.Run("cluster", func(t *testing.T) { test(t, onCluster) })
}

// Synthetic test data: the NHS numbers are the documented test numbers, the
// organisations are made up.
const (
	nhsNumber     = "9434765919"
	nhsNumber2    = "9000000009"
	badNHSNumber  = "3478526985"
	practiceODS   = "A81001"
	gpIdentSystem = "https://example-gp.nhs.uk/referral-id"
)

// callerHeader picks the caller of a test request (authentication proper is
// tested elsewhere); without it the caller is the operator, who sees all.
const callerHeader = "X-Test-Caller"

var testCallers = map[string]gateway.Caller{
	"":           {ClientID: "practice-a", Kind: gateway.CallerOperator, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS}},
	"practice-a": {ClientID: "practice-a", Kind: gateway.CallerGP, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS}},
	"practice-b": {ClientID: "practice-b", Kind: gateway.CallerGP, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "B82002"}},
	"walking":    {ClientID: "walking", Kind: gateway.CallerProvider, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}},
	"advice":     {ClientID: "advice", Kind: gateway.CallerProvider, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X3C4D"}},
}

var testProviders = []gateway.Provider{
	{ID: "walking", Name: "Walking for Health", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"},
		Categories: []string{"physical-activity", "healthy-lifestyle"}},
	{ID: "advice", Name: "Money Advice", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X3C4D"},
		Categories: []string{"money-debt-benefits", "housing", "physical-activity"}},
	{ID: "link", Name: "Link Workers", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X5E6F"},
		Categories: []string{"link-worker", "social-connection"}},
}

func setup(t *testing.T, opts ...func(*options)) *env {
	t.Helper()
	o := options{maxBody: 1 << 20, providers: testProviders}
	for _, f := range opts {
		f(&o)
	}
	o.spread = (o.spread || redistest.SpreadForced()) && !o.unspread
	o.cluster = o.cluster || redistest.ClusterForced() && !o.oneRedis
	e := &env{t: t, logs: &syncBuffer{}, client: &http.Client{}, origins: &registeredOrigins{}}
	if o.cluster {
		c := o.onto
		if c == nil {
			c = redistest.StartCluster(t)
		}
		e.cluster = c
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
	if o.spread {
		e.store.SpreadReferrals()
	}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL + "/fhir"
	store := e.store
	var limiter httpapi.Limiter
	if o.rate > 0 {
		limiter = store.Limiter(o.rate, o.burst)
	}
	var addressLimiter httpapi.Limiter
	if o.addrRate > 0 {
		addressLimiter = store.Limiter(o.addrRate, o.addrBurst)
	}
	var authServer *auth.Server
	if o.smart != nil {
		var err error
		authServer, err = auth.New(auth.Options{Clients: o.smart, TokenURL: httpapi.TokenURL(e.srv.URL),
			Replay: store.AuthStore(), Tokens: store.AuthStore()})
		if err != nil {
			t.Fatal(err)
		}
	}
	var core gateway.Store = store
	if o.hook != nil {
		core = hookedStore{Store: store, hook: o.hook}
	}
	coreOpts := gateway.Options{
		Store:               core,
		Codes:               o.codes,
		Providers:           o.providers,
		TriageUnmapped:      o.triage,
		StrictNHSNumber:     !o.warnNHS,
		FHIRBase:            e.base,
		UnderstoodModifiers: o.understood,
		MaxSubscriptions:    o.maxSubs,
		SubscriberOrigins:   e.origins,
		MeasureRules:        o.measures,
		Now:                 o.now,
	}
	svc := usecases.New(coreOpts)
	e.svc = svc
	e.exportDir = t.TempDir()
	svc.Disclosures = disclosures.New(svc.Core, store)
	// The export runs as if started a little after the test's writes: its
	// snapshot is gateway.FollowLag before it starts, and holds only what
	// was written by then.
	later := coreOpts
	later.Now = func() time.Time { return time.Now().Add(gateway.FollowLag + time.Second) }
	svc.Export = export.New(gateway.NewCore(later), export.Options{Jobs: store, Dir: e.exportDir, Logger: log, PageSize: 3, PseudonymKey: o.pseudonymKey})
	t.Cleanup(svc.Export.Stop) // before the Redis server stops (cleanups run last first)
	mux.Handle("/", httpapi.New(httpapi.Options{
		UseCases: svc, PublicURL: e.srv.URL, MaxBodyBytes: o.maxBody, Logger: log, Auth: authServer, Limiter: limiter, AddressLimiter: addressLimiter, Auditor: store,
		Caller:         func(r *http.Request) (gateway.Caller, error) { return testCallers[r.Header.Get(callerHeader)], nil },
		Capability:     httpapi.CapabilityInfo{Version: "test", AuthMode: "none"},
		TrustedProxies: o.proxies,
	}))
	return e
}

// queued lists the jobs on a queue's streams in every partition the store
// uses (redisstore.Store.Queues, what the workers read), so that a test
// counts the same jobs whether the store spreads referrals or not.
func (e *env) queued(t *testing.T, queue string) []gateway.QueuedJob {
	t.Helper()
	jobs, err := e.store.Queues(queue).List(context.Background())
	if err != nil {
		t.Fatalf("the %s queue: %v", queue, err)
	}
	return jobs
}

// queuedFor counts the jobs on a queue for one event (a delivery job's
// "event": new, cancelled, ...).
func (e *env) queuedFor(t *testing.T, queue, event string) int {
	t.Helper()
	n := 0
	for _, j := range e.queued(t, queue) {
		if j.Fields["event"] == event {
			n++
		}
	}
	return n
}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.body)
	}
	return m
}

func (e *env) do(method, path string, body []byte, headers ...string) *response {
	e.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.base + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) post(path string, body []byte, headers ...string) *response {
	e.t.Helper()
	return e.do(http.MethodPost, path, body, headers...)
}

func (e *env) get(path string, headers ...string) *response {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, headers...)
}

func (e *env) put(path string, body []byte, headers ...string) *response {
	e.t.Helper()
	return e.do(http.MethodPut, path, body, headers...)
}

// must fails the test unless the response has the wanted status.
func (r *response) must(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// referral returns a valid active ServiceRequest for a synthetic patient,
// identified by NHS number, with the given business identifier and code.
func referral(ident, code string) []byte {
	return []byte(`{"resourceType":"ServiceRequest",` +
		`"identifier":[{"system":"` + gpIdentSystem + `","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","priority":"routine",` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + practiceODS + `"}},` +
		`"authoredOn":"2026-11-20T09:30:00Z"}`)
}

// syncBuffer collects logs from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bundleEntries returns the resources of a Bundle's entries with the given
// search mode ("" for all).
func bundleEntries(t *testing.T, r *response, mode string) []map[string]any {
	t.Helper()
	var b struct {
		Total int `json:"total"`
		Entry []struct {
			Resource map[string]any `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("not a Bundle: %v: %s", err, r.body)
	}
	var out []map[string]any
	for _, e := range b.Entry {
		if mode == "" || e.Search.Mode == mode {
			out = append(out, e.Resource)
		}
	}
	return out
}
