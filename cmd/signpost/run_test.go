package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// testConfig is a loopback configuration with one client and two providers.
const testConfig = `listen: "127.0.0.1:0"
public_url: "http://127.0.0.1:8080"
auth: { mode: none }
delivery_timeout: "300ms"
clients:
  - id: practice-a
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "A81001" }
providers:
  - id: walking
    name: "Walking for Health"
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1A2B" }
    categories: [physical-activity]
    delivery: { kind: portal }
  - id: link
    name: "Link Workers"
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X5E6F" }
    categories: [link-worker, money-debt-benefits]
    delivery: { kind: portal }
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// lineWriter hands each line written to it to a channel, so a test can wait
// for "listening on" without sleeping.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 100)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		select {
		case w.lines <- line:
		default:
		}
	}
}

var (
	listening      = regexp.MustCompile(`listening on (http://\S+)`)
	metricsServing = regexp.MustCompile(`metrics on (http://\S+)/metrics`)
)

func waitListening(t *testing.T, lines <-chan string) string {
	t.Helper()
	base, _ := waitServing(t, lines)
	return base
}

// waitServing waits for the API's listener, and returns its base and that
// of the metrics listener, if one was announced before it.
func waitServing(t *testing.T, lines <-chan string) (base, metrics string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l := <-lines:
			if m := metricsServing.FindStringSubmatch(l); m != nil {
				metrics = m[1]
			}
			if m := listening.FindStringSubmatch(l); m != nil {
				return m[1], metrics
			}
		case <-timeout:
			t.Fatal("signpost did not start listening")
		}
	}
}

// serving is a signpost command running in-process for a test.
type serving struct {
	base    string // http://host:port of the listener
	metrics string // http://host:port of the metrics listener, if any
	stderr  *lineWriter
	stop    func() error // cancels the run and returns its error
}

// startSignpost runs signpost with args until stop, once it is listening.
func startSignpost(t *testing.T, args []string, getenv func(string) string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineWriter(), newLineWriter()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, stdout, stderr) }()
	s := &serving{stderr: stderr}
	s.base, s.metrics = waitServing(t, stdout.lines)
	var once sync.Once
	var err error
	s.stop = func() error { once.Do(func() { cancel(); err = <-done }); return err }
	t.Cleanup(func() { _ = s.stop() })
	return s
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig)
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineWriter(), &bytes.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}), stdout, stderr)
	}()
	base := waitListening(t, stdout.lines)
	res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("E2E-1", "390893007")))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", res.StatusCode)
	}
	// One Redis keeps every referral in one partition: ids carry none.
	if id := referralID(res.Header.Get("Location")); id == "" || partitionedID.MatchString(id) {
		t.Errorf("a referral made on one Redis has id %q", id)
	}
	for _, path := range []string{"/healthz", "/readyz", "/fhir/metadata"} {
		res, err := http.Get(base + path)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v %v", path, err, res.StatusCode)
		}
		res.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	if strings.Contains(stderr.String(), "9434765919") {
		t.Error("the NHS number reached the log")
	}
}

func TestBadConfigurationNamesEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "bad.yaml", `listen: "0.0.0.0:8080"
auth: { mode: none }
unmapped: maybe
providers:
  - id: Bad_Id
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1" }
    categories: [gardening]
    delivery: { kind: webhook }
`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "-config", cfg}, env(nil), &stdout, &stderr)
	if err == nil {
		t.Fatal("a bad configuration was accepted")
	}
	for _, want := range []string{"auth.mode", "unmapped", "providers[0].id", "gardening", "providers[0].delivery.url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if exitCode(err) == 0 {
		t.Error("exit code 0")
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", strings.Replace(testConfig, `redis_url`, `# redis_url`, 1)+`redis_url: "redis://127.0.0.1:1/0"`+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, env(map[string]string{"SIGNPOST_CONFIG": cfg, "SIGNPOST_REDIS_URL": r.URL()}), stdout, io.Discard)
	}()
	base := waitListening(t, stdout.lines)
	res, err := http.Get(base + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz with SIGNPOST_REDIS_URL overriding the file: %v %v", err, res.StatusCode)
	}
	res.Body.Close()
	cancel()
	<-done
}

