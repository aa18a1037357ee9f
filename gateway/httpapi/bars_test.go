package httpapi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// The published BaRS servicerequest-request (fhir/testdata/conformance/MANIFEST.md):
// unmodified, sent as NHS England wrote it.
var barsExamplePath = filepath.Join("..", "..", "fhir", "testdata", "conformance", "bars", "servicerequest-request-ValidationRequest.json")

// barsService is the destination the published example names.
const barsService = "http://fhir.nhs.uk/Id/dos-service-id|111111111"

// Where the example's entries sit.
const (
	barsHeader  = "Bundle.entry[0].resource"
	barsPatient = "Bundle.entry[5].resource"
)

// withBaRSService makes the walking provider serve the example's destination.
func withBaRSService(o *options) {
	ps := make([]gateway.Provider, len(testProviders))
	copy(ps, testProviders)
	ps[0].Services = []string{barsService}
	o.providers = ps
}

func withWarnNHS(o *options) { o.warnNHS = true }

func barsExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(barsExamplePath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// barsMutant is the example changed by f (decoded, changed, encoded again).
func barsMutant(t *testing.T, f func(bundle map[string]any, entries []any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(barsExample(t), &b); err != nil {
		t.Fatal(err)
	}
	f(b, b["entry"].([]any))
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func entryResource(entries []any, i int) map[string]any {
	return entries[i].(map[string]any)["resource"].(map[string]any)
}

// barsAnswer is the message Bundle answering a request message.
type barsAnswer struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

func readBaRSAnswer(t *testing.T, r *response) (answer barsAnswer, sr, task map[string]any) {
	t.Helper()
	if err := json.Unmarshal(r.body, &answer); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	if answer.ResourceType != "Bundle" || answer.Type != "message" || len(answer.Entry) < 3 {
		t.Fatalf("want a message Bundle with MessageHeader, ServiceRequest and Task; got %s", r.body)
	}
	var header map[string]any
	for i, into := range []*map[string]any{&header, &sr, &task} {
		if err := json.Unmarshal(answer.Entry[i].Resource, into); err != nil {
			t.Fatal(err)
		}
	}
	if header["resourceType"] != "MessageHeader" || sr["resourceType"] != "ServiceRequest" || task["resourceType"] != "Task" {
		t.Fatalf("entries are not MessageHeader, ServiceRequest, Task: %s", r.body)
	}
	if resp, _ := header["response"].(map[string]any); resp["code"] != "ok" || resp["identifier"] == nil {
		t.Errorf("MessageHeader.response = %v, want ok for the message received", header["response"])
	}
	return answer, sr, task
}

// countServiceRequests is how many ServiceRequests practice A holds.
func (e *env) countServiceRequests(t *testing.T) int {
	t.Helper()
	return len(bundleEntries(t, e.get("/ServiceRequest", callerHeader, "practice-a").must(t, 200), "match"))
}

func TestBaRSExampleMessageIsReceivedAndRouted(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	const rid, cid = "c1ab3fba-6bae-4ba4-b257-5a87c44d4a91", "9562466f-c982-4bd5-bb0e-255e9f5e6689"
	r := e.post("/$process-message", barsExample(t), callerHeader, "practice-a", "X-Request-Id", rid, "X-Correlation-Id", cid).must(t, 200)
	if r.header.Get("X-Request-Id") != rid || r.header.Get("X-Correlation-Id") != cid {
		t.Errorf("X-Request-Id %q, X-Correlation-Id %q: not echoed", r.header.Get("X-Request-Id"), r.header.Get("X-Correlation-Id"))
	}
	answer, sr, task := readBaRSAnswer(t, r)
	if !strings.Contains(string(answer.Entry[0].Resource), `"response":{"code":"ok","identifier":"86e3371d-1c15-4862-9552-d9560f8292ba"}`) {
		t.Errorf("MessageHeader does not answer the example message (its Bundle.id): %s", answer.Entry[0].Resource)
	}

	// Audited in the commit that made the referral: the ServiceRequest, the
	// Patient and the 16 other entries it wrote, and nothing of the
	// patient's details.
	events, raw := e.audit(t)
	if len(events) != 1 || events[0].Subtype[0].Code != "operation" || events[0].Action != "C" || events[0].Outcome != "0" ||
		len(events[0].Entity) != 18 || !strings.HasPrefix(events[0].Entity[0].What.Reference, "ServiceRequest/"+sr["id"].(string)) ||
		!strings.HasPrefix(events[0].Entity[1].What.Reference, "Patient/") || !strings.HasPrefix(events[0].Entity[17].What.Reference, "Consent/") {
		t.Errorf("want one audit event of the message naming its ServiceRequest, Patient and every other entry; got\n%s", raw)
	}
	if strings.Contains(raw, badNHSNumber) || strings.Contains(raw, "Julie") {
		t.Error("patient data reached the audit trail")
	}

	// Routed to the provider serving the destination, in its first category
	// (the example's ServiceRequest has no code).
	owner, _ := task["owner"].(map[string]any)
	if owner["reference"] != "Organization/walking" {
		t.Errorf("Task.owner = %v, want Organization/walking (serves %s)", owner, barsService)
	}
	if !strings.Contains(string(answer.Entry[2].Resource), `"code":"physical-activity"`) {
		t.Errorf("Task input category is not walking's first category: %s", answer.Entry[2].Resource)
	}
	if task["status"] != "requested" {
		t.Errorf("Task.status = %v, want requested", task["status"])
	}
	// The subject names the stored Patient, and the encounter the stored
	// Encounter (TestBaRSEveryEntryIsStoredAsReceived reads them all).
	subject, _ := sr["subject"].(map[string]any)
	ref, _ := subject["reference"].(string)
	if !strings.HasPrefix(ref, "Patient/") {
		t.Errorf("ServiceRequest.subject = %v, want the stored Patient", subject)
	}
	if enc, _ := sr["encounter"].(map[string]any); !strings.HasPrefix(fmt.Sprint(enc["reference"]), "Encounter/") {
		t.Errorf("ServiceRequest.encounter = %v, want the stored Encounter", enc)
	}
	// Under nhs_number: warn the example's NHS number (failing Modulus 11) is
	// a warning at its place in the message.
	if len(answer.Entry) != 4 || !strings.Contains(string(answer.Entry[3].Resource), `"expression":["`+barsPatient+`.identifier[0].value"]`) {
		t.Errorf("want a fourth entry warning about %s.identifier[0].value; got %s", barsPatient, r.body)
	}
	if strings.Contains(string(answer.Entry[3].Resource), badNHSNumber) {
		t.Errorf("the warning repeats the NHS number: %s", answer.Entry[3].Resource)
	}

	// Readable, by the GP system and by the provider.
	e.get("/ServiceRequest/"+sr["id"].(string), callerHeader, "practice-a").must(t, 200)
	e.get("/Task/"+task["id"].(string), callerHeader, "practice-a").must(t, 200)
	e.get("/Task/"+task["id"].(string), callerHeader, "walking").must(t, 200)
	e.get("/"+ref, callerHeader, "practice-a").must(t, 200)
	e.get("/Task/"+task["id"].(string), callerHeader, "advice").must(t, 404)
	if logs := e.logs.String(); strings.Contains(logs, badNHSNumber) || strings.Contains(logs, "Julie") {
		t.Error("patient data reached the log")
	}
}

func TestBaRSStrictNHSNumberPolicy(t *testing.T) {
	e := setup(t, withBaRSService)
	r := e.post("/$process-message", barsExample(t), callerHeader, "practice-a").must(t, 400)
	issues := readOutcome(t, r)
	if len(issues) != 1 || len(issues[0].Expression) != 1 || issues[0].Expression[0] != barsPatient+".identifier[0].value" {
		t.Fatalf("want one issue at %s.identifier[0].value; got %s", barsPatient, r.body)
	}
	noPatientData(t, r.body, badNHSNumber, "Julie")
	if n := e.countServiceRequests(t); n != 0 {
		t.Errorf("%d ServiceRequests stored after a refused message", n)
	}

	// The same message for a valid synthetic NHS number is accepted.
	valid := barsMutant(t, func(_ map[string]any, entries []any) {
		entryResource(entries, 5)["identifier"].([]any)[0].(map[string]any)["value"] = nhsNumber
	})
	r = e.post("/$process-message", valid, callerHeader, "practice-a").must(t, 200)
	if _, _, task := readBaRSAnswer(t, r); task["owner"].(map[string]any)["reference"] != "Organization/walking" {
		t.Errorf("Task.owner = %v", task["owner"])
	}
}

func TestBaRSSameMessageTwiceIsOneReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	first := e.post("/$process-message", barsExample(t), callerHeader, "practice-a", "X-Request-Id", "11111111-1111-4111-8111-111111111111").must(t, 200)
	again := e.post("/$process-message", barsExample(t), callerHeader, "practice-a", "X-Request-Id", "22222222-2222-4222-8222-222222222222").must(t, 200)
	_, sr1, task1 := readBaRSAnswer(t, first)
	_, sr2, task2 := readBaRSAnswer(t, again)
	if sr1["id"] != sr2["id"] || task1["id"] != task2["id"] {
		t.Errorf("the same message made two referrals: ServiceRequest %v and %v, Task %v and %v", sr1["id"], sr2["id"], task1["id"], task2["id"])
	}
	if sr1["subject"].(map[string]any)["reference"] != sr2["subject"].(map[string]any)["reference"] {
		t.Errorf("the same message's Patient was stored twice")
	}
	if n := e.countServiceRequests(t); n != 1 {
		t.Errorf("%d ServiceRequests, want 1", n)
	}
	if n := len(bundleEntries(t, e.get("/Patient", callerHeader, "practice-a").must(t, 200), "match")); n != 1 {
		t.Errorf("%d Patients, want 1", n)
	}

	// The same message id saying something else is not silently dropped.
	changed := barsMutant(t, func(_ map[string]any, entries []any) {
		entryResource(entries, 1)["status"] = "on-hold"
	})
	r := e.post("/$process-message", changed, callerHeader, "practice-a").must(t, 409)
	if is := readOutcome(t, r); is[0].Code != "conflict" {
		t.Errorf("issue code %q, want conflict: %s", is[0].Code, r.body)
	}
}

func TestBaRSRepeatedRequestIDIsDuplicate(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	const rid = "33333333-3333-4333-8333-333333333333"
	e.post("/$process-message", barsExample(t), callerHeader, "practice-a", "X-Request-Id", rid).must(t, 200)
	for name, body := range map[string][]byte{
		"the same message": barsExample(t),
		"another message":  barsMutant(t, func(b map[string]any, _ []any) { b["id"] = "0f9b3c1e-6b0a-4c4f-9d61-1a2b3c4d5e6f" }),
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post("/$process-message", body, callerHeader, "practice-a", "X-Request-Id", rid).must(t, 409)
			if r.header.Get("X-Request-Id") != rid {
				t.Errorf("X-Request-Id not echoed on the refusal")
			}
			is := readOutcome(t, r)
			if len(is) != 1 || is[0].Code != "duplicate" || is[0].Details == nil || len(is[0].Details.Coding) != 1 ||
				is[0].Details.Coding[0].Code != "REC_CONFLICT" || is[0].Details.Coding[0].System != "https://fhir.nhs.uk/CodeSystem/http-error-codes" {
				t.Errorf("want one issue, duplicate, REC_CONFLICT; got %s", r.body)
			}
			if n := e.countServiceRequests(t); n != 1 {
				t.Errorf("%d ServiceRequests, want 1: a duplicate request changed something", n)
			}
		})
	}
	// Another client's request id is its own.
	e.post("/$process-message", barsMutant(t, func(b map[string]any, _ []any) { b["id"] = "5d3a7b9e-0c1f-4e2a-8b6d-7f8e9a0b1c2d" }),
		callerHeader, "practice-b", "X-Request-Id", rid).must(t, 200)
}

