package redisstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A spreading store's audit trail is every partition's stream read as one:
// paged newest first it gives every record once, in order of time and
// then partition, even where streams hold the same ids (they often do:
// ids are unique only within one stream); the tail and following give the
// same order oldest first; the length counts them all.
func TestAuditTrailIsReadOverEveryPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		var want []string // oldest first
		add := func(p partition, id string) {
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.in(p).audit(), ID: id, Values: map[string]any{"a": "x"}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range []struct {
			p  partition
			id string
		}{{legacy, "1000-0"}, {3, "1000-0"}, {7, "1000-0"}, {legacy, "1000-1"}, {7, "1000-1"}, {0, "1001-0"}, {15, "1001-0"}, {3, "1002-5"}} {
			add(e.p, e.id)
			want = append(want, idPrefix(e.p)+e.id)
		}
		if n, err := s.AuditLength(ctx); err != nil || n != int64(len(want)) {
			t.Errorf("length %d (%v), want %d", n, err, len(want))
		}
		var got []string
		before := "+"
		for page := 0; page < 10; page++ {
			entries, err := s.AuditBefore(ctx, before, time.UnixMilli(0), 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				got = append(got, e.ID)
			}
			if len(entries) < 3 {
				break
			}
			before = "(" + entries[len(entries)-1].ID
		}
		newest := slices.Clone(want)
		slices.Reverse(newest)
		if !slices.Equal(got, newest) {
			t.Errorf("paged newest first:\n got %v\nwant %v", got, newest)
		}
		tail, err := s.AuditTail(ctx, 4)
		if err != nil || len(tail) != 4 || tail[0].ID != want[4] || tail[3].ID != want[7] {
			t.Errorf("tail of 4: %v %v, want %v", tail, err, want[4:])
		}
		var followed []string
		for after := want[1]; ; {
			more, err := s.AuditFollow(ctx, after)
			if err != nil {
				t.Fatal(err)
			}
			if len(more) == 0 {
				break
			}
			for _, e := range more {
				followed = append(followed, e.ID)
			}
			after = more[len(more)-1].ID
		}
		if !slices.Equal(followed, want[2:]) {
			t.Errorf("followed after %s:\n got %v\nwant %v", want[1], followed, want[2:])
		}
	})
}

// Trimming by age (retention's audit_after) trims every partition's
// stream: the records older than the cut go from each, the newer stay.
func TestAuditTrimmedByAgeInEveryPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		cut := time.UnixMilli(2_000_000)
		for _, p := range []partition{legacy, 4, 13} {
			for i := range 300 { // more than a stream node, so XTRIM's approximation removes some
				rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.in(p).audit(), ID: "1000000-" + strconv.Itoa(i+1), Values: []string{"a", "old"}})
			}
			rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.in(p).audit(), ID: "3000000-1", Values: []string{"a", "new"}})
		}
		if n, err := s.TrimAuditBefore(ctx, cut); err != nil || n < 3*200 {
			t.Fatalf("trimmed %d (%v), want most of the old records of every stream", n, err)
		}
		for _, p := range []partition{legacy, 4, 13} {
			if n := rdb.XLen(ctx, s.in(p).audit()).Val(); n > 101 {
				t.Errorf("partition %d kept %d records", p, n)
			}
			if last := rdb.XRevRangeN(ctx, s.in(p).audit(), "+", "-", 1).Val(); len(last) != 1 || last[0].Values["a"] != "new" {
				t.Errorf("partition %d lost its new record: %v", p, last)
			}
		}
	})
}
