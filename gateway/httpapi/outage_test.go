package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// With Redis down a referral is refused with 503, Retry-After and a
// transient OperationOutcome, and nothing acknowledged is lost: when Redis
// comes back (from its append-only file) service resumes without a restart.
func TestRedisDownThenBack(t *testing.T) {
	t.Parallel()
	e := setup(t, onOneRedis) // it stops its Redis
	first := e.post("/ServiceRequest", referral("O-1", "390893007")).must(t, http.StatusCreated).json(t)

	e.redis.Kill()
	res := e.post("/ServiceRequest", referral("O-2", "390893007")).must(t, http.StatusServiceUnavailable)
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Code string }
	}
	if err := json.Unmarshal(res.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != "transient" {
		t.Errorf("body: %s", res.body)
	}
	e.get("http://"+e.srv.Listener.Addr().String()+"/readyz").must(t, http.StatusServiceUnavailable)
	e.get("/ServiceRequest/"+first["id"].(string)).must(t, http.StatusServiceUnavailable)

	e.redis.Restart()
	// The Redis client backs off dialling after failures and retries about
	// once a second, so service resumes on its own shortly after Redis does.
	deadline := time.Now().Add(5 * time.Second)
	for e.get("http://"+e.srv.Listener.Addr().String()+"/readyz").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 5 s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.get("/ServiceRequest/"+first["id"].(string)).must(t, http.StatusOK)
	e.post("/ServiceRequest", referral("O-2", "390893007")).must(t, http.StatusCreated)
	if got := total(t, e.get("/Task")); got != 2 {
		t.Errorf("%d Tasks after the outage, want 2", got)
	}
}
