package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientLog takes the Redis client's own log lines (failed dials, pool
// errors), which go-redis otherwise writes to stderr in a format of its
// own between the JSON lines, and writes them through the structured
// logger. While Redis is unreachable the client logs every failed dial of
// every connection it tries, so one warning is written when they start and
// then at most one each period, saying how many lines it stands for.
type ClientLog struct {
	log    *slog.Logger
	period time.Duration
	now    func() time.Time

	mu     sync.Mutex
	next   time.Time // when the next line may be written
	folded int       // lines not written since the last one
}

// NewClientLog makes a ClientLog writing at most one line each period.
func NewClientLog(log *slog.Logger, period time.Duration, now func() time.Time) *ClientLog {
	if now == nil {
		now = time.Now
	}
	return &ClientLog{log: log, period: period, now: now}
}

// RouteClientLogs sends the Redis client's log lines, process-wide, to log
// (at most one a minute). go-redis swaps its logger atomically, so this is
// safe while clients run.
func RouteClientLogs(log *slog.Logger) {
	redis.SetLogger(NewClientLog(log, time.Minute, nil))
}

// maxClientLogLine bounds one line of the client's, as written.
const maxClientLogLine = 512

// Printf is go-redis's logging interface.
func (c *ClientLog) Printf(ctx context.Context, format string, v ...any) {
	c.mu.Lock()
	now := c.now()
	if now.Before(c.next) {
		c.folded++
		c.mu.Unlock()
		return
	}
	folded := c.folded
	c.folded, c.next = 0, now.Add(c.period)
	c.mu.Unlock()
	msg := fmt.Sprintf(format, v...)
	if len(msg) > maxClientLogLine {
		msg = msg[:maxClientLogLine] + "…"
	}
	c.log.WarnContext(ctx, "redis client", "detail", msg, "similar_lines_not_written", folded)
}
