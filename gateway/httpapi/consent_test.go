package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// receiver is a provider's webhook endpoint: it records every body.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, b)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...)
}

// startDeliveries runs the delivery worker as cmd/signpost wires it, to
// the endpoints given (the other test providers work in the portal).
func (e *env) startDeliveries(eps map[string]worker.Endpoint) {
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	q := e.store.Queues(gateway.QueueDelivery)
	w := worker.New(worker.Options{Queue: q,
		Handler: &worker.Deliveries{Queue: q, Domain: e.svc.Delivery, Switch: e.store, Sender: webhook.NewSender(client, time.Now),
			Endpoints: eps, Retry: []time.Duration{20 * time.Millisecond}, Audit: e.store},
		Consumer: "delivery-" + gateway.NewID()[:8], ReclaimIdle: time.Second,
		ReadBlock: 50 * time.Millisecond, PromoteEvery: 5 * time.Millisecond, ErrorPause: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

var webhookSecret = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}

// consentProviders: walking needs a Consent, advice takes an attestation,
// link is inside the NHS.
func consentProviders() []gateway.Provider {
	ps := make([]gateway.Provider, len(testProviders))
	copy(ps, testProviders)
	ps[0].Consent, ps[1].Consent, ps[2].Consent = gateway.ConsentRequired, gateway.ConsentAttested, gateway.ConsentNotRequired
	ps[1].Categories = []string{"money-debt-benefits", "housing"} // physical activity goes to walking only
	return ps
}

func withProviders(ps []gateway.Provider) func(*options) {
	return func(o *options) { o.providers = ps }
}

// consentFor is a Consent a GP system records for the synthetic patient
// (by NHS number, as the referral names them), permitting disclosure to
// the provider's organisation, with the status given.
func consentFor(provider, status string) []byte {
	return []byte(`{"resourceType":"Consent","status":"` + status + `",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL"}]}],` +
		`"patient":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}},` +
		`"dateTime":"2026-11-20",` +
		`"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},` +
		`"reference":{"reference":"Organization/` + provider + `"}}]}}`)
}

// referralTask finds a referral's Task as its GP system sees it.
func (e *env) referralTask(t *testing.T, srID string) map[string]any {
	t.Helper()
	got := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srID, as("practice-a")...).must(t, http.StatusOK), "match")
	if len(got) != 1 {
		t.Fatalf("%d Tasks for the referral, want 1", len(got))
	}
	return got[0]
}

func reasonCode(task map[string]any) string {
	sr, _ := task["statusReason"].(map[string]any)
	cs, _ := sr["coding"].([]any)
	if len(cs) == 0 {
		return ""
	}
	c := cs[0].(map[string]any)
	if c["system"] != gateway.ConsentReasonSystem {
		return ""
	}
	return c["code"].(string)
}

// providerSeesNothing checks every way a provider reads a referral: its
// Task and ServiceRequest by id and by search, and its inbox.
func (e *env) providerSeesNothing(t *testing.T, provider, taskID, srID string) {
	t.Helper()
	e.get("/Task/"+taskID, callerHeader, provider).must(t, http.StatusNotFound)
	e.get("/ServiceRequest/"+srID, callerHeader, provider).must(t, http.StatusNotFound)
	for _, q := range []string{"/Task?owner=Organization/" + provider, "/Task?_id=" + taskID, "/ServiceRequest?_id=" + srID, "/ServiceRequest",
		"/Provenance?target=Task/" + taskID, "/Provenance"} {
		if got := bundleEntries(t, e.get(q, callerHeader, provider).must(t, http.StatusOK), ""); len(got) != 0 {
			t.Errorf("%s finds %d resources for %s", q, len(got), provider)
		}
	}
	for _, view := range []string{"new", "in-progress", "closed"} {
		page, err := e.svc.Portal.Inbox(context.Background(), testCallers[provider], portal.InboxView(view), 0)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 0 {
			t.Errorf("the %s inbox of %s lists %d referrals", view, provider, page.Total)
		}
	}
}