func TestBaRSMutantsAreRefusedAtTheElement(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	cases := []struct {
		name   string
		change func(b map[string]any, entries []any)
		status int
		code   string // issue.code
		bars   string // details.coding code
		expr   string
		prefix bool
	}{
		{"not a message Bundle", func(b map[string]any, _ []any) { b["type"] = "transaction" },
			400, "invalid", "REC_BAD_REQUEST", "Bundle.type", false},
		{"MessageHeader not first", func(b map[string]any, entries []any) { entries[0], entries[1] = entries[1], entries[0] },
			400, "structure", "REC_BAD_REQUEST", barsHeader, false},
		{"another event", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["eventCoding"].(map[string]any)["code"] = "booking-request"
		}, 422, "not-supported", "REC_UNPROCESSABLE_ENTITY", barsHeader + ".eventCoding.code", false},
		{"event in another system", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["eventCoding"].(map[string]any)["system"] = "https://fhir.nhs.uk/CodeSystem/message-event-servicerequest"
		}, 400, "value", "REC_BAD_REQUEST", barsHeader + ".eventCoding.system", false},
		{"reason not BaRS's", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "cancel"
		}, 422, "not-supported", "REC_UNPROCESSABLE_ENTITY", barsHeader + ".reason.coding[0].code", false},
		{"focus not resolving", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["focus"].([]any)[0].(map[string]any)["reference"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
		}, 400, "invalid", "REC_BAD_REQUEST", barsHeader + ".focus[0].reference", false},
		{"focus on another resource", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["focus"].([]any)[0].(map[string]any)["reference"] = "urn:uuid:9589fb37-87a2-48d8-968f-b371429208a8"
		}, 400, "invalid", "REC_BAD_REQUEST", barsHeader + ".focus[0].reference", false},
		{"unknown destination", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["destination"].([]any)[0].(map[string]any)["endpoint"] = "http://fhir.nhs.uk/Id/dos-service-id|999999999"
		}, 422, "not-supported", "REC_UNPROCESSABLE_ENTITY", barsHeader + ".destination[0].endpoint", false},
		{"invalid R4 entry", func(_ map[string]any, entries []any) {
			entryResource(entries, 3)["status"] = 5 // Encounter.status is a code: a JSON string
		}, 400, "", "REC_BAD_REQUEST", "Bundle.entry[3].resource.status", false},
		{"element unknown to R4", func(_ map[string]any, entries []any) {
			entryResource(entries, 1)["colour"] = "blue"
		}, 400, "", "REC_BAD_REQUEST", "Bundle.entry[1].resource.colour", true},
		{"no message id", func(b map[string]any, _ []any) { delete(b, "id") },
			400, "required", "REC_BAD_REQUEST", "Bundle.id", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post("/$process-message", barsMutant(t, tc.change), callerHeader, "practice-a").must(t, tc.status)
			is := readOutcome(t, r)
			if len(is) == 0 || len(is[0].Expression) == 0 {
				t.Fatalf("no issue with an expression: %s", r.body)
			}
			got := is[0]
			if tc.prefix && !strings.HasPrefix(got.Expression[0], tc.expr) || !tc.prefix && got.Expression[0] != tc.expr {
				t.Errorf("expression %q, want %q: %s", got.Expression[0], tc.expr, r.body)
			}
			if tc.code != "" && got.Code != tc.code {
				t.Errorf("issue code %q, want %q", got.Code, tc.code)
			}
			if got.Details == nil || len(got.Details.Coding) == 0 || got.Details.Coding[0].Code != tc.bars {
				t.Errorf("details.coding is not %s: %s", tc.bars, r.body)
			}
			noPatientData(t, r.body, badNHSNumber, "Julie")
			if n := e.countServiceRequests(t); n != 0 {
				t.Errorf("%d ServiceRequests stored after a refused message", n)
			}
		})
	}
}

