package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// Keyset paging reads the hashes of matches changed since the snapshot,
// which only search.lua finds: it names them ('need'), and runs again with
// them in KEYS. A changed match is still placed where it stood at the
// snapshot; one that changes between the two runs with a score within
// those the first run fixed the page at (a write landing late) is named in
// turn. (One written beyond them waits for the next page:
// TestFollowedKeysetOutlastsCreationsBetweenRuns.)
func TestKeysetPagingNamesTheHashesItNeeds(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i, id := range []string{"t1", "t2", "t3"} {
		w := write("Task", id, 1, 0, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(1_700_000_000_000 + int64(i))
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("create %s: %+v %v", id, res, err)
		}
	}
	snapshot := time.UnixMilli(1_700_000_000_010)
	move := func(id string, version int, at int64) {
		w := write("Task", id, version, version-1, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(at)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("update %s: %+v %v", id, res, err)
		}
	}
	move("t1", 2, 1_700_000_000_020) // changed since the snapshot
	runs := 0
	var hook func()
	hook = func() {
		runs++
		if runs == 1 {
			s.afterRead = nil                // the move's own commit is not a search run
			move("t2", 2, 1_700_000_000_015) // changes between the two runs, landing late (before t1's 20)
			s.afterRead = hook
		}
	}
	s.afterRead = hook
	q := &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 10, Keyset: &gateway.Keyset{Snapshot: snapshot}}
	ids, total, err := s.Search(ctx, q)
	s.afterRead = nil
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"t1", "t2", "t3"}) || total != 3 {
		t.Errorf("page %v (total %d), want t1, t2, t3 where they stood at the snapshot", ids, total)
	}
	if runs != 2 {
		t.Errorf("%d runs named hashes, want 2 (t1, then t2 changed meanwhile)", runs)
	}
}

// The first run of a page that needs hashes fixes the page: a match it
// read from the index that changes before the next run, beyond the scores
// the page was fixed at, is still in the page where it stood at the
// snapshot (the next run is given what the first read), though no run
// looks at it; it is followed on the next page.
func TestKeysetPageKeepsAMatchChangedBeyondItBetweenRuns(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i, id := range []string{"t1", "t2", "t3"} {
		w := write("Task", id, 1, 0, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(1_700_000_000_000 + int64(i))
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("create %s: %+v %v", id, res, err)
		}
	}
	snapshot := time.UnixMilli(1_700_000_000_010)
	move := func(id string, version int, at int64) {
		w := write("Task", id, version, version-1, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(at)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("update %s: %+v %v", id, res, err)
		}
	}
	move("t1", 2, 1_700_000_000_020) // changed since the snapshot
	runs := 0
	var hook func()
	hook = func() {
		runs++
		if runs == 1 {
			s.afterRead = nil                // the move's own commit is not a search run
			move("t2", 2, 1_700_000_000_030) // changes between the two runs, beyond t1's 20
			s.afterRead = hook
		}
	}
	s.afterRead = hook
	q := &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 10, Keyset: &gateway.Keyset{Snapshot: snapshot}}
	ids, total, err := s.Search(ctx, q)
	s.afterRead = nil
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"t1", "t2", "t3"}) || total != 3 {
		t.Errorf("page %v (total %d), want t1, t2, t3 where they stood at the snapshot", ids, total)
	}
	if runs != 1 {
		t.Errorf("%d runs named hashes, want 1 (t1; t2 waits for the next page)", runs)
	}
}

