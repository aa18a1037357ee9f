package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// A server whose clock has fallen behind Redis's (its host's time
// synchronisation broken) must not store versions stamped further in the
// past than gateway.FollowLag: an export whose snapshot was taken since
// would pass them over. The store refuses them; the client is answered 503
// with a short Retry-After (another server may take the request) and an
// OperationOutcome saying why, without the request's data; the log tells
// operators what to check. An update of a version written moments ago is
// stamped no earlier than that version (gateway.NextVersionTime), so it
// lands within the lag of its stamp and is taken.
func TestWriteFromAServerWhoseClockIsBehindIsRefused(t *testing.T) {
	t.Parallel()
	var behind atomic.Int64 // how far behind Redis's clock this server is, ns
	e := setup(t, withNow(func() time.Time { return time.Now().Add(-time.Duration(behind.Load())) }))
	patient := `{"resourceType":"Patient","id":"gp-pat-clock","name":[{"family":"Testpatient"}]}`
	first := e.put("/Patient/gp-pat-clock", []byte(patient)).must(t, http.StatusCreated)

	behind.Store(int64(gateway.FollowLag + time.Minute))
	other := `{"resourceType":"Patient","id":"gp-pat-clock-2","name":[{"family":"Clockpatient"}]}`
	res := e.put("/Patient/gp-pat-clock-2", []byte(other)).must(t, http.StatusServiceUnavailable)
	if got := res.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	body := string(res.body)
	if !strings.Contains(body, `"OperationOutcome"`) || !strings.Contains(body, `"transient"`) || !strings.Contains(body, "clock is behind") {
		t.Errorf("outcome does not say the server's clock is behind: %s", body)
	}
	if strings.Contains(body, "gp-pat-clock-2") || strings.Contains(body, "Clockpatient") {
		t.Errorf("outcome repeats the request: %s", body)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "NTP") || strings.Contains(logs, "Clockpatient") {
		t.Errorf("the log does not tell operators to check the clock, or holds the request: %s", logs)
	}
	e.get("/Patient/gp-pat-clock-2").must(t, http.StatusNotFound)

	// The same server updating the Patient written moments ago stamps the
	// new version at the old one's time, not a minute before it.
	changed := strings.Replace(patient, "Testpatient", "Renamedpatient", 1)
	second := e.put("/Patient/gp-pat-clock", []byte(changed)).must(t, http.StatusOK)
	v1, v2 := stampOf(t, first.body), stampOf(t, second.body)
	if !v2.Equal(v1) {
		t.Errorf("version 2 from the server behind stamped %s, want version 1's %s", v2, v1)
	}

	// Its clock set right, the refused request is taken.
	behind.Store(0)
	e.put("/Patient/gp-pat-clock-2", []byte(other)).must(t, http.StatusCreated)
}

// A version's time never goes back, whatever the clock of the server that
// writes it: the export finds the version current at its snapshot by
// binary search over them. Version 1 stamped by a server whose clock is
// ahead (taken: within what clocks differ by), version 2 by one whose
// clock is right is stamped at version 1's time, not before it; and is
// taken, rather than refused again at every attempt.
func TestAnUpdateIsNeverStampedBeforeTheVersionItReplaces(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64 // how far ahead of Redis's clock this server is, ns
	e := setup(t, withNow(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }))
	patient := `{"resourceType":"Patient","id":"gp-pat-stamp","name":[{"family":"Testpatient"}]}`
	ahead.Store(int64(2 * time.Second))
	first := e.put("/Patient/gp-pat-stamp", []byte(patient)).must(t, http.StatusCreated)

	ahead.Store(0)
	changed := strings.Replace(patient, "Testpatient", "Stamppatient", 1)
	second := e.put("/Patient/gp-pat-stamp", []byte(changed)).must(t, http.StatusOK)
	v1, v2 := stampOf(t, first.body), stampOf(t, second.body)
	if v2.Before(v1) {
		t.Errorf("version 2 stamped %s, before version 1's %s", v2, v1)
	}
}

// stampOf is a resource's meta.lastUpdated.
func stampOf(t *testing.T, body []byte) time.Time {
	t.Helper()
	var r struct {
		Meta struct{ LastUpdated time.Time } `json:"meta"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Meta.LastUpdated
}
