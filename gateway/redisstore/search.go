package redisstore

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
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
// A keyset page ends before the first followed match some run was not
// given (endPart), as in one partition.
func (s *Store) searchEverywhere(ctx context.Context, q *gateway.StoreQuery) ([]string, int, *gateway.Position, error) {
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
			return nil, 0, nil, err
		}
		var again []*searchRun
		for i, r := range pending {
			reply, err := cmds[i].Slice()
			if err != nil {
				return nil, 0, nil, classify(err)
			}
			more, err := r.answered(reply)
			if err != nil {
				return nil, 0, nil, err
			}
			if more {
				again = append(again, r)
			}
		}
		pending = again
	}
	ids, total, err := mergePages(runs, q)
	if err != nil {
		return nil, 0, nil, err
	}
	ids, through := endPart(ids, q, runs)
	return ids, total, through, nil
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

// mergePages merges the partitions' pages into the search's page.
func mergePages(runs []*searchRun, q *gateway.StoreQuery) ([]string, int, error) {
	total := 0
	var all []gateway.Position
	for _, r := range runs {
		total += int(r.reply[0].(int64))
		ids, _ := r.reply[1].([]any)
		scores, _ := r.reply[2].([]any)
		for i, id := range ids {
			score, err := strconv.ParseFloat(scores[i].(string), 64)
			if err != nil {
				return nil, 0, err
			}
			all = append(all, gateway.Position{Score: int64(score), ID: id.(string)})
		}
	}
	slices.SortFunc(all, func(x, y gateway.Position) int { return inOrder(x, y, q.Descending) })
	if q.Keyset == nil {
		all = all[min(q.Offset, len(all)):]
	}
	all = all[:min(q.Count, len(all))]
	ids := make([]string, len(all))
	for i, m := range all {
		ids[i] = m.ID
	}
	if ks := q.Keyset; ks != nil {
		ks.Positions = all
	}
	return ids, total, nil
}

// inOrder compares two matches' places in a search's order, as search.lua
// orders them within one partition: by score, ties by id (byte order),
// both reversed newest first (desc).
func inOrder(x, y gateway.Position, desc bool) int {
	c := cmp.Or(cmp.Compare(x.Score, y.Score), strings.Compare(x.ID, y.ID))
	if desc {
		return -c
	}
	return c
}

// passed is the followed matches a run of a keyset page is given: the
// r.window of them placed nearest after the page's start, and those the
// run named. The ones before the start were returned already: they are
// forgotten (forgetPassed). It records where the window ends (through) and
// the nearest one after it (bound), which the run does not know of.
func (r *searchRun) passed() []gateway.Position {
	f := r.followed
	if r.after != nil {
		forgetPassed(f, *r.after, r.desc)
	}
	n := min(r.window, len(f.Ahead))
	r.bound, r.through = nil, nil
	if n < len(f.Ahead) {
		bound, through := f.Ahead[n], f.Ahead[n-1]
		r.bound, r.through = &bound, &through
	}
	out := make([]gateway.Position, 0, n+len(r.named))
	out = append(out, f.Ahead[:n]...)
	for _, p := range r.named {
		// Given already if placed within the window: after the start,
		// before the bound.
		if (r.after != nil && inOrder(p, *r.after, r.desc) <= 0) || (r.bound != nil && inOrder(p, *r.bound, r.desc) >= 0) {
			out = append(out, p)
		}
	}
	return out
}

// forgetPassed drops from f the followed matches placed at or before
// after, the start of a page. The caller pages forward, a match's
// position is where it stood at the snapshot, and search.lua takes into a
// page only matches after its start: none of these is given to a run
// again. One written again since is named by the run that meets it and
// placed afresh from its hash (searchRun.answered), at the same position,
// still behind. So f holds only what is ahead of the page, not every
// match changed while the search runs (an export's memory under churn).
func forgetPassed(f *gateway.FollowedPlace, after gateway.Position, desc bool) {
	i, at := slices.BinarySearchFunc(f.Ahead, after, func(p, after gateway.Position) int { return inOrder(p, after, desc) })
	if at {
		i++
	}
	for _, p := range f.Ahead[:i] {
		delete(f.Changed, p.ID)
	}
	f.Ahead = f.Ahead[i:]
	if f.Dropped += i; f.Dropped > len(f.Changed) {
		// A map keeps its room, and Ahead its array, after what they held
		// is dropped: both are made again at their size.
		changed := make(map[string]int64, len(f.Changed))
		for m, score := range f.Changed {
			changed[m] = score
		}
		f.Changed, f.Ahead, f.Dropped = changed, slices.Clone(f.Ahead), 0
	}
}

// mergeInOrder merges fresh positions into ahead, which is in the search's
// order: a page's new ones into all that are kept, without sorting those
// again.
func mergeInOrder(ahead, fresh []gateway.Position, desc bool) []gateway.Position {
	if len(fresh) == 0 {
		return ahead
	}
	order := func(x, y gateway.Position) int { return inOrder(x, y, desc) }
	slices.SortFunc(fresh, order)
	out := make([]gateway.Position, 0, len(ahead)+len(fresh))
	for len(ahead) > 0 && len(fresh) > 0 {
		if order(ahead[0], fresh[0]) <= 0 {
			out, ahead = append(out, ahead[0]), ahead[1:]
		} else {
			out, fresh = append(out, fresh[0]), fresh[1:]
		}
	}
	return append(append(out, ahead...), fresh...)
}

// endPart ends a keyset page before the nearest followed match its runs
// were not given (searchRun.passed): up to there they knew where every
// match stood, beyond it not. When that leaves the page short of q.Count,
// it returns where the search is complete up to, for the next part to
// start after: the page's last match, or the end of the window of the run
// whose bound it met, if farther (what lies between was returned, or is
// no longer a match). Otherwise nil: the page is full, or the last.
func endPart(ids []string, q *gateway.StoreQuery, runs []*searchRun) ([]string, *gateway.Position) {
	ks := q.Keyset
	if ks == nil {
		return ids, nil
	}
	var near *searchRun
	for _, r := range runs {
		if r.bound != nil && (near == nil || inOrder(*r.bound, *near.bound, q.Descending) < 0) {
			near = r
		}
	}
	if near == nil {
		return ids, nil
	}
	n := len(ids)
	for n > 0 && inOrder(ks.Positions[n-1], *near.bound, q.Descending) >= 0 {
		n--
	}
	ids, ks.Positions = ids[:n], ks.Positions[:n]
	if n == q.Count {
		return ids, nil
	}
	through := *near.through
	if n > 0 && inOrder(ks.Positions[n-1], through, q.Descending) > 0 {
		through = ks.Positions[n-1]
	}
	return ids, &through
}
