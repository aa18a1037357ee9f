package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore"
)

// Redis evicts nothing Signpost keeps (noeviction): when it reaches its
// maxmemory it refuses writes, and Signpost answers 503 until memory is
// freed or added. The watcher warns before that, in the log operators read,
// whatever /readyz says (Redis is reachable and ready until the moment it
// is full).
const (
	memoryWarnShare  = 0.80 // warn at this share of maxmemory
	memoryClearShare = 0.75 // and say so again once below this
	memoryEvery      = 30 * time.Second
)

// watchRedisMemory reads Redis's memory every memoryEvery until ctx ends,
// logging a warning when it crosses memoryWarnShare of maxmemory (once per
// crossing), and once at start when no maxmemory is set.
func watchRedisMemory(ctx context.Context, read func(context.Context) (redisstore.Memory, error), log *slog.Logger, period time.Duration) {
	w := memoryWatch{log: log}
	look := func() bool {
		if m, err := read(ctx); err == nil { // unreachable: /readyz and the client's own warning say so
			w.see(ctx, m)
		}
		return false
	}
	look() // at start, then every period
	every(ctx, period, look)
}

// memoryWatch remembers what was said, so each state is said once.
type memoryWatch struct {
	log             *slog.Logger
	high, unlimited bool
}

func (w *memoryWatch) see(ctx context.Context, m redisstore.Memory) {
	switch share := m.Share(); {
	case m.Max <= 0:
		if !w.unlimited {
			w.unlimited = true
			w.log.WarnContext(ctx, "Redis has no maxmemory: it grows until the machine runs out, and nothing warns before; set maxmemory (and maxmemory-policy noeviction), see deploy/README.md",
				"redis_used_bytes", m.Used)
		}
	case share >= memoryWarnShare && !w.high:
		w.high = true
		w.log.WarnContext(ctx, "Redis memory is near its maxmemory: at the limit it refuses writes and referrals are answered 503; add memory or remove old data",
			"redis_used_bytes", m.Used, "redis_maxmemory_bytes", m.Max, "share", share)
	case share < memoryClearShare && w.high:
		w.high = false
		w.log.InfoContext(ctx, "Redis memory is below the warning level again", "redis_used_bytes", m.Used, "redis_maxmemory_bytes", m.Max, "share", share)
	}
}
