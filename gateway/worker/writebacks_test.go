package worker_test

import (
	"context"
	"encoding/json"
	"io"
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
	"github.com/signpost-health/signpost/gateway/writeback"
)

// gpServer is a GP record system's FHIR server as write-back sees it: it
// checks If-Match on every update and honours If-None-Exist on creates.
type gpServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	version  int
	task     map[string]any
	statuses []string // every status written, in order
	ifMatch  []string
	obs      map[string]map[string]any // by identifier
	badMatch int
	// Faults: answer creates without a Location, fail the first Observations,
	// or be down altogether.
	noLocation bool
	obsFail    int
	down       bool
	refused    int // requests answered 503 while down
}

func newGPServer(t *testing.T) *gpServer {
	g := &gpServer{obs: map[string]map[string]any{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			mustBeR4(t, "a write-back", body)
		}
		var res map[string]any
		_ = json.Unmarshal(body, &res)
		etag := func() string { return `W/"` + strconv.Itoa(g.version) + `"` }
		if g.down {
			g.refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/fhir/Task" && strings.Contains(r.URL.RawQuery, "identifier="):
			w.Header().Set("Content-Type", "application/fhir+json")
			if g.task == nil {
				_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","total":0}`))
				return
			}
			_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"resource":{"resourceType":"Task","id":"gp-1","meta":{"versionId":"` + strconv.Itoa(g.version) + `"}}}]}`))
		case r.Method == http.MethodPost && r.URL.Path == "/fhir/Task":
			if g.task != nil && strings.Contains(r.Header.Get("If-None-Exist"), "signpost") {
				w.Header().Set("ETag", etag())
				w.WriteHeader(http.StatusOK)
				return
			}
			g.version = 1
			g.task = res
			g.statuses = append(g.statuses, res["status"].(string))
			if !g.noLocation {
				w.Header().Set("Location", g.srv.URL+"/fhir/Task/gp-1/_history/1")
			}
			w.Header().Set("ETag", etag())
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodPut && r.URL.Path == "/fhir/Task/gp-1":
			g.ifMatch = append(g.ifMatch, r.Header.Get("If-Match"))
			if r.Header.Get("If-Match") != etag() {
				g.badMatch++
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			if res["id"] != "gp-1" {
				t.Errorf("PUT body id %v", res["id"])
			}
			g.version++
			g.task = res
			g.statuses = append(g.statuses, res["status"].(string))
			w.Header().Set("ETag", etag())
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet && r.URL.Path == "/fhir/Task/gp-1":
			w.Header().Set("ETag", etag())
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodPost && r.URL.Path == "/fhir/Observation":
			if g.obsFail > 0 {
				g.obsFail--
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			key := r.Header.Get("If-None-Exist")
			if _, dup := g.obs[key]; dup {
				w.WriteHeader(http.StatusOK)
				return
			}
			g.obs[key] = res
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (e *env) startWriteBacks(targets map[string]*notify.GPServer) {
	e.startWriteBacksRetrying(targets, ms(20, 20, 20))
}

// startWriteBacksRetrying runs write-backs with a retry schedule of the
// test's own, for a test that needs attempts to go on for a while.
func (e *env) startWriteBacksRetrying(targets map[string]*notify.GPServer, retry []time.Duration) {
	q := e.store.Queues(gateway.QueueNotify) // every partition's, as cmd/signpost reads them
	w := newQuickWorker(worker.Options{Queue: q, Handler: &worker.WriteBacks{Queue: q, Domain: e.svc.WriteBack, State: e.store, Targets: targets, Retry: retry},
		Consumer: "wb-" + gateway.NewID()[:8], ReclaimIdle: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// move changes a Task's status (and reason, when given) as the provider
// would.
func (e *env) move(taskID, status, reason string) {
	e.t.Helper()
	members := map[string]any{"status": status}
	if reason != "" {
		members["statusReason"] = map[string]any{"text": reason}
	}
	e.provide(taskID, members)
}

func TestWriteBackFollowsTheTaskIntoTheGPRecord(t *testing.T) {
	t.Parallel()
	onEachRedisSpreadToo(t, testWriteBackFollowsTheTaskIntoTheGPRecord)
}

func testWriteBackFollowsTheTaskIntoTheGPRecord(t *testing.T, on redisKind) {
	t.Parallel()
	e := setup(t, on)
	gp := newGPServer(t)
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e.startWriteBacks(map[string]*notify.GPServer{"practice-a": {Base: gp.srv.URL + "/fhir", Client: client}})
	task := e.refer("WB-1", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "the acceptance in the GP record", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.statuses) > 0 && gp.statuses[len(gp.statuses)-1] == "accepted"
	})
	e.move(task, "in-progress", "")
	e.move(task, "completed", "")
	eventually(t, "completion in the GP record", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.statuses) > 0 && gp.statuses[len(gp.statuses)-1] == "completed"
	})
	// Every change's job is finished once written back: none is left to be
	// taken over and written again.
	eventually(t, "every write-back job finished", func() bool {
		waiting, delayed, pending, _, err := e.store.Queues(gateway.QueueNotify).Stats(context.Background())
		return err == nil && waiting+delayed+pending == 0
	})
	gp.mu.Lock()
	defer gp.mu.Unlock()
	// Never an older status after a newer one, and every update named the
	// version Signpost last wrote.
	order := map[string]int{"accepted": 1, "in-progress": 2, "completed": 3}
	for i := 1; i < len(gp.statuses); i++ {
		if order[gp.statuses[i]] < order[gp.statuses[i-1]] {
			t.Errorf("GP record went back from %s to %s", gp.statuses[i-1], gp.statuses[i])
		}
	}
	if gp.badMatch != 0 {
		t.Errorf("%d updates with a stale If-Match: %v", gp.badMatch, gp.ifMatch)
	}
	// The acceptance is filed as a coded entry, once; completion has no
	// verified code, so none is invented.
	if len(gp.obs) != 1 {
		t.Fatalf("%d outcome entries, want 1: %v", len(gp.obs), gp.obs)
	}
	for _, o := range gp.obs {
		code := o["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)
		based := o["basedOn"].([]any)[0].(map[string]any)
		if code["code"] != "871731000000106" || !strings.HasPrefix(based["reference"].(string), "http://signpost.test/fhir/ServiceRequest/") {
			t.Errorf("outcome entry %v", o)
		}
	}
	ids := gp.task["identifier"].([]any)
	last := ids[len(ids)-1].(map[string]any)
	if last["system"] != writeback.TaskIdentifierSystem || last["value"] != task {
		t.Errorf("GP copy identifier %v", last)
	}
}

// A GP endpoint that fails does not hold up another GP's write-backs.
func TestFailingGPDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gp := newGPServer(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(down.Close)
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e.startWriteBacks(map[string]*notify.GPServer{
		"practice-a": {Base: gp.srv.URL + "/fhir", Client: client},
		"practice-b": {Base: down.URL + "/fhir", Client: client},
	})
	// practice-b's referrals fail to write back; practice-a's go through.
	for i := 0; i < 5; i++ {
		body := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://b.example/id","value":"B-` + strconv.Itoa(i) + `"}],"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}]},"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}},"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B82002"}}}`
		out, err := e.svc.Intake.Create(context.Background(), gateway.Caller{ClientID: "practice-b"}, "ServiceRequest", []byte(body), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids, _, _ := e.store.Search(context.Background(), &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"focus=ServiceRequest/" + out.Resource.ID}}, Count: 1})
		e.move(ids[0], "accepted", "")
	}
	task := e.refer("A-1", "390893007")
	e.move(task, "accepted", "")
	eventually(t, "practice-a's write-back", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.statuses) > 0
	})
}

