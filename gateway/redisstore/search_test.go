package redisstore

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// spreadTasks makes n Tasks over every partition (and legacy), owned in
// turn by two clients, at times with ties, and returns their ids in the
// order newest first... oldest first, as a search by lastUpdated gives them.
func spreadTasks(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	type made struct {
		at int64
		id string
	}
	var all []made
	for i := range n {
		id := idPrefix(partition(i%partitions)) + "t" + strconv.Itoa(i)
		if i%17 == 16 {
			id = "legacy-t" + strconv.Itoa(i)
		}
		at := 1_700_000_000_000 + int64(i/3) // three at each time: ties across partitions
		w := write("Task", id, 1, 0, "status=requested", "_client=gp-"+strconv.Itoa(i%2))
		w.Resource.LastUpdated = time.UnixMilli(at)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("create %s: %+v %v", id, res, err)
		}
		all = append(all, made{at, id})
	}
	slices.SortFunc(all, func(x, y made) int {
		if x.at != y.at {
			return int(x.at - y.at)
		}
		if x.id < y.id {
			return -1
		}
		return 1
	})
	ids := make([]string, len(all))
	for i, m := range all {
		ids[i] = m.id
	}
	return ids
}

// A search of a store that spreads referrals visits every partition and
// merges their pages in the one order: paging by keyset while matches
// change and new ones arrive returns every match held at the snapshot once,
// in order (none lost, none repeated); paging by offset gives the same
// order; the total counts every partition's; and a client's criteria
// confine it to its own matches in every partition.
func TestSearchAcrossPartitionsKeepsThePagingGuarantees(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		want := spreadTasks(t, s, 70)
		snapshot := time.UnixMilli(1_700_000_001_000)
		base := &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}}

		// Keyset: seven a page, changing and adding matches between pages.
		version := map[string]int{}
		moved := map[string]bool{}
		move := func(id string, at int64) {
			v := version[id] + 1
			if v == 1 {
				v = 2
			}
			w := write("Task", id, v, v-1, "status=requested", "_client=gp-"+id[len(id)-1:])
			w.Resource.LastUpdated = time.UnixMilli(at)
			if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
				t.Fatalf("update %s: %+v %v", id, res, err)
			}
			version[id], moved[id] = v, true
		}
		var got []string
		var after *gateway.Position
		for page := 0; page < 20; page++ {
			q := *base
			q.Count = 7
			q.Keyset = &gateway.Keyset{Snapshot: snapshot, After: after}
			ids, total, err := s.Search(ctx, &q)
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			if page == 0 && total != 70 {
				t.Errorf("total %d, want 70", total)
			}
			got = append(got, ids...)
			if len(ids) < 7 {
				break
			}
			after = &q.Keyset.Positions[len(ids)-1]
			// Move a match not yet returned and one already returned to
			// after the snapshot, and add a new match after it.
			if next := len(got) + 2; next < len(want) {
				move(want[next], 1_700_000_002_000+int64(page))
			}
			move(got[0], 1_700_000_002_000+int64(page))
			nw := write("Task", idPrefix(partition(page%partitions))+"new"+strconv.Itoa(page), 1, 0, "status=requested")
			nw.Resource.LastUpdated = time.UnixMilli(1_700_000_003_000)
			if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{nw}}); err != nil || !res.OK() {
				t.Fatalf("create: %+v %v", res, err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("keyset paging across partitions:\n got %v\nwant %v", got, want)
		}

		// Offset: one client's matches before the snapshot, in the same
		// order (and newest first), and none of the other client's.
		var mine []string
		for _, id := range want {
			if n, _ := strconv.Atoi(id[len(id)-1:]); n%2 == 0 && !moved[id] {
				mine = append(mine, id)
			}
		}
		for _, desc := range []bool{false, true} {
			var all []string
			for offset := 0; ; offset += 9 {
				q := *base
				q.Until, q.Count, q.Offset, q.Descending = snapshot, 9, offset, desc
				q.Groups = append(slices.Clone(q.Groups), []string{"_client=gp-0"})
				ids, total, err := s.Search(ctx, &q)
				if err != nil {
					t.Fatal(err)
				}
				if total != len(mine) {
					t.Errorf("gp-0's total %d, want %d", total, len(mine))
				}
				all = append(all, ids...)
				if len(ids) < 9 {
					break
				}
			}
			expect := slices.Clone(mine)
			if desc {
				slices.Reverse(expect)
			}
			if !slices.Equal(all, expect) {
				t.Errorf("offset paging (newest first: %v):\n got %v\nwant %v", desc, all, expect)
			}
		}
	})
}