// A match the first run of a page named, changed since the snapshot, that
// changes again before the next run, beyond the scores the page was fixed
// at, is still in the page where it stood at the snapshot: the next run is
// given its hash and places it, though it is no longer among the matches
// written up to there. (It was in neither the index part of the page nor
// its followed part, and before the next page's start: the page skipped
// it, and so did the export.) The same for a paging link and for a search
// that keeps what it followed.
func TestKeysetPageKeepsANamedMatchChangedBeyondItBetweenRuns(t *testing.T) {
	t.Parallel()
	for _, keeps := range []bool{false, true} {
		t.Run(fmt.Sprintf("keeps=%v", keeps), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			f := newFollowedTasks(t, s, 3, false)
			f.change(f.want[1]) // changed since the snapshot: the first run names it
			runs := 0
			var hook func()
			hook = func() {
				runs++
				if runs == 1 {
					s.afterRead = nil // the change's own commit is not a search run
					f.change(f.want[1])
					s.afterRead = hook
				}
			}
			s.afterRead = hook
			var followed *gateway.Followed
			if keeps {
				followed = &gateway.Followed{}
			}
			q := &gateway.StoreQuery{Type: "Task", Count: 10, Keyset: &gateway.Keyset{Snapshot: f.snapshot, Followed: followed}}
			ids, _, err := s.Search(context.Background(), q)
			s.afterRead = nil
			if err != nil || !slices.Equal(ids, f.want) {
				t.Errorf("page %v %v, want %v where they stood at the snapshot", ids, err, f.want)
			}
			if runs != 1 {
				t.Errorf("%d runs named hashes, want 1", runs)
			}
		})
	}
}

// A keyset search that keeps what it followed (the export) has no bound on
// the matches written since its snapshot: more created since than the
// bound are looked at, a few a run, and are in no page; more of the
// snapshot's changed than the bound are each placed where they stood. A
// paging link, which keeps nothing, looks at every match written since, at
// most the bound, as before.
func TestFollowedKeysetOutlastsWhatAPagingLinkDoesNot(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	s.SetFollowLimits(2, 2)
	ctx := context.Background()
	at := func(id string, version int, ms int64) {
		t.Helper()
		w := write("Task", id, version, version-1, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(1_700_000_000_000 + ms)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("%s version %d: %+v %v", id, version, res, err)
		}
	}
	for i, id := range []string{"t1", "t2", "t3", "t4"} {
		at(id, 1, int64(i))
	}
	snapshot := time.UnixMilli(1_700_000_000_010)
	for i := range 7 {
		at("new"+strconv.Itoa(i), 1, 20+int64(i))
	}
	at("t3", 2, 30) // changed since: still placed where it stood
	pages := func(followed *gateway.Followed) ([]string, error) {
		var all []string
		var after *gateway.Position
		for {
			q := &gateway.StoreQuery{Type: "Task", Count: 2, Keyset: &gateway.Keyset{Snapshot: snapshot, After: after, Followed: followed}}
			ids, _, err := s.Search(ctx, q)
			if err != nil || len(ids) == 0 {
				return all, err
			}
			all = append(all, ids...)
			after = &q.Keyset.Positions[len(ids)-1]
		}
	}
	got, err := pages(&gateway.Followed{})
	if err != nil || !slices.Equal(got, []string{"t1", "t2", "t3", "t4"}) {
		t.Errorf("followed: %v %v, want the snapshot's t1..t4 in order", got, err)
	}
	if _, err := pages(nil); !errors.Is(err, gateway.ErrSnapshotStale) {
		t.Errorf("a paging link past 8 written since (bound 2): %v, want stale", err)
	}
	at("t1", 2, 31)
	at("t2", 2, 32)
	got, err = pages(&gateway.Followed{})
	if err != nil || !slices.Equal(got, []string{"t1", "t2", "t3", "t4"}) {
		t.Errorf("3 of the snapshot changed (bound 2): %v %v, want t1..t4 in order", got, err)
	}
}

