package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ClientLog takes the Redis client's own log lines (failed dials, pool
// errors), which go-redis otherwise writes to stderr in a format of its
// own between the JSON lines, and writes them through the structured
// logger, once an outage rather than once a failed dial.
//
// An outage starts with the first dial that fails (seen by the dial hook
// Watch adds to a client) or the first line of the client's while none is
// known: one warning says so. Every line of the client's after it is
// counted, not written, until a dial succeeds again: one info line says
// Redis is reachable again and how many lines it stood for.
//
// Nothing of a command reaches the log: a line's values are written only
// when they are numbers, durations, addresses or network errors, the rest
// as [redacted], so a key or an argument (which may hold an identifier a
// client chose, an NHS number even) never does.
type ClientLog struct {
	log *slog.Logger

	mu     sync.Mutex
	hint   string
	down   bool // an outage is under way
	folded int  // the client's lines during it, not written
	closed bool // Close was called: nothing more is written
}

// NewClientLog makes a ClientLog writing to log.
func NewClientLog(log *slog.Logger) *ClientLog { return &ClientLog{log: log} }

// RouteClientLogs sends the Redis client's log lines, process-wide, to log.
// go-redis swaps its logger atomically, so this is safe while clients run.
// Watch each client, so that the end of an outage is seen. Close the
// ClientLog when its program part stops: a client's goroutines may still
// log after their program has returned, into a writer nobody should write
// to any more.
func RouteClientLogs(log *slog.Logger) *ClientLog {
	c := NewClientLog(log)
	redis.SetLogger(c)
	return c
}

// Watch adds to rdb the dial hook by which the ClientLog learns when Redis
// stops answering and when it answers again.
func (c *ClientLog) Watch(rdb redis.UniversalClient) {
	if c != nil {
		rdb.AddHook(clientLogHook{c})
	}
}

// SetHint gives the outage warnings a hint: what to do about it.
func (c *ClientLog) SetHint(hint string) {
	c.mu.Lock()
	c.hint = hint
	c.mu.Unlock()
}

// Down reports whether an outage is under way: it has been logged.
func (c *ClientLog) Down() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
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

// Printf is go-redis's logging interface.
func (c *ClientLog) Printf(ctx context.Context, format string, v ...any) {
	// The lock is held while writing, so that Close waits for a line being
	// written to finish.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.down {
		c.folded++
		return
	}
	c.down = true
	c.outage(ctx, "detail", clientLine(format, v))
}

// outage writes the warning that starts an outage.
func (c *ClientLog) outage(ctx context.Context, attrs ...any) {
	if c.hint != "" {
		attrs = append(attrs, "hint", c.hint)
	}
	c.log.WarnContext(ctx, "redis unreachable: the client's further lines are counted until it answers again", attrs...)
}

// dialed is told each dial's outcome by the hook.
func (c *ClientLog) dialed(ctx context.Context, addr string, err error) {
	if err != nil && errors.Is(err, context.Canceled) {
		return // the caller gave up: says nothing of Redis
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || (err != nil) == c.down {
		return
	}
	if err != nil {
		c.down = true
		c.outage(ctx, "addr", addr, "error", err.Error())
		return
	}
	folded := c.folded
	c.down, c.folded = false, 0
	c.log.InfoContext(ctx, "redis reachable again", "addr", addr, "client_lines_not_written", folded)
}

// maxClientLogLine bounds one line of the client's, as written.
const maxClientLogLine = 512

// clientLine is a line of the client's with only values that cannot hold
// data written in it.
func clientLine(format string, v []any) string {
	safe := make([]any, len(v))
	for i, x := range v {
		switch x := x.(type) {
		case int, int32, int64, uint, uint32, uint64, float64, bool:
			safe[i] = x
		case interface{ Seconds() float64 }: // time.Duration
			safe[i] = x
		case *net.OpError, *net.DNSError, net.Addr:
			safe[i] = x
		case error:
			if errors.Is(x, context.DeadlineExceeded) || errors.Is(x, context.Canceled) {
				safe[i] = x
			} else if op := (*net.OpError)(nil); errors.As(x, &op) {
				safe[i] = op
			} else {
				safe[i] = redacted{}
			}
		default:
			safe[i] = redacted{}
		}
	}
	msg := fmt.Sprintf(format, safe...)
	if len(msg) > maxClientLogLine {
		msg = msg[:maxClientLogLine] + "…"
	}
	return msg
}

// redacted stands in for a value left out of a line, whatever its verb.
type redacted struct{}

func (redacted) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// clientLogHook is the dial hook of Watch; commands pass through untouched.
type clientLogHook struct{ c *ClientLog }

func (h clientLogHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		h.c.dialed(ctx, addr, err)
		return conn, err
	}
}

func (clientLogHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (clientLogHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
