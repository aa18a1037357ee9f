package redisstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

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

// A keyset search that keeps what it followed (the export) counts against
// the bound only the matches of its snapshot that changed: more created
// since than the bound are looked at, a few a run, and are in no page;
// more of the snapshot's changed than the bound make it stale. A paging
// link, which keeps nothing, looks at every match written since, at most
// the bound, as before.
func TestFollowedKeysetCountsOnlyTheSnapshotsChanges(t *testing.T) {
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
	if _, err := pages(&gateway.Followed{}); !errors.Is(err, gateway.ErrSnapshotStale) {
		t.Errorf("3 of the snapshot changed (bound 2): %v, want stale", err)
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