// A keyset search that keeps what it followed (the export) must outlast
// creations: "no client can fail an export by creating resources while it
// runs". Matches created while a page's runs go back and forth ('need',
// then the run again with the hashes) are each named in turn, and three
// such answers in a row (maxRereads) make the search stale: a steady
// stream of creations of the exported type, one landing in each round
// trip (about a thousand a second; every Task change also creates a
// Provenance), fails the export.
func TestFollowedKeysetOutlastsCreationsBetweenRuns(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	at := func(id string, ms int64) {
		t.Helper()
		w := write("Task", id, 1, 0, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(1_700_000_000_000 + ms)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("%s: %+v %v", id, res, err)
		}
	}
	for i, id := range []string{"t1", "t2", "t3"} {
		at(id, int64(i))
	}
	snapshot := time.UnixMilli(1_700_000_000_010)
	at("c0", 20) // created since the snapshot: its hash is needed
	created := 0
	var hook func()
	hook = func() {
		// Another client creates a Task while the page's runs go back
		// and forth (the hook's own commit is not a search run).
		created++
		s.afterRead = nil
		at("c"+strconv.Itoa(created), 20+int64(created))
		s.afterRead = hook
	}
	s.afterRead = hook
	q := &gateway.StoreQuery{Type: "Task", Count: 10, Keyset: &gateway.Keyset{Snapshot: snapshot, Followed: &gateway.Followed{}}}
	ids, _, err := s.Search(ctx, q)
	s.afterRead = nil
	if err != nil {
		t.Fatalf("after %d creations between runs: %v, want the snapshot's page", created, err)
	}
	if !slices.Equal(ids, []string{"t1", "t2", "t3"}) {
		t.Errorf("page %v, want t1, t2, t3", ids)
	}
}

// A match of the snapshot changed many times (51 here) before a followed
// search first looks at it is still placed where it stood at the snapshot:
// versions' times only grow, so the version current then is found by a
// binary search over 't'..version, in a bounded number of reads however
// many were made since (a walk back of 50 versions once left it out).
func TestFollowedKeysetFindsAMatchChangedManyTimes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	at := func(id string, version int, ms int64) {
		t.Helper()
		w := write("Task", id, version, version-1, "status=requested")
		w.Resource.LastUpdated = time.UnixMilli(1_700_000_000_000 + ms)
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("%s version %d: %+v %v", id, version, res, err)
		}
	}
	for i, id := range []string{"t1", "t2", "t3", "t4"} {
		at(id, 1, int64(i))
	}
	snapshot := time.UnixMilli(1_700_000_000_010)
	followed := &gateway.Followed{}
	var all []string
	var after *gateway.Position
	for page := 1; ; page++ {
		q := &gateway.StoreQuery{Type: "Task", Count: 2, Keyset: &gateway.Keyset{Snapshot: snapshot, After: after, Followed: followed}}
		ids, _, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		all = append(all, ids...)
		after = &q.Keyset.Positions[len(ids)-1]
		if page == 1 {
			for v := 2; v <= 52; v++ {
				at("t3", v, 100+int64(v))
			}
		}
	}
	if !slices.Equal(all, []string{"t1", "t2", "t3", "t4"}) {
		t.Errorf("pages %v, want the snapshot's t1..t4 (t3 changed 51 times since)", all)
	}
}

// followedTasks are Tasks for a test of a followed keyset search (the
// export's): want is their ids in the search's order, made a millisecond
// apart before the snapshot, over three partitions if the store spreads.
type followedTasks struct {
	t        *testing.T
	s        *Store
	want     []string
	snapshot time.Time
	version  map[string]int
	since    time.Duration     // of the snapshot, the last change's
	followed *gateway.Followed // the last search's (pages)
}

func newFollowedTasks(t *testing.T, s *Store, n int, spread bool) *followedTasks {
	t.Helper()
	f := &followedTasks{t: t, s: s, snapshot: time.UnixMilli(1_700_000_001_000), version: map[string]int{}}
	for i := range n {
		id := fmt.Sprintf("t%02d", i)
		if spread {
			id = idPrefix(partition(1+i%3)) + id
		}
		f.write(id, time.UnixMilli(1_700_000_000_000+int64(i)))
		f.want = append(f.want, id)
	}
	return f
}