func TestRedisUnreachableAtStartIsExplained(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "signpost.yaml", testConfig)
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineWriter(), newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}), stdout, stderr)
	}()
	base := waitListening(t, stdout.lines)
	res, err := http.Get(base + "/readyz")
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d with Redis down", res.StatusCode)
	}
	for i := range 5 { // each tries Redis again: more of the client's own lines
		res, err = http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON(fmt.Sprintf("U-%d", i), "390893007")))
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("POST with Redis down: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	cancel()
	<-done
	stderr.mu.Lock()
	defer stderr.mu.Unlock()
	var all strings.Builder
	for len(stderr.lines) > 0 {
		all.WriteString(<-stderr.lines)
	}
	out := all.String()
	if !strings.Contains(out, "redis://:xxxxx@127.0.0.1:1/0") || !strings.Contains(out, "redis-server --appendonly yes") {
		t.Errorf("the message does not name the URL tried and how to start Redis:\n%s", out)
	}
	// Not at a terminal (a container's log): JSON lines only, the Redis
	// client's own among them, and one warning for the whole outage.
	if warnings := redisWarnings(t, out); warnings != 1 {
		t.Errorf("%d warnings about Redis for one outage, want 1:\n%s", warnings, out)
	}
	if strings.Contains(out, "hunter2") {
		t.Error("the Redis password reached the output")
	}
}

func TestMappingsCheck(t *testing.T) {
	t.Parallel()
	good := writeFile(t, "codes.csv", "system,code,display,category\nhttp://snomed.info/sct,390893007,Referral to physical activity program,physical-activity\n")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"mappings", "check", good}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "physical") {
		t.Errorf("summary: %s", out.String())
	}
	bad := writeFile(t, "bad.csv", "system,code,display,category\nhttp://snomed.info/sct,390893008,Typo,physical-activity\nhttp://snomed.info/sct,710911006,Housing,nowhere\n")
	err := run(context.Background(), []string{"mappings", "check", bad}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "bad.csv:2") || !strings.Contains(err.Error(), "bad.csv:3") {
		t.Errorf("want both bad lines named, got %v", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if err := run(context.Background(), nil, env(nil), io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("no command: %v", err)
	}
	if err := run(context.Background(), []string{"nonsense"}, env(nil), io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("unknown command: %v", err)
	}
}

func referralJSON(ident, code string) string {
	return `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`
}

// scanLines copies a reader's lines into a channel (for subprocess output).
func scanLines(r io.Reader, lines chan<- string) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		select {
		case lines <- s.Text() + "\n":
		default:
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf

func TestServeWithSMARTAuthentication(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	pub, err := jwk.Import(&key.PublicKey)
	must(t, err)
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set, _ := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	smart := strings.NewReplacer("auth: { mode: none }", "auth: { mode: smart }",
		`organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "A81001" }`,
		`organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "A81001" }`+"\n    auth: { jwks: '"+string(set)+"', scopes: [system/ServiceRequest.cr] }",
		"categories: [physical-activity]", "categories: [physical-activity]\n    auth: { jwks: '"+string(set)+"', scopes: [system/Task.rus] }",
		"categories: [link-worker, money-debt-benefits]", "categories: [link-worker, money-debt-benefits]\n    auth: { jwks: '"+string(set)+"', scopes: [system/Task.rus] }",
	).Replace(testConfig)
	cfg := writeFile(t, "smart.yaml", smart)
	srv := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}))
	base := srv.base
	for path, want := range map[string]int{"/.well-known/smart-configuration": 200, "/fhir/metadata": 200, "/fhir/ServiceRequest": 401} {
		res, err := http.Get(base + path)
		must(t, err)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
	}
	must(t, srv.stop())

	// A client with no keys cannot authenticate: serve says which, and stops.
	noKeys := writeFile(t, "nokeys.yaml", strings.Replace(testConfig, "auth: { mode: none }", "auth: { mode: smart }", 1))
	err = run(context.Background(), []string{"serve", "-config", noKeys}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "practice-a") {
		t.Errorf("serve with keyless clients: %v", err)
	}
}

