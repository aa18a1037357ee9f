package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	t.Parallel()
	testRetentionRemovesABaRSReferralWhole(t)
}

// The same on a store that spreads referrals (one Redis and a cluster):
// the referral, its filed keys and its journey in its partition, its
// queued jobs in that partition's queues.
func TestSpreadRetentionRemovesABaRSReferralWhole(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		t.Parallel()
		testRetentionRemovesABaRSReferralWhole(t, on, spread)
	})
}

func testRetentionRemovesABaRSReferralWhole(t *testing.T, opts ...func(*options)) {
	e := setup(t, append(opts, withBaRSService, withWarnNHS)...)
	ctx := context.Background()
	before := e.keys(t, "*")
	a := as("practice-a")
	e.post("/$process-message", barsExample(t), with(a, "X-Request-Id", "55555555-5555-4555-8555-555555555555")...).must(t, http.StatusOK)
	revoke := barsChange(t, "2c0f5b8e-1d2a-4e3b-9c4d-5e6f7a8b9c0d", "update", func(sr map[string]any) { sr["status"] = "revoked" })
	e.post("/$process-message", revoke, with(a, "X-Request-Id", "66666666-6666-4666-8666-666666666666")...).must(t, http.StatusOK)
	made := e.keys(t, "*:u:message*")
	if len(made) < 5 { // the two messages' ids and request ids, the fullUrl, the origin
		t.Fatalf("the messages claimed %d message keys: %v", len(made), made)
	}
	if e.store.Spread() && slices.ContainsFunc(made, func(k string) bool { return strings.HasPrefix(k, "{signpost}") }) {
		t.Fatalf("a spread referral's message keys are in legacy: %v", made)
	}
	// No worker runs here: the queued deliveries stand for delivered ones.
	for _, q := range []string{"delivery", "notify", "subscription"} {
		for _, k := range e.keys(t, "*:q:"+q) {
			e.rdb.Del(ctx, k)
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

// keys lists the keys matching pattern, on the one Redis or on every
// primary of the cluster.
func (e *env) keys(t *testing.T, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	cc, ok := e.rdb.(*redis.ClusterClient)
	if !ok {
		ks, err := e.rdb.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	var mu sync.Mutex
	var out []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		ks, err := node.Keys(ctx, pattern).Result()
		mu.Lock()
		defer mu.Unlock()
		out = append(out, ks...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
