package redisstore

import (
	"context"
	"slices"
	"strconv"
	"time"

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

// DefaultAuditMaxEntries is about how many audit records the stream keeps
// unless configured (audit.max_entries): a record is some 200 bytes in
// Redis, so about 200 MiB of trail. An operator who must keep more for
// longer archives it (signpost audit tail) before it is trimmed.
const DefaultAuditMaxEntries = 1_000_000

// SetAuditMax sets about how many records the audit stream keeps. Call it
// before the Store is used.
func (s *Store) SetAuditMax(n int64) {
	if n > 0 {
		s.auditMax = n
	}
}

// Audit appends an AuditEvent to the audit stream, trimming its oldest
// records beyond the configured number in the same command. The trim is
// approximate (MAXLEN ~): Redis drops whole nodes of the stream only, so
// each append's share of it is small and bounded, and the stream keeps
// between auditMax and a node's worth (100 records) more.
func (s *Store) Audit(ctx context.Context, r *gateway.AuditRecord) error {
	fields := r.Fields()
	args := make([]any, 0, 6+len(fields))
	args = append(args, "xadd", s.keys.audit(), "maxlen", "~", s.auditMax, "*")
	for _, f := range fields {
		args = append(args, f)
	}
	return classify(s.batch.do(ctx, redis.NewStringCmd(ctx, args...)))
}

// TrimAudit trims the audit stream to about the configured number of
// records. The records a write's commit appends (commit.lua) are not
// trimmed as they are added; this, called on a timer, catches up with them.
func (s *Store) TrimAudit(ctx context.Context) error {
	if s.spread {
		return s.trimAuditEverywhere(ctx)
	}
	return classify(s.rdb.XTrimMaxLenApprox(ctx, s.keys.audit(), s.auditMax, 0).Err())
}

// AuditLength is how many records the audit stream holds (its growth is a
// metric).
func (s *Store) AuditLength(ctx context.Context) (int64, error) {
	if s.spread {
		lengths, _, err := s.auditLengths(ctx)
		var total int64
		for _, l := range lengths {
			total += l
		}
		return total, err
	}
	n, err := s.rdb.XLen(ctx, s.keys.audit()).Result()
	return n, classify(err)
}

// AuditEntry is one kept audit record with its stream id (its time and order).
type AuditEntry = gateway.AuditEntry

// AuditBefore returns up to n records older than the stream id before ("+"
// for the newest; "(id" excludes id) and not older than since, newest first.
func (s *Store) AuditBefore(ctx context.Context, before string, since time.Time, n int64) ([]gateway.AuditEntry, error) {
	if s.spread {
		return s.auditBeforeEverywhere(ctx, before, since, n)
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.audit(), before, strconv.FormatInt(since.UnixMilli(), 10), n).Result()
	if err != nil {
		return nil, classify(err)
	}
	out := make([]gateway.AuditEntry, len(msgs))
	for i, m := range msgs {
		out[i] = gateway.AuditEntry{ID: m.ID, Record: gateway.ReadAuditRecord(stringFields(m.Values))}
	}
	return out, nil
}

// AuditTail returns the last n AuditEvents, oldest first.
func (s *Store) AuditTail(ctx context.Context, n int64) ([]AuditEntry, error) {
	if s.spread {
		out, err := s.auditBeforeEverywhere(ctx, "+", time.UnixMilli(0), n)
		slices.Reverse(out)
		return out, err
	}
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
	if s.spread {
		return s.auditFollowEverywhere(ctx, after)
	}
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
