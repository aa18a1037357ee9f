package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/retention"
)

// A BaRS referral made by one message and revoked by another, with
// X-Request-Ids, goes whole when retention removes it: every key whose
// name holds what the referral does not store (the messages' ids, the
// ServiceRequest entry's fullUrl, the X-Request-Ids) was filed under it
// when claimed, and goes with it. What stays is what no one referral owns
// (the audit trail, the registry of token systems, the queues) and the
// summary of its journey the outcomes view counts.
func TestRetentionRemovesABaRSReferralWhole(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	ctx := context.Background()
	rdb := e.rdb
	before := e.keys(t, "*")
	a := as("practice-a")
	e.post("/$process-message", barsExample(t), with(a, "X-Request-Id", "55555555-5555-4555-8555-555555555555")...).must(t, http.StatusOK)
	revoke := barsChange(t, "2c0f5b8e-1d2a-4e3b-9c4d-5e6f7a8b9c0d", "update", func(sr map[string]any) { sr["status"] = "revoked" })
	e.post("/$process-message", revoke, with(a, "X-Request-Id", "66666666-6666-4666-8666-666666666666")...).must(t, http.StatusOK)
	made := e.keys(t, "*:u:message*")
	if len(made) < 5 { // the two messages' ids and request ids, the fullUrl, the origin
		t.Fatalf("the messages claimed %d message keys: %v", len(made), made)
	}
	// No worker runs here: the queued deliveries stand for delivered ones.
	for _, q := range []string{gateway.QueueDelivery, gateway.QueueNotify, gateway.QueueSubscription} {
		for _, part := range e.store.Queues(q).Partitions() {
			rdb.Del(ctx, part.Key())
		}
	}
	run := &retention.Runner{Store: e.store, Policy: retention.Policy{ClosedAfter: time.Hour}, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	rep, err := run.Run(ctx, false)
	if err != nil || rep.Removed != 1 {
		t.Fatalf("retention: %+v %v", rep, err)
	}
	for _, k := range e.keys(t, "*") {
		switch {
		case slices.Contains(before, k),
			strings.HasSuffix(k, ":audit"), strings.HasSuffix(k, ":sys"), strings.Contains(k, ":jr:"),
			strings.Contains(k, ":q:"), strings.Contains(k, ":rl:"):
		default:
			t.Errorf("left behind: %s", k)
		}
	}
}
