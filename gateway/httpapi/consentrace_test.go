package httpapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/worker"
)

// writesReferral reports whether a commit makes a new referral: it writes
// a ServiceRequest's first version.
func writesReferral(c *gateway.Commit) bool {
	for _, w := range c.Writes {
		if w.Resource.Type == gateway.TypeServiceRequest && w.Resource.Version == 1 {
			return true
		}
	}
	return false
}

// withdrawBeforeTheReferralCommits arms h to withdraw the Consent id (a
// PUT making it inactive, answered 200) between a new referral's planning,
// which read it active, and that referral's commit; strip also takes the
// Consents' versions out of the referral's commit, as if the store's read
// of them had landed just before the withdrawal. It returns whether the
// withdrawal was made.
func (e *env) withdrawBeforeTheReferralCommits(t *testing.T, h *commitHook, id, patient string, strip bool) func() bool {
	withdrawn := bytes.Replace(withConsentID(consentFor("walking", "inactive"), id), []byte(`"patient":`+byNHSNumber), []byte(`"patient":`+patient), 1)
	var done atomic.Bool // set on the server's goroutine, read on the test's
	h.set(func(c *gateway.Commit) bool {
		if done.Load() || !writesReferral(c) {
			return false
		}
		done.Store(true)
		if r := e.put("/Consent/"+id, withdrawn, as("practice-a")...); r.status != http.StatusOK {
			t.Errorf("the withdrawal: %d %s", r.status, r.body)
		}
		if strip {
			c.Unchanged = nil
		}
		return true
	})
	return done.Load
}

const byNHSNumber = `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`

// A Consent withdrawn (PUT, answered 200) after a new referral's planning
// read it active, and before that referral's commit: the commit finds the
// Consent is not the version its decision read, is refused and planned
// again, and the referral is held as refused: nothing is queued for the
// provider, who finds nothing. Deterministic: the withdrawal runs in the
// one place the race needs it, between the plan and the commit. On one
// Redis, and on a store that spreads referrals with the Consent beside
// the referral (both beside their Patient: the commit's own step checks
// it) or apart from it (named by NHS number: the store reads its version
// just before the commit), also on a Redis Cluster.
func TestConsentWithdrawnWhileAReferralIsPlannedHoldsIt(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name string
		on   []func(*options)
		// patient names the patient in the referral and the Consent;
		// apart: the referral placed in another partition than the Consent.
		patient string
		apart   bool
	}{
		{"redis", []func(*options){onOneRedis, unspread}, byNHSNumber, false},
		{"spread beside", []func(*options){onOneRedis, spread}, `{"reference":"Patient/race-1"}`, false},
		{"spread apart", []func(*options){onOneRedis, spread}, byNHSNumber, true},
		{"spread cluster apart", []func(*options){onCluster, spread}, byNHSNumber, true},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			h := &commitHook{}
			e := setup(t, append(run.on, withProviders(consentProviders()), withCommitHook(h))...)
			a := as("practice-a")
			if strings.HasPrefix(run.patient, `{"reference"`) {
				e.put("/Patient/race-1", []byte(`{"resourceType":"Patient","id":"race-1","name":[{"text":"Race Person"}]}`), a...).must(t, http.StatusCreated)
			}
			consent := strings.Replace(string(consentFor("walking", "active")), `"patient":`+byNHSNumber, `"patient":`+run.patient, 1)
			id := e.post("/Consent", []byte(consent), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			ident := e.referralIdentifier(t, id, run.apart)

			withdrew := e.withdrawBeforeTheReferralCommits(t, h, id, run.patient, false)
			body := strings.Replace(string(referral(ident, "390893007")), `"subject":`+byNHSNumber, `"subject":`+run.patient, 1)
			srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			if !withdrew() {
				t.Fatal("the withdrawal did not run between the referral's plan and its commit; the test proves nothing")
			}
			if e.store.Spread() && (srID[:4] != id[:4]) != run.apart {
				t.Fatalf("referral %s and Consent %s: apart %v, want %v", srID, id, srID[:4] != id[:4], run.apart)
			}

			task := e.referralTask(t, srID)
			taskID := task["id"].(string)
			if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonConsentRefused || !gateway.Withheld(mustJSON(task)) {
				t.Errorf("Task %v, reason %q; want on-hold consent-refused, withheld", task["status"], reasonCode(task))
			}
			if n := e.deliveries(t, "referral"); n != 0 {
				t.Errorf("%d deliveries queued for a referral whose consent was withdrawn before it was stored", n)
			}
			e.providerSeesNothing(t, "walking", taskID, srID)
		})
	}
}

// referralIdentifier is a business identifier for a new referral of
// practice-a: on a store that spreads, one that places the referral in
// another partition than the Consent id (apart) or, else, anywhere.
func (e *env) referralIdentifier(t *testing.T, consentID string, apart bool) string {
	t.Helper()
	for i := range 64 {
		ident := "RACE-" + consentID[:8] + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		place := e.store.Place(gateway.ReferralKey(testCallers["practice-a"], gateway.Identifier{System: gpIdentSystem, Value: ident}))
		if !apart || place != consentID[:4] {
			return ident
		}
	}
	t.Fatal("no identifier places a referral apart from the Consent")
	return ""
}

