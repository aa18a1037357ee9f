package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/mappings"
)

// runDemo is `signpost demo`: the whole closed loop on one machine, for a
// newcomer. Signpost, an example provider that accepts and later completes
// referrals, and an example GP record that receives every change; a few
// example referrals; a timeline as it happens; then it keeps serving.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "where Signpost listens (loopback)")
	speed := fs.Float64("speed", 1, "pace of the example provider: 1 is the normal pace, 0.1 ten times faster")
	dataDir := fs.String("data", defaultDemoData(), "where a local redis-server keeps the demo's data, if one has to be started")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tl := newTimeline(stdout)
	fmt.Fprintln(stdout, "Signpost demo: a GP refers, a provider receives and acts, the GP record learns of it.")

	// The Redis client's own lines go through the log from the first
	// client on (demoRedis tries the default Redis), and stop when the demo
	// returns.
	log := slog.New(telemetry.LogHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	clientLog := redisstore.RouteClientLogs(log)
	defer clientLog.Close()
	redisURL, stopRedis, err := demoRedis(ctx, getenv, *dataDir, tl)
	if err != nil {
		return err
	}
	defer stopRedis()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	clientLog.Watch(rdb)

	gp, err := startGPRecord(tl)
	if err != nil {
		return err
	}
	defer gp.Close()
	secret := demoSecret()
	prov, err := startDemoProvider(tl, secret, *speed)
	if err != nil {
		return err
	}
	defer prov.Close()

	addrPort, err := concreteAddr(*listen)
	if err != nil {
		return err
	}
	cfg := demoConfig(addrPort, "http://"+gp.Addr().String()+"/fhir", "http://"+prov.Addr().String()+"/referrals", secret)
	cfg.RedisURL = redisURL
	if err := cfg.Validate(mappings.IsCategory); err != nil {
		return err
	}
	stopTracing, err := telemetry.StartTracing(ctx, getenv, "signpost-demo", buildVersion())
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(sctx)
	}()
	a := assemble(cfg, mappings.Default(), rdb, log, getenv)
	ready := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- serveApp(ctx, a, true, getenv, io.Discard, func(addr net.Addr) { ready <- addr }) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-served:
		return err
	}
	base := "http://" + addr.String() + "/fhir"
	tl.event("Signpost is serving at %s", base)

	run := strconv.FormatInt(time.Now().Unix(), 36) // this run's referral identifiers and accounts
	webSignIn, err := demoAccounts(ctx, a, run)
	if err != nil {
		return fmt.Errorf("making the demo's web accounts: %w", err)
	}
	if err := sendDemoPatient(base, run); err != nil {
		return fmt.Errorf("sending the example patient: %w", err)
	}
	tl.event("GP (Example Surgery) records the patient's consent to share their details with Citizens Advice Leeds")
	if err := sendDemoConsent(base, run); err != nil {
		return fmt.Errorf("sending the example consent: %w", err)
	}
	for _, r := range []struct{ ident, code, what string }{
		{"DEMO-" + run + "-1", "390893007", "a walking group (physical activity)"},
		{"DEMO-" + run + "-2", "710913009", "debt advice (money, debt and benefits)"},
		{"DEMO-" + run + "-3", "41920009", "help with social needs (for a link worker)"},
	} {
		// Said before sending: the provider may hear of it before the
		// GP's own call returns.
		tl.event("GP (Example Surgery) sends referral %s: %s", r.ident, r.what)
		if err := sendDemoReferral(base, r.ident, r.code, run); err != nil {
			return fmt.Errorf("sending an example referral: %w", err)
		}
	}
	// The same GP system speaks NHS BaRS too: one referral goes as a
	// message Bundle to $process-message, routed by its destination.
	tl.event("GP (Example Surgery) sends referral DEMO-%s-4 as an NHS BaRS message to the link workers' service", run)
	if err := sendDemoBaRSReferral(base, run); err != nil {
		return fmt.Errorf("sending the example BaRS message: %w", err)
	}
	tl.event("Signpost took the BaRS message: Leeds Link Workers will find it in their inbox")
	select {
	case <-prov.done:
	case err := <-served:
		return err
	case <-ctx.Done():
		return <-served
	}
	if prov.failed.Load() {
		tl.event("The provider could not update the referral through Signpost's API: the loop did not close.")
	} else {
		// The loop is closed when the GP record says so, not when the
		// provider has finished: write-back is asynchronous.
		select {
		case <-gp.closed:
			tl.event("The loop is closed: the GP record shows the referral completed, coded when a code is known, and how the person's well-being and loneliness changed.")
		case <-time.After(demoWriteBackWait):
			tl.event("The GP record has not shown the completed, coded referral within %s: the loop did not close.", demoWriteBackWait)
		case err := <-served:
			return err
		case <-ctx.Done():
			return <-served
		}
	}
	fmt.Fprintf(stdout, `
Signpost keeps serving until Ctrl-C. Try:
  curl -s '%[1]s/Task?_include=Task:focus'                      # every referral Task, with its referral
  curl -s '%[1]s/Task?owner=Organization/citizens-advice-leeds' # the referral waiting in a provider's inbox
  curl -s '%[1]s/Provenance'                                    # who changed what
  curl -s '%[1]s/metadata'                                      # what the API supports
%[2]s
%[3]s`, base, webSignIn, demoCLI(redisURL, getenv))
	return <-served
}

