package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// referralKeyReads counts the calls to Redis that read referrals'
// idempotency keys (GETs of "referral|…" unique keys): one a command sent
// alone, one a pipeline however many it holds, so the round trips.
type referralKeyReads struct{ n atomic.Int64 }

func readsReferralKey(cmd redis.Cmder) bool {
	args := cmd.Args()
	if cmd.Name() != "get" || len(args) < 2 {
		return false
	}
	key, _ := args[1].(string)
	return strings.Contains(key, ":u:referral|")
}

func (c *referralKeyReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *referralKeyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if readsReferralKey(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *referralKeyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if readsReferralKey(cmd) {
				c.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// A transaction of many referrals, each with several business
// identifiers, reads all their idempotency keys in one round trip before
// it is planned, not one an identifier (on a spreading store, 17 GETs
// each, hundreds of waits for a full Bundle): sent first and sent again,
// on a store that spreads referrals (every attempt looks, in every
// partition) and on one that does not (it looks only when its commit
// found a key held, and plans again). The repeat is answered as before,
// every entry with the referral held.
func TestTransactionReadsItsReferralsKeysInOneRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		on           []func(*options)
		first, again int64 // key reads when sent first, and again
	}{
		{"redis", []func(*options){onOneRedis, unspread}, 0, 1},
		{"spread redis", []func(*options){onOneRedis, spread}, 1, 1},
		{"spread cluster", []func(*options){onCluster, spread}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, c.on...)
			reads := &referralKeyReads{}
			e.rdb.AddHook(reads)
			const referrals, identifiers = 20, 3
			var entries []string
			for i := range referrals {
				var ids []string
				for j := range identifiers {
					ids = append(ids, fmt.Sprintf(`{"system":"%s","value":"KEYS-%d-%d"}`, gpIdentSystem, i, j))
				}
				body := strings.Replace(string(referral(fmt.Sprintf("KEYS-%d-0", i), "390893007")),
					fmt.Sprintf(`"identifier":[{"system":"%s","value":"KEYS-%d-0"}]`, gpIdentSystem, i),
					`"identifier":[`+strings.Join(ids, ",")+`]`, 1)
				entries = append(entries, entry(fmt.Sprintf("urn:uuid:00000000-0000-0000-0000-%012d", i), "ServiceRequest", body))
			}
			bundle := transaction(entries...)
			statuses := func(res *response) map[string]int {
				t.Helper()
				out := map[string]int{}
				for _, en := range res.json(t)["entry"].([]any) {
					out[en.(map[string]any)["response"].(map[string]any)["status"].(string)]++
				}
				return out
			}
			before := reads.n.Load()
			first := e.post("", bundle, as("practice-a")...).must(t, http.StatusOK)
			if n := reads.n.Load() - before; n != c.first {
				t.Errorf("the transaction read its referrals' keys in %d round trips, want %d", n, c.first)
			}
			if s := statuses(first); s["201 Created"] != referrals {
				t.Errorf("sent first: %v, want %d created", s, referrals)
			}
			before = reads.n.Load()
			again := e.post("", bundle, as("practice-a")...).must(t, http.StatusOK)
			if n := reads.n.Load() - before; n != c.again {
				t.Errorf("sent again, the transaction read its referrals' keys in %d round trips, want %d", n, c.again)
			}
			if s := statuses(again); s["200 OK"] != referrals {
				t.Errorf("sent again: %v, want %d answered with the referral held", s, referrals)
			}
		})
	}
}