// A referral without the consent its provider requires is accepted and
// held: nothing is delivered, the GP learns why; a Consent arriving sends
// it, once.
func TestConsentRequiredHoldsThenDeliversOnce(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		rc := newReceiver(t)
		e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret},
			"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
		gp := newGPRecord(t)
		e.startNotifyWorker(gp, nil, "")

		sr := e.post("/ServiceRequest", referral("CONSENT-1", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		srID := sr["id"].(string)
		task := e.referralTask(t, srID)
		taskID := task["id"].(string)
		if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent {
			t.Fatalf("Task %v, reason %q; want on-hold awaiting-consent", task["status"], reasonCode(task))
		}
		if text := task["statusReason"].(map[string]any)["text"].(string); !strings.Contains(text, "Walking for Health") || !strings.Contains(text, "Consent") {
			t.Errorf("the GP is not told what is missing: %q", text)
		}
		for _, is := range structure.Validate(mustJSON(task)).Issues {
			t.Errorf("held Task is not valid R4: %v %s", is.Expression, is.Diagnostics)
		}
		// The GP's record learns of the hold.
		eventually(t, "the GP record hearing of the hold", func() bool { return strings.Contains(strings.Join(gp.written(), ","), "on-hold") })
		e.providerSeesNothing(t, "walking", taskID, srID)
		if n := len(rc.received()); n != 0 {
			t.Fatalf("%d deliveries of a held referral", n)
		}

		// Consent for another organisation releases nothing.
		e.post("/Consent", consentFor("advice", "active"), as("practice-a")...).must(t, http.StatusCreated)
		if got := e.referralTask(t, srID); got["status"] != "on-hold" {
			t.Fatalf("a Consent for another provider released the referral: %v", got["status"])
		}

		consent := e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		eventually(t, "the delivery after consent", func() bool { return len(rc.received()) == 1 })
		eventually(t, "the Task recording it", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
		if got := e.referralTask(t, srID); got["status"] != "requested" || got["statusReason"] != nil || gateway.Withheld(mustJSON(got)) {
			t.Errorf("released Task: status %v, statusReason %v", got["status"], got["statusReason"])
		}
		var msg struct{ Type, Action string }
		_ = json.Unmarshal(rc.received()[0], &msg)
		if msg.Type != "referral.requested" || msg.Action != "" {
			t.Errorf("delivered %s/%s", msg.Type, msg.Action)
		}
		e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)
		e.get("/ServiceRequest/"+srID, callerHeader, "walking").must(t, http.StatusOK)
		if got := bundleEntries(t, e.get("/ServiceRequest", callerHeader, "walking").must(t, http.StatusOK), ""); len(got) != 1 {
			t.Errorf("the provider's ServiceRequest search finds %d, want the released referral", len(got))
		}

		// The same Consent again, and a second one, send nothing more.
		id := consent["id"].(string)
		e.put("/Consent/"+id, withConsentID(consentFor("walking", "active"), id), as("practice-a")...).must(t, http.StatusOK)
		e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated)
		e.waitDeliveriesDrained(t)
		if n := len(rc.received()); n != 1 {
			t.Errorf("%d deliveries, want exactly 1", n)
		}
	})
}

// waitDeliveriesDrained waits until the delivery queue holds nothing.
func (e *env) waitDeliveriesDrained(t *testing.T) {
	t.Helper()
	q := e.store.Queues(gateway.QueueDelivery)
	eventually(t, "the delivery queue to drain", func() bool {
		waiting, delayed, pending, _, err := q.Stats(context.Background())
		return err == nil && waiting+delayed+pending == 0
	})
}

// Withdrawal: a Consent made inactive stops the referral reaching the
// provider, takes it out of every view the provider has, tells its system
// to delete it, and is on record.
func TestConsentWithdrawalRemovesTheReferral(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		rc := newReceiver(t)
		e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret},
			"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})

		consent := e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		sr := e.post("/ServiceRequest", referral("CONSENT-2", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		srID := sr["id"].(string)
		taskID := e.referralTask(t, srID)["id"].(string)
		eventually(t, "the delivery", func() bool { return len(rc.received()) == 1 })
		eventually(t, "the Task recording it", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
		e.providerMoves(t, taskID, "accepted", "")

		id := consent["id"].(string)
		withdrawn := withConsentID(consentFor("walking", "inactive"), id)
		e.put("/Consent/"+id, withdrawn, as("practice-a")...).must(t, http.StatusOK)

		task := e.referralTask(t, srID)
		if task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
			t.Errorf("Task %v, reason %q; want cancelled consent-withdrawn", task["status"], reasonCode(task))
		}
		e.providerSeesNothing(t, "walking", taskID, srID)
		e.do(http.MethodPatch, "/Task/"+taskID, []byte(`[{"op":"replace","path":"/status","value":"in-progress"}]`),
			callerHeader, "walking", "Content-Type", "application/json-patch+json").must(t, http.StatusNotFound)

		eventually(t, "the deletion notice", func() bool { return len(rc.received()) == 2 })
		notice := rc.received()[1]
		var msg struct {
			Type, Action string
			Referral     struct{ Task string }
		}
		if err := json.Unmarshal(notice, &msg); err != nil || msg.Type != "referral.withdrawn" || msg.Action != "delete" || !strings.HasSuffix(msg.Referral.Task, "/Task/"+taskID) {
			t.Errorf("deletion notice %s", notice)
		}
		if strings.Contains(string(notice), nhsNumber) {
			t.Errorf("the deletion notice carries the NHS number: %s", notice)
		}
		eventually(t, "the Task recording the notice", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "withdrawal-delivered" })

		// On record: the withdrawal (the Consent's update) and the notice sent.
		events, all := e.audit(t)
		update, notified := false, false
		for _, ev := range events {
			sub := ""
			if len(ev.Subtype) > 0 {
				sub = ev.Subtype[0].Code
			}
			to := false
			for _, a := range ev.Agent {
				to = to || a.Who.Display == "walking"
			}
			for _, en := range ev.Entity {
				if sub == "update" && strings.HasPrefix(en.What.Reference, "Consent/"+id) {
					update = true
				}
				if strings.HasPrefix(en.What.Reference, "Task/"+taskID) && to && ev.Action == "R" && sub != "read" && sub != "search-type" {
					notified = true
				}
			}
		}
		if !update || !notified {
			t.Errorf("audit: withdrawal %v, notice %v:\n%s", update, notified, all)
		}
		e.waitDeliveriesDrained(t)
		if n := len(rc.received()); n != 2 {
			t.Errorf("%d deliveries, want the referral and its deletion notice", n)
		}
	})
}