// demoConfig is the demo's configuration: loopback, no authentication,
// unknown codes to the link worker, one GP system and three providers.
func demoConfig(listen, gpBase, providerURL, secret string) config.Config {
	cfg := config.Default()
	cfg.RedisNamespace = demoNamespace
	cfg.Listen = listen
	cfg.PublicURL = "http://" + listen
	cfg.Auth.Mode = config.AuthNone
	cfg.Unmapped = config.UnmappedTriage
	cfg.NHSNumber = config.NHSNumberStrict
	cfg.RateLimit.PerSecond = 0
	cfg.DeliveryTimeout = 5 * time.Second
	cfg.DeliveryRetry = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}
	cfg.OutboundAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	ods := func(v string) config.Identifier {
		return config.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: v}
	}
	cfg.Organizations = []config.Organization{{ODS: "A81001", Name: "Example Surgery"}} // the practice, as the pages name it
	// Every provider asks ONS4 and the UCLA loneliness scale before and after.
	cfg.Measures = []config.MeasureRule{{Categories: []string{config.AllCategories}, Questionnaires: []string{"ons4", "ucla3"},
		At: []config.MeasurePoint{config.MeasureFirstContact, config.MeasureCompletion}}}
	cfg.Clients = []config.Client{{ID: demoGP, Name: "Example Surgery", Organization: ods("A81001"),
		Notify: &config.Notify{FHIRBase: gpBase}}}
	cfg.Providers = []config.Provider{
		{ID: demoWalking, Name: "Leeds Walking for Health", Organization: ods("X1A2B"), Categories: []string{"physical-activity", "healthy-lifestyle"},
			Delivery: config.Delivery{Kind: config.DeliveryWebhook, URL: providerURL, Secret: secret, Payload: config.PayloadThin}},
		// A charity that takes referrals only with the patient's consent,
		// and sees only what it needs to make contact.
		{ID: "citizens-advice-leeds", Name: "Citizens Advice Leeds", Organization: ods("X3C4D"), Categories: []string{"money-debt-benefits", "housing", "legal-advice"},
			Delivery: config.Delivery{Kind: config.DeliveryPortal, Payload: config.PayloadThin}, Consent: config.ConsentRequired, Share: "minimal"},
		{ID: "leeds-link-workers", Name: "Leeds Link Workers", Organization: ods("X5E6F"), Services: []string{demoLinkWorkerService},
			Categories: []string{"link-worker", "social-connection", "community-activities", "peer-support", "carers", "emotional-support", "mental-wellbeing", "food", "learning", "employment", "arts", "substance-use"},
			Delivery:   config.Delivery{Kind: config.DeliveryPortal, Payload: config.PayloadThin}, NHS: true, Consent: config.ConsentNotRequired},
	}
	cfg.ShareProfiles = []config.ShareProfile{{Name: "minimal", Elements: []string{"name", "telecom", "reasonCode", "note"}}}
	return cfg
}

