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
	closed bool      // Close was called: nothing more is written
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
// safe while clients run. Close the ClientLog when its program part stops:
// a client's goroutines may still log after their program has returned,
// into a writer nobody should write to any more.
func RouteClientLogs(log *slog.Logger) *ClientLog {
	c := NewClientLog(log, time.Minute, nil)
	redis.SetLogger(c)
	return c
}

// Close stops the ClientLog writing: when it returns, no line is being
// written and none will be.
func (c *ClientLog) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// maxClientLogLine bounds one line of the client's, as written.
const maxClientLogLine = 512

// Printf is go-redis's logging interface.
func (c *ClientLog) Printf(ctx context.Context, format string, v ...any) {
	// The lock is held while writing, so that Close waits for a line being
	// written to finish.
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.closed {
		return
	}
	if now.Before(c.next) {
		c.folded++
		return
	}
	folded := c.folded
	c.folded, c.next = 0, now.Add(c.period)
	msg := fmt.Sprintf(format, v...)
	if len(msg) > maxClientLogLine {
		msg = msg[:maxClientLogLine] + "…"
	}
	c.log.WarnContext(ctx, "redis client", "detail", msg, "similar_lines_not_written", folded)
}