// A cancellation queued before the withdrawal landed (or still retrying
// when it did) sends nothing: after a withdrawal the provider gets only
// the delete notice, never the record again.
func TestNothingButTheNoticeAfterWithdrawal(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		consent := e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		srID := e.post("/ServiceRequest", referral("CONSENT-W1", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
		taskID := e.referralTask(t, srID)["id"].(string)
		e.do(http.MethodPatch, "/Task/"+taskID, []byte(`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/statusReason","value":{"text":"no longer needed"}}]`),
			callerHeader, "practice-a", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
		id := consent["id"].(string)
		withdrawn := withConsentID(consentFor("walking", "inactive"), id)
		e.put("/Consent/"+id, withdrawn, as("practice-a")...).must(t, http.StatusOK)
		if n := e.deliveries(t, "cancelled"); n == 0 {
			t.Fatal("no cancellation was queued; the test proves nothing")
		}

		rc := newReceiver(t)
		e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret, Full: true},
			"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
		e.waitDeliveriesDrained(t)
		got := rc.received()
		for i, b := range got {
			if strings.Contains(string(b), nhsNumber) || !strings.Contains(string(b), `"referral.withdrawn"`) {
				t.Errorf("delivery %d after the withdrawal is not the bare delete notice: %.200s", i, b)
			}
		}
		if len(got) != 1 {
			t.Errorf("%d deliveries, want the delete notice only", len(got))
		}
	})
}

// withConsentID gives a Consent body the id it is PUT to.
func withConsentID(body []byte, id string) []byte {
	return []byte(strings.Replace(string(body), `{"resourceType":"Consent",`, `{"resourceType":"Consent","id":"`+id+`",`, 1))
}

// A Consent releases a held referral only if it is a privacy consent in
// force now: one whose period has ended, or of another scope, leaves it
// held; a refusal naming no one refuses for every provider, whatever an
// older permit says.
func TestConsentMustBeInForceAndAboutPrivacy(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	a := as("practice-a")
	srID := e.post("/ServiceRequest", referral("CONSENT-F1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	permit := `"provision":{"type":"permit"`
	for name, body := range map[string]string{
		"expired":     strings.Replace(string(consentFor("walking", "active")), permit, permit+`,"period":{"start":"2019-01-01","end":"2020-01-01"}`, 1),
		"other scope": strings.Replace(string(consentFor("walking", "active")), "patient-privacy", "adr", 1),
		"given later": strings.Replace(string(consentFor("walking", "active")), `"dateTime":"2026-11-20"`, `"dateTime":"2999-01-01"`, 1),
	} {
		e.post("/Consent", []byte(body), a...).must(t, http.StatusCreated)
		if got := e.referralTask(t, srID); got["status"] != "on-hold" {
			t.Errorf("%s Consent: Task %v, want still on-hold", name, got["status"])
		}
	}

	e2 := setup(t, withProviders(consentProviders()))
	blanket := strings.Replace(string(consentFor("walking", "active")), `"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Organization/walking"}}]}`, `"provision":{"type":"deny"}`, 1)
	if !strings.Contains(blanket, `"type":"deny"`) {
		t.Fatal("the refusal was not made")
	}
	e2.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated)
	e2.post("/Consent", []byte(blanket), a...).must(t, http.StatusCreated)
	srID = e2.post("/ServiceRequest", referral("CONSENT-F2", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	if got := e2.referralTask(t, srID); got["status"] != "on-hold" || reasonCode(got) != gateway.ReasonConsentRefused {
		t.Errorf("a refusal naming no one: Task %v reason %q, want on-hold consent-refused", got["status"], reasonCode(got))
	}
}

// The Consent a referral went out under, found entered in error, was never
// given: the referral is withdrawn as if it had been withdrawn.
func TestConsentEnteredInErrorWithdraws(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		a := as("practice-a")
		c := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)
		srID := e.post("/ServiceRequest", referral("CONSENT-E1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
		taskID := e.referralTask(t, srID)["id"].(string)
		e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)
		id := c["id"].(string)
		e.put("/Consent/"+id, withConsentID(consentFor("walking", "entered-in-error"), id), a...).must(t, http.StatusOK)
		task := e.referralTask(t, srID)
		if task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
			t.Errorf("Task %v reason %q; want cancelled consent-withdrawn", task["status"], reasonCode(task))
		}
		e.providerSeesNothing(t, "walking", taskID, srID)
		if n := e.deliveries(t, "withdrawn"); n != 1 {
			t.Errorf("%d delete notices queued, want 1", n)
		}
	})
}

