package redisstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// A store that spreads referrals has an audit stream in every partition:
// a commit appends its record in its own (commit.lua), a record of a read
// or a search goes to the plain one. Read together, the trail is ordered
// by stream id and then by partition (the plain, legacy stream first), and
// an entry is named by its partition's prefix and its stream id
// ("p07-1700000000000-0"), since stream ids are unique only within one
// stream. With one partition, names and order are the stream's own.

// auditPos is an entry's place in the merged trail.
type auditPos struct {
	ms, seq uint64
	place   string // the partition's id prefix, "" for the plain stream
}

func (a auditPos) compare(b auditPos) int {
	if c := cmp.Compare(a.ms, b.ms); c != 0 {
		return c
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	return strings.Compare(a.place, b.place)
}

// streamID is the position's id in its own stream.
func (a auditPos) streamID() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// parseAuditName reads an entry's name (its partition's prefix, then its
// stream id).
func parseAuditName(name string) (auditPos, bool) {
	var p auditPos
	if len(name) > 4 && name[0] == 'p' && name[3] == '-' {
		p.place, name = name[:4], name[4:]
	}
	ms, seq, ok := strings.Cut(name, "-")
	var err1, err2 error
	p.ms, err1 = strconv.ParseUint(ms, 10, 64)
	if ok {
		p.seq, err2 = strconv.ParseUint(seq, 10, 64)
	}
	return p, err1 == nil && err2 == nil
}

// auditStreams are the audit streams with the prefix of each.
func (s *Store) auditStreams() (keys, places []string) {
	for _, p := range s.partitionsInUse() {
		keys, places = append(keys, s.in(p).audit()), append(places, idPrefix(p))
	}
	return keys, places
}

// auditBeforeEverywhere is AuditBefore over every partition's stream: each
// gives its newest n before the position, and the newest n of them all are
// the page.
func (s *Store) auditBeforeEverywhere(ctx context.Context, before string, since time.Time, n int64) ([]gateway.AuditEntry, error) {
	keys, places := s.auditStreams()
	var cursor *auditPos
	if name, ok := strings.CutPrefix(before, "("); ok {
		if p, ok := parseAuditName(name); ok {
			cursor = &p
		}
	}
	cmds := make([]*redis.XMessageSliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, k := range keys {
			hi := "+"
			if cursor != nil {
				// After the cursor in the trail's order, newest first:
				// earlier ids, and at the cursor's own id the streams
				// ordered before its own.
				hi = "(" + cursor.streamID()
				if places[i] < cursor.place {
					hi = cursor.streamID()
				}
			}
			cmds[i] = pipe.XRevRangeN(ctx, k, hi, strconv.FormatInt(since.UnixMilli(), 10), n)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, classify(err)
	}
	return mergeAudit(cmds, places, n, true), nil
}

// mergeAudit merges the streams' entries in the trail's order (newest
// first when desc), keeping the first n.
func mergeAudit(cmds []*redis.XMessageSliceCmd, places []string, n int64, desc bool) []gateway.AuditEntry {
	type named struct {
		pos   auditPos
		entry gateway.AuditEntry
	}
	var all []named
	for i, c := range cmds {
		for _, m := range c.Val() {
			p, _ := parseAuditName(m.ID)
			p.place = places[i]
			all = append(all, named{p, gateway.AuditEntry{ID: places[i] + m.ID, Record: gateway.ReadAuditRecord(stringFields(m.Values))}})
		}
	}
	slices.SortFunc(all, func(a, b named) int {
		if desc {
			return b.pos.compare(a.pos)
		}
		return a.pos.compare(b.pos)
	})
	if int64(len(all)) > n {
		all = all[:n]
	}
	out := make([]gateway.AuditEntry, len(all))
	for i, a := range all {
		out[i] = a.entry
	}
	return out
}

// auditFollowEverywhere is AuditFollow over every partition's stream: the
// entries after the position after, oldest first, waiting (polling each
// stream, since one blocking read cannot wait on streams in different
// slots) up to a second for some to come.
func (s *Store) auditFollowEverywhere(ctx context.Context, after string) ([]gateway.AuditEntry, error) {
	keys, places := s.auditStreams()
	var from *auditPos
	if after != "$" {
		if p, ok := parseAuditName(after); ok {
			from = &p
		}
	}
	if from == nil { // from now
		from = &auditPos{ms: uint64(time.Now().UnixMilli())}
	}
	for wait := 0; wait < 10 && ctx.Err() == nil; wait++ {
		cmds := make([]*redis.XMessageSliceCmd, len(keys))
		_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, k := range keys {
				// After the position: later ids, and at its own id the
				// streams ordered after its own.
				lo := "(" + from.streamID()
				if places[i] > from.place {
					lo = from.streamID()
				}
				cmds[i] = pipe.XRangeN(ctx, k, lo, "+", 100)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, classify(err)
		}
		if got := mergeAudit(cmds, places, 100, false); len(got) > 0 {
			return got, nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, nil
}

// auditLengths are the lengths of every partition's stream.
func (s *Store) auditLengths(ctx context.Context) ([]int64, []string, error) {
	keys, _ := s.auditStreams()
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = pipe.XLen(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, classify(err)
	}
	out := make([]int64, len(keys))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, keys, nil
}

// trimAuditEverywhere trims the streams to about auditMax records in all,
// each in proportion to its length, so that about the newest are kept
// when the partitions write at like rates.
func (s *Store) trimAuditEverywhere(ctx context.Context) error {
	lengths, keys, err := s.auditLengths(ctx)
	if err != nil {
		return err
	}
	var total int64
	for _, l := range lengths {
		total += l
	}
	if total <= s.auditMax {
		return nil
	}
	for i, k := range keys {
		keep := lengths[i] * s.auditMax / total
		if err := s.rdb.XTrimMaxLenApprox(ctx, k, keep, 0).Err(); err != nil {
			return classify(err)
		}
	}
	return nil
}
