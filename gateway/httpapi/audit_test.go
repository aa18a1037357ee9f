package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/auditevent"
)

type auditEvent struct {
	Subtype     []struct{ Code string }
	Action      string
	Outcome     string
	OutcomeDesc string
	Agent       []struct {
		Who struct {
			Display    string
			Identifier struct{ Value string }
		}
		Requestor bool
	}
	Entity []struct {
		What        struct{ Reference string }
		Description string
	}
}

func (e *env) audit(t *testing.T) ([]auditEvent, string) {
	t.Helper()
	entries, err := e.store.AuditTail(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	out := make([]auditEvent, len(entries))
	for i, en := range entries {
		ev := auditevent.Render(en.Record, e.base)
		all.WriteString(string(ev) + "\n")
		if err := json.Unmarshal(ev, &out[i]); err != nil {
			t.Fatalf("audit event is not JSON: %v", err)
		}
	}
	return out, all.String()
}

// Every interaction, allowed or denied, leaves one AuditEvent naming who,
// what and the outcome — and nothing of the patient.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, b := as("practice-a"), as("practice-b")
	sr := e.post("/ServiceRequest", referral("AU-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	id := sr["id"].(string)
	// A repeat writes nothing, and a refused referral nothing either: their
	// records are kept apart from any change (the first create's went with it).
	e.post("/ServiceRequest", referral("AU-1", "390893007"), a...).must(t, http.StatusOK)
	e.post("/ServiceRequest", referral("AU-2", "1"), a...).must(t, http.StatusBadRequest)
	e.get("/ServiceRequest/"+id, a...).must(t, http.StatusOK)
	e.get("/ServiceRequest/"+id, b...).must(t, http.StatusNotFound) // denied: still audited
	e.get("/ServiceRequest?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhsNumber+"&status=active", a...).must(t, http.StatusOK)
	e.get("/metadata").must(t, http.StatusOK) // not an interaction with data

	events, raw := e.audit(t)
	if len(events) != 6 {
		t.Fatalf("%d audit events, want 6:\n%s", len(events), raw)
	}
	want := []struct{ subtype, action, outcome, who, what string }{
		{"create", "C", "0", "practice-a", "ServiceRequest/" + id + "/"},
		{"create", "C", "0", "practice-a", "ServiceRequest/" + id + "/"},
		{"create", "C", "4", "practice-a", ""},
		{"read", "R", "0", "practice-a", "ServiceRequest/" + id + "/_history/1"},
		{"read", "R", "4", "practice-b", "ServiceRequest/" + id},
		{"search-type", "E", "0", "practice-a", ""},
	}
	for i, w := range want {
		ev := events[i]
		if ev.Subtype[0].Code != w.subtype || ev.Action != w.action || ev.Outcome != w.outcome || ev.Agent[0].Who.Display != w.who || !ev.Agent[0].Requestor {
			t.Errorf("event %d = %+v, want %+v", i, ev, w)
		}
		if w.what != "" && (len(ev.Entity) == 0 || !strings.HasPrefix(ev.Entity[0].What.Reference+"/", w.what)) {
			t.Errorf("event %d entity = %+v, want %s", i, ev.Entity, w.what)
		}
	}
	if d := events[5].Entity[0].Description; d != "ServiceRequest search by identifier, status" {
		t.Errorf("search description %q", d)
	}
	if strings.Contains(raw, nhsNumber) {
		t.Error("an NHS number reached the audit trail")
	}
}

func TestRateLimitPerClient(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.rate, o.burst = 1, 3 })
	a := as("practice-a")
	statuses := map[int]int{}
	var retry string
	for i := 0; i < 6; i++ {
		res := e.get("/ServiceRequest", a...)
		statuses[res.status]++
		if res.status == http.StatusTooManyRequests {
			retry = res.header.Get("Retry-After")
			var oo struct{ Issue []struct{ Code string } }
			_ = json.Unmarshal(res.body, &oo)
			if len(oo.Issue) == 0 || oo.Issue[0].Code != "throttled" {
				t.Errorf("429 body: %s", res.body)
			}
		}
	}
	if statuses[http.StatusOK] < 3 || statuses[http.StatusOK] > 4 || statuses[http.StatusTooManyRequests] < 2 {
		t.Errorf("statuses %v: want the burst of 3 (perhaps 4) then 429", statuses)
	}
	if retry == "" || retry == "0" {
		t.Errorf("Retry-After = %q", retry)
	}
	// Another client is counted apart.
	e.get("/ServiceRequest", as("practice-b")...).must(t, http.StatusOK)
	// The refused requests did nothing and leave no record: a flood over
	// the limit cannot push older records out of the trimmed trail.
	events, raw := e.audit(t)
	for _, ev := range events {
		if ev.Outcome != "0" {
			t.Errorf("a request refused by the rate limit was audited:\n%s", raw)
			break
		}
	}
	if len(events) != 6-statuses[http.StatusTooManyRequests]+1 {
		t.Errorf("%d audit records, want one per request let through:\n%s", len(events), raw)
	}
}

// Logs and the audit trail of a run of ordinary and failing requests hold
// no synthetic patient's name or NHS number.
func TestNoPatientDataInLogsOrAudit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.warnNHS = true })
	a := as("practice-a")
	name := "Zebedee Testpatient-Unique"
	e.put("/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","name":[{"text":"`+name+`"}],"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber2+`"}]}`), a...).must(t, http.StatusCreated)
	e.post("/ServiceRequest", referral("NP-1", "390893007"), a...).must(t, http.StatusCreated)
	bad := strings.Replace(string(referral("NP-2", "390893007")), nhsNumber, badNHSNumber, 1)
	e.post("/ServiceRequest", []byte(bad), a...).must(t, http.StatusCreated) // warn policy
	e.post("/ServiceRequest", []byte(strings.Replace(bad, `"status":"active",`, ``, 1)), a...).must(t, http.StatusBadRequest)
	e.post("/Patient", []byte(`{"resourceType":"Patient","name":[{"text":"`+name+`"}],"gender":"f"}`), a...).must(t, http.StatusBadRequest)
	e.get("/Patient?identifier="+nhsNumber2, a...).must(t, http.StatusOK)
	e.get("/ServiceRequest?identifier="+badNHSNumber+"&nonsense="+nhsNumber, a...).must(t, http.StatusBadRequest)
	_, audit := e.audit(t)
	for _, secret := range []string{nhsNumber, nhsNumber2, badNHSNumber, name, "Testpatient"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
		if strings.Contains(audit, secret) {
			t.Errorf("audit contains %q", secret)
		}
	}
	if !strings.Contains(e.logs.String(), `"route":"/fhir/:type"`) {
		t.Error("the access log is empty: the check above proves nothing")
	}
}

// Behind a configured proxy the audit names the address the proxy
// forwarded; from anywhere else X-Forwarded-For is ignored, so a caller
// cannot choose the address it is recorded (and rate limited) by.
func TestAuditAddressBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		want    string
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7"},
		{"not trusted", nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, func(o *options) { o.proxies = tc.proxies })
			// The left entry is the caller's own claim; the proxy appended
			// the address it saw, which is the one to believe.
			e.post("/ServiceRequest", referral("PX-1", "390893007"), append(as("practice-a"), "X-Forwarded-For", "198.51.100.1, 203.0.113.7")...).must(t, http.StatusCreated)
			e.get("/metadata", "X-Forwarded-For", "203.0.113.7").must(t, http.StatusOK)
			entries, err := e.store.AuditTail(context.Background(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Record.Address != tc.want {
				t.Fatalf("audit %+v, want one record from %s", entries, tc.want)
			}
		})
	}
}