// A Consent that comes with a BaRS referral counts for it only if it is
// the referred patient's.
func TestBaRSConsentEntryForAnotherPatient(t *testing.T) {
	t.Parallel()
	required := func(o *options) {
		withBaRSService(o)
		o.providers[0].Consent = gateway.ConsentRequired
	}
	e := setup(t, required, withWarnNHS)
	msg := barsMutant(t, func(b map[string]any, entries []any) {
		for i := range entries {
			if r := entryResource(entries, i); r["resourceType"] == "Consent" {
				r["patient"] = map[string]any{"identifier": map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}}
			}
		}
	})
	_, _, task := readBaRSAnswer(t, e.post("/$process-message", msg, as("practice-a")...).must(t, http.StatusOK))
	if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent {
		t.Errorf("Task %v reason %q, want on-hold awaiting-consent", task["status"], reasonCode(task))
	}
}

// A referrer's cancellation citing withdrawn consent is a withdrawal too;
// and a held referral cancelled tells the provider nothing (it never had it).
func TestCancellationCitingWithdrawnConsent(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	rc := newReceiver(t)
	e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret},
		"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
	e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated)
	srID := e.post("/ServiceRequest", referral("CONSENT-3", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskID := e.referralTask(t, srID)["id"].(string)
	eventually(t, "the delivery", func() bool { return len(rc.received()) == 1 })
	eventually(t, "the Task recording it", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
	patch := `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/statusReason","value":{"coding":[{"system":"` +
		gateway.ConsentReasonSystem + `","code":"consent-withdrawn"}],"text":"the patient withdrew consent"}}]`
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(patch), callerHeader, "practice-a", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
	e.providerSeesNothing(t, "walking", taskID, srID)
	eventually(t, "the deletion notice", func() bool { return len(rc.received()) == 2 })
	if !strings.Contains(string(rc.received()[1]), `"referral.withdrawn"`) {
		t.Errorf("sent %s", rc.received()[1])
	}

	// Held, then cancelled: nothing at all reaches the provider.
	srID2 := e.post("/ServiceRequest", []byte(strings.ReplaceAll(string(referral("CONSENT-4", "390893007")), practiceODS, "B82002")), as("practice-b")...).must(t, http.StatusCreated).json(t)["id"].(string)
	got := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srID2, as("practice-b")...).must(t, http.StatusOK), "match")
	task2 := got[0]["id"].(string)
	e.do(http.MethodPatch, "/Task/"+task2, []byte(`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/statusReason","value":{"text":"not needed"}}]`),
		callerHeader, "practice-b", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
	e.providerSeesNothing(t, "walking", task2, srID2)
	e.waitDeliveriesDrained(t)
	if n := len(rc.received()); n != 2 {
		t.Errorf("%d deliveries, want 2 (nothing for the held referral)", n)
	}
}

// Attested: the referrer's coded attestation in the referral is enough; a
// coded refusal holds it; not-required (inside the NHS) needs nothing.
func TestConsentAttestedAndNotRequired(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	attested := func(ident, code string) []byte {
		return []byte(strings.Replace(string(referral(ident, "710911006")), `"priority":"routine",`,
			`"priority":"routine","orderDetail":[{"coding":[{"system":"http://snomed.info/sct","code":"`+code+`"}]}],`, 1))
	}
	cases := []struct {
		name       string
		body       []byte
		wantStatus string
		reason     string
	}{
		{"no attestation", referral("ATT-0", "710911006"), "on-hold", gateway.ReasonAwaitingConsent},
		{"consent given", attested("ATT-1", "319951000000105"), "requested", ""},
		{"consent refused", attested("ATT-2", "320011000000108"), "on-hold", gateway.ReasonConsentRefused},
		{"not-required provider", referral("ATT-3", "308463006"), "requested", ""}, // social connection: the link workers
	}
	for _, c := range cases {
		srID := e.post("/ServiceRequest", c.body, as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
		task := e.referralTask(t, srID)
		if task["status"] != c.wantStatus || reasonCode(task) != c.reason {
			t.Errorf("%s: Task %v reason %q, want %s %q", c.name, task["status"], reasonCode(task), c.wantStatus, c.reason)
		}
	}
}

// A Consent sent to the API must say what it is about: every problem at
// once, and nothing stored.
func TestConsentIsValidated(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	for body, wants := range map[string][]string{
		`{"resourceType":"Consent"}`: {"Consent.status", "Consent.scope", "Consent.category"},
		`{"resourceType":"Consent","status":"maybe","scope":{"text":"privacy"},"category":[{"text":"disclosure"}]}`: {"Consent.status", "Consent.patient"},
	} {
		r := e.post("/Consent", []byte(body), as("practice-a")...)
		if r.status != http.StatusBadRequest {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		for _, want := range wants {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("no issue at %s: %s", want, r.body)
			}
		}
	}
	e.post("/Consent", consentFor("walking", "active"), callerHeader, "walking").must(t, http.StatusForbidden)
	e.put("/Consent/not-made-yet", []byte(strings.Replace(string(consentFor("walking", "active")), `{"resourceType":"Consent",`, `{"resourceType":"Consent","id":"not-made-yet",`, 1)), as("practice-a")...).must(t, http.StatusNotFound)
	e.get("/Consent?status=active", as("practice-a")...).must(t, http.StatusMethodNotAllowed)
}

// deliveries counts the delivery jobs queued for an event.
func (e *env) deliveries(t *testing.T, event string) int {
	t.Helper()
	return e.queuedFor(t, gateway.QueueDelivery, event)
}

// withConsentEntry sets the status of the example message's Consent entry.
func withConsentEntry(entries []any, status string) {
	for i := range entries {
		if r := entryResource(entries, i); r["resourceType"] == "Consent" {
			r["status"] = status
		}
	}
}

// A BaRS referral carries its Consent: an active one (naming no other
// organisation) is consent for the provider the message is for; one not
// yet active holds the referral until an update makes it so; an update
// making it inactive withdraws the referral.
func TestBaRSConsentEntryHoldsReleasesAndWithdraws(t *testing.T) {
	t.Parallel()
	required := func(o *options) {
		withBaRSService(o)
		o.providers[0].Consent = gateway.ConsentRequired
	}
	e := setup(t, required, withWarnNHS)
	a := as("practice-a")
	draft := barsMutant(t, func(b map[string]any, entries []any) { withConsentEntry(entries, "draft") })
	_, sr, task := readBaRSAnswer(t, e.post("/$process-message", draft, a...).must(t, http.StatusOK))
	taskID, srID := task["id"].(string), sr["id"].(string)
	if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent {
		t.Fatalf("Task %v reason %q, want on-hold awaiting-consent", task["status"], reasonCode(task))
	}
	if n := e.deliveries(t, "referral"); n != 0 {
		t.Fatalf("%d deliveries queued for a held referral", n)
	}
	e.providerSeesNothing(t, "walking", taskID, srID)
	patient := sr["subject"].(map[string]any)["reference"].(string)
	encounter := sr["encounter"].(map[string]any)["reference"].(string)
	for _, ref := range []string{patient, encounter} {
		e.get("/"+ref, callerHeader, "walking").must(t, http.StatusNotFound)
	}

	active := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "5a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		withConsentEntry(entries, "active")
	})
	e.post("/$process-message", active, a...).must(t, http.StatusOK)
	if status, _, _ := e.taskStatus(t, taskID); status != "requested" || e.deliveries(t, "referral") != 1 {
		t.Fatalf("after the Consent became active: Task %s, %d deliveries; want requested, 1", status, e.deliveries(t, "referral"))
	}
	e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)
	// What came with it the provider now sees too: the Patient, the Encounter.
	for _, ref := range []string{patient, encounter} {
		e.get("/"+ref, callerHeader, "walking").must(t, http.StatusOK)
	}

	inactive := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "6b2c3d4e-5f6a-4b7c-8d8e-9f0a1b2c3d4e"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		withConsentEntry(entries, "inactive")
	})
	e.post("/$process-message", inactive, a...).must(t, http.StatusOK)
	got := e.referralTask(t, srID)
	if got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
		t.Errorf("after withdrawal: Task %v reason %q", got["status"], reasonCode(got))
	}
	if n := e.deliveries(t, "withdrawn"); n != 1 {
		t.Errorf("%d deletion notices queued, want 1", n)
	}
	if n := e.deliveries(t, "referral"); n != 1 {
		t.Errorf("%d referral deliveries, want still 1", n)
	}
	e.providerSeesNothing(t, "walking", taskID, srID)
	for _, ref := range []string{patient, encounter} {
		e.get("/"+ref, callerHeader, "walking").must(t, http.StatusNotFound)
	}
}

