package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/worker"
)

// The published example message's Bundle.id: what every response to it names.
const barsExampleID = "86e3371d-1c15-4862-9552-d9560f8292ba"

// barsCall is one request a BaRS sender's endpoint received.
type barsCall struct {
	path, requestID, correlationID, contentType, authorization string
	body                                                       []byte
	answered                                                   int
}

// barsSender is the GP system that sent the BaRS referral, as the receiver
// of Signpost's responses: it records every call and answers the first
// `fail` of them 503.
type barsSender struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []barsCall
	fail  int
}

func newBarsSender(t *testing.T, fail int) *barsSender {
	s := &barsSender{fail: fail}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		c := barsCall{path: r.URL.Path, requestID: r.Header.Get("X-Request-Id"), correlationID: r.Header.Get("X-Correlation-Id"),
			contentType: r.Header.Get("Content-Type"), authorization: r.Header.Get("Authorization"), body: body, answered: http.StatusOK}
		if s.fail > 0 {
			s.fail--
			c.answered = http.StatusServiceUnavailable
		}
		s.calls = append(s.calls, c)
		w.WriteHeader(c.answered)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *barsSender) received() []barsCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]barsCall(nil), s.calls...)
}

// gpRecord is the same GP system's FHIR server as write-back sees it: it
// keeps the statuses of the Task copies written to it.
type gpRecord struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []string
	// observations are the Observations filed, as received.
	observations [][]byte
}

