package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A Redis that is out of memory (maxmemory reached, noeviction) answers
// PING but refuses every write. A referral is then 503 with Retry-After and
// an OperationOutcome saying it was not stored — not a 500 — and /readyz
// reports not ready until Redis takes writes again; then the same referral
// is stored.
func TestRedisOutOfMemory(t *testing.T) {
	t.Parallel()
	e := setup(t, onOneRedis) // it fills its Redis
	ready := "http://" + e.srv.Listener.Addr().String() + "/readyz"
	e.get(ready).must(t, http.StatusOK)
	rdb := e.redis.Client()
	ctx := context.Background()
	// One byte: whatever Redis holds is over it, so every write is refused.
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}

	res := e.post("/ServiceRequest", referral("OOM-1", "390893007")).must(t, http.StatusServiceUnavailable)
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Code, Diagnostics string }
	}
	if err := json.Unmarshal(res.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != "transient" ||
		!strings.Contains(oo.Issue[0].Diagnostics, "not stored") {
		t.Errorf("body: %s", res.body)
	}
	if strings.Contains(e.logs.String(), nhsNumber) {
		t.Error("the NHS number reached the log")
	}
	res = e.get(ready).must(t, http.StatusServiceUnavailable)
	if res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), "out of memory") {
		t.Errorf("/readyz: %v %s", res.header, res.body)
	}

	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	e.get(ready).must(t, http.StatusOK)
	e.post("/ServiceRequest", referral("OOM-1", "390893007")).must(t, http.StatusCreated)
	if got := total(t, e.get("/Task")); got != 1 {
		t.Errorf("%d Tasks, want 1", got)
	}
}