func TestAuditTail(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	srv := startSignpost(t, []string{"serve", "-config", cfg}, getenv)
	base := srv.base
	res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("AT-1", "390893007")))
	must(t, err)
	res.Body.Close()
	must(t, srv.stop())
	var out bytes.Buffer
	must(t, run(context.Background(), []string{"audit", "tail", "-config", cfg, "-n", "5"}, getenv, &out, io.Discard))
	if !strings.Contains(out.String(), `"resourceType":"AuditEvent"`) || !strings.Contains(out.String(), `"code":"create"`) {
		t.Errorf("audit tail printed:\n%s", out.String())
	}
	if strings.Contains(out.String(), "9434765919") {
		t.Error("audit tail shows an NHS number")
	}
}

func TestDeadLetterListAndReplay(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	var accept atomic.Bool
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if accept.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusBadRequest) // permanent: straight to the dead-letter queue
	}))
	t.Cleanup(stub.Close)
	cfgText := strings.Replace(testConfig, "delivery: { kind: portal }\n  - id: link",
		"delivery: { kind: webhook, url: \""+stub.URL+"\", secret: \"whsec_c3ludGhldGljLXNlY3JldC1mb3ItdGhlLWRscS10ZXN0\" }\n  - id: link", 1) +
		"outbound_allow: [\"127.0.0.0/8\"]\n"
	cfg := writeFile(t, "signpost.yaml", cfgText)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := newLineWriter()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-config", cfg}, getenv, stdout, io.Discard) }()
	base := waitListening(t, stdout.lines)
	res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("DLQ-1", "390893007")))
	must(t, err)
	res.Body.Close()

	var list bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(list.String(), "1 dead letters") {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter listed:\n%s", list.String())
		}
		list.Reset()
		must(t, run(context.Background(), []string{"dlq", "list", "-config", cfg}, getenv, &list, io.Discard))
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(list.String(), "walking") || !strings.Contains(list.String(), "400") {
		t.Errorf("dlq list:\n%s", list.String())
	}
	accept.Store(true)
	var out bytes.Buffer
	must(t, run(context.Background(), []string{"dlq", "replay", "-config", cfg, "-all"}, getenv, &out, io.Discard))
	if !strings.Contains(out.String(), "1 replayed") {
		t.Errorf("dlq replay: %s", out.String())
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(base + "/fhir/Task")
		must(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), `"delivered to Walking for Health"`) && strings.Contains(string(body), `"status":"requested"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after replay: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

// serve -workers=false serves the API and leaves deliveries queued for a
// signpost worker run apart.
func TestServeWithoutWorkersLeavesDeliveriesQueued(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	srv := startSignpost(t, []string{"serve", "-workers=false", "-config", cfg}, getenv)
	base := srv.base
	res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("NW-1", "390893007")))
	must(t, err)
	res.Body.Close()
	time.Sleep(300 * time.Millisecond) // a worker, were one running, would have taken it by now
	if n, _ := r.Client().XLen(context.Background(), "{signpost}:q:delivery").Result(); n != 1 {
		t.Errorf("%d deliveries queued, want 1 left for a worker", n)
	}
	must(t, srv.stop())
	// A worker run apart delivers it (portal: recorded as available in Signpost).
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- run(wctx, []string{"worker", "-config", cfg}, getenv, io.Discard, io.Discard) }()
	deadline := time.Now().Add(10 * time.Second)
	for n := int64(1); n != 0; n, _ = r.Client().XLen(context.Background(), "{signpost}:q:delivery").Result() {
		if time.Now().After(deadline) {
			t.Fatal("signpost worker did not take the delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wcancel()
	must(t, <-wdone)
}

// signpost demo runs the whole loop, time-scaled, and its timeline shows
// each step in order: sent, received, accepted, coded, completed, recorded.
func TestDemoClosesTheLoop(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	stdout := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "-listen", "127.0.0.1:0", "-speed", "0.01"}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}), stdout, io.Discard)
	}()
	// Read the timeline to its last line. Steps the provider prints after
	// its own call returns may come after the GP record's line for the same
	// change, and the GP copy of a Task shows its latest status (a status
	// passed quickly may never be shown, though its outcome is still
	// coded), so only orders that cause and effect guarantee are checked.
	var got []string
	// A bound on liveness, not a speed: time-scaled, the loop closes in
	// seconds, but the demo first hashes two passwords (bcrypt), which
	// under the race detector and a whole parallel suite on two CPUs has
	// taken more than half a minute.
	timeout := time.After(120 * time.Second)
	for len(got) == 0 || !strings.Contains(got[len(got)-1], "The loop is closed") {
		select {
		case line := <-stdout.lines:
			got = append(got, line)
			if strings.Contains(line, "did not close") {
				t.Fatalf("the demo says the loop did not close:\n%s", strings.Join(got, ""))
			}
		case <-timeout:
			t.Fatalf("the timeline stopped:\n%s", strings.Join(got, ""))
		}
	}
	at := func(phrase string) int {
		for i, l := range got {
			if strings.Contains(l, phrase) {
				return i
			}
		}
		t.Errorf("the timeline lacks %q:\n%s", phrase, strings.Join(got, ""))
		return -1
	}
	serving, sent, received := at("Signpost is serving at"), at("sends referral"), at("received the referral (signed webhook msg_")
	accepted, coded, completed := at("accepted the referral"), at("GP record coded the outcome: SNOMED CT 871731000000106"), at("GP record updated: the referral is completed")
	if !(serving < sent && sent < received && received < accepted && accepted < coded && accepted < completed) {
		t.Errorf("the timeline is out of causal order:\n%s", strings.Join(got, ""))
	}
	// The outcome measures: recorded before and after, and the GP record
	// shows the change (the provider says it recorded the second after its
	// call returns, which may be after the GP record has it).
	before, after, change := at("recorded ONS4 and UCLA loneliness at first contact"), at("recorded ONS4 and UCLA loneliness at completion"),
		at("GP record shows ONS4 life satisfaction 3 → 7 (first contact → completion)")
	if !(accepted < before && before < change && after > before) {
		t.Errorf("the measures are missing or out of causal order:\n%s", strings.Join(got, ""))
	}
	// The BaRS sender beside the REST one: its message is taken (200) and
	// routed by destination to the link workers.
	if sentBaRS, took := at("as an NHS BaRS message"), at("Signpost took the BaRS message"); !(serving < sentBaRS && sentBaRS < took) {
		t.Errorf("the BaRS referral is missing or out of order:\n%s", strings.Join(got, ""))
	}
	// Who changed what: every step of the provider is recorded as the
	// provider's (it names itself on its calls), each delivery as
	// Signpost's, none as the practice's or an unknown operator's.
	base := strings.TrimSpace(got[serving][strings.Index(got[serving], "http://"):])
	res, err := http.Get(base + "/Provenance?_count=100")
	must(t, err)
	var provs struct {
		Entry []struct {
			Resource struct {
				Agent []struct {
					Type struct{ Coding []struct{ Code string } }
					Who  struct{ Reference, Display string }
				}
			}
		}
	}
	must(t, json.NewDecoder(res.Body).Decode(&provs))
	res.Body.Close()
	performed, bySignpost := 0, 0
	for _, e := range provs.Entry {
		a := e.Resource.Agent[0]
		switch {
		case a.Type.Coding[0].Code == "custodian" && a.Who.Display == "Signpost" && a.Who.Reference == "":
			bySignpost++
		case a.Type.Coding[0].Code == "performer" && a.Who.Reference == "Organization/leeds-walking":
			performed++
		default:
			t.Errorf("a Provenance names %q (%s) as %s: neither the provider Organization/leeds-walking as performer nor Signpost", a.Who.Reference, a.Who.Display, a.Type.Coding[0].Code)
		}
	}
	if performed < 3 || bySignpost < 1 {
		t.Errorf("%d Provenance records of the provider and %d of Signpost; want its accept, start and complete, and the delivery", performed, bySignpost)
	}

	// The debt advice charity takes referrals only with consent: the demo
	// records it, so its referral is waiting in its inbox, not held.
	var advice struct {
		Entry []struct {
			Resource struct{ Status string }
		}
	}
	getJSON(t, base+"/Task?owner=Organization/citizens-advice-leeds", &advice)
	if len(advice.Entry) != 1 || advice.Entry[0].Resource.Status != "requested" {
		t.Errorf("the debt advice referral: %+v; want one, requested (sent with the consent the demo records)", advice.Entry)
	}

	// The README's "Try it", as written, against the demo.
	tryReadme(t, base)

	// The demo says how the CLI tools reach its data, and they do.
	var export string
	for !strings.Contains(got[len(got)-1], "signpost dlq list") {
		select {
		case line := <-stdout.lines:
			got = append(got, line)
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
				export = v
			}
		case <-timeout:
			t.Fatalf("the demo did not say how the CLI tools reach its data:\n%s", strings.Join(got, ""))
		}
	}
	cli := map[string]string{"SIGNPOST_REDIS_URL": r.URL()} // as the demo was given it
	for _, kv := range strings.Fields(export) {
		k, v, _ := strings.Cut(kv, "=")
		cli[k] = v
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "list"}, "@example.org"},
		{[]string{"audit", "tail", "-n", "5"}, `"resourceType":"AuditEvent"`},
		{[]string{"dlq", "list"}, "0 dead letters"},
	} {
		var out, errOut bytes.Buffer
		if err := run(ctx, c.args, env(cli), &out, &errOut); err != nil || !strings.Contains(out.String(), c.want) || errOut.Len() > 0 {
			t.Errorf("%v with %v (as the demo says): %v\n%s%s", c.args, cli, err, out.String(), errOut.String())
		}
	}
	cancel()
	must(t, <-done)
	for _, nhs := range []string{"9434765919", "9434765870"} {
		if strings.Contains(strings.Join(got, ""), nhs) {
			t.Error("the timeline shows an NHS number")
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig+"metrics_listen: \"127.0.0.1:0\"\n")
	srv := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}))
	base := srv.base
	// Not on the API's listener: there anyone who reaches the API would
	// see traffic by client and route.
	res, err := http.Get(base + "/metrics")
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d, want 404", res.StatusCode)
	}
	if srv.metrics == "" {
		t.Fatal("no metrics listener announced")
	}
	for _, body := range []string{referralJSON("M-1", "390893007"), `{"resourceType":"ServiceRequest"}`} {
		res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(body))
		must(t, err)
		res.Body.Close()
	}
	res, err = http.Get(srv.metrics + "/metrics")
	must(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	text := string(b)
	for _, want := range []string{
		`signpost_referrals_total{category="physical-activity"`,
		`reason="invalid",result="refused"`,
		`http_server_request_duration_seconds_bucket{`,
		`http_route="/fhir/:type"`,
		`signpost_queue_depth{`,
		`queue="delivery"`,
		`signpost_audit_entries `,
		`signpost_redis_memory_used_bytes `,
		`signpost_redis_memory_limit_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "9434765919") {
		t.Error("/metrics shows an NHS number")
	}
	must(t, srv.stop())
}

// A provider's configured services route BaRS messages to it through serve.
func TestServeRoutesBaRSMessagesByConfiguredService(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	conf := strings.Replace(testConfig, "    categories: [physical-activity]\n",
		"    categories: [physical-activity]\n    services: [\"http://fhir.nhs.uk/Id/dos-service-id|111111111\"]\n", 1) + "nhs_number: warn\n"
	cfg := writeFile(t, "signpost.yaml", conf)
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineWriter(), &bytes.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}), stdout, stderr)
	}()
	base := waitListening(t, stdout.lines)
	msg, err := os.Open(filepath.Join("..", "..", "fhir", "testdata", "conformance", "bars", "servicerequest-request-ValidationRequest.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	res, err := http.Post(base+"/fhir/$process-message", "application/fhir+json", msg)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"reference":"Organization/walking"`) {
		t.Errorf("status %d, want 200 and a Task owned by walking: %s", res.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	if strings.Contains(stderr.String(), "3478526985") {
		t.Error("the NHS number reached the log")
	}
}

// serve answers a BaRS sender configured under clients[].bars: once the
// referral its message made is accepted, the sender's endpoint receives the
// servicerequest-response naming that message, with the token from the
// environment variable the configuration names. Refused for good the first
// time, it is a dead letter, and dlq replay sends the same message again.
func TestServeAnswersBaRSSenderAtConfiguredEndpoint(t *testing.T) {
	t.Parallel()
	type call struct{ path, auth, requestID, body string }
	got := make(chan call, 4)
	var accept atomic.Bool
	sender := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- call{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Request-Id"), string(b)}
		if !accept.Load() {
			w.WriteHeader(http.StatusBadRequest) // permanent: straight to the dead-letter queue
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(sender.Close)
	r := redistest.Start(t)
	conf := strings.Replace(testConfig, "    categories: [physical-activity]\n",
		"    categories: [physical-activity]\n    services: [\"http://fhir.nhs.uk/Id/dos-service-id|111111111\"]\n", 1)
	conf = strings.Replace(conf, "value: \"A81001\" }\n", "value: \"A81001\" }\n    bars: { endpoint: \""+sender.URL+"/fhir\", bearer_token_env: \"GP_A_BARS_TOKEN\" }\n", 1)
	cfg := writeFile(t, "signpost.yaml", conf+"nhs_number: warn\noutbound_allow: [\"127.0.0.0/8\"]\n")
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL(), "GP_A_BARS_TOKEN": "synthetic-bars-token"})
	srv := startSignpost(t, []string{"serve", "-config", cfg}, getenv)
	msg, err := os.ReadFile(filepath.Join("..", "..", "fhir", "testdata", "conformance", "bars", "servicerequest-request-ValidationRequest.json"))
	must(t, err)
	res, err := http.Post(srv.base+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(msg))
	must(t, err)
	var answer struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	must(t, json.NewDecoder(res.Body).Decode(&answer))
	res.Body.Close()
	taskID := ""
	for _, e := range answer.Entry {
		if e.Resource.ResourceType == "Task" {
			taskID = e.Resource.ID
		}
	}
	if res.StatusCode != http.StatusOK || taskID == "" {
		t.Fatalf("status %d, Task %q", res.StatusCode, taskID)
	}
	// The delivery worker records the delivery as a Task version of its
	// own, so an accept may meet it (412) and is made again.
	var body []byte
	for range 10 {
		req, _ := http.NewRequest(http.MethodPatch, srv.base+"/fhir/Task/"+taskID, strings.NewReader(`[{"op":"replace","path":"/status","value":"accepted"}]`))
		req.Header.Set("Content-Type", "application/json-patch+json")
		res, err = http.DefaultClient.Do(req)
		must(t, err)
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusPreconditionFailed {
			break
		}
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("accepting: status %d: %s", res.StatusCode, body)
	}
	var first call
	select {
	case first = <-got:
		if first.path != "/fhir/$process-message" || first.auth != "Bearer synthetic-bars-token" ||
			!strings.Contains(first.body, `"response":{"code":"ok","identifier":"86e3371d-1c15-4862-9552-d9560f8292ba"}`) ||
			!strings.Contains(first.body, `"code":"servicerequest-response"`) {
			t.Errorf("the sender got %s with Authorization %q: %s", first.path, first.auth, first.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no BaRS response reached the sender")
	}
	var list bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(list.String(), "1 dead letters") {
		if time.Now().After(deadline) {
			t.Fatalf("the refused response is not a dead letter:\n%s", list.String())
		}
		list.Reset()
		must(t, run(context.Background(), []string{"dlq", "list", "-config", cfg}, getenv, &list, io.Discard))
		time.Sleep(50 * time.Millisecond)
	}
	accept.Store(true)
	var out bytes.Buffer
	must(t, run(context.Background(), []string{"dlq", "replay", "-config", cfg, "-all"}, getenv, &out, io.Discard))
	if !strings.Contains(out.String(), "BaRS response of task "+taskID) || !strings.Contains(out.String(), "1 replayed") {
		t.Errorf("dlq replay: %s", out.String())
	}
	select {
	case again := <-got:
		if again.requestID == "" || again.requestID != first.requestID || again.body != first.body {
			t.Errorf("the replayed response is not the same message: X-Request-Id %q then %q", first.requestID, again.requestID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the replayed response did not reach the sender")
	}
	must(t, srv.stop())
}

// Without authentication a request may name the configured client or
// provider it acts for: it then sees what that one sees, and nothing more.
func TestLocalCallerNamesTheClientItActsFor(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig)
	srv := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}))
	res, err := http.Post(srv.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("L-1", "390893007")))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("referral: %d", res.StatusCode)
	}
	total := func(as string) (int, int) {
		req, _ := http.NewRequest(http.MethodGet, srv.base+"/fhir/Task", nil)
		if as != "" {
			req.Header.Set(httpapi.LocalClientHeader, as)
		}
		res, err := http.DefaultClient.Do(req)
		must(t, err)
		defer res.Body.Close()
		var b struct{ Total int }
		_ = json.NewDecoder(res.Body).Decode(&b)
		return res.StatusCode, b.Total
	}
	for _, c := range []struct {
		as            string
		status, total int
	}{{"", 200, 1}, {"practice-a", 200, 1}, {"walking", 200, 1}, {"link", 200, 0}, {"somebody", 401, 0}} {
		if status, n := total(c.as); status != c.status || n != c.total {
			t.Errorf("as %q: %d with %d Tasks, want %d with %d", c.as, status, n, c.status, c.total)
		}
	}
}

