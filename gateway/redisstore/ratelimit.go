package redisstore

import (
	"context"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Limiter limits requests per key (a client id) across every gateway
// replica, in Redis. The algorithm is redis_rate's GCRA (the generic cell
// rate algorithm: a token bucket kept as one timestamp, advanced by one Lua
// script of constant time that reads the clock from Redis, so every replica
// shares one clock and one count).
type Limiter struct {
	gcra  *redis_rate.Limiter
	keys  keys
	limit redis_rate.Limit
}

// Limiter returns a limiter of perSecond requests with bursts of burst.
func (s *Store) Limiter(perSecond float64, burst int) *Limiter {
	// redis_rate counts whole requests per period; a rate below one a
	// second (sign-in: one every six seconds) is one request per interval.
	interval := time.Duration(math.Round(float64(time.Second) / perSecond))
	return &Limiter{gcra: redis_rate.NewLimiter(s.rdb), keys: s.keys,
		limit: redis_rate.Limit{Rate: 1, Period: interval, Burst: max(burst, 1)}}
}

// Allow counts one request for key. When it is over the limit it returns
// false and how long until a request would be allowed.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := l.gcra.Allow(ctx, l.keys.rate(key), l.limit)
	if err != nil {
		return false, 0, classify(err)
	}
	return res.Allowed == 1, max(res.RetryAfter, 0), nil
}