// write commits id's next version (its first if new) at at.
func (f *followedTasks) write(id string, at time.Time) {
	f.t.Helper()
	f.version[id]++
	v := f.version[id]
	w := write("Task", id, v, v-1, "status=requested")
	w.Resource.LastUpdated = at
	if res, err := f.s.Commit(context.Background(), &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
		f.t.Fatalf("%s version %d: %+v %v", id, v, res, err)
	}
}

// change writes id after the snapshot, a millisecond after the last change.
func (f *followedTasks) change(id string) {
	f.t.Helper()
	f.since += time.Millisecond
	f.write(id, f.snapshot.Add(f.since))
}

// pages reads a followed keyset search of every Task, count a page, and
// calls between, if set, after each full page with the ids read so far.
func (f *followedTasks) pages(count int, between func(got []string)) ([]string, error) {
	followed := &gateway.Followed{}
	f.followed = followed
	var got []string
	var after *gateway.Position
	for {
		q := &gateway.StoreQuery{Type: "Task", Count: count, Keyset: &gateway.Keyset{Snapshot: f.snapshot, After: after, Followed: followed}}
		ids, _, err := f.s.Search(context.Background(), q)
		if err != nil {
			return got, err
		}
		got = append(got, ids...)
		if len(ids) < count {
			return got, nil
		}
		after = &q.Keyset.Positions[len(ids)-1]
		if between != nil {
			between(got)
		}
	}
}

// A followed keyset search (the export's) outlasts any number of changes
// to its snapshot's matches: here ten times the bound (3) and more, made
// between pages to matches returned already and to those ahead, one of
// them several times, while others are created. Each run is given the
// changed ones placed nearest after the page's start, and a page that
// reaches past them (four changed in a row, a page of four) is read on
// from there: every match of the snapshot is returned once, in order.
// (Before, every run was given all of them, and past the bound the search
// was stale: an export of Tasks failed while providers updated them.)
func TestFollowedKeysetOutlastsChangesToItsSnapshot(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			s.SetFollowLimits(3, 2)
			f := newFollowedTasks(t, s, 30, spread)
			changes := 0
			got, err := f.pages(4, func(got []string) {
				ahead := f.want[len(got):]
				for _, i := range []int{0, 0, 1, 2, 3, 7} {
					if i < len(ahead) {
						f.change(ahead[i])
						changes++
					}
				}
				f.change(got[len(got)-1])
				f.change(got[0])
				changes += 2
				created := "new" + strconv.Itoa(len(got))
				if spread {
					created = idPrefix(partition(len(got)%3)) + created
				}
				f.write(created, f.snapshot.Add(f.since))
			})
			if err != nil || !slices.Equal(got, f.want) {
				t.Errorf("after %d changes to the snapshot's matches (bound 3):\n got %v %v\nwant %v, each once", changes, got, err, f.want)
			}
		})
	}
}

// A followed keyset search (the export's) keeps only the changed matches
// of its snapshot ahead of its page. It kept every one it had followed
// until the search ended (some 100 bytes each, in one process): an export
// of a type whose every resource changed while it ran held them all. Here
// every Task changes before the first page, and two the search returned
// already change again between pages (met again by the next page's runs,
// placed afresh from their hashes, behind it): after each page, what is
// kept is ahead of the page's start, so no more than the changed ones
// there, and every match is still returned once, in order.
func TestFollowedKeysetKeepsOnlyTheChangedAheadOfItsPage(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			s.SetFollowLimits(3, 2)
			const count = 4
			f := newFollowedTasks(t, s, 30, spread)
			for _, id := range f.want {
				f.change(id)
			}
			most := 0
			got, err := f.pages(count, func(got []string) {
				ahead := f.want[len(got)-count:] // from the page's first on
				kept := 0
				for name, p := range f.followed.Places {
					kept += len(p.Changed)
					for m := range p.Changed {
						if !slices.Contains(ahead, m) {
							t.Errorf("after %d returned, %s keeps %s, behind the page", len(got), name, m)
						}
					}
					if len(p.Ahead) != len(p.Changed) {
						t.Errorf("after %d returned, %s keeps %d changed and %d positions", len(got), name, len(p.Changed), len(p.Ahead))
					}
				}
				if kept > len(ahead) {
					t.Errorf("after %d returned, %d changed kept, more than the %d from the page on", len(got), kept, len(ahead))
				}
				most = max(most, kept)
				f.change(got[0])
				f.change(got[len(got)-1])
			})
			if err != nil || !slices.Equal(got, f.want) {
				t.Errorf("pages %v %v, want %v, each once", got, err, f.want)
			}
			if most == 0 {
				t.Errorf("nothing was followed: the test shows nothing")
			}
		})
	}
}