// A create answered without a Location, and an outcome entry that fails at
// first, do not stop the GP record from following the Task.
func TestWriteBackRecoversAfterALostAnswer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gp := newGPServer(t)
	gp.noLocation, gp.obsFail = true, 1
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e.startWriteBacks(map[string]*notify.GPServer{"practice-a": {Base: gp.srv.URL + "/fhir", Client: client}})
	task := e.refer("LOST-1", "390893007")
	e.move(task, "accepted", "")
	e.move(task, "in-progress", "")
	e.move(task, "completed", "")
	eventually(t, "completion in the GP record, and the acceptance coded", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.statuses) > 0 && gp.statuses[len(gp.statuses)-1] == "completed" && len(gp.obs) == 1
	})
}

// Statuses a Task passed through while the GP server was down are still
// coded when it is back, though the copy jumps to the current status.
func TestWriteBackCodesStatusesPassedThrough(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gp := newGPServer(t)
	gp.mu.Lock()
	gp.down = true
	gp.mu.Unlock()
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	// Retries enough to outlast the outage, which ends once a retry too
	// has been refused.
	e.startWriteBacksRetrying(map[string]*notify.GPServer{"practice-a": {Base: gp.srv.URL + "/fhir", Client: client}}, ms(50, 50, 50, 50, 50, 50, 50, 50, 50, 50))
	task := e.refer("PASS-1", "390893007")
	e.move(task, "accepted", "")
	e.move(task, "in-progress", "")
	eventually(t, "failed attempts while down", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return gp.refused >= 2
	})
	gp.mu.Lock()
	gp.down = false
	gp.mu.Unlock()
	eventually(t, "the acceptance coded after the outage", func() bool {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return len(gp.obs) == 1 && len(gp.statuses) > 0 && gp.statuses[len(gp.statuses)-1] == "in-progress"
	})
}
