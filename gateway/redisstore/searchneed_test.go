package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// Keyset paging reads the hashes of matches changed since the snapshot,
// which only search.lua finds: it names them ('need'), and runs again with
// them in KEYS. A changed match is still placed where it stood at the
// snapshot; one that changes between the two runs is named in turn.
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
			move("t2", 2, 1_700_000_000_030) // changes between the two runs
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
