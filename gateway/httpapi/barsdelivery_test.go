package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// barsProvider is a provider's FHIR base receiving BaRS messages at
// $process-message: it records every call and answers with answer (200
// when nil).
type barsProvider struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []barsCall
	answer func(n int) (int, string) // status and body for the n-th call (0-based)
}

func newBarsProvider(t *testing.T, answer func(n int) (int, string)) *barsProvider {
	p := &barsProvider{answer: answer}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		n := len(p.calls)
		status, out := http.StatusOK, ""
		if p.answer != nil {
			status, out = p.answer(n)
		}
		p.calls = append(p.calls, barsCall{path: r.URL.Path, requestID: r.Header.Get("X-Request-Id"), correlationID: r.Header.Get("X-Correlation-Id"),
			contentType: r.Header.Get("Content-Type"), authorization: r.Header.Get("Authorization"), body: body, answered: status})
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *barsProvider) received() []barsCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]barsCall(nil), p.calls...)
}

// startBarsDelivery runs the delivery worker as cmd/signpost wires it, the
// walking provider's delivery kind bars, to p.
func (e *env) startBarsDelivery(p *barsProvider) {
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueDelivery)
	eps := map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "bars", URL: p.srv.URL + "/fhir/", Token: "provider-token"}}
	for _, id := range []string{"advice", "link"} {
		eps[id] = worker.Endpoint{Name: id, Kind: "portal"}
	}
	w := worker.New(worker.Options{Queue: q,
		Handler: &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store, Sender: webhook.NewSender(client, time.Now),
			Endpoints: eps, Retry: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}, Audit: e.store},
		Consumer: "delivery-" + gateway.NewID()[:8], ReclaimIdle: time.Second,
		ReadBlock: 50 * time.Millisecond, PromoteEvery: 5 * time.Millisecond, ErrorPause: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// sentMessage reads a message the provider received, checked as valid R4.