func TestBaRSIsForGPSystems(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	e.post("/$process-message", barsExample(t), callerHeader, "walking").must(t, 403)
	if n := e.countServiceRequests(t); n != 0 {
		t.Errorf("%d ServiceRequests stored for a provider's message", n)
	}
}

func TestBaRSCapabilityStatementListsProcessMessage(t *testing.T) {
	e := setup(t)
	r := e.get("/metadata").must(t, 200)
	if !strings.Contains(string(r.body), `"name":"process-message"`) ||
		!strings.Contains(string(r.body), `"definition":"http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"`) {
		t.Errorf("CapabilityStatement lists no process-message operation: %s", r.body)
	}
	var cs struct {
		Messaging []struct {
			Endpoint []struct {
				Protocol struct{ Code string }
				Address  string
			}
			SupportedMessage []struct{ Mode, Definition string }
		}
	}
	if err := json.Unmarshal(r.body, &cs); err != nil {
		t.Fatal(err)
	}
	const def = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-"
	want := []struct{ Mode, Definition string }{{"receiver", def + "request-referral"}, {"sender", def + "request-referral"}}
	if len(cs.Messaging) != 1 || len(cs.Messaging[0].Endpoint) != 1 || cs.Messaging[0].Endpoint[0].Protocol.Code != "http" ||
		!strings.HasSuffix(cs.Messaging[0].Endpoint[0].Address, "/fhir") || !slices.Equal(cs.Messaging[0].SupportedMessage, want) {
		t.Errorf("CapabilityStatement.messaging = %+v, want the BaRS referral request, received and sent, over HTTP at the FHIR base", cs.Messaging)
	}
}