// On a store that spreads referrals, a Consent in another partition than
// the referral is read just before the referral's commit, not in its
// step: a withdrawal landing between that read and the commit, whose own
// search for the patient's referrals ran before the commit too, is not
// seen by either. The referral is then decided again after its commit,
// before it is answered: withdrawn, and the provider is sent nothing but
// the delete notice. The window is made here by taking the Consent's
// version out of the referral's commit once the withdrawal is stored.
func TestSpreadConsentWithdrawnElsewhereJustBeforeAReferralsCommit(t *testing.T) {
	t.Parallel()
	h := &commitHook{}
	e := setup(t, onOneRedis, spread, withProviders(consentProviders()), withCommitHook(h))
	a := as("practice-a")
	id := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	ident := e.referralIdentifier(t, id, true)

	withdrew := e.withdrawBeforeTheReferralCommits(t, h, id, byNHSNumber, true)
	srID := e.post("/ServiceRequest", referral(ident, "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	if !withdrew() {
		t.Fatal("the withdrawal did not run between the referral's plan and its commit; the test proves nothing")
	}
	task := e.referralTask(t, srID)
	taskID := task["id"].(string)
	if task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
		t.Errorf("Task %v, reason %q when the referral was answered; want cancelled consent-withdrawn", task["status"], reasonCode(task))
	}
	e.providerSeesNothing(t, "walking", taskID, srID)

	e.walkingIsSentOnlyDeleteNotices(t)
}

// On a store that spreads referrals, a held referral released by the check
// after a Consent's commit, on a Consent another partition holds, is
// released by a commit whose store reads that Consent's version just
// before it, not in its step: a withdrawal landing between that read and
// the release, whose own check after its commit found the referral still
// held, is seen by neither. The referral is then decided again after the
// release, before the Consent is answered: withdrawn, and the provider is
// sent nothing but the delete notice. The window is made here by
// withdrawing the Consent from a hook on the release's commit and taking
// the Consent's version out of that commit, as if the store's read of it
// had landed just before the withdrawal.
func TestSpreadConsentWithdrawnElsewhereJustBeforeAHeldReferralsRelease(t *testing.T) {
	t.Parallel()
	h := &commitHook{}
	e := setup(t, onOneRedis, spread, withProviders(consentProviders()), withCommitHook(h))
	a := as("practice-a")
	// The referral is held, refused by an inactive Consent, and placed in
	// another partition than that Consent; making the Consent active (a
	// PUT, committed where the Consent is) releases it after its commit.
	id := e.post("/Consent", consentFor("walking", "inactive"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	srID := e.post("/ServiceRequest", referral(e.referralIdentifier(t, id, true), "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	task := e.referralTask(t, srID)
	taskID := task["id"].(string)
	if task["status"] != "on-hold" || !gateway.Withheld(mustJSON(task)) {
		t.Fatalf("Task %v before the Consent is active; want on-hold, withheld", task["status"])
	}
	if e.store.PlaceOf(id) == e.store.PlaceOf(taskID) {
		t.Fatalf("Consent %s placed beside the referral's Task %s; the test proves nothing", id, taskID)
	}
	withStatus := func(status string) []byte {
		return withConsentID(consentFor("walking", status), id)
	}

	withdrew := false
	h.set(func(c *gateway.Commit) bool {
		if withdrew || !slices.ContainsFunc(c.Writes, func(w gateway.Write) bool {
			return w.Resource.Type == gateway.TypeTask && w.Resource.ID == taskID
		}) {
			return false
		}
		withdrew = true
		if r := e.put("/Consent/"+id, withStatus("inactive"), a...); r.status != http.StatusOK {
			t.Errorf("the withdrawal: %d %s", r.status, r.body)
		}
		c.Unchanged = nil
		return true
	})
	e.put("/Consent/"+id, withStatus("active"), a...).must(t, http.StatusOK)
	if !withdrew {
		t.Fatal("the withdrawal did not run before the referral's release was committed; the test proves nothing")
	}
	task = e.referralTask(t, srID)
	if task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn || !gateway.Withheld(mustJSON(task)) {
		t.Errorf("Task %v, reason %q when the Consent was answered; want cancelled consent-withdrawn, withheld", task["status"], reasonCode(task))
	}
	e.providerSeesNothing(t, "walking", taskID, srID)

	e.walkingIsSentOnlyDeleteNotices(t)
}

// walkingIsSentOnlyDeleteNotices runs the deliveries until none is left
// and fails on any the walking provider receives but the bare delete
// notice: no referral content, no NHS number.
func (e *env) walkingIsSentOnlyDeleteNotices(t *testing.T) {
	t.Helper()
	rc := newReceiver(t)
	e.startDeliveries(map[string]worker.Endpoint{"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret, Full: true},
		"advice": {Name: "Money Advice", Kind: "portal"}, "link": {Name: "Link Workers", Kind: "portal"}})
	e.waitDeliveriesDrained(t)
	for i, b := range rc.received() {
		if strings.Contains(string(b), nhsNumber) || !strings.Contains(string(b), `"referral.withdrawn"`) {
			t.Errorf("delivery %d is not the bare delete notice: %.200s", i, b)
		}
	}
}
