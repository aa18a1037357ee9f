package redisstore

import (
	"context"
	_ "embed"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed scripts/ratelimit.lua
	rateLimitLua    string
	rateLimitScript = redis.NewScript(rateLimitLua)
)

// Limiter limits requests per key (a client id) across every gateway
// replica, in Redis.
type Limiter struct {
	rdb       redis.UniversalClient
	keys      keys
	interval  int64 // microseconds between requests at the sustained rate
	tolerance int64 // how far ahead of the sustained rate a burst may go
}

// Limiter returns a limiter of perSecond requests with bursts of burst.
func (s *Store) Limiter(perSecond float64, burst int) *Limiter {
	interval := int64(math.Round(1e6 / perSecond))
	return &Limiter{rdb: s.rdb, keys: s.keys, interval: interval, tolerance: interval * int64(max(burst-1, 0))}
}

// Allow counts one request for key. When it is over the limit it returns
// false and how long until a request would be allowed.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := rateLimitScript.Run(ctx, l.rdb, []string{l.keys.rate(key)}, l.interval, l.tolerance).Int64Slice()
	if err != nil {
		return false, 0, classify(err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}
