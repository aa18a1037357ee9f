package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// syncBuffer is a log output read while clients may still write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the JSON lines written so far, each decoded; a line that is not
// JSON fails the test.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func count(lines []map[string]any, level, msgPrefix string) int {
	n := 0
	for _, l := range lines {
		if l["level"] == level && strings.HasPrefix(l["msg"].(string), msgPrefix) {
			n++
		}
	}
	return n
}

// The client's lines during an outage are one warning, and its end one
// info line saying how many lines it stood for.
func TestClientLogOneWarningAnOutage(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := redisstore.NewClientLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	for i := range 200 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", i, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
	}
	lines := buf.lines(t)
	if len(lines) != 1 || count(lines, "WARN", "redis unreachable") != 1 {
		t.Fatalf("200 lines of the client's became %v, want one warning", lines)
	}
	// An error that is not a network error may carry anything: left out.
	if d := lines[0]["detail"].(string); d != "redis: connection pool: failed to dial after 0 attempts: [redacted]" {
		t.Errorf("detail %q", d)
	}
}

// Once closed, a ClientLog writes nothing: a client's goroutines that log
// after their program returned do not write into its output.
func TestClientLogWritesNothingOnceClosed(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := redisstore.NewClientLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	l.Close()
	l.Printf(context.Background(), "after")
	if n := len(buf.lines(t)); n != 0 {
		t.Errorf("%d lines after Close", n)
	}
}

// With a real Redis that goes away twice: JSON lines only, one warning an
// outage however many commands fail, one info line when Redis is back, and
// nothing of the commands (their keys) in any line. Not parallel: the
// client's logger is process-wide.
func TestUnreachableRedisIsOneJSONWarningAnOutage(t *testing.T) {
	r := redistest.Start(t)
	var buf syncBuffer
	l := redisstore.RouteClientLogs(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, PoolSize: 4,
		DialerRetries: 2, DialerRetryTimeout: 10 * time.Millisecond})
	defer rdb.Close()
	l.Watch(rdb)
	ctx := context.Background()
	const key = "{signpost}:r:Patient:9434765919"
	if err := rdb.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	outage := func() {
		r.Kill()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if rdb.Get(cctx, key).Err() == nil {
					t.Error("a read succeeded with Redis down")
				}
			})
		}
		wg.Wait()
	}
	back := func() {
		r.Restart()
		deadline := time.Now().Add(10 * time.Second)
		for rdb.Get(ctx, key).Err() != nil {
			if time.Now().After(deadline) {
				t.Fatal("the client did not reach Redis again")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	outage()
	lines := buf.lines(t)
	if count(lines, "WARN", "redis unreachable") != 1 || len(lines) != 1 {
		t.Fatalf("the first outage wrote %d lines, want one warning:\n%s", len(lines), buf.buf.String())
	}
	back()
	lines = buf.lines(t)
	if count(lines, "INFO", "redis reachable again") != 1 || len(lines) != 2 {
		t.Fatalf("after Redis came back, %d lines, want a warning and one info:\n%s", len(lines), buf.buf.String())
	}
	outage()
	back()
	lines = buf.lines(t)
	if count(lines, "WARN", "redis unreachable") != 2 || count(lines, "INFO", "redis reachable again") != 2 || len(lines) != 4 {
		t.Errorf("two outages wrote %d lines, want a warning and an info each:\n%s", len(lines), buf.buf.String())
	}
	t.Logf("the log:\n%s", buf.buf.String())
	if strings.Contains(buf.buf.String(), "9434765919") {
		t.Error("a key reached the log")
	}
}