// A pseudonym key set but too short stops serve, naming the variable and
// never the key.
func TestServeRefusesAShortPseudonymKey(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "signpost.yaml", testConfig)
	const short = "synthetic-short-key"
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "-config", cfg},
		env(map[string]string{"SIGNPOST_REDIS_URL": "redis://127.0.0.1:1", "SIGNPOST_PSEUDONYM_KEY": short}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "SIGNPOST_PSEUDONYM_KEY") || strings.Contains(err.Error()+stderr.String(), short) {
		t.Errorf("serve with a short key: %v", err)
	}
}

// tryReadme runs the README's "Try it" commands against a running Signpost
// at base (its /fhir URL): the referral is created (201), the same again is
// a 200 with the same id, and the provider's Task search finds it with its
// referral included.
func tryReadme(t *testing.T, base string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	must(t, err)
	section := string(readme)
	start := strings.Index(section, "## Try it")
	if start < 0 {
		t.Fatal("README has no Try it section")
	}
	section = section[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	body := section[strings.Index(section, "-d '")+4:]
	body = body[:strings.Index(body, "'")]
	m := regexp.MustCompile(`curl -s '(http://127\.0\.0\.1:8080/fhir/Task\?[^']+)'`).FindStringSubmatch(section)
	if m == nil {
		t.Fatal("README's Try it has no Task search")
	}
	search := strings.Replace(m[1], "http://127.0.0.1:8080/fhir", base, 1)
	var ids []string
	for _, want := range []int{http.StatusCreated, http.StatusOK} {
		res, err := http.Post(base+"/ServiceRequest", "application/fhir+json", strings.NewReader(body))
		must(t, err)
		var sr struct{ ID string }
		_ = json.NewDecoder(res.Body).Decode(&sr)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("README's referral: %d, want %d", res.StatusCode, want)
		}
		ids = append(ids, sr.ID)
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("README's referral sent twice: ids %q and %q, want the same", ids[0], ids[1])
	}
	res, err := http.Get(search)
	must(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ServiceRequest/`+ids[0]+`"`) || !strings.Contains(string(b), `"R-0001"`) {
		t.Errorf("README's Task search (%s) does not find the referral and include it: %d %.300s", search, res.StatusCode, b)
	}
}

// redisWarnings checks that out is JSON log lines only and counts the
// warnings about Redis among them.
func redisWarnings(t *testing.T, out string) int {
	t.Helper()
	warnings := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
		if l.Level == "WARN" && strings.Contains(l.Msg, "redis") {
			warnings++
		}
	}
	return warnings
}