func newGPRecord(t *testing.T) *gpRecord {
	g := &gpRecord{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res struct {
			Status string `json:"status"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &res)
		if r.URL.Path == "/fhir/Observation" {
			g.mu.Lock()
			g.observations = append(g.observations, body)
			g.mu.Unlock()
		}
		if r.URL.Path == "/fhir/Task" || r.URL.Path == "/fhir/Task/gp-1" {
			g.mu.Lock()
			g.statuses = append(g.statuses, res.Status)
			g.mu.Unlock()
			w.Header().Set("Location", "/fhir/Task/gp-1/_history/1")
		}
		w.Header().Set("ETag", `W/"1"`)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gpRecord) written() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.statuses...)
}

// startNotifyWorker runs the notify queue's worker as cmd/signpost wires
// it: write-back to gp for practice-a and, when bars is set, BaRS responses
// to it for barsClient, through the outbound client (loopback allowed).
func (e *env) startNotifyWorker(gp *gpRecord, bars *barsSender, barsClient string) {
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueNotify) // every partition's, as cmd/signpost reads them
	answers := map[string]*notify.BarsEndpoint{}
	if bars != nil {
		answers[barsClient] = &notify.BarsEndpoint{Base: bars.srv.URL + "/fhir", Token: "bars-token", Client: client}
	}
	retry := []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	w := worker.New(worker.Options{Queue: q,
		Handler: &worker.WriteBacks{Queue: q, Domain: e.svc.WriteBack, State: e.store, Retry: retry,
			Targets: map[string]*notify.GPServer{"practice-a": {Base: gp.srv.URL + "/fhir", Client: client}},
			Answers: &worker.BarsResponses{Queue: q, Domain: e.svc.WriteBack, Targets: answers, Retry: retry}},
		Consumer: "notify-" + gateway.NewID()[:8], ReclaimIdle: time.Second,
		ReadBlock: 50 * time.Millisecond, PromoteEvery: 5 * time.Millisecond, ErrorPause: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// eventually polls until ok holds, or fails the test after a few seconds.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendExample posts the published BaRS example as practice-a and returns
// the referral Task's id.
func (e *env) sendExample(t *testing.T) string {
	t.Helper()
	r := e.post("/$process-message", barsExample(t), callerHeader, "practice-a",
		"X-Request-Id", gateway.NewID(), "X-Correlation-Id", gateway.NewID()).must(t, http.StatusOK)
	_, _, task := readBaRSAnswer(t, r)
	id := task["id"].(string)
	if e.store.Spread() && e.store.PlaceOf(id) == "" {
		t.Fatalf("a spreading store made the referral's Task %q outside its partitions", id)
	}
	return id
}

// providerMoves changes the Task's status as the walking provider, through
// the API (JSON Patch), with a statusReason when reason is set.
func (e *env) providerMoves(t *testing.T, taskID, status, reason string) {
	t.Helper()
	patch := `[{"op":"replace","path":"/status","value":"` + status + `"}`
	if reason != "" {
		patch += `,{"op":"add","path":"/statusReason","value":{"text":"` + reason + `"}}`
	}
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(patch+"]"),
		callerHeader, "walking", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
}

// responseMessage reads a servicerequest-response the sender received and
// checks it as a message: valid R4, the MessageHeader first.
func responseMessage(t *testing.T, c barsCall) (bundle map[string]any, header, sr, task map[string]any) {
	t.Helper()
	for _, is := range structure.Validate(c.body).Issues {
		t.Errorf("the response message is not valid R4: %s %v: %s", is.Code, is.Expression, is.Diagnostics)
	}
	if err := json.Unmarshal(c.body, &bundle); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	entries, _ := bundle["entry"].([]any)
	if bundle["type"] != "message" || len(entries) != 3 {
		t.Fatalf("want a message Bundle of MessageHeader, ServiceRequest, Task; got %s", c.body)
	}
	header, sr, task = entryResource(entries, 0), entryResource(entries, 1), entryResource(entries, 2)
	if header["resourceType"] != "MessageHeader" || sr["resourceType"] != "ServiceRequest" || task["resourceType"] != "Task" {
		t.Fatalf("entries are not MessageHeader, ServiceRequest, Task: %s", c.body)
	}
	return bundle, header, sr, task
}

func TestBaRSResponseAnswersTheSenderWhenTheProviderAccepts(t *testing.T) {
	onOneRedisAndSpreadOnCluster(t, testBaRSResponseAnswersTheSenderWhenTheProviderAccepts)
}

func testBaRSResponseAnswersTheSenderWhenTheProviderAccepts(t *testing.T, on ...func(*options)) {
	e := setup(t, append([]func(*options){withBaRSService, withWarnNHS}, on...)...)
	gp, sender := newGPRecord(t), newBarsSender(t, 0)
	e.startNotifyWorker(gp, sender, "practice-a")
	taskID := e.sendExample(t)
	e.providerMoves(t, taskID, "accepted", "")

	eventually(t, "the BaRS response", func() bool { return len(sender.received()) > 0 })
	c := sender.received()[0]
	if c.path != "/fhir/$process-message" || c.contentType != "application/fhir+json" || c.authorization != "Bearer bars-token" {
		t.Errorf("sent to %s with Content-Type %q, Authorization %q", c.path, c.contentType, c.authorization)
	}
	bundle, header, _, task := responseMessage(t, c)
	if c.requestID != bundle["id"] || c.correlationID != barsExampleID {
		t.Errorf("X-Request-Id %q (Bundle.id %v), X-Correlation-Id %q (want the request's id)", c.requestID, bundle["id"], c.correlationID)
	}
	event, _ := header["eventCoding"].(map[string]any)
	if event["system"] != "https://fhir.nhs.uk/CodeSystem/message-events-bars" || event["code"] != "servicerequest-response" {
		t.Errorf("eventCoding = %v", event)
	}
	if resp, _ := header["response"].(map[string]any); resp["identifier"] != barsExampleID || resp["code"] != "ok" {
		t.Errorf("MessageHeader.response = %v, want the request's Bundle.id and ok", header["response"])
	}
	if dest, _ := header["destination"].([]any); len(dest) != 1 || dest[0].(map[string]any)["endpoint"] != sender.srv.URL+"/fhir" {
		t.Errorf("destination = %v, want the sender's endpoint", header["destination"])
	}
	if focus, _ := header["focus"].([]any); len(focus) != 2 || focus[1].(map[string]any)["reference"] != e.base+"/Task/"+taskID {
		t.Errorf("focus = %v, want the ServiceRequest and the Task", header["focus"])
	}
	if task["id"] != taskID || task["status"] != "accepted" {
		t.Errorf("the Task entry is %v at %v, want %s accepted", task["id"], task["status"], taskID)
	}
	// Write-back still happens for the same referral, and each job is
	// finished once: none is left to be taken over and sent again.
	eventually(t, "the write-back of the accepted Task", func() bool {
		for _, s := range gp.written() {
			if s == "accepted" {
				return true
			}
		}
		return false
	})
	e.waitNotifyDrained(t)
	if n := len(sender.received()); n != 1 {
		t.Errorf("%d BaRS responses sent, want 1", n)
	}
}

func TestBaRSResponseResentAfterFailureIsTheSameMessage(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	gp, sender := newGPRecord(t), newBarsSender(t, 2)
	e.startNotifyWorker(gp, sender, "practice-a")
	taskID := e.sendExample(t)
	e.providerMoves(t, taskID, "rejected", "service full")

	eventually(t, "the response taken after two failures", func() bool {
		calls := sender.received()
		return len(calls) >= 3 && calls[len(calls)-1].answered == http.StatusOK
	})
	calls := sender.received()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3 (two refused, then taken)", len(calls))
	}
	first, _, _, task := responseMessage(t, calls[0])
	for i, c := range calls[1:] {
		again, _, _, _ := responseMessage(t, c)
		if again["id"] != first["id"] || c.requestID != calls[0].requestID {
			t.Errorf("attempt %d: Bundle.id %v, X-Request-Id %q; want %v, %q as the first", i+2, again["id"], c.requestID, first["id"], calls[0].requestID)
		}
	}
	reason, _ := task["statusReason"].(map[string]any)
	if task["status"] != "rejected" || reason["text"] != "service full" {
		t.Errorf("the declined Task entry has status %v, statusReason %v", task["status"], task["statusReason"])
	}
}

func TestBaRSResponseOnlyForBaRSReferralsOfClientsWithAnEndpoint(t *testing.T) {
	t.Run("client without bars", func(t *testing.T) {
		e := setup(t, withBaRSService, withWarnNHS)
		gp := newGPRecord(t)
		sender := newBarsSender(t, 0) // the endpoint of another client, practice-b
		e.startNotifyWorker(gp, sender, "practice-b")
		taskID := e.sendExample(t)
		e.providerMoves(t, taskID, "accepted", "")
		e.waitNotifyDrained(t)
		if n := len(sender.received()); n != 0 {
			t.Errorf("%d responses sent to a client without a BaRS endpoint", n)
		}
		if len(gp.written()) == 0 {
			t.Error("nothing written back")
		}
	})
	t.Run("referral not sent as a BaRS message", func(t *testing.T) {
		e := setup(t)
		gp, sender := newGPRecord(t), newBarsSender(t, 0)
		e.startNotifyWorker(gp, sender, "practice-a")
		sr := e.post("/ServiceRequest", referral("R-REST", "390893007"), callerHeader, "practice-a").must(t, http.StatusCreated).json(t)
		task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")[0]
		e.providerMoves(t, task["id"].(string), "accepted", "")
		e.waitNotifyDrained(t)
		if n := len(sender.received()); n != 0 {
			t.Errorf("%d responses sent for a referral made over REST", n)
		}
	})
}

// waitNotifyDrained waits until the notify queue holds no job, waiting,
// delayed or in hand: every write-back and response was dealt with.
func (e *env) waitNotifyDrained(t *testing.T) {
	t.Helper()
	q := e.store.Queues(gateway.QueueNotify)
	eventually(t, "the notify queue to drain", func() bool {
		waiting, delayed, pending, _, err := q.Stats(context.Background())
		return err == nil && waiting+delayed+pending == 0
	})
	dead, err := e.store.Queues(gateway.QueueDeadLetter).List(context.Background())
	if err != nil || len(dead) != 0 {
		t.Errorf("dead letters %d, %v; want none", len(dead), err)
	}
}