// The BaRS contract of a withdrawal: a message with
// reason delete naming the referral (its ServiceRequest revoked), with no
// Patient and nothing else of the person.
func TestBaRSWithdrawalTellsTheProviderToDelete(t *testing.T) {
	t.Parallel()
	required := func(o *options) {
		withBaRSService(o)
		o.providers[0].Consent = gateway.ConsentRequired
	}
	e := setup(t, required, withWarnNHS)
	p := newBarsProvider(t, nil)
	e.startBarsDelivery(p)
	taskID := e.sendExample(t)
	eventually(t, "the delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })
	inactive := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "7c3d4e5f-6a7b-4c8d-9e9f-0a1b2c3d4e5f"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		withConsentEntry(entries, "inactive")
	})
	e.post("/$process-message", inactive, as("practice-a")...).must(t, http.StatusOK)
	eventually(t, "the delete message", func() bool { return len(p.received()) == 2 })
	_, entries, _ := sentMessage(t, p.received()[1])
	reason := entries[0]["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
	if reason != "delete" || len(entries) != 2 || entries[1]["resourceType"] != "ServiceRequest" || entries[1]["status"] != "revoked" {
		t.Errorf("withdrawal message: reason %v, %d entries: %s", reason, len(entries), p.received()[1].body)
	}
	for _, s := range []string{"Julie", "1959-05-04", "LS10 4YU"} {
		if strings.Contains(string(p.received()[1].body), s) {
			t.Errorf("the delete message carries %q", s)
		}
	}
	// Of the referral it names only what identifies it: nothing of its
	// content goes after consent was withdrawn.
	if len(entries) == 2 {
		for name := range entries[1] {
			if !slices.Contains([]string{"resourceType", "id", "meta", "identifier", "status", "intent", "subject"}, name) {
				t.Errorf("the delete message's ServiceRequest carries %s: %s", name, mustJSON(entries[1]))
			}
		}
		if subject, _ := entries[1]["subject"].(map[string]any); len(subject) != 1 || subject["reference"] == nil {
			t.Errorf("the delete message's subject %v, want its reference only", entries[1]["subject"])
		}
		_, first, _ := sentMessage(t, p.received()[0])
		if entries[1]["id"] == nil || entries[1]["id"] != first[1]["id"] {
			t.Errorf("the delete message does not name the referral it sent: %s", mustJSON(entries[1]))
		}
	}
}

