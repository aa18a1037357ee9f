package redisstore

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// searchEverywhere runs a search in every partition and merges their
// pages in the search's one order (lastUpdated, then id): a store that
// spreads referrals holds a type's matches in every partition.
//
// Every partition is asked for the matches that come first in that order
// from the same place: after the same keyset position (the last match
// returned), with the same snapshot, or, paging by offset, its first
// offset+count. Each answers with only what follows that place in the one
// order, so the merged page's first count matches are exactly the ones
// one index holding everything would give: none lost, none repeated, page
// after page, while others write. The total is the sum of the
// partitions'. The criteria that confine a caller to its own referrals
// are in q, so they hold in every partition.
//
// The runs go in one pipeline, which a cluster client splits per primary
// and sends in parallel; a run that needs the hashes of matches changed
// since the snapshot is sent again with them, with the others that do.
func (s *Store) searchEverywhere(ctx context.Context, q *gateway.StoreQuery) ([]string, int, error) {
	offset, count := q.Offset, q.Count
	if q.Keyset == nil {
		offset, count = 0, q.Offset+q.Count
	}
	parts := s.partitionsInUse()
	runs := make([]*searchRun, len(parts))
	for i, p := range parts {
		runs[i] = s.searchRun(s.in(p), q, offset, count)
	}
	pending := runs
	for round := 0; len(pending) > 0; round++ {
		// Each run gives up (stale) once matches kept changing between its
		// runs (searchRun.answered); one that learns as it goes runs on.
		if round > 0 {
			s.raced()
		}
		cmds, err := s.searchPipelined(ctx, pending)
		if err != nil {
			return nil, 0, err
		}
		var again []*searchRun
		for i, r := range pending {
			reply, err := cmds[i].Slice()
			if err != nil {
				return nil, 0, classify(err)
			}
			more, err := r.answered(reply)
			if err != nil {
				return nil, 0, err
			}
			if more {
				again = append(again, r)
			}
		}
		pending = again
	}
	return mergePages(runs, q)
}

// searchPipelined sends the runs in one pipeline (scriptPipelined).
func (s *Store) searchPipelined(ctx context.Context, runs []*searchRun) ([]*redis.Cmd, error) {
	keys, args := make([][]string, len(runs)), make([][]any, len(runs))
	for i, r := range runs {
		keys[i], args[i] = r.kl.keys, r.argv()
	}
	return s.scriptPipelined(ctx, searchScript, keys, args)
}

// scriptPipelined runs a script that writes nothing that outlives it
// (search.lua, count.lua, read.lua) once per keys[i] and args[i], in one
// pipeline, which a cluster client splits per primary. A Redis without the script
// loaded (restarted) answers NOSCRIPT; the script is then loaded (on every
// primary, once for the callers answered together) and the runs sent once
// more, which is harmless for such a script.
func (s *Store) scriptPipelined(ctx context.Context, script *redis.Script, keys [][]string, args [][]any) ([]*redis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(keys))
		pipe := s.rdb.Pipeline()
		for i := range keys {
			cmds[i] = script.EvalSha(ctx, pipe, keys[i], args[i]...)
		}
		sent := time.Now()
		_, err := pipe.Exec(ctx)
		if attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := s.loads.loadAfter(ctx, s.rdb, script, sent); err != nil {
				return nil, classify(err)
			}
			continue
		}
		if err != nil {
			return nil, classify(err)
		}
		return cmds, nil
	}
}

// match is one match of a partition's page, with its place in the order.
type match struct {
	score float64
	id    string
}

// mergePages merges the partitions' pages into the search's page.
func mergePages(runs []*searchRun, q *gateway.StoreQuery) ([]string, int, error) {
	total := 0
	var all []match
	for _, r := range runs {
		total += int(r.reply[0].(int64))
		ids, _ := r.reply[1].([]any)
		scores, _ := r.reply[2].([]any)
		for i, id := range ids {
			score, err := strconv.ParseFloat(scores[i].(string), 64)
			if err != nil {
				return nil, 0, err
			}
			all = append(all, match{score: score, id: id.(string)})
		}
	}
	// The order search.lua keeps within one partition: by score, ties by
	// id (byte order), both reversed newest first.
	slices.SortFunc(all, func(x, y match) int {
		c := 0
		switch {
		case x.score < y.score:
			c = -1
		case x.score > y.score:
			c = 1
		case x.id < y.id:
			c = -1
		case x.id > y.id:
			c = 1
		}
		if q.Descending {
			return -c
		}
		return c
	})
	if q.Keyset == nil {
		all = all[min(q.Offset, len(all)):]
	}
	all = all[:min(q.Count, len(all))]
	ids := make([]string, len(all))
	for i, m := range all {
		ids[i] = m.id
	}
	if ks := q.Keyset; ks != nil {
		ks.Positions = make([]gateway.Position, len(all))
		for i, m := range all {
			ks.Positions[i] = gateway.Position{Score: int64(m.score), ID: m.id}
		}
	}
	return ids, total, nil
}