// The demo's GP system and the provider that answers its webhooks, as
// configured; each names itself on its calls (httpapi.LocalClientHeader).
const (
	demoGP      = "practice-a"
	demoWalking = "leeds-walking"
)

// demoNamespace keeps the demo's keys ({signpost-demo}:…) apart from a
// Signpost server's on a Redis they share.
const demoNamespace = "signpost-demo"

// demoCLI tells how the CLI tools reach the demo's data: its namespace, and
// its Redis when that is not the one they would use anyway. A Redis named
// by SIGNPOST_REDIS_URL is not repeated (it may hold a password): the
// variable already names it.
func demoCLI(redisURL string, getenv func(string) string) string {
	vars := config.EnvRedisNamespace + "=" + demoNamespace
	note := ""
	switch {
	case redisURL == getenv(config.EnvRedisURL):
		note = " (with " + config.EnvRedisURL + " as it is set for the demo)"
	case redisURL != config.Default().RedisURL: // the demo's own redis-server
		vars = config.EnvRedisURL + "=" + redisURL + " " + vars
		note = " (while the demo runs: it stops that redis-server)"
	}
	return fmt.Sprintf(`The CLI tools reach the demo's data%[2]s with:
  export %[1]s
  signpost users list        # the demo's web accounts
  signpost audit tail -n 5   # the latest audit records
  signpost dlq list          # deliveries that failed for good
(signpost is go run ./cmd/signpost in a checkout.)
`, vars, note)
}

// demoLinkWorkerService is the link workers' service as NHS systems address
// it in a BaRS message (a synthetic Directory of Services id).
const demoLinkWorkerService = "http://fhir.nhs.uk/Id/dos-service-id|1000000001"

