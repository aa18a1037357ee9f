package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// The audit stream is bounded: each record Signpost appends alone trims
// the oldest beyond the configured number, and TrimAudit catches up with
// the records writes append in their commit. Trimming is approximate
// (whole stream nodes of 100 entries), so the stream keeps at most a node
// more than asked.
func TestAuditStreamTrimmed(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	rdb := r.Client()
	ctx := context.Background()
	const keep = 1000
	s.SetAuditMax(keep)
	rec := &gateway.AuditRecord{Recorded: time.Now(), Interaction: "read", Action: "R", Status: 200, Client: "practice-a", What: []string{"Task/t1/_history/1"}}
	for range 3 * keep {
		if err := s.Audit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.AuditLength(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < keep || n > keep+100 {
		t.Errorf("%d records after %d appends, want %d to %d", n, 3*keep, keep, keep+100)
	}
	// Appended as commit.lua appends a write's record: not trimmed then.
	pipe := rdb.Pipeline()
	for range 3 * keep {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.audit(), Values: rec.Fields()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.AuditLength(ctx); n <= keep+100 {
		t.Fatalf("%d records: the commits' appends did not grow the stream", n)
	}
	if err := s.TrimAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.AuditLength(ctx); n < keep || n > keep+100 {
		t.Errorf("%d records after TrimAudit, want %d to %d", n, keep, keep+100)
	}
	// The newest record is kept, whole.
	tail, err := s.AuditTail(ctx, 1)
	if err != nil || len(tail) != 1 || tail[0].Record.Client != "practice-a" {
		t.Errorf("tail %+v %v", tail, err)
	}
}