// A referral with a business identifier sent again in another message (a
// new Bundle.id) is the referral it made, as over REST.
func TestBaRSSameReferralInAnotherMessage(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	withIdentifier := func(bundleID string) []byte {
		return barsMutant(t, func(b map[string]any, entries []any) {
			b["id"] = bundleID
			entryResource(entries, 1)["identifier"] = []any{map[string]any{"system": gpIdentSystem, "value": "BARS-1"}}
		})
	}
	_, sr1, task1 := readBaRSAnswer(t, e.post("/$process-message", withIdentifier("86e3371d-1c15-4862-9552-d9560f8292ba"), callerHeader, "practice-a").must(t, 200))
	_, sr2, task2 := readBaRSAnswer(t, e.post("/$process-message", withIdentifier("7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"), callerHeader, "practice-a").must(t, 200))
	if sr1["id"] != sr2["id"] || task1["id"] != task2["id"] {
		t.Errorf("one referral identifier made two referrals")
	}
	if n := len(bundleEntries(t, e.get("/Patient", callerHeader, "practice-a").must(t, 200), "match")); n != 1 {
		t.Errorf("%d Patients, want 1", n)
	}
	// For another patient, it is not the same referral, and not dropped silently.
	other := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
		entryResource(entries, 1)["identifier"] = []any{map[string]any{"system": gpIdentSystem, "value": "BARS-1"}}
		entryResource(entries, 5)["identifier"].([]any)[0].(map[string]any)["value"] = nhsNumber2
	})
	r := e.post("/$process-message", other, callerHeader, "practice-a").must(t, 409)
	if is := readOutcome(t, r); is[0].Code != "conflict" || len(is[0].Expression) == 0 || is[0].Expression[0] != barsPatient {
		t.Errorf("want a conflict at %s: %s", barsPatient, r.body)
	}
	noPatientData(t, r.body, nhsNumber2, "Julie")
}

