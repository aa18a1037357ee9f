package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

func stringFields(v map[string]any) map[string]string {
	out := make(map[string]string, len(v))
	for k, x := range v {
		out[k], _ = x.(string)
	}
	return out
}

// Audit appends an AuditEvent to the audit stream. Signpost only ever
// appends to it (no trimming, no deletes): an operator archives and trims it
// (XTRIM) by their own retention rules.
func (s *Store) Audit(ctx context.Context, r *gateway.AuditRecord) error {
	fields := r.Fields()
	args := make([]any, 0, 3+len(fields))
	args = append(args, "xadd", s.keys.audit(), "*")
	for _, f := range fields {
		args = append(args, f)
	}
	return classify(s.batch.do(ctx, redis.NewStringCmd(ctx, args...)))
}

// AuditEntry is one kept audit record with its stream id (its time and order).
type AuditEntry struct {
	ID     string
	Record gateway.AuditRecord
}

// AuditTail returns the last n AuditEvents, oldest first.
func (s *Store) AuditTail(ctx context.Context, n int64) ([]AuditEntry, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.audit(), "+", "-", n).Result()
	if err != nil {
		return nil, classify(err)
	}
	out := make([]AuditEntry, len(msgs))
	for i, m := range msgs {
		out[len(msgs)-1-i] = AuditEntry{ID: m.ID, Record: gateway.ReadAuditRecord(stringFields(m.Values))}
	}
	return out, nil
}

// AuditFollow waits for AuditEvents after the stream id after ("$": from
// now) and returns them, blocking at most as long as ctx allows.
func (s *Store) AuditFollow(ctx context.Context, after string) ([]AuditEntry, error) {
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{s.keys.audit(), after}, Block: 0, Count: 100}).Result()
	if err != nil {
		return nil, classify(err)
	}
	var out []AuditEntry
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, AuditEntry{ID: m.ID, Record: gateway.ReadAuditRecord(stringFields(m.Values))})
		}
	}
	return out, nil
}
