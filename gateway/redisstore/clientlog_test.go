package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore"
)

// A flood of the Redis client's lines during an outage becomes one JSON
// warning a period, saying how many lines it stands for.
func TestClientLogIsStructuredAndThinned(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	l := redisstore.NewClientLog(slog.New(slog.NewJSONHandler(&buf, nil)), time.Minute, func() time.Time { return now })
	for i := range 200 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: dial tcp 127.0.0.1:1: connect: connection refused", i)
	}
	now = now.Add(61 * time.Second)
	l.Printf(context.Background(), "redis: still down")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines for 201, want 2:\n%s", len(lines), buf.String())
	}
	var second struct {
		Level  string  `json:"level"`
		Folded float64 `json:"similar_lines_not_written"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("not JSON: %s", lines[1])
	}
	if second.Level != "WARN" || second.Folded != 199 {
		t.Errorf("second line %s", lines[1])
	}
}

// Once closed, a ClientLog writes nothing: a client's goroutines that log
// after their program returned do not write into its output.
func TestClientLogWritesNothingOnceClosed(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := redisstore.NewClientLog(slog.New(slog.NewJSONHandler(&buf, nil)), 0, nil)
	l.Printf(context.Background(), "before")
	l.Close()
	l.Printf(context.Background(), "after")
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("%d lines, want the one before Close:\n%s", n, buf.String())
	}
}