func sentMessage(t *testing.T, c barsCall) (id string, entries []map[string]any, fullURLs []string) {
	t.Helper()
	for _, is := range structure.Validate(c.body).Issues {
		t.Errorf("the message sent is not valid R4: %s %v: %s", is.Code, is.Expression, is.Diagnostics)
	}
	var b struct {
		ID    string `json:"id"`
		Type  string `json:"type"`
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(c.body, &b); err != nil || b.Type != "message" {
		t.Fatalf("not a message Bundle (%v): %s", err, c.body)
	}
	for _, e := range b.Entry {
		entries = append(entries, e.Resource)
		fullURLs = append(fullURLs, e.FullURL)
	}
	return b.ID, entries, fullURLs
}

// taskStatus reads a Task as the operator.
func (e *env) taskStatus(t *testing.T, taskID string) (status, business, version string) {
	t.Helper()
	task := e.get("/Task/"+taskID).must(t, http.StatusOK).json(t)
	bs, _ := task["businessStatus"].(map[string]any)
	codings, _ := bs["coding"].([]any)
	if len(codings) > 0 {
		business, _ = codings[0].(map[string]any)["code"].(string)
	}
	return task["status"].(string), business, task["meta"].(map[string]any)["versionId"].(string)
}

func TestBaRSDeliverySendsTheReferralAsAMessage(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	p := newBarsProvider(t, nil)
	e.startBarsDelivery(p)
	taskID := e.sendExample(t)
	eventually(t, "the delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })

	calls := p.received()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	c := calls[0]
	if c.path != "/fhir/$process-message" || c.contentType != "application/fhir+json" || c.authorization != "Bearer provider-token" {
		t.Errorf("sent to %s, Content-Type %q, Authorization %q", c.path, c.contentType, c.authorization)
	}
	id, entries, urls := sentMessage(t, c)
	if c.requestID != id || c.correlationID == "" {
		t.Errorf("X-Request-Id %q, Bundle.id %q, X-Correlation-Id %q", c.requestID, id, c.correlationID)
	}
	var types []string
	for _, r := range entries {
		types = append(types, r["resourceType"].(string))
	}
	// Then every other entry the GP's message carried, by type.
	const want = "MessageHeader,ServiceRequest,Patient,CarePlan,Consent,Encounter,Flag,HealthcareService,Location,Observation," +
		"Organization,Organization,Organization,Organization,Organization,Practitioner,Practitioner,PractitionerRole,PractitionerRole"
	if strings.Join(types, ",") != want {
		t.Fatalf("entries %v, want %s", types, want)
	}
	// References between entries resolve to entries of the message.
	inMessage := map[string]bool{}
	for _, u := range urls {
		inMessage[u] = true
	}
	for i, r := range entries[1:] {
		raw, _ := json.Marshal(r)
		for _, m := range regexp.MustCompile(`"reference":"([A-Za-z]+/[^"/]+)"`).FindAllStringSubmatch(string(raw), -1) {
			if strings.HasPrefix(m[1], "EpisodeOfCare/") {
				continue // the GP's own reference to a resource its message did not carry
			}
			if !inMessage[e.base+"/"+m[1]] {
				t.Errorf("entry %d (%s) refers to %s, which no entry of the message is", i+1, r["resourceType"], m[1])
			}
		}
	}
	header, sr, patient := entries[0], entries[1], entries[2]
	if ev := header["eventCoding"].(map[string]any); ev["system"] != gateway.BaRSEventSystem || ev["code"] != "servicerequest-request" {
		t.Errorf("eventCoding %v", ev)
	}
	if rc := header["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any); rc["code"] != "new" || rc["system"] != gateway.BaRSReasonSystem {
		t.Errorf("reason %v, want new", rc)
	}
	dest := header["destination"].([]any)[0].(map[string]any)
	if dest["endpoint"] != barsService || dest["receiver"].(map[string]any)["identifier"].(map[string]any)["value"] != "X1A2B" {
		t.Errorf("destination %v, want the provider's service and organisation", dest)
	}
	if src := header["source"].(map[string]any); src["endpoint"] != e.base {
		t.Errorf("source %v, want Signpost's base", src)
	}
	if focus := header["focus"].([]any); len(focus) != 1 || focus[0].(map[string]any)["reference"] != urls[1] {
		t.Errorf("focus %v, want the ServiceRequest entry %s", focus, urls[1])
	}
	if urls[1] != e.base+"/ServiceRequest/"+sr["id"].(string) || urls[2] != e.base+"/Patient/"+patient["id"].(string) {
		t.Errorf("fullUrls %v are not Signpost's URLs of the entries", urls)
	}
	// The subject resolves to the Patient entry: relative to the entry's base.
	if ref := sr["subject"].(map[string]any)["reference"]; e.base+"/"+ref.(string) != urls[2] {
		t.Errorf("ServiceRequest.subject %v does not resolve to the Patient entry %s", ref, urls[2])
	}
}

func TestBaRSDeliveryRetryKeepsTheRequestIDAndDuplicateIsDelivered(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	duplicate := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate","details":{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/http-error-codes","code":"REC_CONFLICT"}]}}]}`
	p := newBarsProvider(t, func(n int) (int, string) {
		if n == 0 {
			return http.StatusServiceUnavailable, "" // it stored the message, and its answer was lost
		}
		return http.StatusConflict, duplicate
	})
	e.startBarsDelivery(p)
	taskID := e.sendExample(t)
	eventually(t, "the delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
	calls := p.received()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	if calls[0].requestID == "" || calls[1].requestID != calls[0].requestID || string(calls[1].body) == "" {
		t.Errorf("X-Request-Id %q then %q: a retry must carry the same", calls[0].requestID, calls[1].requestID)
	}
	first, _, _ := sentMessage(t, calls[0])
	second, _, _ := sentMessage(t, calls[1])
	if first != second {
		t.Errorf("Bundle.id %s then %s: a retry is the same message", first, second)
	}
	if st, _, _ := e.taskStatus(t, taskID); st != "requested" {
		t.Errorf("the Task is %s, want requested (delivered, not failed)", st)
	}
}

// barsAnswerTo is a provider's servicerequest-response to the message
// requestID, whose Task entry (for taskID) has status and, when given, a
// statusReason.
func barsAnswerTo(bundleID, requestID, taskID, status, reason string) []byte {
	task := map[string]any{"resourceType": "Task", "id": taskID, "status": status, "intent": "order"}
	if reason != "" {
		task["statusReason"] = map[string]string{"text": reason}
	}
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": bundleID, "type": "message", "timestamp": "2026-11-21T10:00:00Z",
		"entry": []map[string]any{
			{"fullUrl": "urn:uuid:0d3c2b1a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "resource": map[string]any{
				"resourceType": "MessageHeader",
				"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": "servicerequest-response"},
				"source":       map[string]string{"endpoint": "https://provider.example/fhir"},
				"response":     map[string]string{"identifier": requestID, "code": "ok"},
				"focus":        []map[string]string{{"reference": "urn:uuid:5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"}},
			}},
			{"fullUrl": "urn:uuid:5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "resource": task},
		},
	})
	return b
}

// deliveredReferral sends the example through a bars delivery and returns
// its Task id and the id of the message the provider got.
func deliveredReferral(t *testing.T, e *env) (taskID, sent string) {
	t.Helper()
	p := newBarsProvider(t, nil)
	e.startBarsDelivery(p)
	taskID = e.sendExample(t)
	// Until the worker has recorded the delivery, not only sent it: a
	// response racing that record retries its commit, and tests counting
	// round trips would count the retry.
	eventually(t, "the delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
	sent, _, _ = sentMessage(t, p.received()[0])
	return taskID, sent
}

func TestBaRSProviderResponseMovesTheTask(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	taskID, sent := deliveredReferral(t, e)
	msg := barsAnswerTo("7e6d5c4b-3a29-4f18-9e07-d6c5b4a39281", sent, taskID, "accepted", "")
	r := e.post("/$process-message", msg, callerHeader, "walking", "X-Request-Id", "3f2e1d0c-9b8a-4766-a554-433221100fed").must(t, http.StatusOK)
	st, _, version := e.taskStatus(t, taskID)
	if st != "accepted" {
		t.Fatalf("the Task is %s, want accepted", st)
	}
	if !strings.Contains(string(r.body), `"code":"servicerequest-response"`) || !strings.Contains(string(r.body), `"accepted"`) {
		t.Errorf("the answer does not carry the accepted Task: %s", r.body)
	}
	// Provenance names the provider, as for its own PUT.
	prov := e.get("/Provenance?target=Task/"+taskID).must(t, http.StatusOK)
	if !strings.Contains(string(prov.body), "X1A2B") {
		t.Errorf("no Provenance by the provider: %s", prov.body)
	}

	// The same response again changes nothing, and is answered as before.
	e.post("/$process-message", msg, callerHeader, "walking").must(t, http.StatusOK)
	if _, _, again := e.taskStatus(t, taskID); again != version {
		t.Errorf("a repeated response made version %s (was %s)", again, version)
	}
	// Another response under a used X-Request-Id is a duplicate, nothing changed.
	other := barsAnswerTo("8f7e6d5c-4b3a-4029-8f18-e7d6c5b4a392", sent, taskID, "completed", "")
	d := e.post("/$process-message", other, callerHeader, "walking", "X-Request-Id", "3f2e1d0c-9b8a-4766-a554-433221100fed").must(t, http.StatusConflict)
	if !strings.Contains(string(d.body), `"duplicate"`) {
		t.Errorf("want OperationOutcome duplicate: %s", d.body)
	}
	if st, _, again := e.taskStatus(t, taskID); st != "accepted" || again != version {
		t.Errorf("after a duplicate the Task is %s version %s", st, again)
	}
	// A status that is not the provider's to set is refused as over the API (MayMoveTask).
	back := barsAnswerTo("9a8f7e6d-5c4b-4a30-9f29-f8e7d6c5b4a3", sent, taskID, "requested", "")
	e.post("/$process-message", back, callerHeader, "walking").must(t, http.StatusForbidden)
	// A decline after acceptance needs its reason, as over the API.
	e.post("/$process-message", barsAnswerTo("1a9b8f7e-6d5c-4b41-8a30-a9f8e7d6c5b4", sent, taskID, "failed", ""), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	// Completion moves it on.
	e.post("/$process-message", barsAnswerTo("0b9a8f7e-6d5c-4b41-8a30-a9f8e7d6c5b4", sent, taskID, "completed", ""), callerHeader, "walking").must(t, http.StatusOK)
	if st, _, _ := e.taskStatus(t, taskID); st != "completed" {
		t.Errorf("the Task is %s, want completed", st)
	}
}

func TestBaRSProviderResponseForAnotherProvidersTaskIsNotFound(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	taskID, sent := deliveredReferral(t, e)
	msg := barsAnswerTo("1c0b9a8f-7e6d-4c52-9b41-b0a9f8e7d6c5", sent, taskID, "accepted", "")
	someone := e.post("/$process-message", msg, callerHeader, "advice").must(t, http.StatusNotFound)
	unknown := e.post("/$process-message", barsAnswerTo("2d1c0b9a-8f7e-4d63-8c52-c1b0a9f8e7d6", gateway.NewID(), taskID, "accepted", ""),
		callerHeader, "advice").must(t, http.StatusNotFound)
	for _, r := range []*response{someone, unknown} {
		if !strings.Contains(string(r.body), "REC_NOT_FOUND") || strings.Contains(string(r.body), taskID) {
			t.Errorf("want REC_NOT_FOUND that names nothing: %s", r.body)
		}
	}
	if string(someone.body) != string(unknown.body) {
		t.Errorf("another provider's referral and no referral are told apart:\n%s\n%s", someone.body, unknown.body)
	}
	if st, _, _ := e.taskStatus(t, taskID); st != "requested" {
		t.Errorf("the Task is %s, want requested", st)
	}
}

func TestBaRSProviderResponseByEncounter(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	taskID, sent := deliveredReferral(t, e)
	msg, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": "3e2d1c0b-9a8f-4e74-9d63-d2c1b0a9f8e7", "type": "message", "timestamp": "2026-11-21T10:00:00Z",
		"entry": []map[string]any{
			{"fullUrl": "urn:uuid:4f3e2d1c-0b9a-4f85-8e74-e3d2c1b0a9f8", "resource": map[string]any{
				"resourceType": "MessageHeader",
				"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": "servicerequest-response"},
				"source":       map[string]string{"endpoint": "https://provider.example/fhir"},
				"response":     map[string]string{"identifier": sent, "code": "ok"},
				"focus":        []map[string]string{{"reference": "urn:uuid:50f4e3d2-c1b0-4a96-9f85-f4e3d2c1b0a9"}},
			}},
			{"fullUrl": "urn:uuid:50f4e3d2-c1b0-4a96-9f85-f4e3d2c1b0a9", "resource": map[string]any{
				"resourceType": "Encounter", "status": "cancelled",
				"class":      map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
				"reasonCode": []map[string]string{{"text": "outside the area the service covers"}},
			}},
		},
	})
	e.post("/$process-message", msg, callerHeader, "walking").must(t, http.StatusOK)
	task := e.get("/Task/"+taskID).must(t, http.StatusOK).json(t)
	if task["status"] != "rejected" || task["statusReason"].(map[string]any)["text"] != "outside the area the service covers" {
		t.Errorf("Task %v (%v), want rejected with the Encounter's reason", task["status"], task["statusReason"])
	}
}

func TestBaRSCancellationReachesTheProvider(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	p := newBarsProvider(t, nil)
	e.startBarsDelivery(p)
	taskID := e.sendExample(t)
	eventually(t, "the delivery", func() bool { return len(p.received()) == 1 })
	revoke := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "61a0f4e3-d2c1-4b07-8a96-a5f4e3d2c1b0"
		mh := entryResource(entries, 0)
		mh["reason"] = map[string]any{"coding": []map[string]string{{"system": gateway.BaRSReasonSystem, "code": "update"}}}
		for i := range entries {
			if r := entryResource(entries, i); r["resourceType"] == "ServiceRequest" {
				r["status"] = "revoked"
			}
		}
	})
	e.post("/$process-message", revoke, callerHeader, "practice-a", "X-Request-Id", gateway.NewID()).must(t, http.StatusOK)
	eventually(t, "the cancellation", func() bool { return len(p.received()) == 2 })
	first, _, _ := sentMessage(t, p.received()[0])
	id, entries, _ := sentMessage(t, p.received()[1])
	if id == first {
		t.Errorf("the cancellation reuses the referral's message id %s", id)
	}
	mh, sr := entries[0], entries[1]
	if rc := mh["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any); rc["code"] != "update" {
		t.Errorf("reason %v, want update", rc)
	}
	if sr["resourceType"] != "ServiceRequest" || sr["status"] != "revoked" {
		t.Errorf("entry %v %v, want the ServiceRequest revoked", sr["resourceType"], sr["status"])
	}
	eventually(t, "the cancellation recorded", func() bool {
		st, b, _ := e.taskStatus(t, taskID)
		return st == "cancelled" && b == "cancellation-delivered"
	})
}

func TestBaRSProviderFatalErrorDeclinesWithItsReason(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	taskID, sent := deliveredReferral(t, e)
	msg, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": "72b1a0f4-e3d2-4c18-9b07-b6a5f4e3d2c1", "type": "message", "timestamp": "2026-11-21T10:00:00Z",
		"entry": []map[string]any{
			{"fullUrl": "urn:uuid:83c2b1a0-f4e3-4d29-8c18-c7b6a5f4e3d2", "resource": map[string]any{
				"resourceType": "MessageHeader",
				"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": "servicerequest-response"},
				"source":       map[string]string{"endpoint": "https://provider.example/fhir"},
				"response": map[string]any{"identifier": sent, "code": "fatal-error",
					"details": map[string]string{"reference": "urn:uuid:94d3c2b1-a0f4-4e3a-9d29-d8c7b6a5f4e3"}},
			}},
			{"fullUrl": "urn:uuid:94d3c2b1-a0f4-4e3a-9d29-d8c7b6a5f4e3", "resource": map[string]any{
				"resourceType": "OperationOutcome",
				"issue":        []map[string]string{{"severity": "error", "code": "business-rule", "diagnostics": "the service is closed to new referrals"}},
			}},
		},
	})
	e.post("/$process-message", msg, callerHeader, "walking").must(t, http.StatusOK)
	task := e.get("/Task/"+taskID).must(t, http.StatusOK).json(t)
	reason, _ := task["statusReason"].(map[string]any)["text"].(string)
	if task["status"] != "rejected" || !strings.Contains(reason, "the service is closed to new referrals") {
		t.Errorf("Task %v (%q), want rejected with the OperationOutcome's words", task["status"], reason)
	}
}

// A provider's servicerequest-response that moves nothing (ok, no Task
// entry, no Encounter focus) was still processed: its X-Request-Id is
// kept, so the same X-Request-Id on a later response is the 409 duplicate
// the README and BaRS promise, not a change applied. Keeping it makes no
// Task version, Provenance or notification.
func TestBaRSResponseThatMovesNothingKeepsItsRequestID(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	taskID, sent := deliveredReferral(t, e)
	_, _, version := e.taskStatus(t, taskID)
	notices := len(e.queued(t, gateway.QueueNotify))
	provenances := total(t, e.get("/Provenance?target=Task/"+taskID))
	const rid = "5e4d3c2b-1a09-4f87-a654-3210fedcba98"
	nothing, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": "6f5e4d3c-2b1a-4098-8765-43210fedcba9", "type": "message", "timestamp": "2026-11-21T10:00:00Z",
		"entry": []map[string]any{{"fullUrl": "urn:uuid:7a6f5e4d-3c2b-4a19-8876-543210fedcba", "resource": map[string]any{
			"resourceType": "MessageHeader",
			"eventCoding":  map[string]string{"system": gateway.BaRSEventSystem, "code": "servicerequest-response"},
			"source":       map[string]string{"endpoint": "https://provider.example/fhir"},
			"response":     map[string]string{"identifier": sent, "code": "ok"},
		}}},
	})
	e.post("/$process-message", nothing, callerHeader, "walking", "X-Request-Id", rid).must(t, http.StatusOK)
	if st, _, v := e.taskStatus(t, taskID); st != "requested" || v != version {
		t.Errorf("a response that moves nothing left the Task %s version %s; want requested version %s", st, v, version)
	}
	if n := len(e.queued(t, gateway.QueueNotify)); n != notices {
		t.Errorf("a response that moves nothing queued %d notifications", n-notices)
	}
	if n := total(t, e.get("/Provenance?target=Task/"+taskID)); n != provenances {
		t.Errorf("a response that moves nothing made %d Provenances", n-provenances)
	}
	// The same response (Bundle.id) again is answered as it was.
	e.post("/$process-message", nothing, callerHeader, "walking").must(t, http.StatusOK)

	again := barsAnswerTo("8b7a6f5e-4d3c-4b2a-9987-6543210fedcb", sent, taskID, "accepted", "")
	r := e.post("/$process-message", again, callerHeader, "walking", "X-Request-Id", rid)
	if r.status != http.StatusConflict {
		st, _, _ := e.taskStatus(t, taskID)
		t.Errorf("a response under an X-Request-Id used before was answered %d, not 409 duplicate; the Task is now %s", r.status, st)
	}
	if is := readOutcome(t, r); is[0].Code != "duplicate" {
		t.Errorf("issue code %q, want duplicate", is[0].Code)
	}
	if st, _, v := e.taskStatus(t, taskID); st != "requested" || v != version {
		t.Errorf("after a duplicate the Task is %s version %s", st, v)
	}
}