// Past the bound of changed matches a followed keyset search keeps ahead
// of its page (gateway.MaxFollowedAhead; 5 here), the search fails,
// saying so (gateway.ErrTooManyFollowed), rather than grow without end:
// here all 30 change before the first page.
func TestFollowedKeysetFailsPastTheBoundOfTheChangedAhead(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	s.SetFollowLimits(3, 2)
	s.SetFollowedBound(5)
	f := newFollowedTasks(t, s, 30, false)
	for _, id := range f.want {
		f.change(id)
	}
	if got, err := f.pages(4, nil); !errors.Is(err, gateway.ErrTooManyFollowed) {
		t.Errorf("pages %v %v, want %v", got, err, gateway.ErrTooManyFollowed)
	}
	if kept := f.followed.Kept(); kept > 5+2 {
		t.Errorf("%d kept when it failed, want the bound (5) and at most one run's (2) more", kept)
	}
}

// Follow limits below 1 are taken as 1: a window of none panicked (a run
// indexed the window's end at -1), and a run looking at none of the
// matches written since failed in search.lua.
func TestFollowLimitsBelowOneAreOne(t *testing.T) {
	t.Parallel()
	for _, limits := range [][2]int{{0, 2}, {2, 0}, {-1, -1}} {
		t.Run(fmt.Sprint(limits), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			s.SetFollowLimits(limits[0], limits[1])
			f := newFollowedTasks(t, s, 6, false)
			for _, id := range f.want {
				f.change(id)
			}
			got, err := f.pages(2, nil)
			if err != nil || !slices.Equal(got, f.want) {
				t.Errorf("pages %v %v, want %v, each once", got, err, f.want)
			}
		})
	}
}

// A followed keyset search outlasts changes between a page's runs to
// matches it followed and returned already. Each run is given only the
// followed placed nearest ahead, so one behind the page's start written
// again since is named ('need') when a run meets it. A run that looks at
// only some of the matches written since (scan of them, and more after)
// was run again from the same place: each change between runs took a
// match out of those some and let the next in, named in turn, and three
// such answers in a row (maxRereads) made the search stale (here after two
// changes). Now the run again looks no further than the one that named
// them (stop), and the next on from there.
func TestFollowedKeysetOutlastsChangesBetweenRunsToWhatItReturned(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	s.SetFollowLimits(1, 2)
	f := newFollowedTasks(t, s, 10, false)
	page := 0
	runs := 0
	var hook func()
	hook = func() {
		// Two of the returned ones written again between the third page's
		// runs (the hook's own commits are not search runs).
		if runs++; runs <= 2 {
			s.afterRead = nil
			f.change(f.want[runs-1])
			s.afterRead = hook
		}
	}
	got, err := f.pages(2, func(got []string) {
		if page++; page == 1 || page == 2 {
			// Every one the first page returned is changed, placed by
			// the second page's runs, and changed again.
			for _, id := range f.want[:2] {
				f.change(id)
			}
			for _, id := range f.want[2:6] {
				f.change(id)
			}
		}
		if page == 2 {
			s.afterRead = hook
		} else {
			s.afterRead = nil
		}
	})
	s.afterRead = nil
	if err != nil || !slices.Equal(got, f.want) {
		t.Errorf("pages %v %v, want %v, each once", got, err, f.want)
	}
	if runs < 3 {
		t.Errorf("%d runs of the third page, want the changes between them", runs)
	}
}