// A referral and its consent sent at the same moment: whichever commits
// second sees the other, so no referral stays held with its consent on
// record (each decision's commit is refused and planned again if what it
// read changed before it committed).
func TestConsentAndReferralSentTogether(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		const n = 12
		for i := 0; i < n; i++ {
			id := "race-" + strconv.Itoa(i)
			e.put("/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"text":"Race Person"}]}`), as("practice-a")...).must(t, http.StatusCreated)
		}
		sendTogether(t, e, n, func(i int) string { return `{"reference":"Patient/race-` + strconv.Itoa(i) + `"}` })
	})
}

// The same with the patient named by NHS number, as GP systems name them:
// a store that spreads places such a referral by its identifier and the
// Consent anywhere, so the two commit in different partitions, and each
// looks for the other again once committed.
func TestConsentAndReferralSentTogetherByNHSNumber(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		sendTogether(t, e, 12, func(i int) string {
			return `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + syntheticNHSNumber(i) + `"}}`
		})
	})
}

// sendTogether sends n referrals and their n Consents at once, the ith
// pair naming its patient as patient(i) gives (a FHIR Reference), and
// checks that no referral stays held with its consent on record.
func sendTogether(t *testing.T, e *env, n int, patient func(int) string) {
	t.Helper()
	a := as("practice-a")
	byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
	var wg sync.WaitGroup
	srIDs := make([]string, n)
	for i := 0; i < n; i++ {
		body := strings.Replace(string(referral("RACE-"+strconv.Itoa(i), "390893007")), `"subject":`+byNHSNumber, `"subject":`+patient(i), 1)
		consent := strings.Replace(string(consentFor("walking", "active")), `"patient":`+byNHSNumber, `"patient":`+patient(i), 1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := e.post("/ServiceRequest", []byte(body), a...)
			if r.status == http.StatusCreated {
				var sr struct{ ID string }
				_ = json.Unmarshal(r.body, &sr)
				srIDs[i] = sr.ID
			} else {
				t.Errorf("referral %d: %d %s", i, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			if r := e.post("/Consent", []byte(consent), a...); r.status != http.StatusCreated {
				t.Errorf("consent %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	for i, srID := range srIDs {
		if srID == "" {
			continue
		}
		if task := e.referralTask(t, srID); task["status"] != "requested" {
			t.Errorf("referral %d is %v with its consent on record", i, task["status"])
		}
	}
	if got := e.deliveries(t, "referral"); got != len(srIDs) {
		t.Errorf("%d deliveries queued for %d referrals", got, len(srIDs))
	}
}

// syntheticNHSNumber is the ith of a run of NHS numbers with a valid check
// digit (modulus 11) in the 999 range, which is never issued.
func syntheticNHSNumber(i int) string {
	for n := 999000000 + 10*i; ; n++ {
		digits := strconv.Itoa(n)
		sum := 0
		for k, d := range digits {
			sum += int(d-'0') * (10 - k)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return digits + strconv.Itoa(check)
		}
	}
}

// A store that spreads places a Consent naming a Patient beside it, where
// that Patient's referrals are, so the commit that releases or withdraws
// them is one partition's and needs no second step.
func TestConsentPlacedBesideItsPatient(t *testing.T) {
	t.Parallel()
	e := setup(t, spread, withProviders(consentProviders()))
	a := as("practice-a")
	for i := range 3 {
		id := "beside-" + strconv.Itoa(i)
		e.put("/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"text":"Placed Person"}]}`), a...).must(t, http.StatusCreated)
		patient := `{"reference":"Patient/` + id + `"}`
		byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
		body := strings.Replace(string(referral("BESIDE-"+strconv.Itoa(i), "390893007")), `"subject":`+byNHSNumber, `"subject":`+patient, 1)
		srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
		consent := strings.Replace(string(consentFor("walking", "active")), `"patient":`+byNHSNumber, `"patient":`+patient, 1)
		consentID := e.post("/Consent", []byte(consent), a...).must(t, http.StatusCreated).json(t)["id"].(string)
		if !partitionedID.MatchString(srID) || consentID[:4] != srID[:4] {
			t.Errorf("the Consent %s is not beside its Patient's referral %s", consentID, srID)
		}
		if task := e.referralTask(t, srID); task["status"] != "requested" {
			t.Errorf("referral %d is %v with its consent on record", i, task["status"])
		}
	}
}

// On a store that spreads referrals, a withdrawal's effect on a referral in
// another partition is decided after the Consent's commit, before the
// answer. If that step did not happen (the process stopped between the
// two; here the Task is out of reach while the Consent is stored), the GP
// system's retry of the same PUT finds the Consent stored as sent and
// still withdraws the referral: a withdrawal acknowledged again is always
// in force.
func TestSpreadConsentSentAgainFinishesItsWithdrawal(t *testing.T) {
	t.Parallel()
	e := setup(t, spread, withProviders(consentProviders()))
	rc := newReceiver(t)
	e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret},
		"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
	consent := e.post("/Consent", consentFor("walking", "active"), as("practice-a")...).must(t, http.StatusCreated).json(t)
	id := consent["id"].(string)
	var srID, taskID string
	for i := 0; i < 16 && (taskID == "" || taskID[:4] == id[:4]); i++ { // a referral in another partition than its Consent
		sr := e.post("/ServiceRequest", referral(fmt.Sprintf("CONSENT-AGAIN-%d", i), "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)
		srID = sr["id"].(string)
		taskID = e.referralTask(t, srID)["id"].(string)
	}
	if taskID[:4] == id[:4] {
		t.Fatal("no referral was placed apart from its Consent")
	}
	eventually(t, "the Task recording its delivery", func() bool { _, b, _ := e.taskStatus(t, taskID); return b == "delivered" })

	// The first sending stores the withdrawal but cannot reach the Task.
	taskKey := e.moveTaskAway(t, taskID)
	withdrawn := withConsentID(consentFor("walking", "inactive"), id)
	e.put("/Consent/"+id, withdrawn, as("practice-a")...).must(t, http.StatusOK)
	e.bringTaskBack(t, taskKey)
	if task := e.referralTask(t, srID); task["status"] == "cancelled" {
		t.Fatal("the test did not stop the first sending's withdrawal")
	}

	// Sent again, unchanged: the withdrawal takes effect.
	e.put("/Consent/"+id, withdrawn, as("practice-a")...).must(t, http.StatusOK)
	task := e.referralTask(t, srID)
	if task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
		t.Errorf("Task %v, reason %q after the Consent was sent again; want cancelled consent-withdrawn", task["status"], reasonCode(task))
	}
}

// When deciding again a referral in another partition fails after a
// Consent's commit, the request is answered with the error (its retry
// finishes it, TestSpreadConsentSentAgainFinishesItsWithdrawal), but its
// audit record says the change was stored and what was left to the
// retry, naming the Consent stored; no record of it reads as a failure
// that changed nothing (before: "500 Internal Server Error", naming
// nothing stored).
func TestSpreadConsentStoredButNotDecidedEverywhereIsAuditedAsStored(t *testing.T) {
	t.Parallel()
	e := setup(t, spread, withProviders(consentProviders()))
	a := as("practice-a")
	consent := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)
	id := consent["id"].(string)
	var taskID string
	for i := 0; i < 16 && (taskID == "" || taskID[:4] == id[:4]); i++ { // a referral in another partition than its Consent
		sr := e.post("/ServiceRequest", referral(fmt.Sprintf("CONSENT-AUDIT-%d", i), "390893007"), a...).must(t, http.StatusCreated).json(t)
		taskID = e.referralTask(t, sr["id"].(string))["id"].(string)
	}
	if taskID[:4] == id[:4] {
		t.Fatal("no referral was placed apart from its Consent")
	}
	// The referral's Task cannot be read after the Consent's commit: its
	// key holds something else (Redis refuses the read).
	ctx := context.Background()
	taskKey := e.moveTaskAway(t, taskID)
	e.rdb.Set(ctx, taskKey, "not a Task", 0)
	withdrawn := withConsentID(consentFor("walking", "inactive"), id)
	r := e.put("/Consent/"+id, withdrawn, a...).must(t, http.StatusInternalServerError)
	if !strings.Contains(string(r.body), "stored") {
		t.Errorf("the answer does not say the change was stored: %s", r.body)
	}
	e.bringTaskBack(t, taskKey)
	if got := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t); got["status"] != "inactive" {
		t.Fatalf("the Consent was not stored: %v", got["status"])
	}

	events, raw := e.audit(t)
	failed := 0
	for _, ev := range events {
		if ev.Subtype[0].Code != "update" || ev.Outcome == "0" {
			continue
		}
		failed++
		names := slices.ContainsFunc(ev.Entity, func(en struct {
			What        struct{ Reference string }
			Description string
		}) bool {
			return en.What.Reference == "Consent/"+id
		})
		if !strings.Contains(ev.OutcomeDesc, gateway.AuditStoredNote) || !names {
			t.Errorf("the update's record reads as a failure: %q, naming the Consent %v", ev.OutcomeDesc, names)
		}
	}
	if failed != 1 {
		t.Errorf("%d records of the update's answer, want 1:\n%s", failed, raw)
	}
	if strings.Contains(raw, nhsNumber) {
		t.Error("the audit trail holds the patient's NHS number")
	}
}

// A Consent sent again unchanged after its first sending was stored but
// not decided everywhere has nothing to write; when deciding again fails
// once more, its answer and audit record still say the change is stored
// and what is left to a retry (before: "internal error; nothing was
// changed", read as a failure that stored nothing).
func TestSpreadConsentSentAgainButStillNotDecidedEverywhereSaysItIsStored(t *testing.T) {
	t.Parallel()
	e := setup(t, onOneRedis, spread, withProviders(consentProviders()))
	a := as("practice-a")
	id := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	srID := e.post("/ServiceRequest", referral(e.referralIdentifier(t, id, true), "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskID := e.referralTask(t, srID)["id"].(string)
	if e.store.PlaceOf(taskID) == e.store.PlaceOf(id) {
		t.Fatal("the referral was placed beside its Consent; the test proves nothing")
	}
	// The referral's Task cannot be read after the Consent's commit: its
	// key holds something else (Redis refuses the read).
	ctx := context.Background()
	taskKey := e.moveTaskAway(t, taskID)
	e.rdb.Set(ctx, taskKey, "not a Task", 0)
	withdrawn := withConsentID(consentFor("walking", "inactive"), id)
	e.put("/Consent/"+id, withdrawn, a...).must(t, http.StatusInternalServerError)
	again := e.put("/Consent/"+id, withdrawn, a...).must(t, http.StatusInternalServerError)
	if !strings.Contains(string(again.body), "after the change was stored") || strings.Contains(string(again.body), "nothing was changed") {
		t.Errorf("the answer to the Consent sent again does not say the change is stored: %s", again.body)
	}
	e.bringTaskBack(t, taskKey)

	events, raw := e.audit(t)
	failed := 0
	for _, ev := range events {
		if ev.Subtype[0].Code != "update" || ev.Outcome == "0" {
			continue
		}
		failed++
		if !strings.Contains(ev.OutcomeDesc, gateway.AuditStoredNote) {
			t.Errorf("an update's record reads as a failure that changed nothing: %q", ev.OutcomeDesc)
		}
	}
	if failed != 2 {
		t.Errorf("%d records of the updates' answers, want 2:\n%s", failed, raw)
	}
}

// On a store that spreads referrals, the referrals a request's Consents
// decide again in other partitions are each a commit of their own, after
// the request's: a request whose Consents concern more than one patient's
// check reads (100) is refused whole before anything is written.
func TestSpreadConsentsConcerningTooManyReferralsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, spread, withProviders(consentProviders()))
	a := as("practice-a")
	for _, nhs := range []string{nhsNumber, nhsNumber2} {
		for i := range 60 {
			body := strings.Replace(string(referral(fmt.Sprintf("MANY-%s-%d", nhs, i), "390893007")), nhsNumber, nhs, 1)
			e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated)
		}
	}
	second := strings.Replace(string(consentFor("walking", "active")), nhsNumber, nhsNumber2, 1)
	res := e.post("", transaction(entry("urn:uuid:c1", "Consent", string(consentFor("walking", "active"))), entry("urn:uuid:c2", "Consent", second)), a...)
	res.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(res.body), "separate requests") {
		t.Errorf("the refusal does not say what to do: %s", res.body)
	}
	if ks := e.keys(t, "*:r:Consent:*"); len(ks) != 0 {
		t.Errorf("%d Consents stored by a refused request", len(ks))
	}
}

// moveTaskAway renames a Task's key (in whichever partition holds it) to
// the same name with ":away" after it, so that reading the Task finds
// nothing, and returns the key.
func (e *env) moveTaskAway(t *testing.T, taskID string) string {
	t.Helper()
	key := e.keys(t, "{signpost:*}:r:Task:"+taskID)
	if len(key) != 1 {
		t.Fatalf("the Task's key: %v", key)
	}
	if err := e.rdb.Rename(context.Background(), key[0], key[0]+":away").Err(); err != nil {
		t.Fatal(err)
	}
	return key[0]
}

// bringTaskBack undoes moveTaskAway: the Task's key gets its content back,
// replacing whatever a test put there meanwhile.
func (e *env) bringTaskBack(t *testing.T, key string) {
	t.Helper()
	if err := e.rdb.Rename(context.Background(), key+":away", key).Err(); err != nil {
		t.Fatal(err)
	}
}
