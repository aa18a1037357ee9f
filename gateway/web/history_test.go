package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/web"
)

// historyRow is a row of a referral page's History table.
var historyRow = regexp.MustCompile(`<tr><td data-label="When">`)

// redisSent is how many bytes the env's Redis has sent its clients.
func (e *env) redisSent() int64 {
	e.t.Helper()
	info := e.redis.Client().Info(context.Background(), "stats").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if n, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			v, _ := strconv.ParseInt(n, 10, 64)
			return v
		}
	}
	e.t.Fatal("INFO stats has no total_net_output_bytes")
	return 0
}

// A referral's page costs what Signpost allows, not what its Task holds: a
// Task with 60 versions, each carrying a 20 KiB note, shows its latest 50
// and says older ones are not shown, and the page view has Redis send no
// more than those 50 and the few other resources the page shows.
func TestReferralPageReadsAWindowOfItsHistory(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	task := e.refer("HIST-1", "390893007", "Alex Example")
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider, Organization: providers[0].Organization}
	ctx := context.Background()
	note := strings.Repeat("n", 20<<10)
	size := 0
	for v := e.version(task); v < 60; v = e.version(task) {
		r, err := e.store.Read(ctx, gateway.TypeTask, task)
		if err != nil {
			t.Fatal(err)
		}
		body := fhir.ReplaceMembers(r.Body, map[string]any{"note": []map[string]string{{"text": strconv.Itoa(v) + note}}})
		out, err := e.svc.Intake.Update(ctx, walking, gateway.TypeTask, task, body, `W/"`+strconv.Itoa(v)+`"`, nil)
		if err != nil {
			t.Fatalf("note %d: %v", v, err)
		}
		size = max(size, len(out.Resource.Body))
	}
	if portal.HistoryWindow.Versions != 50 || 50*size > portal.HistoryWindow.Bytes {
		t.Fatalf("the window %+v does not hold 50 versions of %d bytes: the test proves nothing", portal.HistoryWindow, size)
	}
	b := e.browser()
	b.signIn("sam@example.org")
	before := e.redisSent()
	p := b.get("/portal/referrals/" + task)
	sent := e.redisSent() - before
	if p.status != http.StatusOK {
		t.Fatalf("the referral's page: %d", p.status)
	}
	t.Logf("one view: %d bytes from Redis, versions of %d bytes", sent, size)
	if rows := len(historyRow.FindAllString(p.body, -1)); rows != 50 || !strings.Contains(p.body, "Older changes not shown") {
		t.Errorf("the history shows %d of 60 versions (want the latest 50), saying older are not shown: %t", rows, strings.Contains(p.body, "Older changes not shown"))
	}
	// The 50 versions; the Task read twice besides (to check it may be
	// seen, and for its measures); its ServiceRequest, Patient, measures
	// and Provenances, some KiB: nowhere near 60 versions.
	if limit := int64(52*size + 64<<10); sent > limit {
		t.Errorf("one view of the referral's page had Redis send %d bytes; want at most %d (50 versions of %d bytes and the rest)", sent, limit, size)
	}
}

// A referral held for consent, the patient's refusal on record, then
// released: its page's history shows the provider only the versions that
// were its own and not withheld, as the API lets it vread them
// (gateway.VersionSeen). The hold and its reason are the GP's.
func TestHistoryLeavesOutVersionsWithheldFromTheProvider(t *testing.T) {
	t.Parallel()
	ps := slices.Clone(providers)
	ps[0].Consent = gateway.ConsentRequired
	e := setupProviders(t, ps, func(*env, *web.Options, *httpapi.Options) {})
	e.user("walking", "sam@example.org")
	ctx := context.Background()
	deny := consentFor("pt-held-1", "active", "deny")
	refusal, err := e.svc.Intake.Create(ctx, practice, gateway.TypeConsent, deny, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	task := e.refer("HELD-1", "390893007", "Alex Example")
	if v := e.task(task); v.Status != gateway.TaskOnHold || v.StatusReasonCode != gateway.ReasonConsentRefused {
		t.Fatalf("the referral is %s (%s), not held for the refusal: the test proves nothing", v.Status, v.StatusReasonCode)
	}
	held := e.version(task)
	// The patient changes their mind: the refusal is withdrawn and consent given.
	withdrawn := strings.Replace(string(consentFor("pt-held-1", "inactive", "deny")), `{`, `{"id":"`+refusal.Resource.ID+`",`, 1)
	if _, err := e.svc.Intake.Update(ctx, practice, gateway.TypeConsent, refusal.Resource.ID, []byte(withdrawn), "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Intake.Create(ctx, practice, gateway.TypeConsent, consentFor("pt-held-1", "active", "permit"), "", nil); err != nil {
		t.Fatal(err)
	}
	if v := e.task(task); v.Status != gateway.TaskRequested {
		t.Fatalf("the referral is %s after consent was given, not released: the test proves nothing", v.Status)
	}
	versions := e.version(task)
	b := e.browser()
	b.signIn("sam@example.org")
	p := b.get("/portal/referrals/" + task)
	if p.status != http.StatusOK {
		t.Fatalf("the released referral's page: %d", p.status)
	}
	_, history, _ := strings.Cut(p.body, `id="history"`)
	for _, hidden := range []string{"refused consent", "not consented", "no consent", "Held:"} {
		if strings.Contains(strings.ToLower(history), strings.ToLower(hidden)) {
			t.Errorf("the provider's history shows a withheld version (%q):\n%s", hidden, history)
		}
	}
	// What the provider sees is exactly what VersionSeen gives it.
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	seen := 0
	for v := 1; v <= versions; v++ {
		r, err := e.store.ReadVersion(ctx, gateway.TypeTask, task, v)
		if err != nil {
			t.Fatal(err)
		}
		if gateway.VersionSeen(walking, r, versions) {
			seen++
		}
	}
	if rows := len(historyRow.FindAllString(history, -1)); rows != seen || seen == 0 || seen > versions-held {
		t.Errorf("the history shows %d rows; the provider may see %d of the %d versions (%d of them held)", rows, seen, versions, held)
	}
}

// consentFor is a Consent the practice records for its Patient: a permit
// or a deny of disclosure to the walking provider, with the status given.
func consentFor(patientID, status, provision string) []byte {
	c := map[string]any{"resourceType": "Consent", "status": status,
		"scope":    map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category": []map[string]any{{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}}}},
		"patient":  map[string]string{"reference": "Patient/" + patientID},
		"dateTime": "2026-01-20",
		"provision": map[string]any{"type": provision, "actor": []map[string]any{{
			"role":      map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}},
			"reference": map[string]string{"reference": "Organization/walking"}}}}}
	b, _ := json.Marshal(c)
	return b
}