// However many matches a followed keyset search follows (all 40 here),
// each run is given a bounded number of them: its ARGV is at most that of
// a run given nothing, and two for each match of the page it may be given
// from the index (4), of the followed placed nearest (3), and of those
// written since that it names (a run looks at 2).
func TestFollowedKeysetRunsAreGivenABoundedNumberOfTheFollowed(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			const count, window, scan = 4, 3, 2
			s.SetFollowLimits(window, scan)
			f := newFollowedTasks(t, s, 40, spread)
			for _, id := range f.want {
				f.change(id)
			}
			argv := &searchArgv{least: -1}
			s.rdb.AddHook(argv) // the store's own client
			got, err := f.pages(count, nil)
			if err != nil || !slices.Equal(got, f.want) {
				t.Fatalf("pages %v %v, want %v", got, err, f.want)
			}
			if limit := argv.least + 2*(count+window+scan); argv.most > limit {
				t.Errorf("a run's ARGV had %d arguments, more than %d (%d with nothing followed): it grows with the followed", argv.most, limit, argv.least)
			}
		})
	}
}

// searchArgv records the fewest and most ARGV of search.lua's runs,
// pipelined or not.
type searchArgv struct {
	mu          sync.Mutex
	least, most int
}

func (c *searchArgv) record(cmd redis.Cmder) {
	args := cmd.Args()
	if cmd.Name() != "evalsha" || len(args) < 3 || args[1] != searchScript.Hash() {
		return
	}
	nkeys, _ := args[2].(int)
	n := len(args) - 3 - nkeys
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.least < 0 || n < c.least {
		c.least = n
	}
	c.most = max(c.most, n)
}

func (c *searchArgv) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *searchArgv) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.record(cmd)
		return next(ctx, cmd)
	}
}
func (c *searchArgv) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.record(cmd)
		}
		return next(ctx, cmds)
	}
}

// A followed keyset search (the export's) returns a match of its snapshot
// written again, late, between two runs of one page. A page that looks at
// more matches written since the snapshot than one run may (scan) is read
// in runs ('more'); the next run looked on from where the one before
// stopped, not FollowLag behind it as the next page does, so a write
// stamped behind that place and landing between the runs (a commit
// delayed, another process's clock) was looked at by no run of the page:
// the match had left the index of those unchanged since the snapshot, and
// was in neither part of the page, nor, placed before its end, in any later
// one: the export left it out.
func TestFollowedKeysetKeepsAMatchWrittenLateBetweenAPagesRuns(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			s.SetFollowLimits(10, 2)
			// A snapshot a second ago: the late write lands well within
			// FollowLag of its stamp, as FollowLag allows.
			f := &followedTasks{t: t, s: s, snapshot: time.Now().Add(-time.Second).Truncate(time.Millisecond), version: map[string]int{}}
			for i := range 6 {
				id := fmt.Sprintf("t%02d", i)
				f.write(id, f.snapshot.Add(time.Duration(i-100)*time.Millisecond))
				f.want = append(f.want, id)
			}
			// Created since the snapshot, more than a run looks at.
			for i := range 4 {
				f.write("c"+strconv.Itoa(i), f.snapshot.Add(time.Duration(2+i)*time.Millisecond))
			}
			replies := &searchReplies{}
			s.rdb.AddHook(replies) // the store's own client
			late := f.want[2]
			written := false
			var hook func()
			hook = func() {
				// After a run that looked at only some ('more', here
				// up to 2 ms after the snapshot), another process's
				// write of the snapshot's match stamped 1 ms after it
				// lands (its own commit is not a search run).
				if !written && replies.last() == "more" {
					written = true
					s.afterRead = nil
					f.write(late, f.snapshot.Add(time.Millisecond))
					s.afterRead = hook
				}
			}
			s.afterRead = hook
			got, err := f.pages(len(f.want)+4, nil)
			s.afterRead = nil
			if !written {
				t.Fatal("no page was read in runs: the test no longer crosses them")
			}
			if err != nil || !slices.Equal(got, f.want) {
				t.Errorf("pages %v %v, want %v, each once (%s written late between a page's runs)", got, err, f.want, late)
			}
		})
	}
}