// Searches across partitions meeting a Redis that has lost its scripts (a
// restart at full load) load search.lua together, not once each, and are
// answered.
func TestSearchesAfterScriptFlushLoadTheScriptTogether(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.SpreadReferrals()
	ctx := context.Background()
	want := spreadTasks(t, s, 20)
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	start := make(chan struct{})
	got := make([][]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], _, errs[i] = s.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 100})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || len(got[i]) != len(want) {
			t.Fatalf("search %d: %d of %d matches, %v", i, len(got[i]), len(want), errs[i])
		}
	}
	k := commandCalls(t, r)["script|load"]
	if k == 0 {
		t.Fatal("search.lua was never loaded")
	}
	if k > n/5 {
		t.Errorf("%d searches answered NOSCRIPT loaded the script %d times, want at most %d", n, k, n/5)
	}
}

// Keyset pages break ties (matches of one millisecond) by id in byte
// order, as sorted sets and Go do, whatever locale Redis runs under. Redis
// sets LC_COLLATE from its environment, and Lua's < follows it: under
// en_US.UTF-8 search.lua once ordered "a" before "B" and "ab" before
// "a-c", unlike the index it pages through, so a page ending among ties
// left some out of every page (and could return one twice). Tied matches,
// some changed since the snapshot (placed by the script, not read from
// the index), are each returned once, in byte order, oldest and newest
// first, followed and by paging link, spread and not.
func TestKeysetPagesTiesInByteOrderUnderAnyLocale(t *testing.T) {
	t.Parallel()
	ids := []string{"a", "A", "b", "B", "ab", "aB", "Ab", "a-c", "a.b", "z", "Z-1", "0", "1.0"}
	for _, spread := range []bool{false, true} {
		t.Run("spread="+strconv.FormatBool(spread), func(t *testing.T) {
			t.Parallel()
			s := New(redistest.StartCollating(t).Client(), "test")
			if spread {
				s.SpreadReferrals()
			}
			ctx := context.Background()
			commit := func(id string, version int, at int64) {
				t.Helper()
				w := write("Task", id, version, version-1, "status=requested")
				w.Resource.LastUpdated = time.UnixMilli(at)
				if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
					t.Fatalf("%s version %d: %+v %v", id, version, res, err)
				}
			}
			for _, id := range ids {
				commit(id, 1, 1_700_000_000_000) // all tied
			}
			snapshot := time.UnixMilli(1_700_000_000_010)
			commit("b", 2, 1_700_000_000_020)
			commit("a-c", 2, 1_700_000_000_020)
			for _, desc := range []bool{false, true} {
				for _, followed := range []*gateway.Followed{{}, nil} {
					var got []string
					var after *gateway.Position
					for page := 0; page < 2*len(ids); page++ {
						q := &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 2, Descending: desc,
							Keyset: &gateway.Keyset{Snapshot: snapshot, After: after, Followed: followed}}
						page, _, err := s.Search(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						if len(page) == 0 {
							break
						}
						got = append(got, page...)
						after = &q.Keyset.Positions[len(page)-1]
					}
					want := slices.Sorted(slices.Values(ids))
					if desc {
						slices.Reverse(want)
					}
					if !slices.Equal(got, want) {
						t.Errorf("newest first %v, followed %v:\n got %q\nwant %q", desc, followed != nil, got, want)
					}
				}
			}
		})
	}
}