// The same message sent concurrently (a sender's retries crossing) is one
// referral with one Patient: the commit checks the message id atomically.
func TestBaRSConcurrentRepeatsAreOneReferral(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	const n = 8
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.post("/$process-message", barsExample(t), callerHeader, "practice-a")
			if r.status != 200 {
				t.Errorf("status %d: %s", r.status, r.body)
				ids <- ""
				return
			}
			var b barsAnswer
			_ = json.Unmarshal(r.body, &b)
			var sr map[string]any
			_ = json.Unmarshal(b.Entry[1].Resource, &sr)
			ids <- sr["id"].(string)
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Errorf("%d referrals from one message sent %d times concurrently", len(seen), n)
	}
	if c := e.countServiceRequests(t); c != 1 {
		t.Errorf("%d ServiceRequests, want 1", c)
	}
	if c := len(bundleEntries(t, e.get("/Patient", callerHeader, "practice-a").must(t, 200), "match")); c != 1 {
		t.Errorf("%d Patients, want 1", c)
	}
}

// $process-message makes a referral: under SMART it needs the ServiceRequest
// create scope, whatever else the token holds.
func TestBaRSNeedsServiceRequestCreateScope(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS, func(o *options) { o.smart = smartClients(t) })
	readOnly := e.token(t, "practice-a", "system/ServiceRequest.rs system/Task.rs system/Patient.cru")
	r := e.post("/$process-message", barsExample(t), bearer(readOnly)...).must(t, 403)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	// The example's other entries (Consent, Encounter, …) need their own
	// create scopes (TestBaRSEntriesNeedTheirCreateScope).
	creates := e.token(t, "practice-a", "system/ServiceRequest.c "+barsEntryScopes(t, "c", ""))
	e.post("/$process-message", barsExample(t), bearer(creates)...).must(t, 200)
}