// A page read in runs ('more') under load may take longer than FollowLag
// from its first run to its last. A write landing between them, stamped
// within FollowLag of its landing yet behind where a run had looked
// already, was passed over by the next page when that page looked on from
// FollowLag before the page's last run: a match of the snapshot placed
// after the page, moved out of the index of unchanged matches by the
// write, was then in no page, and the export left it out. The next page
// now looks on from no later than FollowLag before the page's first run.
func TestFollowedKeysetKeepsAMatchWrittenLateDuringALongPage(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			s.SetFollowLimits(10, 2)
			f := &followedTasks{t: t, s: s, snapshot: time.UnixMilli(1_700_000_001_000), version: map[string]int{}}
			for i := range 6 {
				id := fmt.Sprintf("t%02d", i)
				f.write(id, f.snapshot.Add(time.Duration(i-100)*time.Millisecond))
				f.want = append(f.want, id)
			}
			// Created since the snapshot, more than a run looks at.
			for i := range 4 {
				f.write("c"+strconv.Itoa(i), f.snapshot.Add(time.Duration(2+i)*time.Millisecond))
			}
			// The page begins less than FollowLag after the late write's
			// stamp (1 ms after the snapshot), and ends more than
			// FollowLag after it.
			var mu sync.Mutex
			clock := f.snapshot.Add(gateway.FollowLag - 500*time.Millisecond)
			s.now = func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				return clock
			}
			replies := &searchReplies{}
			s.rdb.AddHook(replies) // the store's own client
			late := f.want[4]      // placed after the first page
			written := false
			var hook func()
			hook = func() {
				// After a run that looked past its stamp ('more', up to
				// 3 ms after the snapshot), the write lands, within
				// FollowLag of its stamp; the page's last run comes
				// later than FollowLag after it.
				if !written && replies.last() == "more" {
					written = true
					s.afterRead = nil
					mu.Lock()
					clock = clock.Add(time.Second)
					mu.Unlock()
					f.write(late, f.snapshot.Add(time.Millisecond))
					mu.Lock()
					clock = clock.Add(time.Second)
					mu.Unlock()
					s.afterRead = hook
				}
			}
			s.afterRead = hook
			got, err := f.pages(3, nil)
			s.afterRead = nil
			if !written {
				t.Fatal("no page was read in runs: the test no longer crosses them")
			}
			if err != nil || !slices.Equal(got, f.want) {
				t.Errorf("pages %v %v, want %v, each once (%s written late during a long page)", got, err, f.want, late)
			}
		})
	}
}

// searchReplies records the first word of search.lua's latest answers
// ('need', 'more', or a page), pipelined or not.
type searchReplies struct {
	mu    sync.Mutex
	words []string
}

func (c *searchReplies) record(cmd redis.Cmder) {
	args := cmd.Args()
	if cmd.Name() != "evalsha" || len(args) < 2 || args[1] != searchScript.Hash() {
		return
	}
	reply, _ := cmd.(*redis.Cmd).Slice()
	word := "page"
	if len(reply) > 0 {
		if w, ok := reply[0].(string); ok {
			word = w
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.words = append(c.words, word)
}

// last is the latest answer's word, "" before any.
func (c *searchReplies) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.words) == 0 {
		return ""
	}
	return c.words[len(c.words)-1]
}

func (c *searchReplies) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *searchReplies) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		c.record(cmd)
		return err
	}
}
func (c *searchReplies) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			c.record(cmd)
		}
		return err
	}
}
