package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// TestMain lets this package's tests keep their fixtures, stamped at fixed
// times in 2023 (write) so that their scores are known: a Store they make
// takes stamps however far behind Redis's clock. The tests of that check
// set gateway.FollowLag back on their own Store (clockStore).
func TestMain(m *testing.M) {
	newStampLag = 100 * 365 * 24 * time.Hour
	os.Exit(m.Run())
}

// clockStore is a Store that refuses stamps more than gateway.FollowLag
// behind Redis's clock, as every Store outside these tests does.
func clockStore(t *testing.T, spread bool) (*Store, *redistest.Server) {
	s, r := newStore(t)
	s.SetStampLag(gateway.FollowLag)
	if spread {
		s.SpreadReferrals()
	}
	return s, r
}

// stamped is write stamped at, with a job and an audit record, so that a
// refused commit would show in the streams too.
func stamped(id string, version, expect int, at time.Time) *gateway.Commit {
	w := write("ServiceRequest", id, version, expect, "status=active", "requester=gp")
	w.Resource.LastUpdated = at
	return &gateway.Commit{Writes: []gateway.Write{w},
		Unique: []gateway.UniqueKey{{Key: "k-" + id + "-" + strconv.Itoa(version), Value: "ServiceRequest/" + id}},
		Jobs:   []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"task", id}}},
		Audit:  &gateway.AuditRecord{Recorded: at, Interaction: "update", Action: "U", Status: 200, Client: "gp"}}
}

// everything is every key Redis holds and its value, to show that a
// refused commit wrote nothing anywhere: serialised (DUMP), but a hash as
// its fields, whose order in DUMP changes with Redis's rehashing.
func everything(t *testing.T, r *redistest.Server) map[string]string {
	t.Helper()
	ctx := context.Background()
	rdb := r.Client()
	out := map[string]string{}
	for _, k := range rdb.Keys(ctx, "*").Val() {
		if rdb.Type(ctx, k).Val() == "hash" {
			out[k] = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
		} else {
			out[k] = rdb.Dump(ctx, k).Val()
		}
	}
	return out
}

func sameKeys(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%s: %d keys before, %d after", what, len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed: %q to %q", what, k, v, after[k])
		}
	}
}

// A write landing more than gateway.FollowLag after its stamp (by Redis's
// clock) breaks what keyset paging rests on: an export that took its
// snapshot meanwhile passes it over. Refused, new resource or update, with
// nothing written.
func TestCommitRefusesAStampFarBehindRedissClock(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run("spread="+strconv.FormatBool(spread), func(t *testing.T) {
			t.Parallel()
			s, r := clockStore(t, spread)
			ctx := context.Background()
			behind := time.Now().Add(-gateway.FollowLag - 2*time.Second)
			before := everything(t, r)
			if res, err := s.Commit(ctx, stamped("new", 1, 0, behind)); !errors.Is(err, gateway.ErrClockBehind) {
				t.Fatalf("a new resource stamped past FollowLag behind: %+v %v", res, err)
			}
			sameKeys(t, "new resource", before, everything(t, r))

			// Version 1 an hour before that, written as a Store without
			// the check did, so that version 2 is after it.
			s.SetStampLag(2 * time.Hour)
			if res, err := s.Commit(ctx, stamped("sr1", 1, 0, behind.Add(-time.Hour))); err != nil || !res.OK() {
				t.Fatal(res, err)
			}
			s.SetStampLag(gateway.FollowLag)
			before = everything(t, r)
			if res, err := s.Commit(ctx, stamped("sr1", 2, 1, behind)); !errors.Is(err, gateway.ErrClockBehind) {
				t.Fatalf("an update stamped past FollowLag behind: %+v %v", res, err)
			}
			sameKeys(t, "update", before, everything(t, r))
		})
	}
}

// Clocks are never exactly alike: a stamp a little behind Redis's clock
// (within FollowLag), at the same millisecond as the version it replaces,
// or ahead of Redis's clock (another host's clock ahead) is taken.
func TestCommitTakesStampsWithinTheLagOrAhead(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run("spread="+strconv.FormatBool(spread), func(t *testing.T) {
			t.Parallel()
			s, _ := clockStore(t, spread)
			ctx := context.Background()
			now := time.Now()
			for i, at := range []time.Time{now.Add(-gateway.FollowLag / 2), now, now, now.Add(time.Hour)} {
				v := i + 1
				if res, err := s.Commit(ctx, stamped("sr1", v, v-1, at)); err != nil || !res.OK() {
					t.Fatalf("version %d stamped %s from now: %+v %v", v, at.Sub(now), res, err)
				}
			}
			if res, err := s.Commit(ctx, stamped("sr2", 1, 0, now.Add(time.Hour))); err != nil || !res.OK() {
				t.Fatalf("a new resource stamped ahead: %+v %v", res, err)
			}
		})
	}
}

// A resource's version times never go back (the export's keyset paging
// finds the version current at its snapshot by binary search over them):
// an update stamped before the version it replaces is refused, as a change
// to read again (StampedBehind), with nothing written; one stamped at the
// same millisecond is taken.
func TestCommitRefusesAnUpdateStampedBeforeTheVersionItReplaces(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run("spread="+strconv.FormatBool(spread), func(t *testing.T) {
			t.Parallel()
			s, r := clockStore(t, spread)
			ctx := context.Background()
			now := time.Now().Truncate(time.Millisecond)
			if res, err := s.Commit(ctx, stamped("sr1", 1, 0, now)); err != nil || !res.OK() {
				t.Fatal(res, err)
			}
			before := everything(t, r)
			for _, expect := range []int{1, -1} { // expecting version 1, or any
				res, err := s.Commit(ctx, stamped("sr1", 2, expect, now.Add(-time.Millisecond)))
				if err != nil || !res.StampedBehind || res.OK() {
					t.Fatalf("expect %d: an update stamped 1ms before the version it replaces: %+v %v", expect, res, err)
				}
				sameKeys(t, "update stamped behind", before, everything(t, r))
			}
			if res, err := s.Commit(ctx, stamped("sr1", 2, 1, now)); err != nil || !res.OK() {
				t.Fatalf("an update stamped at the same millisecond: %+v %v", res, err)
			}
		})
	}
}