// demoRedis finds a Redis for the demo: SIGNPOST_REDIS_URL or the default,
// else a redis-server it starts itself, persistent under dir.
func demoRedis(ctx context.Context, getenv func(string) string, dir string, tl *timeline) (string, func(), error) {
	url := getenv("SIGNPOST_REDIS_URL")
	if url == "" {
		url = config.Default().RedisURL
	}
	// Whether anything listens is asked first without a Redis client: a
	// client's failed dials are logged as an outage, and here they are
	// only the demo finding it must start its own.
	if opt, err := redis.ParseURL(url); err == nil && accepting(opt.Network, opt.Addr) {
		c := redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		c.Close()
		if err == nil {
			tl.event("Using the Redis at %s (the demo's keys are apart from Signpost's)", redactedURL(url))
			return url, func() {}, nil
		}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("no Redis answers at " + redactedURL(url) + " and redis-server is not installed: install it (apt-get install redis-server) or set SIGNPOST_REDIS_URL")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--maxmemory-policy", "noeviction", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	url = "redis://127.0.0.1:" + port + "/0"
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	for i := 0; !accepting("tcp", "127.0.0.1:"+port) || c.Ping(ctx).Err() != nil; i++ {
		if i > 100 {
			_ = cmd.Process.Kill()
			return "", nil, errors.New("the local redis-server did not start; see " + filepath.Join(dir, "redis.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tl.event("Started a local redis-server at %s, keeping its data in %s", url, dir)
	return url, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

// accepting reports whether anything accepts connections at addr.
func accepting(network, addr string) bool {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func defaultDemoData() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "signpost-demo")
	}
	return filepath.Join(os.TempDir(), "signpost-demo")
}

func redactedURL(u string) string {
	c := config.Default()
	c.RedisURL = u
	return c.RedisURLRedacted()
}

func demoSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

// sendDemoReferral sends an active referral for a synthetic patient (the
// NHS number is a published test number).
// demoAccounts makes this run's web accounts, each with a new random
// password, and says how to sign in. The addresses carry the run's id: the
// demo's data persists between runs, and an account is never overwritten.
func demoAccounts(ctx context.Context, a *app, run string) (string, error) {
	staff, lead := "advice-"+run+"@example.org", "lead-"+run+"@example.org"
	password := demoSecret()[6:30]
	for _, u := range [][2]string{{"citizens-advice-leeds", staff}, {"", lead}} {
		user, err := account.NewPortalUser(u[1], u[0], password, time.Now())
		if err != nil {
			return "", err
		}
		if err := a.store.AddUser(ctx, user); err != nil {
			return "", err
		}
	}
	site := a.cfg.PublicURL
	return fmt.Sprintf(`
Web pages (the password is new with each demo run: %[4]s):
  %[1]s/portal/    the referral inbox of Citizens Advice Leeds: sign in as %[2]s
  %[1]s/insights/  the outcomes view for commissioners: sign in as %[3]s
`, site, staff, lead, password), nil
}

// sendDemoPatient sends the synthetic person the demo refers, with a GP
// system's own id, so providers see whom to contact.
func sendDemoPatient(base, run string) error {
	body := `{"resourceType":"Patient","id":"demo-` + run + `","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],` +
		`"name":[{"given":["Alex"],"family":"Example"}],"telecom":[{"system":"phone","value":"0113 496 0000"}],"birthDate":"1950-01-01"}`
	return sendDemoResource(http.MethodPut, base+"/Patient/demo-"+run, body)
}

// sendDemoConsent records the synthetic person's consent to share their
// details with the debt advice charity, which takes referrals only so.
func sendDemoConsent(base, run string) error {
	body := `{"resourceType":"Consent","status":"active",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL","display":"information disclosure"}]}],` +
		`"patient":{"reference":"Patient/demo-` + run + `"},"dateTime":"` + gateway.Instant(time.Now()) + `",` +
		`"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},` +
		`"reference":{"reference":"Organization/citizens-advice-leeds","display":"Citizens Advice Leeds"}}]}}`
	return sendDemoResource(http.MethodPost, base+"/Consent", body)
}

func sendDemoReferral(base, ident, code, run string) error {
	body := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-surgery.example/referral-id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","priority":"routine","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
		`"subject":{"reference":"Patient/demo-` + run + `"},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`
	return sendDemoResource(http.MethodPost, base+"/ServiceRequest", body)
}

// sendDemoBaRSReferral sends a referral as a BaRS servicerequest-request
// message: a MessageHeader naming the link workers' service, the
// ServiceRequest (BaRS referrals carry no code: the service decides) and the
// synthetic person it is for.
func sendDemoBaRSReferral(base, run string) error {
	sr, pt, org := "urn:uuid:"+gateway.NewID(), "urn:uuid:"+gateway.NewID(), "urn:uuid:"+gateway.NewID()
	body := `{"resourceType":"Bundle","id":"` + gateway.NewID() + `","type":"message","timestamp":"` + gateway.Instant(time.Now()) + `","entry":[` +
		`{"fullUrl":"urn:uuid:` + gateway.NewID() + `","resource":{"resourceType":"MessageHeader",` +
		`"eventCoding":{"system":"` + gateway.BaRSEventSystem + `","code":"` + gateway.BaRSServiceRequestRequest + `"},` +
		`"destination":[{"endpoint":"` + demoLinkWorkerService + `"}],` +
		`"sender":{"reference":"` + org + `"},"source":{"name":"Example Surgery","endpoint":"https://example-surgery.example/fhir"},` +
		`"reason":{"coding":[{"system":"` + gateway.BaRSReasonSystem + `","code":"new"}]},` +
		`"focus":[{"reference":"` + sr + `"}]}},` +
		`{"fullUrl":"` + sr + `","resource":{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-surgery.example/referral-id","value":"DEMO-` + run + `-4"}],` +
		`"status":"active","intent":"order","priority":"routine","subject":{"reference":"` + pt + `"},"authoredOn":"` + gateway.Instant(time.Now()) + `",` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}},` +
		`"note":[{"text":"Lives alone since a bereavement; would like company"}]}},` +
		`{"fullUrl":"` + pt + `","resource":{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765870"}],` +
		`"name":[{"given":["Sam"],"family":"Sample"}],"telecom":[{"system":"phone","value":"0113 496 0001"}],"birthDate":"1948-05-05"}},` +
		`{"fullUrl":"` + org + `","resource":{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}],"name":"Example Surgery"}}]}`
	// BaRS asks each request for ids of its own, echoed in the answer.
	return sendDemoResource(http.MethodPost, base+"/$process-message", body, "X-Request-Id", gateway.NewID(), "X-Correlation-Id", gateway.NewID())
}

// sendDemoResource sends one resource (or message) as the demo's GP
// system does, with the headers given as name, value pairs.
func sendDemoResource(method, url, body string, headers ...string) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set(httpapi.LocalClientHeader, demoGP) // acting as itself, so its view and records are its own
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// timeline prints what happens, with the time since the demo began.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newTimeline(w io.Writer) *timeline { return &timeline{w: w, start: time.Now()} }

func (t *timeline) event(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%8.3fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// startGPRecord is an example GP record system's FHIR endpoint: it takes
// Signpost's write-backs (the referral Task, coded outcomes) and says so.
func startGPRecord(tl *timeline) (*demoGPRecord, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	version := 0
	completed, coded, changed := false, false, false
	scores := map[string]map[string]int{} // score display -> measure point -> value
	closed := make(chan struct{})
	// seenClosed marks the loop closed once: a completed Task, a coded
	// outcome and the change in an outcome measure, in any order.
	seenClosed := func() {
		if completed && coded && changed {
			select {
			case <-closed:
			default:
				close(closed)
			}
		}
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var res struct {
			ResourceType   string
			Status         string
			BusinessStatus struct{ Text string }
			Code           struct {
				Coding []struct{ System, Code, Display string }
			}
			Extension    []struct{ URL, ValueCode string }
			ValueInteger *int
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&res)
		switch {
		case r.URL.Path == "/fhir/Task" && r.Method == http.MethodPost, strings.HasPrefix(r.URL.Path, "/fhir/Task/") && r.Method == http.MethodPut:
			version++
			note := ""
			if res.BusinessStatus.Text != "" {
				note = " (" + res.BusinessStatus.Text + ")"
			}
			tl.event("GP record updated: the referral is %s%s", res.Status, note)
			completed = completed || res.Status == "completed"
			seenClosed()
			w.Header().Set("Location", "/fhir/Task/gp-copy/_history/"+strconv.Itoa(version))
			w.Header().Set("ETag", `W/"`+strconv.Itoa(version)+`"`)
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(r.URL.Path, "/fhir/Task/") && r.Method == http.MethodGet:
			w.Header().Set("ETag", `W/"`+strconv.Itoa(version)+`"`)
		case r.URL.Path == "/fhir/Observation" && len(res.Code.Coding) > 0 && res.Code.Coding[0].System == mappings.MeasureCodeSystem && res.ValueInteger != nil:
			// An outcome measure's score: once both points are filed, the
			// GP record shows the change.
			display, point := res.Code.Coding[0].Display, ""
			for _, e := range res.Extension {
				if e.URL == gateway.MeasurePointExtension {
					point = e.ValueCode
				}
			}
			if scores[display] == nil {
				scores[display] = map[string]int{}
			}
			scores[display][point] = *res.ValueInteger
			before, hasBefore := scores[display][string(gateway.MeasureFirstContact)]
			after, hasAfter := scores[display][string(gateway.MeasureCompletion)]
			if hasBefore && hasAfter && point == string(gateway.MeasureCompletion) {
				tl.event("GP record shows %s %d → %d (first contact → completion)", display, before, after)
				changed = true
				seenClosed()
			}
			w.WriteHeader(http.StatusCreated)
		case r.URL.Path == "/fhir/Observation":
			if len(res.Code.Coding) > 0 {
				tl.event("GP record coded the outcome: SNOMED CT %s |%s|", res.Code.Coding[0].Code, res.Code.Coding[0].Display)
				coded = true
				seenClosed()
			}
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return &demoGPRecord{demoServer: demoServer{srv: srv, ln: ln}, closed: closed}, nil
}

// demoGPRecord is the example GP record; closed is closed when it shows
// the completed referral and its coded outcome.
type demoGPRecord struct {
	demoServer
	closed chan struct{}
}

// demoWriteBackWait is how long the demo waits for the GP record to show
// the closed loop after the provider has finished.
const demoWriteBackWait = 30 * time.Second

// demoServer is one of the demo's example systems on a loopback port.
type demoServer struct {
	srv *http.Server
	ln  net.Listener
}

func (d *demoServer) Addr() net.Addr { return d.ln.Addr() }
func (d *demoServer) Close() error   { return d.srv.Close() }

// demoProvider is an example VCS provider: it checks each delivery's
// signature, then, as its staff would, accepts the referral and later
// completes it, through Signpost's API.
type demoProvider struct {
	*demoServer
	done   chan struct{}
	once   sync.Once
	failed atomic.Bool // a step through Signpost's API did not succeed
}

func startDemoProvider(tl *timeline, secret string, speed float64) (*demoProvider, error) {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &demoProvider{done: make(chan struct{})}
	pace := func(d time.Duration) { time.Sleep(time.Duration(float64(d) * speed)) }
	var seen sync.Map
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := webhook.Verify(r.Header, body, [][]byte{key}, time.Now(), 5*time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		if _, repeat := seen.LoadOrStore(r.Header.Get("webhook-id"), true); repeat {
			return // the same delivery again: already in hand
		}
		var msg struct {
			Type     string
			Referral struct{ Task, Category string }
		}
		_ = json.Unmarshal(body, &msg)
		tl.event("Leeds Walking for Health received the referral (signed webhook %s)", r.Header.Get("webhook-id"))
		go func() {
			pace(2 * time.Second)
			if p.move(msg.Referral.Task, `[{"op":"replace","path":"/status","value":"accepted"}]`) {
				tl.event("Leeds Walking for Health accepted the referral: the person agreed to join")
			}
			// Before: the person answers ONS4 and the UCLA loneliness
			// scale at first contact.
			if p.measure(msg.Referral.Task, gateway.MeasureFirstContact, [4]int{3, 4, 4, 7}, [3]string{"often", "often", "some-of-the-time"}) {
				tl.event("Leeds Walking for Health recorded ONS4 and UCLA loneliness at first contact: life satisfaction 3 of 10, loneliness 8 of 9")
			}
			pace(2 * time.Second)
			if p.move(msg.Referral.Task, `[{"op":"replace","path":"/status","value":"in-progress"}]`) {
				tl.event("Leeds Walking for Health: first session attended")
			}
			pace(3 * time.Second)
			// After: the same questions at the last session.
			if p.measure(msg.Referral.Task, gateway.MeasureCompletion, [4]int{7, 7, 8, 3}, [3]string{"hardly-ever", "some-of-the-time", "hardly-ever"}) {
				tl.event("Leeds Walking for Health recorded ONS4 and UCLA loneliness at completion: life satisfaction 7 of 10, loneliness 4 of 9")
			}
			// The outcome is added beside the measures the Task names.
			if p.move(msg.Referral.Task, `[{"op":"replace","path":"/status","value":"completed"},`+
				`{"op":"add","path":"/output/-","value":{"type":{"coding":[{"system":"http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes","code":"resulting-activity"}]},"valueCodeableConcept":{"text":"attended six weekly walks"}}}]`) {
				tl.event("Leeds Walking for Health completed the referral: attended six weekly walks")
			}
			pace(time.Second)
			p.once.Do(func() { close(p.done) })
		}()
	})}
	p.demoServer = &demoServer{srv: srv, ln: ln}
	go func() { _ = srv.Serve(ln) }()
	return p, nil
}

// move applies a JSON Patch to a Task through Signpost's API. A 412 means
// the Task changed between the provider's read and its patch (Signpost
// recording the delivery, say): like any FHIR client, it tries again.
func (p *demoProvider) move(taskURL, patch string) bool {
	for attempt := 0; attempt < 5; attempt++ {
		req, _ := http.NewRequest(http.MethodPatch, taskURL, bytes.NewReader([]byte(patch)))
		req.Header.Set("Content-Type", "application/json-patch+json")
		req.Header.Set(httpapi.LocalClientHeader, demoWalking) // the provider acts as itself: Provenance names it
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			break
		}
		res.Body.Close()
		switch res.StatusCode {
		case http.StatusOK:
			return true
		case http.StatusPreconditionFailed:
			continue
		}
		break
	}
	p.failed.Store(true)
	return false
}

// measure records the person's ONS4 answers (life satisfaction,
// worthwhile, happiness, anxiety) and UCLA loneliness answers (codes) at a
// point, as QuestionnaireResponses through Signpost's API, for the referral
// the Task (its URL) is about.
func (p *demoProvider) measure(taskURL string, at gateway.MeasurePoint, ons4 [4]int, ucla [3]string) bool {
	req, _ := http.NewRequest(http.MethodGet, taskURL, nil)
	req.Header.Set(httpapi.LocalClientHeader, demoWalking)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.failed.Store(true)
		return false
	}
	var task struct{ Focus struct{ Reference string } }
	_ = json.NewDecoder(res.Body).Decode(&task)
	res.Body.Close()
	base, _, _ := strings.Cut(taskURL, "/Task/")
	head := `{"resourceType":"QuestionnaireResponse","status":"completed","authored":"` + gateway.Instant(time.Now()) + `",` +
		`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + string(at) + `"}],` +
		`"basedOn":[{"reference":"` + task.Focus.Reference + `"}],`
	var items []string
	for i, link := range []string{"life-satisfaction", "worthwhile", "happiness", "anxiety"} {
		items = append(items, `{"linkId":"`+link+`","answer":[{"valueInteger":`+strconv.Itoa(ons4[i])+`}]}`)
	}
	bodies := []string{head + `"questionnaire":"` + gateway.QuestionnaireBase + `ons4","item":[` + strings.Join(items, ",") + `]}`}
	items = nil
	for i, link := range []string{"lack-companionship", "left-out", "isolated"} {
		items = append(items, `{"linkId":"`+link+`","answer":[{"valueCoding":{"system":"https://signpost.health/fhir/CodeSystem/ucla3-answer","code":"`+ucla[i]+`"}}]}`)
	}
	bodies = append(bodies, head+`"questionnaire":"`+gateway.QuestionnaireBase+`ucla3","item":[`+strings.Join(items, ",")+`]}`)
	for _, body := range bodies {
		req, _ := http.NewRequest(http.MethodPost, base+"/QuestionnaireResponse", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set(httpapi.LocalClientHeader, demoWalking)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			p.failed.Store(true)
			return false
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
			p.failed.Store(true)
			return false
		}
	}
	return true
}

// concreteAddr turns a listen address with port 0 into one with a free port,
// so the public URL the demo gives providers names a port that answers.
func concreteAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != "0" {
		return listen, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