// A BaRS update or delete changes a referral as a PUT of its
// ServiceRequest does, so beside the create scope of the door it needs the
// update scope: a token that may create referrals and not update them
// (system/ServiceRequest.c) neither withdraws nor rewrites them.
func TestBaRSChangeNeedsServiceRequestUpdateScope(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS, func(o *options) { o.smart = smartClients(t) })
	createOnly := e.token(t, "practice-a", "system/ServiceRequest.c "+barsEntryScopes(t, "c", ""))
	full := e.token(t, "practice-a", "system/ServiceRequest.rs")
	_, sr, _ := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), bearer(createOnly)...).must(t, 200))
	srID := sr["id"].(string)
	withdraw := barsChange(t, "2c3d4e5f-6a7b-4c8d-8e9f-0a1b2c3d4e5f", "delete", nil)
	r := e.post("/$process-message", withdraw, bearer(createOnly)...)
	if r.status != 403 {
		got := e.get("/ServiceRequest/"+srID, bearer(full)...).json(t)
		t.Errorf("a create-only token withdrew a referral through a delete message (answer %d, ServiceRequest now %v); its PUT needs system/ServiceRequest.u",
			r.status, got["status"])
	}
	rewrite := barsChange(t, "3d4e5f6a-7b8c-4d9e-9f0a-1b2c3d4e5f6a", "update", func(sr map[string]any) { sr["status"] = "on-hold" })
	r = e.post("/$process-message", rewrite, bearer(createOnly)...).must(t, 403)
	if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, "insufficient_scope") || !strings.Contains(h, "system/ServiceRequest.u") {
		t.Errorf("WWW-Authenticate = %q, want insufficient_scope naming system/ServiceRequest.u", h)
	}
	got := e.get("/ServiceRequest/"+srID, bearer(full)...).must(t, 200).json(t)
	if got["status"] != "active" || got["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("refused changes changed the referral: %v version %v", got["status"], got["meta"])
	}
	// With the update scope the same change is made.
	updates := e.token(t, "practice-a", "system/ServiceRequest.cu")
	_, sr, _ = readBaRSAnswer(t, e.post("/$process-message", rewrite, bearer(updates)...).must(t, 200))
	if sr["status"] != "on-hold" {
		t.Errorf("with system/ServiceRequest.cu the update left the referral %v, want on-hold", sr["status"])
	}
}
